"""The one batched policy API every controller implements.

Rows are ``N = P * E`` (members x episodes per member), member-major: rows
``[p*E, (p+1)*E)`` belong to member ``p``. Parameters arrive as a flat genome ``[P, D]``;
per-episode state (potentials, traces, fast weights) lives per row.

Control loop::

    policy.load_genome(flat, episodes_per_member=E, seeds=s)   # also resets every row
    obs = env.reset(seed=s)
    while ...:
        actions = policy.act(obs)                       # [N, act_dim]
        obs, reward, term, trunc, _ = env.step(actions)
        policy.learn(reward)                            # within-lifetime plasticity
        policy.reset(term | trunc)                      # fresh episode for finished rows

Episode seeds: every row knows which episode it runs, as ``(reset seed, episodes since)``, the
way a Gymnasium env does: ``seeds`` given to ``load_genome``/``reset`` as the env's reset got
them (an int ``s``: row ``i`` gets ``s + i``; or one seed per row, ``None`` entries continuing)
start the rows at ``(seed, 0)``; a reset without a seed moves a row on to its next episode;
rows never seeded start at ``(row index, 0)``. :attr:`BatchedPolicy.episode_seeds` hashes the
pair (:func:`plasticrl.seeding.derive_episode_seed`); policies with random initial weights draw
them from it, so the same episode gets the same weights in training, evaluation and deployment.

With ``reward_input`` the policy also sees the previous step's reward: ``learn(reward)`` stores
it per row, the next ``act(obs)`` appends ``reward_input_scale * reward`` to the observation as
one more input (``input_dim = obs_dim + 1``), and ``reset`` zeroes it for the reset rows, so the
first step of every episode sees 0. With a context unit (``context_unit.enabled``,
:class:`~plasticrl.agents.config.ContextUnitConfig`) the last input column is the unit's value ``c``,
which starts every episode at ``initial`` and learns in ``learn``: ``c <- clip(c + eta * reward *
sign(c), -1, 1)``. Subclasses implement ``_act``/``_learn``/``_reset`` on the full input; this class does
the validation and the reward and context bookkeeping once for every kind.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from plasticrl.agents.state import ContextState, EpisodeState, detach_tree
from plasticrl.device import resolve_device, resolve_dtype
from plasticrl.errors import PlasticRLError, check_shape
from plasticrl.genome import GenomeSpec
from plasticrl.plasticity.modulation import rpe_step
from plasticrl.seeding import derive_episode_seed

if TYPE_CHECKING:
    from plasticrl.agents.config import ContextUnitConfig
    from plasticrl.agents.plastic_kernel import KernelStep


def context_update(context: torch.Tensor, reward: torch.Tensor, eta: float, jump: bool = False) -> torch.Tensor:
    """One step of the reward-latched context unit (:class:`~plasticrl.agents.config.ContextUnitConfig`):
    ``clip(c + eta * reward * sign(c), -1, 1)`` with ``sign(0) = +1``, so that a belief driven to 0 by
    negative reward goes on to the other sign instead of sticking at 0. ``jump``: a step that would take
    ``c`` across 0 sets it to the full value of the new sign instead (``-sign(c)``)."""
    post = _sign(context)
    value = torch.clamp(context + eta * reward.to(context.dtype) * post, -1.0, 1.0)
    return torch.where(_sign(value) != post, -post, value) if jump else value


def _sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0``, else -1, in ``x``'s dtype (the context unit's postsynaptic activity)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _optional_part(policy: str, value: torch.Tensor | ContextState | None, present: bool, part: str, option: str,
                   what: str) -> torch.Tensor | ContextState | None:
    """``value``, an episode state's entry for an optional part of a policy (the reward input, the context
    unit), checked to be there exactly when the policy has the part."""
    if present and value is None:
        raise PlasticRLError(f"this policy has a {part} ({option}: true); its episode state needs {what} (pass "
                             "a state from episode_state())")
    if not present and value is not None:
        raise PlasticRLError(f"{policy} has no {part} ({option}: false); the episode state carries {what}, so it "
                             f"comes from a policy with {option}: true")
    return value


class BatchedPolicy(abc.ABC):
    """Base class: genome bookkeeping, shapes, bounds and the invalid-row mask."""

    #: the implementation of act/learn in use: "torch" (torch ops) or "fused" (numba kernels)
    kernel: str = "torch"
    #: the type of ``episode_state().network``: the policy kind's own episode state (None: stateless)
    episode_state_type: type | None = None

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float] | torch.Tensor,
        action_high: Sequence[float] | torch.Tensor,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        reward_input: bool = False,
        reward_input_scale: float = 1.0,
        context_unit: ContextUnitConfig | None = None,
    ):
        if obs_dim <= 0 or act_dim <= 0:
            raise PlasticRLError(f"obs_dim and act_dim must be positive; got obs_dim={obs_dim}, act_dim={act_dim}")
        if not math.isfinite(reward_input_scale):
            raise PlasticRLError(f"reward_input_scale must be finite; got {reward_input_scale!r}")
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.reward_input = bool(reward_input)
        self.reward_input_scale = float(reward_input_scale)
        #: the reward-latched context unit's settings, ``None`` without one
        self.context_unit = context_unit if context_unit is not None and context_unit.enabled else None
        # the network's input: the env observation, the previous reward when it is an input, the context unit
        self.input_dim = self.obs_dim + (1 if self.reward_input else 0) + (1 if self.context_unit else 0)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        low = torch.as_tensor(action_low, dtype=self.dtype, device=self.device).reshape(-1)
        high = torch.as_tensor(action_high, dtype=self.dtype, device=self.device).reshape(-1)
        if low.numel() != act_dim or high.numel() != act_dim:
            raise PlasticRLError(f"action bounds have {low.numel()}/{high.numel()} entries; expected act_dim={act_dim}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or bool((high <= low).any()):
            raise PlasticRLError(f"action bounds must be finite with high > low; got low={low.tolist()}, high={high.tolist()}")
        self.action_low, self.action_high = low, high
        # Squashing constants, computed once: every op saved counts at one call per control step.
        self._action_mid = 0.5 * (high + low)
        self._action_half = 0.5 * (high - low)
        self.population = 0
        self.episodes_per_member = 1
        self.invalid = torch.zeros(0, dtype=torch.bool, device=self.device)
        # previous step's reward per row, the extra input (None without reward_input)
        self._previous_reward: torch.Tensor | None = None
        # the context unit's value (and RPE baseline) per row (None without a context unit)
        self._context: ContextState | None = None
        # per-row episode identity: the env reset seed and the episodes run since (see module doc)
        self._reset_seeds = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._episode_counts = torch.zeros(0, dtype=torch.int64, device=self.device)

    # -- genome -----------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def genome(self) -> GenomeSpec:
        """The parameter spec: which named groups exist and which are searched."""

    def initial_genome(self, population: int = 1) -> torch.Tensor:
        """``[population, D]`` flat genome at the spec's initial values."""
        return self.genome.initial_flat(population, device=self.device, dtype=self.dtype)

    def load_genome(self, flat: torch.Tensor, episodes_per_member: int = 1,
                    seeds: int | Sequence[int | None] | None = None) -> None:
        """Set the parameters of ``P`` members, each running ``E`` episodes; resets every row.

        ``seeds``: the env reset seeds of the rows' episodes (see the module docstring); rows
        without one start at ``(row index, 0)``."""
        flat = self._check_flat(flat)
        if episodes_per_member < 1:
            raise PlasticRLError(f"episodes_per_member must be >= 1; got {episodes_per_member}")
        self.population = flat.shape[0]
        self.episodes_per_member = int(episodes_per_member)
        self.invalid = torch.zeros(self.num_rows, dtype=torch.bool, device=self.device)
        self._reset_seeds = torch.arange(self.num_rows, dtype=torch.int64, device=self.device)
        self._episode_counts = torch.zeros(self.num_rows, dtype=torch.int64, device=self.device)
        self._start_episodes(None, seeds, advance=False)
        self._apply_genome(flat)
        self._reset_rows(None)

    def reload_parameters(self, flat: torch.Tensor) -> None:
        """Re-derive the per-row parameters from ``flat`` without touching the running episodes.

        Truncated BPTT needs this: each ``backward`` frees the graph of the parameter views, and
        the next segment must rebuild them from the (updated) flat genome while potentials,
        traces and fast weights carry on.
        """
        flat = self._check_flat(flat)
        if flat.shape[0] != self.population:
            raise PlasticRLError(f"flat genome has {flat.shape[0]} members; the loaded population has "
                                 f"{self.population} (use load_genome to change it)")
        self._apply_genome(flat)

    def _check_flat(self, flat: torch.Tensor) -> torch.Tensor:
        if not isinstance(flat, torch.Tensor) or flat.device != self.device or flat.dtype != self.dtype:
            flat = torch.as_tensor(flat).to(device=self.device, dtype=self.dtype)
        if flat.dim() == 1:
            flat = flat.unsqueeze(0)
        check_shape("flat genome", flat, (None, self.genome.dim))
        return flat

    def _apply_genome(self, flat: torch.Tensor) -> None:
        named = self.genome.unflatten(flat)
        per_row = {k: v.repeat_interleave(self.episodes_per_member, dim=0) for k, v in named.items()}
        self._set_parameters(per_row)

    # -- per-episode state ------------------------------------------------------------
    def episode_state(self) -> EpisodeState:
        """The per-episode state: the policy kind's own (``network``, None if stateless) and, with
        ``reward_input``, the stored previous reward, so that a state saved and set back replays the
        same inputs. The live tensors, not a copy: snapshot them (e.g. ``map_tree(torch.clone, state)``)
        before the next step changes them."""
        return EpisodeState(getattr(self, "_state", None), self._previous_reward if self.reward_input else None,
                            self._context if self.context_unit else None)

    def set_episode_state(self, state: EpisodeState) -> None:
        """Replace the per-episode state, e.g. with one saved at a sequence start."""
        name = type(self).__name__
        if not isinstance(state, EpisodeState):
            raise PlasticRLError(f"{name}.set_episode_state needs an EpisodeState (from episode_state()); "
                                 f"got {type(state).__name__}")
        expected = self.episode_state_type or type(None)
        if type(state.network) is not expected:
            raise PlasticRLError(f"{name}'s episode state holds a {expected.__name__}; got a "
                                 f"{type(state.network).__name__} (pass a state from this kind's episode_state())")
        self._previous_reward = _optional_part(name, state.previous_reward, self.reward_input, "reward input",
                                               "reward_input", "the stored reward 'previous_reward'")
        self._context = _optional_part(name, state.context, self.context_unit is not None, "context unit",
                                       "context_unit.enabled", "the unit's value 'context'")
        if state.network is not None:
            self._state = state.network

    def detach_state(self) -> None:
        """Cut the autograd graph through the per-episode state, keeping its values (truncated BPTT)."""
        if hasattr(self, "_state"):
            self._state = detach_tree(self._state)
        if self._previous_reward is not None:
            self._previous_reward = self._previous_reward.detach()
        if self._context is not None:
            self._context = detach_tree(self._context)

    @abc.abstractmethod
    def _set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        """Receive ``{group: [N, *shape]}`` and derive per-row constants."""

    @property
    def num_rows(self) -> int:
        return self.population * self.episodes_per_member

    # -- episode seeds --------------------------------------------------------------
    def _start_episodes(self, mask: torch.Tensor | None, seeds: int | Sequence[int | None] | None,
                        advance: bool = True) -> None:
        """Move the ``mask`` rows to their next episode: ``(seed, 0)`` where a seed is given, else
        (``advance``) one episode further from their last seed."""
        n = self.num_rows
        if seeds is None:  # the common case, once per control step in PPO: no per-row work, no sync
            if advance:
                self._episode_counts = self._episode_counts + (1 if mask is None else mask.to(torch.int64))
            return
        if isinstance(seeds, (int, np.integer)):
            per_row: list[int | None] = [int(seeds) + i for i in range(n)]
        else:
            per_row = [None if s is None else int(s) for s in seeds]
            if len(per_row) != n:
                raise PlasticRLError(f"seeds has {len(per_row)} entries; expected one per row (N={n})")
        if any(s is not None and s < 0 for s in per_row):
            raise PlasticRLError(f"episode seeds must be >= 0 (as env reset seeds); got {seeds!r}")
        rows = torch.ones(n, dtype=torch.bool, device=self.device) if mask is None else mask
        given = torch.tensor([s is not None for s in per_row], dtype=torch.bool, device=self.device) & rows
        values = torch.tensor([0 if s is None else s for s in per_row], dtype=torch.int64, device=self.device)
        if advance:
            self._episode_counts = self._episode_counts + (rows & ~given).to(torch.int64)
        self._reset_seeds = torch.where(given, values, self._reset_seeds)
        self._episode_counts = torch.where(given, torch.zeros_like(self._episode_counts), self._episode_counts)

    @property
    def episode_seeds(self) -> np.ndarray:
        """``[N]`` int64: each row's episode seed, :func:`plasticrl.seeding.derive_episode_seed` of
        its ``(reset seed, episodes since)``."""
        return self.episode_seeds_of(None)

    def episode_seeds_of(self, mask: torch.Tensor | None) -> np.ndarray:
        """The episode seeds of the ``mask`` rows (all if ``None``), in row order."""
        seeds, counts = self._reset_seeds.cpu().numpy(), self._episode_counts.cpu().numpy()
        rows = np.arange(self.num_rows) if mask is None else np.flatnonzero(mask.detach().cpu().numpy())
        return np.array([derive_episode_seed(seeds[i], counts[i]) for i in rows], dtype=np.int64)

    # -- episode API ----------------------------------------------------------------
    def reset(self, mask: torch.Tensor | None = None, seeds: int | Sequence[int | None] | None = None) -> None:
        """Restore per-episode state for rows where ``mask`` is true (all rows if ``None``);
        their reward input starts again at 0. ``seeds``: as the env's reset got them (see the
        module docstring); without one a row moves on to the next episode of its last seed."""
        mask = self._check_mask(mask)
        self._start_episodes(mask, seeds)
        self._reset_rows(mask)

    def _reset_rows(self, mask: torch.Tensor | None) -> None:
        if self.reward_input:
            previous = self._previous_reward
            if mask is None or previous is None or previous.shape[0] != self.num_rows:
                self._previous_reward = torch.zeros(self.num_rows, device=self.device, dtype=self.dtype)
            else:
                self._previous_reward = previous.masked_fill(mask, 0.0)
        if self.context_unit:
            context, unit = self._context, self.context_unit
            rpe = unit.modulation == "rpe"
            if mask is None or context is None or context.value.shape[0] != self.num_rows:
                value = torch.full((self.num_rows,), unit.initial, device=self.device, dtype=self.dtype)
                self._context = ContextState(value, torch.zeros_like(value) if rpe else None)
            else:
                self._context = ContextState(context.value.masked_fill(mask, unit.initial),
                                             context.baseline.masked_fill(mask, 0.0) if rpe else None)
        self._reset(mask)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [N, obs_dim]`` -> ``actions [N, act_dim]`` inside the action bounds.

        With ``reward_input`` the network sees ``[obs, reward_input_scale * previous reward]``, and with a
        context unit its value as the last column."""
        x = self._check_obs(obs)
        if self.reward_input:
            x = torch.cat([x, (self.reward_input_scale * self._previous_reward).unsqueeze(1)], dim=1)
        if self.context_unit:
            x = torch.cat([x, self._context.value.unsqueeze(1)], dim=1)
        return self._act(x)

    def learn(self, reward: torch.Tensor) -> None:
        """Within-lifetime learning from this step's reward ``[N]`` (static policies learn nothing);
        with ``reward_input`` the reward is also the next step's extra input."""
        reward = self._check_reward(reward)
        if self.reward_input:
            # a copy: callers may hand in a view of a buffer they overwrite next step
            self._previous_reward = reward.detach().clone()
        if self.context_unit:
            self._context = self._context_step(reward.detach())
        self._learn(reward)

    def _context_step(self, reward: torch.Tensor) -> ContextState:
        """The context unit's next state: driven by the reward or, with ``modulation: rpe``, by its error
        against the running baseline (which then moves toward the reward)."""
        unit, state = self.context_unit, self._context
        drive, baseline = reward, state.baseline
        if unit.modulation == "rpe":
            drive, baseline = rpe_step(reward.to(self.dtype), state.baseline, unit.rpe_rate)
        return ContextState(context_update(state.value, drive, unit.eta, unit.crossing == "jump"), baseline)

    @property
    def uses_reward(self) -> bool:
        """Whether the actions depend on the rewards given to :meth:`learn` (here: reward input, or a context
        unit that learns)."""
        return self.reward_input or bool(self.context_unit and self.context_unit.eta > 0)

    def kernel_step(self, obs: np.ndarray, actions: np.ndarray, reward: np.ndarray) -> KernelStep | None:
        """The fused kernels' arguments for a caller that runs :meth:`act` and :meth:`learn` inside its own
        compiled step (the rollout loop, :mod:`plasticrl.rollouts.compiled`), or ``None`` where this policy
        has no such path (the default; a fused policy returns one).

        ``obs [N, input_dim]`` (read by ``act``), ``actions [N, act_dim]`` (written by it) and
        ``reward [N]`` (read by ``learn``): C-contiguous numpy buffers in the policy's dtype that the
        caller fills. The arguments stay valid until the policy's state tensors are replaced
        (``load_genome``, ``reset``, a state load): ask again after those.

        With ``reward_input`` the caller fills only the observation columns of ``obs`` and writes the reward
        column itself before each ``act``: ``reward_scale[0] * reward`` (see :meth:`_kernel_reward_input`),
        with ``reward`` holding the last step's reward, as :meth:`act` appends it."""
        return None

    def _kernel_reward_input(self, reward: np.ndarray) -> np.ndarray:
        """For :meth:`kernel_step`: with ``reward_input``, the caller's ``reward`` buffer becomes the stored
        previous reward (its current values copied in first), so that each step's reward written into it
        is the next ``act``'s reward input, as :meth:`learn` stores it, and the policy holds the last one
        when the caller stops; returns ``reward_input_scale`` as a 1-element array of the policy's dtype
        (the caller's reward column is ``scale[0] * reward``, in that dtype as :meth:`act` computes it).
        Without ``reward_input`` an empty array: no reward column."""
        if not self.reward_input:
            return np.zeros(0, dtype=reward.dtype)
        if self._previous_reward is not None:
            reward[:] = self._previous_reward.detach().cpu().numpy()
        self._previous_reward = torch.from_numpy(reward)
        return np.array([self.reward_input_scale], dtype=reward.dtype)

    @abc.abstractmethod
    def _reset(self, mask: torch.Tensor | None) -> None:
        """Restore the subclass's per-episode state for the (checked) ``mask`` rows, all if ``None``."""

    @abc.abstractmethod
    def _act(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, input_dim]`` (observation, then the reward input if any) -> ``actions [N, act_dim]``."""

    def _learn(self, reward: torch.Tensor) -> None:
        """Plasticity from the checked reward ``[N]``; a static policy has none."""

    def member_invalid(self) -> torch.Tensor:
        """``[P]``: members with any row that produced non-finite weights or actions."""
        return self.invalid.view(self.population, self.episodes_per_member).any(dim=1)

    # -- helpers for subclasses ---------------------------------------------------------
    def _check_obs(self, obs: torch.Tensor) -> torch.Tensor:
        if self.population == 0:
            raise PlasticRLError("no genome loaded; call load_genome(flat, episodes_per_member) first")
        obs = torch.as_tensor(obs, device=self.device, dtype=self.dtype)
        check_shape("observation batch", obs, (self.num_rows, self.obs_dim))
        return obs

    def _check_reward(self, reward: torch.Tensor) -> torch.Tensor:
        if self.population == 0:
            raise PlasticRLError("no genome loaded; call load_genome(flat, episodes_per_member) first")
        reward = torch.as_tensor(reward, device=self.device, dtype=self.dtype).reshape(-1)
        if reward.numel() != self.num_rows:
            raise PlasticRLError(f"reward has {reward.numel()} entries; expected one per row (N={self.num_rows})")
        return reward

    def _check_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=self.device).to(torch.bool)
        check_shape("reset mask", mask, (self.num_rows,))
        return mask

    def _sanitize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Mark rows with non-finite actions invalid and send the midpoint action instead."""
        # One reduction decides the common all-finite case: a sum of finite, bounded actions is
        # finite. Only if it is not (a NaN/inf somewhere, or an overflow) are rows checked one by one.
        if bool(torch.isfinite(actions.sum())):
            return actions
        bad = ~torch.isfinite(actions).all(dim=1)
        if bool(bad.any()):
            self.invalid |= bad
            actions = torch.where(bad.unsqueeze(1), self._action_mid.expand_as(actions), actions)
        return actions

    def _squash(self, x: torch.Tensor) -> torch.Tensor:
        return self._action_mid + self._action_half * torch.tanh(x)

