"""Evaluators: turn a batch of genomes into fitnesses. The trainer does not care where the
rollouts run: locally in one batched engine, or split into shards across Ray workers."""
from __future__ import annotations

from typing import Any

import torch

from plasticrl.agents import make_policy
from plasticrl.config import ExperimentConfig
from plasticrl.device import resolve_device
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.rollouts.env_setup import make_env
from plasticrl.rollouts.loop import RolloutResult, rollout


class LocalEvaluator:
    """Rollouts of ``rows = members x episodes`` in one batched env on this process."""

    def __init__(self, config: ExperimentConfig, rows: int):
        self.config = config
        self.rows = rows
        self.env = make_env(config, rows)
        self.policy = make_policy(config.policy, self.env.single_observation_space, self.env.single_action_space,
                                  device=resolve_device(config.device), dtype=config.dtype)

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
        return rollout(
            self.policy, self.env, genomes.to(device=self.policy.device, dtype=self.policy.dtype),
            episodes_per_member, max_steps=None, seed=seeds, obs_norm=obs_norm,
            collect_obs_moments=collect_obs_moments, reset_options=options,
        )

    def close(self) -> None:
        self.env.close()
