"""Planar runners and the swimmer: HalfCheetah, Hopper, Walker2d, Swimmer (Gymnasium v5)."""
from __future__ import annotations

import numpy as np

from . import compiled
from .base import Arrays, Evaluation, Task, ctrl_cost, normal_qvel_noise


class _Forward(Task):
    """Reward = forward_reward_weight * x-velocity - ctrl_cost_weight * |a|^2 (+ healthy)."""

    #: How many leading qpos entries exclude_current_positions_from_observation drops.
    skipped: int = 1
    #: Whether qvel in the observation is clipped to [-10, 10] (Hopper, Walker2d).
    clip_qvel: bool = False

    @property
    def obs_dim(self) -> int:
        drop = self.skipped if self.cfg["exclude_current_positions_from_observation"] else 0
        return self.nq + self.nv - drop

    def observe(self, s: Arrays) -> np.ndarray:
        qpos, qvel = s["qpos"], s["qvel"]
        if self.clip_qvel:
            qvel = np.clip(qvel, -10, 10)
        if self.cfg["exclude_current_positions_from_observation"]:
            qpos = qpos[:, self.skipped:]
        return np.concatenate((qpos, qvel), axis=1)

    def position(self, s: Arrays) -> np.ndarray:
        return s["qpos"][:, 0].copy()

    def healthy(self, s: Arrays) -> np.ndarray | None:
        """Healthy mask ``[n]``, or ``None`` for tasks without a healthy condition."""
        return None

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        x_velocity = (s["qpos"][:, 0] - before) / dt
        forward = self.cfg["forward_reward_weight"] * x_velocity
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action)
        info: Arrays = {"x_position": s["qpos"][:, 0].copy(), "x_velocity": x_velocity,
                        "reward_forward": forward, "reward_ctrl": -ctrl}
        healthy = self.healthy(s)
        if healthy is None:
            return forward - ctrl, np.zeros(len(forward), dtype=bool), info
        survive = healthy * self.cfg["healthy_reward"]
        info["reward_survive"] = survive
        terminated = ~healthy & bool(self.cfg["terminate_when_unhealthy"])
        return forward + survive - ctrl, terminated, info


class HalfCheetah(_Forward):
    env_id = "HalfCheetah-v5"
    xml_file = "half_cheetah.xml"
    frame_skip = 5
    defaults = {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 0.1,
        "reset_noise_scale": 0.1,
        "exclude_current_positions_from_observation": True,
    }

    #: how the compiled step computes the forward reward (HalfCheetahDir/Vel-v5 change it)
    compiled_mode: int = compiled.FORWARD

    def compiled_forward_weight(self) -> float:
        """The forward weight as the compiled step multiplies by it."""
        return float(self.cfg["forward_reward_weight"])

    def evaluate_compiled(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                          dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        if not compiled.AVAILABLE or action.dtype != np.float64 or before is None:
            return None
        rows = len(action)
        obs, reward, position = np.empty((rows, self.obs_dim)), np.empty(rows), np.empty(rows)
        _, planar, _ = self.compiled_params(rows, dt)
        compiled.planar_step(s["qpos"], s["qvel"], before, np.ascontiguousarray(action), *planar, obs, reward,
                             position)
        return obs, reward, np.zeros(rows, dtype=bool), position

    def compiled_params(self, rows: int, dt: float) -> tuple[int, tuple, tuple]:
        goal, columns = self.compiled_goal(rows)
        skip = self.skipped if self.cfg["exclude_current_positions_from_observation"] else 0
        planar = (float(dt), int(skip), self.compiled_forward_weight(), float(self.cfg["ctrl_cost_weight"]),
                  int(self.compiled_mode), goal, columns)
        return compiled.PLANAR, planar, compiled.NO_ANT

    def reset_noise(self, rng: np.random.Generator, init_qpos: np.ndarray,
                    init_qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normal_qvel_noise(self, rng, init_qpos, init_qvel)


class Hopper(_Forward):
    env_id = "Hopper-v5"
    xml_file = "hopper.xml"
    frame_skip = 4
    clip_qvel = True
    defaults = {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 1e-3,
        "healthy_reward": 1.0,
        "terminate_when_unhealthy": True,
        "healthy_state_range": (-100.0, 100.0),
        "healthy_z_range": (0.7, float("inf")),
        "healthy_angle_range": (-0.2, 0.2),
        "reset_noise_scale": 5e-3,
        "exclude_current_positions_from_observation": True,
    }

    def healthy(self, s: Arrays) -> np.ndarray:
        qpos, qvel = s["qpos"], s["qvel"]
        z, angle = qpos[:, 1], qpos[:, 2]
        lo, hi = self.cfg["healthy_state_range"]
        state_ok = np.all((lo < qpos[:, 2:]) & (qpos[:, 2:] < hi), axis=1)
        state_ok &= np.all((lo < qvel) & (qvel < hi), axis=1)
        zlo, zhi = self.cfg["healthy_z_range"]
        alo, ahi = self.cfg["healthy_angle_range"]
        return state_ok & (zlo < z) & (z < zhi) & (alo < angle) & (angle < ahi)


class Walker2d(_Forward):
    env_id = "Walker2d-v5"
    xml_file = "walker2d_v5.xml"
    frame_skip = 4
    clip_qvel = True
    defaults = {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 1e-3,
        "healthy_reward": 1.0,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (0.8, 2.0),
        "healthy_angle_range": (-1.0, 1.0),
        "reset_noise_scale": 5e-3,
        "exclude_current_positions_from_observation": True,
    }

    def healthy(self, s: Arrays) -> np.ndarray:
        z, angle = s["qpos"][:, 1], s["qpos"][:, 2]
        zlo, zhi = self.cfg["healthy_z_range"]
        alo, ahi = self.cfg["healthy_angle_range"]
        return (zlo < z) & (z < zhi) & (alo < angle) & (angle < ahi)


class Swimmer(_Forward):
    env_id = "Swimmer-v5"
    xml_file = "swimmer.xml"
    frame_skip = 4
    skipped = 2
    torso = "torso"
    defaults = {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 1e-4,
        "reset_noise_scale": 0.1,
        "exclude_current_positions_from_observation": True,
    }

    def position(self, s: Arrays) -> np.ndarray:
        return s["qpos"][:, 0:2].copy()

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        xy_velocity = (s["qpos"][:, 0:2] - before) / dt
        forward = self.cfg["forward_reward_weight"] * xy_velocity[:, 0]
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action)
        info = {"x_position": s["qpos"][:, 0].copy(), "y_position": s["qpos"][:, 1].copy(),
                "x_velocity": xy_velocity[:, 0], "y_velocity": xy_velocity[:, 1],
                "reward_forward": forward, "reward_ctrl": -ctrl}
        return forward - ctrl, np.zeros(len(forward), dtype=bool), info
