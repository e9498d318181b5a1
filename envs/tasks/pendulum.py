"""Cheap balance tasks: InvertedPendulum-v5 and InvertedDoublePendulum-v5."""
from __future__ import annotations

import numpy as np

from .base import Arrays, Evaluation, Task


class InvertedPendulum(Task):
    env_id = "InvertedPendulum-v5"
    xml_file = "inverted_pendulum.xml"
    frame_skip = 2
    torso = "pole"
    defaults = {"reset_noise_scale": 0.01}

    @property
    def obs_dim(self) -> int:
        return self.nq + self.nv

    def observe(self, s: Arrays) -> np.ndarray:
        return np.concatenate((s["qpos"], s["qvel"]), axis=1)

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        obs = self.observe(s)
        terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
        reward = (~terminated).astype(np.float64)
        return reward, terminated, {"reward_survive": reward}


class InvertedDoublePendulum(Task):
    env_id = "InvertedDoublePendulum-v5"
    xml_file = "inverted_double_pendulum.xml"
    frame_skip = 5
    torso = "pole"
    defaults = {"healthy_reward": 10.0, "reset_noise_scale": 0.1}

    @property
    def fields(self) -> tuple[str, ...]:
        return ("qpos", "qvel", "site_xpos", "qfrc_constraint")

    @property
    def obs_dim(self) -> int:
        return 1 + 2 * (self.nq - 1) + self.nv + 1

    def observe(self, s: Arrays) -> np.ndarray:
        qpos = s["qpos"]
        return np.concatenate((qpos[:, :1], np.sin(qpos[:, 1:]), np.cos(qpos[:, 1:]),
                               np.clip(s["qvel"], -10, 10),
                               np.clip(s["qfrc_constraint"], -10, 10)[:, :1]), axis=1)

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        x, y = s["site_xpos"][:, 0, 0], s["site_xpos"][:, 0, 2]
        terminated = y <= 1
        v1, v2 = s["qvel"][:, 1], s["qvel"][:, 2]
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
        alive = self.cfg["healthy_reward"] * (~terminated).astype(np.int64)
        reward = alive - dist_penalty - vel_penalty
        info = {"reward_survive": alive.astype(np.float64), "distance_penalty": -dist_penalty,
                "velocity_penalty": -vel_penalty}
        return reward, terminated, info

    def reset_noise(self, rng: np.random.Generator, init_qpos: np.ndarray,
                    init_qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = self.cfg["reset_noise_scale"]
        qpos = init_qpos + rng.uniform(low=-scale, high=scale, size=self.nq)
        qvel = init_qvel + rng.standard_normal(self.nv) * scale
        return qpos, qvel
