"""``kind: symmetric``: a base policy trained for one goal, steered to a goal's images under the body's
symmetry, with a heading that is observed (the oracle) or learned within the episode from the reward.

With heading ``k`` (quarter turns from +x) the base sees the observation turned by ``-k`` (the frame in
which the goal is +x), normalised by the base's own statistics, and its action is turned by ``k``
(:mod:`plasticrl.envs.symmetry`): because the dynamics commute with the turn, the base's walk toward +x
becomes a walk toward angle ``k * pi/2``. The heading comes from :class:`~plasticrl.agents.config.
SymmetricGoalConfig`: the goal's observed (cos, sin) (the oracle), three plastic synapses that learn, from
each step's reward and the velocity the step ended with, which direction the reward pays for (plastic), or a
static recurrent network that reads the same velocity and the previous reward (the memory-based twin).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import SymmetricConfig
from plasticrl.agents.state import EpisodeState
from plasticrl.envs.symmetry import symmetry
from plasticrl.errors import PlasticRLError
from plasticrl.genome import GenomeSpec, ParamGroup


@dataclasses.dataclass
class SymmetricEpisodeState:
    """Per-row state of a symmetric policy."""

    base: EpisodeState
    """the base policy's episode state"""
    goal_weights: torch.Tensor
    """``[N, 3]``: the goal synapses ``(gx, gy, b)``: reward predicted as ``gx vx + gy vy + b``"""
    pending_reward: torch.Tensor
    """``[N]``: the last step's reward, learned from at the next ``act`` with the velocity it ended with"""
    has_pending: torch.Tensor
    """``[N]`` bool: whether ``pending_reward`` holds a reward not yet learned from"""
    heading: torch.Tensor
    """``[N]`` int64: the heading in force, in quarter turns"""
    memory: torch.Tensor
    """``[N, H]``: the recurrent heading network's activity (``goal.source: recurrent``; ``H = 0`` otherwise)"""


def goal_synapse_step(weights: torch.Tensor, velocity: torch.Tensor, reward: torch.Tensor,
                      eta: float) -> torch.Tensor:
    """One normalised delta-rule step of the goal synapses: ``x = (vx, vy, 1)``,
    ``w + eta * (reward - w . x) * x / |x|^2``. ``weights [N, 3]``, ``velocity [N, 2]``, ``reward [N]``."""
    x = torch.cat([velocity, torch.ones_like(velocity[:, :1])], dim=1)
    error = reward - (weights * x).sum(dim=1)
    return weights + eta * (error / (x * x).sum(dim=1)).unsqueeze(1) * x


def choose_heading(weights: torch.Tensor, current: torch.Tensor, margin: float, order: int = 4) -> torch.Tensor:
    """The heading whose unit vector has the largest predicted reward ``(gx, gy) . u_k``, where it beats the
    current heading's by more than ``margin``; else the current one. ``weights [N, 3]``, ``current [N]``."""
    angles = torch.arange(order, device=weights.device, dtype=weights.dtype) * (2.0 * math.pi / order)
    units = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # [order, 2]
    return switch_heading(weights[:, :2] @ units.T, current, margin)


def switch_heading(scores: torch.Tensor, current: torch.Tensor, margin: float) -> torch.Tensor:
    """Per row, the best-scoring heading where its score beats the current heading's by more than
    ``margin``, else the current one. ``scores [N, order]``, ``current [N]``."""
    best = scores.argmax(dim=1)
    gain = scores.gather(1, best.unsqueeze(1)).squeeze(1) - scores.gather(1, current.unsqueeze(1)).squeeze(1)
    return torch.where(gain > margin, best, current)


