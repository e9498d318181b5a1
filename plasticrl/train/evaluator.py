"""Evaluators: turn a batch of genomes into fitnesses. The trainer does not care where the
rollouts run: locally in one batched engine, or split into shards across Ray workers."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from plasticrl.agents import make_policy
from plasticrl.config import ExperimentConfig
from plasticrl.device import resolve_device
from plasticrl.train.obs_norm import ObsNormalizer
from plasticrl.train.rollout import RolloutResult, rollout


def env_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for ``make_vec``: the task's kwargs plus the episode cap."""
    kwargs = dict(config.env.kwargs)
    if config.env.max_episode_steps is not None:
        kwargs.setdefault("max_episode_steps", config.env.max_episode_steps)
    return kwargs


def training_reset_options(config: ExperimentConfig, rows: int, rng_seed: int,
                           episodes_per_member: int = 1) -> dict[str, Any] | None:
    """Reset options for training rollouts: nominal, one fixed perturbation for every row, the
    env's ``train`` distribution (domain randomisation) or its ``damage`` distribution (damage to
    limbs the novel suite leaves intact), drawn from ``rng_seed``: one draw per row, or with
    ``env.train_perturbation_draw: shared`` (ES: give ``episodes_per_member``) one per episode
    slot, row ``m * E + e`` (member ``m``, episode ``e``) getting draw ``e``."""
    spec = config.env.train_perturbation
    if spec is None:
        return None
    from plasticrl.envs import TRAINING_DISTRIBUTIONS

    if isinstance(spec, str) and spec in TRAINING_DISTRIBUTIONS:
        sample = TRAINING_DISTRIBUTIONS[spec]
        rng = np.random.default_rng(rng_seed)
        if config.env.train_perturbation_draw == "per_row":
            return {"perturbations": sample(config.env.id, rows, rng)}
        # rows = members x episodes_per_member (the config refuses 'shared' for trainers without members)
        draws = sample(config.env.id, episodes_per_member, rng)
        return {"perturbations": draws * (rows // episodes_per_member)}
    return {"perturbation": spec}


def make_env(config: ExperimentConfig, num_envs: int):
    """The vector env of a config (batched MuJoCo engine, or Gymnasium's for other ids)."""
    from plasticrl.envs import make_vec

    return make_vec(config.env.id, num_envs, physics_backend=config.env.physics_backend, **env_kwargs(config))


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
        ``{"perturbations": [p_row, ...]}`` one per row."""
        return rollout(
            self.policy, self.env, genomes.to(device=self.policy.device, dtype=self.policy.dtype),
            episodes_per_member, max_steps=None, seed=seed, obs_norm=obs_norm,
            collect_obs_moments=collect_obs_moments, reset_options=options,
        )

    def close(self) -> None:
        self.env.close()
