"""Humanoid-v5: 3D biped; observation includes cinert, cvel, actuator and contact forces."""
from __future__ import annotations

import numpy as np

from .base import Arrays, Evaluation, Task, ctrl_cost


class Humanoid(Task):
    env_id = "Humanoid-v5"
    xml_file = "humanoid.xml"
    frame_skip = 5
    defaults = {
        "forward_reward_weight": 1.25,
        "ctrl_cost_weight": 0.1,
        "contact_cost_weight": 5e-7,
        "contact_cost_range": (-np.inf, 10.0),
        "healthy_reward": 5.0,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (1.0, 2.0),
        "reset_noise_scale": 1e-2,
        "exclude_current_positions_from_observation": True,
        "include_cinert_in_observation": True,
        "include_cvel_in_observation": True,
        "include_qfrc_actuator_in_observation": True,
        "include_cfrc_ext_in_observation": True,
    }
    _SWITCHES = (("include_cinert_in_observation", "cinert"), ("include_cvel_in_observation", "cvel"),
                 ("include_qfrc_actuator_in_observation", "qfrc_actuator"),
                 ("include_cfrc_ext_in_observation", "cfrc_ext"))

    @property
    def fields(self) -> tuple[str, ...]:
        return ("qpos", "qvel", "xipos", "cinert", "cvel", "qfrc_actuator", "cfrc_ext")

    @property
    def needs_post_constraint(self) -> bool:
        return True

    @property
    def obs_dim(self) -> int:
        n = self.nq + self.nv - 2 * bool(self.cfg["exclude_current_positions_from_observation"])
        sizes = {"cinert": 10 * (self.nbody - 1), "cvel": 6 * (self.nbody - 1),
                 "qfrc_actuator": self.nv - 6, "cfrc_ext": 6 * (self.nbody - 1)}
        return n + sum(sizes[f] for key, f in self._SWITCHES if self.cfg[key] is True)

    def observe(self, s: Arrays) -> np.ndarray:
        n = len(s["qpos"])
        qpos = s["qpos"]
        if self.cfg["exclude_current_positions_from_observation"]:
            qpos = qpos[:, 2:]
        parts = [qpos, s["qvel"]]
        for key, f in self._SWITCHES:
            # Gymnasium tests these switches with `is True`; mirror that exactly.
            if self.cfg[key] is True:
                parts.append((s[f][:, 6:] if f == "qfrc_actuator" else s[f][:, 1:]).reshape(n, -1))
        return np.concatenate(parts, axis=1)

    def position(self, s: Arrays) -> np.ndarray:
        # Centre of mass: per-instance body masses (perturbations may scale them).
        mass = s["body_mass"]
        num = np.einsum("nb,nbj->nj", mass, s["xipos"])
        return (num / mass.sum(axis=1, keepdims=True))[:, 0:2]

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        n = len(action)
        xy_velocity = (self.position(s) - before) / dt
        zlo, zhi = self.cfg["healthy_z_range"]
        z = s["qpos"][:, 2]
        healthy = (zlo < z) & (z < zhi)
        forward = self.cfg["forward_reward_weight"] * xy_velocity[:, 0]
        survive = healthy * self.cfg["healthy_reward"]
        # Gymnasium charges the control cost on data.ctrl, i.e. the action as float64.
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action.astype(np.float64))
        clo, chi = self.cfg["contact_cost_range"]
        contact = np.clip(self.cfg["contact_cost_weight"]
                          * np.sum(np.square(s["cfrc_ext"]).reshape(n, -1), axis=1), clo, chi)
        reward = forward + survive - (ctrl + contact)
        terminated = ~healthy & bool(self.cfg["terminate_when_unhealthy"])
        info = {"x_position": s["qpos"][:, 0].copy(), "y_position": s["qpos"][:, 1].copy(),
                "x_velocity": xy_velocity[:, 0], "y_velocity": xy_velocity[:, 1],
                "reward_survive": survive, "reward_forward": forward, "reward_ctrl": -ctrl,
                "reward_contact": -contact}
        return reward, terminated, info
