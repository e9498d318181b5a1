"""Genome batches, observation normalisers and untrained agent files for the tests (imported by them): inputs
that make two paths of one computation, or a perturbation, show a difference."""
from __future__ import annotations

import torch


def perturbed_genome(policy, population: int, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``population`` rows of the policy's initial genome plus seeded Gaussian noise of scale ``noise``:
    members that differ, so a kernel that mixed up rows would show."""
    g = torch.Generator().manual_seed(seed)
    flat = policy.initial_genome(population)
    return flat + noise * torch.randn(flat.shape, generator=g, dtype=flat.dtype)


def seeded_normalizer(obs_dim: int, clip: float = 2.0):
    """An observation normaliser with seeded, non-trivial statistics (means and stds differ per entry), so a
    rollout that skipped or misapplied normalisation would show."""
    from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer

    g = torch.Generator().manual_seed(4)
    norm = ObsNormalizer(obs_dim, clip=clip)
    total = torch.randn(obs_dim, generator=g, dtype=torch.float64)
    norm.update(ObsBatchMoments(10.0, total, total * total / 10 + 2.0))
    return norm


def random_agent_file(path, env_id: str, kind: str = "linear", seed: int = 0, modulation: str = "reward",
                      env_kwargs: dict | None = None):
    """Save an untrained agent (a linear policy, or a small BCM plastic spiking one gated by ``modulation``)
    whose genome is the initial one plus seeded noise of scale 0.5: cheap to evaluate, with actions large
    enough that perturbations show. Returns the saved path."""
    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.saved_agent import save_agent

    env_kwargs = dict(env_kwargs or {})
    env = make_vec(env_id, 1, **env_kwargs)
    cfg = {"kind": kind} if kind == "linear" else {
        "kind": kind, "hidden": [8], "plasticity": {"rule": "bcm", "modulation": modulation, "sharing": "post"}}
    policy = make_policy(cfg, env.single_observation_space, env.single_action_space)
    env.close()
    return save_agent(path, policy, cfg, perturbed_genome(policy, 1, seed=seed)[0], None,
                      {"env_id": env_id, "env_kwargs": env_kwargs})


def torch_and_fused(policy_cls, cfg: dict, dtype: str, obs_dim: int, act_dim: int) -> list:
    """The same policy config built twice, on the torch path and on the fused kernel (actions in [-1, 2]),
    for the tests that hold the kernel to the torch path."""
    pols = [policy_cls(obs_dim, act_dim, [-1.0] * act_dim, [2.0] * act_dim, {**cfg, "kernel": k}, dtype=dtype)
            for k in ("torch", "fused")]
    assert [p.kernel for p in pols] == ["torch", "fused"]
    return pols
