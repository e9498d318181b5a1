"""Evaluators: turn a batch of genomes into fitnesses. The trainer does not care where the
rollouts run: locally in one batched engine, or split into shards across Ray workers."""
from __future__ import annotations

from typing import Any

import torch

from plasticrl.agents import make_policy
from plasticrl.agents.base import BatchedPolicy
from plasticrl.config import ExperimentConfig
from plasticrl.device import resolve_device
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.rollouts.env_setup import make_env
from plasticrl.rollouts.loop import RolloutResult, rollout
from plasticrl.rollouts.shards import PopulationShards, shard_physics_threads


class LocalEvaluator:
    """Rollouts of ``rows = members x episodes`` in one batched env on this process, or with
    ``train.threads > 1`` in that many population shards on threads (:mod:`plasticrl.rollouts.shards`)."""

    def __init__(self, config: ExperimentConfig, rows: int):
        self.config = config
        self.rows = rows
        threads = config.train.threads
        self.shards: PopulationShards | None = None
        self._env = None
        if threads > 1 and resolve_device(config.device).type == "cpu":
            # population shards on threads, each with its own env and policy (same results, bit for bit);
            # their envs are built at the first rollout, when the member count is known
            self.shards = PopulationShards(lambda n: make_env(config, n, num_threads=shard_physics_threads(threads)),
                                           self._make_policy, threads)
            spaces = make_env(config, 1)
            self.policy = self._make_policy(spaces)
            spaces.close()
        else:
            self._env = make_env(config, rows)
            self.policy = self._make_policy(self._env)

    @property
    def env(self):
        """The one batched env of ``rows`` instances (built at first use when the rollouts run in shards)."""
        if self._env is None:
            self._env = make_env(self.config, self.rows)
        return self._env

    def _make_policy(self, env) -> BatchedPolicy:
        return make_policy(self.config.policy, env.single_observation_space, env.single_action_space,
                           device=resolve_device(self.config.device), dtype=self.config.dtype)

    def evaluate(
        self,
        genomes: torch.Tensor,
        episodes_per_member: int,
        seed: int,
        obs_norm: ObsNormalizer | None,
        collect_obs_moments: bool,
        options: dict[str, Any] | None = None,
    ) -> RolloutResult:
        """``options`` go to ``env.reset``: ``{"perturbation": p}`` for every row or
        ``{"perturbations": [p_row, ...]}`` one per row. Row ``r`` (member ``m``, episode ``e``) is reset
        with seed ``seed + r``, or ``seed + e`` with ``env.train_episode_seeds: shared``."""
        seeds: int | list[int] = seed
        if self.config.env.train_episode_seeds == "shared":
            seeds = [seed + e for _ in range(genomes.shape[0]) for e in range(episodes_per_member)]
        if self.shards is not None and genomes.shape[0] > 1:
            return self.shards.rollout(genomes, episodes_per_member, max_steps=None, seed=seeds, obs_norm=obs_norm,
                                       collect_obs_moments=collect_obs_moments, reset_options=options)
        return rollout(
            self.policy, self.env, genomes.to(device=self.policy.device, dtype=self.policy.dtype),
            episodes_per_member, max_steps=None, seed=seeds, obs_norm=obs_norm,
            collect_obs_moments=collect_obs_moments, reset_options=options,
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
        if self.shards is not None:
            self.shards.close()
