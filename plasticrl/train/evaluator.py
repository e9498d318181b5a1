"""Evaluators: turn a batch of genomes into fitnesses. The trainer does not care where the
rollouts run: locally in one batched engine, or split into shards across Ray workers."""
from __future__ import annotations

from typing import Any

import torch

from plasticrl.agents import make_policy
from plasticrl.config import ExperimentConfig
from plasticrl.device import resolve_device
from plasticrl.train.obs_norm import ObsNormalizer
from plasticrl.train.pipeline import pipelined_rollout
from plasticrl.train.rollout import RolloutResult, rollout


def env_kwargs(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for ``make_vec``: the task's kwargs plus the episode cap."""
    kwargs = dict(config.env.kwargs)
    if config.env.max_episode_steps is not None:
        kwargs.setdefault("max_episode_steps", config.env.max_episode_steps)
    return kwargs


def make_env(config: ExperimentConfig, num_envs: int):
    """The vector env of a config (batched MuJoCo engine, or Gymnasium's for other ids)."""
    from plasticrl.envs import make_vec

    return make_vec(config.env.id, num_envs, **env_kwargs(config))


class LocalEvaluator:
    """Rollouts of ``rows = members x episodes`` in one batched env on this process.

    With ``pipeline=True`` (training rollouts on the native engine with more than one physics
    thread and at least two members) the rows are split into two halves stepped in a pipeline
    (:mod:`plasticrl.train.pipeline`), which gives the same results faster.
    """

    def __init__(self, config: ExperimentConfig, rows: int, pipeline: bool = False, episodes_per_member: int = 1):
        self.config = config
        self.rows = rows
        self.env = make_env(config, rows)
        self.policy = self._make_policy(self.env)
        self.halves = None
        members = rows // episodes_per_member
        if pipeline and members >= 2 and _native_threads(self.env) > 1:
            rows_a = (members // 2) * episodes_per_member
            envs = (make_env(config, rows_a), make_env(config, rows - rows_a))
            self.halves = tuple((self._make_policy(env), env) for env in envs)
            self.pipeline_episodes = episodes_per_member

    def _make_policy(self, env):
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
        ``{"perturbations": [p_row, ...]}`` one per row."""
        if self.halves is not None and episodes_per_member == self.pipeline_episodes:
            policy = self.halves[0][0]
            return pipelined_rollout(
                self.halves, genomes.to(device=policy.device, dtype=policy.dtype), episodes_per_member,
                max_steps=None, seed=seed, obs_norm=obs_norm, collect_obs_moments=collect_obs_moments,
                reset_options=options,
            )
        return rollout(
            self.policy, self.env, genomes.to(device=self.policy.device, dtype=self.policy.dtype),
            episodes_per_member, max_steps=None, seed=seed, obs_norm=obs_norm,
            collect_obs_moments=collect_obs_moments, reset_options=options,
        )

    def close(self) -> None:
        self.env.close()
        for _, env in self.halves or ():
            env.close()


def _native_threads(env) -> int:
    """Physics threads of the native batched engine (0 for Gymnasium's own vector envs)."""
    pool = getattr(env, "pool", None)
    return getattr(pool, "num_threads", 0) if hasattr(env, "step_async") else 0
