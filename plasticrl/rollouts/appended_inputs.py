"""Start a policy from a saved agent whose observation is a prefix of the new task's
(``train.init_agent_inputs: appended``): e.g. a forward walker trained on Ant-v5 starting the
goal-observing oracle of AntDir-v5, whose observation is Ant-v5's plus the goal's (cos, sin).

Every searched group of the new genome takes the saved agent's value where the shapes agree; a group
that grew along its last axis (the input axis: ``layers.0.w``, a per-input encoder gain or bias, a
per-synapse learning rate of the first layer) keeps the saved values in its leading entries. The new
inputs' weights start at 0 and their other per-input parameters at the new policy's initial values, so a
fixed-weight policy acts exactly as the saved one whatever the new inputs hold, until the search moves
those weights; a plastic one does so while the new inputs are 0 (a Hebbian rule moves the weights of
inputs that are not, within the episode: that is its job). Kept weights are rescaled by the ratio of the
fixed fan-in scales (``layers.L.w_scale``, where the policy has them), which change with the number of
inputs, so the effective weights are the saved agent's up to the rounding of that one multiplication."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.obs_norm import ObsNormalizer

if TYPE_CHECKING:
    from plasticrl.agents.base import BatchedPolicy


def genome_with_appended_inputs(saved_policy: BatchedPolicy, saved_genome: torch.Tensor,
                                policy: BatchedPolicy) -> torch.Tensor:
    """``[D]``: the genome of ``policy`` (``k`` more inputs than ``saved_policy``, appended) that acts as
    ``saved_genome`` does on ``saved_policy`` while the new inputs' weights stay 0 (module docstring).

    Raises :class:`~plasticrl.errors.PlasticRLError` naming the group if the two genomes differ in any
    other way (other groups, other output or hidden sizes)."""
    if policy.obs_dim <= saved_policy.obs_dim:
        raise PlasticRLError(f"train.init_agent_inputs: appended needs more inputs than the saved agent has; it "
                             f"has {saved_policy.obs_dim}, this task {policy.obs_dim} (use 'same')")
    old_spec, new_spec = saved_policy.genome, policy.genome
    if old_spec.searched_names != new_spec.searched_names:
        raise PlasticRLError(f"train.init_agent_inputs: appended needs the same searched groups; the saved agent "
                             f"has {', '.join(old_spec.searched_names)}, this policy "
                             f"{', '.join(new_spec.searched_names)}")
    old = old_spec.unflatten(saved_genome.reshape(1, -1).to(torch.float64))
    new_initial = new_spec.initial_values()
    out: dict[str, torch.Tensor] = {}
    for group in new_spec.searched_groups:
        value, shape = old[group.name][0], group.shape
        if tuple(value.shape) == shape:
            out[group.name] = value.clone()
            continue
        grew_last_axis = (len(shape) == value.dim() and shape[:-1] == tuple(value.shape[:-1])
                          and shape[-1] > value.shape[-1])
        if not grew_last_axis:
            raise PlasticRLError(f"train.init_agent_inputs: appended cannot map parameter group {group.name!r} "
                                 f"from shape {list(value.shape)} to {list(shape)} (only the input axis may grow)")
        kept = value.shape[-1]
        fresh = new_initial[group.name].to(torch.float64).clone()
        if group.name.endswith(".w"):
            fresh[..., kept:] = 0.0  # the new inputs do nothing until the search moves them
            scale = group.name[:-2] + ".w_scale"
            if scale in old and scale in new_initial:
                value = value * (old[scale][0] / new_initial[scale].to(torch.float64))
        fresh[..., :kept] = value
        out[group.name] = fresh
    return new_spec.flatten({k: v.unsqueeze(0) for k, v in out.items()})[0]


def obs_norm_with_appended_inputs(saved: ObsNormalizer, obs_dim: int) -> ObsNormalizer:
    """The saved statistics for the leading entries; the appended ones start at mean 0, variance 1 with the
    same count (so the new inputs reach the policy unscaled, and their statistics move as slowly as the
    others' under further training)."""
    norm = ObsNormalizer(obs_dim, clip=saved.clip, eps=saved.eps, std_floor=saved.std_floor)
    kept = saved.obs_dim
    norm.count = saved.count
    norm.mean[:kept] = saved.mean
    norm.m2[:kept] = saved.m2
    norm.m2[kept:] = saved.count  # variance 1
    return norm
