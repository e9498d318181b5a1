"""Environment set-up from an :class:`~plasticrl.config.ExperimentConfig`: the vector env, its keyword
arguments and the reset options of training rollouts (nominal, one fixed perturbation, or a named
training distribution drawn per row or shared across a member's episodes)."""
from __future__ import annotations

from typing import Any

import numpy as np

from plasticrl.config import ExperimentConfig


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
