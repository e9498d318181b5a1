"""Ant-v5: quadruped with clipped external contact forces in the observation and the cost."""
from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from ..errors import EnvError
from . import compiled
from .base import Arrays, Evaluation, Task, ctrl_cost, normal_qvel_noise

_X_ONLY = np.zeros((0, 2))


class Ant(Task):
    env_id = "Ant-v5"
    xml_file = "ant.xml"
    frame_skip = 5
    defaults = {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 0.5,
        "contact_cost_weight": 5e-4,
        "healthy_reward": 1.0,
        "main_body": 1,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (0.2, 1.0),
        "contact_force_range": (-1.0, 1.0),
        "reset_noise_scale": 0.1,
        "exclude_current_positions_from_observation": True,
        "include_cfrc_ext_in_observation": True,
    }

    def __init__(self, model: mujoco.MjModel, **cfg: Any) -> None:
        super().__init__(model, **cfg)
        main = self.cfg["main_body"]
        if isinstance(main, str):
            body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, main)
            if body_id < 0:
                names = [model.body(i).name for i in range(model.nbody)]
                raise EnvError(f"unknown main_body {main!r}; valid choices: {', '.join(names)}")
            main = body_id
        self.main_body = int(main)

    @property
    def fields(self) -> tuple[str, ...]:
        return ("qpos", "qvel", "xpos", "cfrc_ext")

    @property
    def needs_post_constraint(self) -> bool:
        return True

    @property
    def obs_dim(self) -> int:
        n = self.nq + self.nv - 2 * bool(self.cfg["exclude_current_positions_from_observation"])
        return n + 6 * (self.nbody - 1) * bool(self.cfg["include_cfrc_ext_in_observation"])

    def _contact_forces(self, s: Arrays) -> np.ndarray:
        lo, hi = self.cfg["contact_force_range"]
        return np.clip(s["cfrc_ext"], lo, hi)

    def observe(self, s: Arrays) -> np.ndarray:
        qpos = s["qpos"]
        if self.cfg["exclude_current_positions_from_observation"]:
            qpos = qpos[:, 2:]
        parts = [qpos, s["qvel"]]
        if self.cfg["include_cfrc_ext_in_observation"]:
            parts.append(self._contact_forces(s)[:, 1:].reshape(len(qpos), -1))
        return np.concatenate(parts, axis=1)

    def position(self, s: Arrays) -> np.ndarray:
        return s["xpos"][:, self.main_body, :2].copy()

    def forward_velocity(self, xy_velocity: np.ndarray) -> np.ndarray:
        """The velocity the forward reward pays for (``[n]``): the x velocity in Ant-v5."""
        return xy_velocity[:, 0]

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        n = len(action)
        xy_velocity = (s["xpos"][:, self.main_body, :2] - before) / dt
        qpos, qvel = s["qpos"], s["qvel"]
        zlo, zhi = self.cfg["healthy_z_range"]
        finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
        healthy = finite & (zlo <= qpos[:, 2]) & (qpos[:, 2] <= zhi)
        forward = self.forward_velocity(xy_velocity) * self.cfg["forward_reward_weight"]
        survive = healthy * self.cfg["healthy_reward"]
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action)
        contact = self.cfg["contact_cost_weight"] * np.sum(
            np.square(self._contact_forces(s)).reshape(n, -1), axis=1)
        reward = forward + survive - (ctrl + contact)
        terminated = ~healthy & bool(self.cfg["terminate_when_unhealthy"])
        info = {"x_position": qpos[:, 0].copy(), "y_position": qpos[:, 1].copy(),
                "x_velocity": xy_velocity[:, 0], "y_velocity": xy_velocity[:, 1],
                "reward_forward": forward, "reward_ctrl": -ctrl, "reward_contact": -contact,
                "reward_survive": survive}
        return reward, terminated, info

    def compiled_direction(self, rows: int) -> np.ndarray:
        """``[rows, 2]`` unit vectors the compiled step projects the velocity on; empty: the x velocity."""
        return _X_ONLY

    def evaluate_compiled(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                          dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        if not compiled.AVAILABLE or action.dtype != np.float64 or before is None:
            return None
        rows = len(action)
        obs, reward = np.empty((rows, self.obs_dim)), np.empty(rows)
        terminated, position = np.empty(rows, dtype=bool), np.empty((rows, 2))
        _, _, ant = self.compiled_params(rows, dt)
        compiled.ant_step(s["qpos"], s["qvel"], s["xpos"], s["cfrc_ext"], before, np.ascontiguousarray(action),
                          *ant, obs, reward, terminated, position)
        return obs, reward, terminated, position

    def compiled_params(self, rows: int, dt: float) -> tuple[int, tuple, tuple]:
        _, columns = self.compiled_goal(rows)
        force_lo, force_hi = self.cfg["contact_force_range"]
        z_lo, z_hi = self.cfg["healthy_z_range"]
        skip = 2 if self.cfg["exclude_current_positions_from_observation"] else 0
        ant = (float(dt), int(skip), bool(self.cfg["include_cfrc_ext_in_observation"]), int(self.main_body),
               float(force_lo), float(force_hi), float(z_lo), float(z_hi), float(self.cfg["forward_reward_weight"]),
               float(self.cfg["healthy_reward"]), float(self.cfg["ctrl_cost_weight"]),
               float(self.cfg["contact_cost_weight"]), bool(self.cfg["terminate_when_unhealthy"]),
               np.ascontiguousarray(self.compiled_direction(rows), dtype=np.float64), columns)
        return compiled.ANT, compiled.NO_PLANAR, ant

    def reset_noise(self, rng: np.random.Generator, init_qpos: np.ndarray,
                    init_qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normal_qvel_noise(self, rng, init_qpos, init_qvel)
