"""Single-instance Gymnasium env with perturbations, registered as ``plasticrl/<Task>-v5``.

``gymnasium.make("plasticrl/Ant-v5", perturbation=...)`` gives a standard ``gymnasium.Env``
(TimeLimit from the registration) running the same engine, the same perturbation code and the
same per-instance random streams as :func:`plasticrl.envs.make_vec`, so a Gymnasium or
Stable-Baselines3 agent is trained and evaluated under exactly the conditions the batched
evaluation uses. ``gymnasium.make_vec("plasticrl/Ant-v5", n)`` returns the batched engine.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from .registry import NAMESPACE, make_config, registered_max_episode_steps, supported_ids
from .vector import MujocoVectorEnv


class PerturbedMujocoEnv(gymnasium.Env):
    """One instance of a MuJoCo v5 task; ``reset(options={"perturbation": ...})`` as in the
    vector env; ``info`` echoes ``perturbation`` and ``perturbation_active``."""

    metadata = {"render_modes": []}

    def __init__(self, env_id: str, perturbation: Any = None, **kwargs: Any) -> None:
        # The registration's TimeLimit truncates; the inner engine must not.
        config = make_config(env_id, **{**kwargs, "max_episode_steps": None})
        self._vec = MujocoVectorEnv(config, 1, num_threads=1, perturbation=perturbation)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    @staticmethod
    def _single(infos: dict[str, Any]) -> dict[str, Any]:
        return {k: v[0] for k, v in infos.items() if not k.startswith("_")}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self._vec.reset(seed=None if seed is None else [seed], options=options)
        return obs[0], self._single(infos)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, infos = self._vec.step(np.asarray(action)[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._single(infos)

    def close(self) -> None:
        self._vec.close()


def _make_vector(env_id: str, num_envs: int = 1, perturbation: Any = None,
                 **kwargs: Any) -> MujocoVectorEnv:
    return MujocoVectorEnv(make_config(env_id, **kwargs), num_envs, perturbation=perturbation)


def register_envs() -> None:
    """Register ``plasticrl/<id>`` for every natively batched id (idempotent)."""
    for env_id in supported_ids():
        name = NAMESPACE + env_id
        if name in gymnasium.registry:
            continue
        gymnasium.register(
            id=name,
            entry_point=f"{__name__}:PerturbedMujocoEnv",
            vector_entry_point=f"{__name__}:_make_vector",
            max_episode_steps=registered_max_episode_steps(env_id),
            kwargs={"env_id": env_id},
        )