class SymmetricPolicy(BatchedPolicy):
    """The base policy steered by the symmetry (module docstring); its genome is the base's, followed by the
    heading network's groups ``goal.*`` with ``goal.source: recurrent``."""

    episode_state_type = SymmetricEpisodeState

    def __init__(self, obs_dim: int, act_dim: int, action_low: Sequence[float] | torch.Tensor,
                 action_high: Sequence[float] | torch.Tensor, config: SymmetricConfig, base: BatchedPolicy,
                 device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
        super().__init__(obs_dim, act_dim, action_low, action_high, device, dtype)
        self.config = config
        self.base = base
        self.kernel = base.kernel
        observed = config.goal.source == "observed"
        if base.obs_dim + (2 if observed else 0) != obs_dim or base.act_dim != act_dim:
            raise PlasticRLError(
                f"kind symmetric with goal.source {config.goal.source!r} needs the base's observation "
                f"{'plus the goal (cos, sin) ' if observed else ''}and its action: the base has "
                f"{base.obs_dim} inputs and {base.act_dim} outputs, the task {obs_dim} and {act_dim}")
        try:
            group = symmetry(config.symmetry, base.obs_dim)
        except PlasticRLError as exc:
            if not observed:
                raise
            raise PlasticRLError(f"{exc} (the task's {obs_dim} less the goal's two columns, which goal.source "
                                 "'observed' reads)") from None
        if group.act_dim != act_dim:
            raise PlasticRLError(f"symmetry {config.symmetry!r} maps {group.act_dim} actions; the task has {act_dim}")
        self.symmetry = group
        as_tensor = lambda m: torch.as_tensor(m, device=self.device, dtype=self.dtype)  # noqa: E731
        # [order, D, D]: heading k reads the observation turned by -k and turns the action by k
        self._obs_maps = as_tensor(np.stack([group.obs_turn(-k) for k in range(group.order)]))
        self._action_maps = as_tensor(np.stack([group.action_turn(k) for k in range(group.order)]))
        self._velocity_columns = list(group.velocity_columns)
        norm = config.base_obs_norm
        if norm is not None and len(norm.mean) != base.obs_dim:
            raise PlasticRLError(f"base_obs_norm has {len(norm.mean)} entries; the base observes {base.obs_dim}")
        self._norm = None if norm is None else (as_tensor(norm.mean), as_tensor(norm.std), float(norm.clip))
        self._state: SymmetricEpisodeState | None = None
        self._hidden = config.goal.hidden if config.goal.source == "recurrent" else 0
        self._genome = self._compose_genome()
        self._goal_params: dict[str, torch.Tensor] = {}

    def _compose_genome(self) -> GenomeSpec:
        """The base's genome, then (``source: recurrent``) the heading network's groups ``goal.*``, searched."""
        base = self.base.genome
        if not self._hidden:
            return base
        h, order = self._hidden, self.symmetry.order
        goal = [ParamGroup("goal.w_in", (h, 3), "normal", 0.0, 1.0 / math.sqrt(3)),
                ParamGroup("goal.w_rec", (h, h), "normal", 0.0, 0.5 / math.sqrt(h)),
                ParamGroup("goal.b", (h,), "constant", 0.0),
                ParamGroup("goal.w_out", (order, h), "constant", 0.0)]
        # the base's groups first, with their own initial values: the base's searched columns lead the flat
        # genome, so a base genome is its prefix
        drawn = GenomeSpec(goal, seed=base.seed + 1).initial_values()
        return GenomeSpec([*base.groups, *goal], seed=base.seed, values={**base.initial_values(), **drawn})

    @property
    def genome(self) -> GenomeSpec:
        return self._genome

    @property
    def kernel_reason(self) -> str:
        """Why the base runs the kernel it does (what ``kernel: auto`` picked)."""
        return getattr(self.base, "kernel_reason", "the base policy's kernel")

    @property
    def uses_reward(self) -> bool:
        goal = self.config.goal
        return self.base.uses_reward or goal.source == "recurrent" or (goal.source == "inferred" and goal.eta > 0)

    # -- genome and episodes: the base carries its own, this class the heading --------------------
    def load_genome(self, flat: torch.Tensor, episodes_per_member: int = 1,
                    seeds: int | Sequence[int | None] | None = None) -> None:
        flat = self._check_flat(flat)
        self.base.load_genome(flat[:, :self.base.genome.dim], episodes_per_member, seeds)
        super().load_genome(flat, episodes_per_member, seeds)

    def reload_parameters(self, flat: torch.Tensor) -> None:
        flat = self._check_flat(flat)
        self.base.reload_parameters(flat[:, :self.base.genome.dim])
        super().reload_parameters(flat)

    def _apply_genome(self, flat: torch.Tensor) -> None:
        if not self._hidden:  # the base holds its own parameters; this class the heading network's
            return
        named = self._genome.unflatten(flat)
        self._set_parameters({k: v.repeat_interleave(self.episodes_per_member, dim=0)
                              for k, v in named.items() if k.startswith("goal.")})

    def _set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        self._goal_params = params  # the heading network's groups, per row (_apply_genome picks them)

    def reset(self, mask: torch.Tensor | None = None, seeds: int | Sequence[int | None] | None = None) -> None:
        self.base.reset(mask, seeds)
        super().reset(mask, seeds)

    def _reset(self, mask: torch.Tensor | None) -> None:
        n, goal = self.num_rows, self.config.goal
        fresh_weights = torch.zeros(n, 3, device=self.device, dtype=self.dtype)
        fresh_heading = torch.full((n,), goal.initial_heading, device=self.device, dtype=torch.int64)
        fresh_memory = torch.zeros(n, self._hidden, device=self.device, dtype=self.dtype)
        state = self._state
        if mask is None or state is None or state.heading.shape[0] != n:
            self._state = SymmetricEpisodeState(self.base.episode_state(), fresh_weights,
                                                torch.zeros(n, device=self.device, dtype=self.dtype),
                                                torch.zeros(n, device=self.device, dtype=torch.bool), fresh_heading,
                                                fresh_memory)
            return
        self._state = SymmetricEpisodeState(
            self.base.episode_state(), torch.where(mask.unsqueeze(1), fresh_weights, state.goal_weights),
            state.pending_reward.masked_fill(mask, 0.0), state.has_pending & ~mask,
            torch.where(mask, fresh_heading, state.heading), torch.where(mask.unsqueeze(1), fresh_memory, state.memory))

    def set_episode_state(self, state: EpisodeState) -> None:
        super().set_episode_state(state)
        self.base.set_episode_state(state.network.base)

    def detach_state(self) -> None:
        self.base.detach_state()
        super().detach_state()

    # -- control ------------------------------------------------------------------------------------
    def _heading(self, obs: torch.Tensor) -> torch.Tensor:
        """Each row's heading for this step (also stored as ``state.heading``), after learning from the last
        step's reward where the heading is inferred."""
        state, goal = self._state, self.config.goal
        if goal.source == "observed":
            angle = torch.atan2(obs[:, -1], obs[:, -2])
            order = self.symmetry.order
            state.heading = torch.remainder(torch.round(angle / (2.0 * math.pi / order)), order).to(torch.int64)
            return state.heading
        if goal.source == "recurrent":
            p = self._goal_params
            x = torch.cat([obs[:, self._velocity_columns], state.pending_reward.unsqueeze(1)], dim=1)
            drive = (torch.einsum("nhi,ni->nh", p["goal.w_in"], x) + torch.einsum("nhj,nj->nh", p["goal.w_rec"],
                                                                                  state.memory) + p["goal.b"])
            state.memory = torch.tanh(drive)
            scores = torch.einsum("nkh,nh->nk", p["goal.w_out"], state.memory)
            state.heading = switch_heading(scores, state.heading, goal.margin)
            return state.heading
        if goal.eta > 0:
            velocity = obs[:, self._velocity_columns]
            learned = goal_synapse_step(state.goal_weights, velocity, state.pending_reward, goal.eta)
            state.goal_weights = torch.where(state.has_pending.unsqueeze(1), learned, state.goal_weights)
            state.has_pending = torch.zeros_like(state.has_pending)
            state.heading = choose_heading(state.goal_weights, state.heading, goal.margin, self.symmetry.order)
        return state.heading

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        heading = self._heading(x)
        rows = torch.arange(x.shape[0], device=self.device)
        # every heading's view, then each row's: order small matmuls, not an [N, D, D] gather
        turned = torch.einsum("kij,nj->kni", self._obs_maps, x[:, :self.base.obs_dim])[heading, rows]
        if self._norm is not None:
            mean, std, clip = self._norm
            turned = ((turned - mean) / std).clamp(-clip, clip)
        base_action = self.base.act(turned)
        action = torch.einsum("kij,nj->kni", self._action_maps, base_action)[heading, rows]
        self.invalid |= self.base.invalid
        return self._sanitize_actions(action)

    def _learn(self, reward: torch.Tensor) -> None:
        self.base.learn(reward)
        self._state.pending_reward = reward.detach().clone()
        self._state.has_pending = torch.ones_like(self._state.has_pending)

    def episode_state(self) -> EpisodeState:
        self._state.base = self.base.episode_state()
        return super().episode_state()
