"""Pipelined rollout: the policy of one half of the population runs while the other half's
physics steps.

With two cores the physics of all members already uses both, and in a plain rollout the policy
and bookkeeping then run afterwards on one core while the other waits. Here the rows are split
into two halves, each with its own engine and policy. While half A's physics runs on the
worker thread (``env.step_async``), the main thread computes half B's actions and then joins
A's physics (``env.step_wait`` lets it take instances the worker has not started); then the
roles swap. Rows never interact, half B's engine is seeded with ``seed + rows_A`` (sub-env i of
``reset(seed=s)`` is seeded with ``s + i``) and every row keeps the order act -> step -> learn,
so the result equals :func:`plasticrl.train.rollout.rollout` on all rows exactly
(``tests/test_pipeline.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.errors import PlasticRLError
from plasticrl.train.obs_norm import ObsNormalizer
from plasticrl.train.rollout import RolloutResult


@dataclass
class _Half:
    """One half of the rows: its engine, policy and running episode bookkeeping."""

    policy: BatchedPolicy
    env: Any
    rows: int
    obs: np.ndarray = None
    returns: torch.Tensor = None
    lengths: torch.Tensor = None
    active: torch.Tensor = None
    moments: list = field(default_factory=list)
    actions: np.ndarray | None = None

    def start(self, genome: torch.Tensor, episodes: int, seed: int | None, options: dict | None) -> None:
        self.policy.load_genome(genome, episodes)
        self.obs, _ = self.env.reset(seed=seed, options=options) if options else self.env.reset(seed=seed)
        d = self.policy.obs_dim
        self.returns = torch.zeros(self.rows, dtype=torch.float64)
        self.lengths = torch.zeros(self.rows, dtype=torch.long)
        self.active = torch.ones(self.rows, dtype=torch.bool)
        self.moments = [torch.zeros(self.rows, dtype=torch.float64), torch.zeros(self.rows, d, dtype=torch.float64),
                        torch.zeros(self.rows, d, dtype=torch.float64)]

    def observe(self) -> None:
        """Add the current raw observations of active rows to the moment sums (only for
        observations whose actions are then stepped)."""
        raw = self._raw()
        live = torch.where(self.active.unsqueeze(1), raw, torch.zeros_like(raw))
        self.moments[0] += self.active.double()
        self.moments[1] += live
        self.moments[2] += live * live

    def act(self, obs_norm: ObsNormalizer | None) -> None:
        raw = self._raw()
        x = obs_norm.normalise(raw) if obs_norm is not None else raw
        p = self.policy
        self.actions = p.act(x.to(device=p.device, dtype=p.dtype)).cpu().numpy().astype(np.float64)

    def _raw(self) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.obs), dtype=torch.float64).reshape(self.rows, -1)

    def record(self, out: tuple) -> torch.Tensor:
        """Book one transition; returns the rows that finished their episode on it."""
        self.obs, reward, terminated, truncated, _ = out
        r = torch.as_tensor(reward, dtype=torch.float64)
        self.returns += torch.where(self.active, r, torch.zeros_like(r))
        self.lengths += self.active.long()
        self.policy.learn(r.to(device=self.policy.device, dtype=self.policy.dtype))
        done = torch.as_tensor(np.logical_or(terminated, truncated))
        self.active &= ~done
        return done


def pipelined_rollout(
    halves: tuple[tuple[BatchedPolicy, Any], tuple[BatchedPolicy, Any]],
    genome: torch.Tensor,
    episodes_per_member: int = 1,
    max_steps: int | None = None,
    seed: int | None = None,
    obs_norm: ObsNormalizer | None = None,
    collect_obs_moments: bool = False,
    reset_options: dict | None = None,
) -> RolloutResult:
    """Same contract as :func:`~plasticrl.train.rollout.rollout`; members are split between the
    two (policy, env) pairs, the first taking ``env_a.num_envs / E`` members."""
    (policy_a, env_a), (policy_b, env_b) = halves
    E = episodes_per_member
    population = genome.shape[0]
    rows_a, rows_b = env_a.num_envs, env_b.num_envs
    if rows_a % E or rows_b % E or rows_a + rows_b != population * E:
        raise PlasticRLError(f"halves have {rows_a} + {rows_b} sub-envs; expected a split of "
                             f"{population} members x {E} episodes = {population * E} rows by whole members")
    members_a = rows_a // E
    a = _Half(policy_a, env_a, rows_a)
    b = _Half(policy_b, env_b, rows_b)
    opts_a = opts_b = reset_options
    if reset_options and "perturbations" in reset_options:
        per_row = list(reset_options["perturbations"])
        opts_a = {**reset_options, "perturbations": per_row[:rows_a]}
        opts_b = {**reset_options, "perturbations": per_row[rows_a:]}
    a.start(genome[:members_a], E, seed, opts_a)
    b.start(genome[members_a:], E, None if seed is None else seed + rows_a, opts_b)
    steps = 0
    collect = collect_obs_moments
    with torch.inference_mode():
        if collect:
            a.observe()
        a.act(obs_norm)
        env_a.step_async(a.actions)
        while True:
            if collect:
                b.observe()
            b.act(obs_norm)  # overlaps A's physics
            a.record(env_a.step_wait())
            env_b.step_async(b.actions)
            # A's next actions, computed while B's physics runs; if the rollout ends here they
            # are never stepped, so A's invalid flags from this act are rolled back below.
            invalid_a = policy_a.invalid.clone()
            a.act(obs_norm)
            b.record(env_b.step_wait())
            steps += 1
            if not bool(a.active.any() or b.active.any()) or (max_steps is not None and steps >= max_steps):
                policy_a.invalid = invalid_a
                break
            if collect:
                a.observe()
            env_a.step_async(a.actions)
    returns = torch.cat([a.returns, b.returns]).view(population, E)
    lengths = torch.cat([a.lengths, b.lengths]).view(population, E)
    invalid = torch.cat([policy_a.member_invalid().cpu(), policy_b.member_invalid().cpu()])
    obs_rows = None
    if collect_obs_moments:
        obs_rows = tuple(torch.cat([ma, mb]) for ma, mb in zip(a.moments, b.moments))
    return RolloutResult(returns=returns, lengths=lengths, invalid=invalid,
                         env_steps=steps * (rows_a + rows_b), obs_rows=obs_rows)
