"""Symmetries of a task's body: linear maps of observations and actions under which the dynamics are
equivariant, so that a controller trained for one goal can be steered to the goal's images.

Ant's body has a four-fold symmetry about its vertical axis: the four legs sit at 45, 135, 225 and 315
degrees with identical geometry, hips turning about the vertical and ankles about the horizontal axis
across the leg. Turn the whole world by a quarter turn about the vertical, then renumber the legs so that
each takes the number of the leg that now stands where it stood: the torso's orientation becomes its
conjugate by the turn (the yaw angle is unchanged, the tilt axis turns), world-frame vectors (the torso's
velocity, the contact forces) turn with the world, the torso's angular velocity (in its own frame) turns
too, and each leg's joint angles and velocities move to the next leg, with the sign of the ankle flipped
where the next leg's ankle axis points the other way. A floor plane and vertical gravity do not change,
so the dynamics commute with the map: stepping the mapped state with the mapped action gives the mapped
next state (``tests/test_symmetry.py`` checks it against MuJoCo over 30 steps from a state reached by
random actions, to 1e-12).

A :class:`QuarterTurns` holds the map of one quarter turn as matrices on the observation and the action;
its powers give the other turns. A controller trained to walk toward +x and given the observation mapped
by ``obs_turn(-k)``, whose actions are mapped by ``action_turn(k)``, walks toward angle ``k * pi/2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plasticrl.errors import PlasticRLError, check_choice

#: Ant-v5's observation without the x, y position: z, the torso quaternion (w, x, y, z), 8 joint angles,
#: the torso's linear velocity (world frame), its angular velocity (own frame), 8 joint velocities, and,
#: with ``include_cfrc_ext_in_observation`` (the default), 13 bodies' contact forces (torque then force,
#: world frame).
_ANT_BASE_DIM = 27
_ANT_BODIES = 13
#: obs columns of the joints (hip, ankle) of legs 1..4 (front left, front right, back, right back);
#: the same order at offset 14 for the joint velocities.
_ANT_JOINT_ANGLES = 5
_ANT_JOINT_VELOCITIES = 19
#: Under the turn leg j takes leg j-1's values; its ankle's sign flips for legs 2 and 4, whose ankle axes
#: point the other way from the turned axis of the leg before.
_ANT_ANKLE_SIGN = {1: 1.0, 2: -1.0, 3: 1.0, 4: -1.0}
#: Ant-v5's actuators in order drive (leg, joint): hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, ...
_ANT_ACTUATORS = ((4, 0), (4, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1))

_TURN = np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn, counter-clockwise, in the plane


@dataclass(frozen=True)
class QuarterTurns:
    """The quarter turns about the vertical of a body with four-fold symmetry.

    ``obs_matrix`` ``[D, D]`` and ``action_matrix`` ``[A, A]`` map an observation and an action by one
    quarter turn (orthogonal: a signed permutation with 2x2 rotation blocks); ``velocity_columns`` are the
    observation's world-frame (vx, vy) of the body, which a goal-inferring controller reads."""

    name: str
    obs_matrix: np.ndarray
    action_matrix: np.ndarray
    velocity_columns: tuple[int, int]

    order: int = 4

    @property
    def obs_dim(self) -> int:
        return int(self.obs_matrix.shape[0])

    @property
    def act_dim(self) -> int:
        return int(self.action_matrix.shape[0])

    def obs_turn(self, k: int) -> np.ndarray:
        """The observation map of ``k`` quarter turns (``k`` may be negative)."""
        return np.linalg.matrix_power(self.obs_matrix, k % self.order)

    def action_turn(self, k: int) -> np.ndarray:
        """The action map of ``k`` quarter turns."""
        return np.linalg.matrix_power(self.action_matrix, k % self.order)

    def angle(self, k: int) -> float:
        """The heading (radians) to which ``k`` quarter turns take +x."""
        return 2.0 * math.pi * (k % self.order) / self.order


def _ant_body_before(body: int) -> int:
    """The body (1-based among the 13 after the world) whose values body ``body`` takes under the turn."""
    if body == 1:  # the torso
        return 1
    leg, part = divmod(body - 2, 3)  # legs 0..3 here, three bodies each (leg, aux, ankle)
    return 2 + 3 * ((leg - 1) % 4) + part


def ant_quarter_turns(contact_forces: bool = True) -> QuarterTurns:
    """Ant-v5's quarter turn (module docstring), for its observation with or without the contact forces."""
    dim = _ANT_BASE_DIM + (6 * _ANT_BODIES if contact_forces else 0)
    obs = np.zeros((dim, dim))
    obs[0, 0] = 1.0  # height
    obs[1, 1] = 1.0  # quaternion w
    obs[2:4, 2:4] = _TURN  # quaternion (x, y): conjugation turns the vector part
    obs[4, 4] = 1.0
    for start in (_ANT_JOINT_ANGLES, _ANT_JOINT_VELOCITIES):
        for leg in range(1, 5):
            before = (leg - 2) % 4 + 1
            obs[start + 2 * (leg - 1), start + 2 * (before - 1)] = 1.0
            obs[start + 2 * (leg - 1) + 1, start + 2 * (before - 1) + 1] = _ANT_ANKLE_SIGN[leg]
    for start in (13, 16):  # linear (world) and angular (own frame) velocity of the torso
        obs[start:start + 2, start:start + 2] = _TURN
        obs[start + 2, start + 2] = 1.0
    if contact_forces:
        for body in range(1, _ANT_BODIES + 1):
            row, col = 27 + 6 * (body - 1), 27 + 6 * (_ant_body_before(body) - 1)
            for part in (0, 3):  # torque, force
                obs[row + part:row + part + 2, col + part:col + part + 2] = _TURN
                obs[row + part + 2, col + part + 2] = 1.0
    # an actuator drives a joint: its row of the action map is the joint's row of the angle map
    joint_column = {leg_joint: _ANT_JOINT_ANGLES + 2 * (leg_joint[0] - 1) + leg_joint[1]
                    for leg_joint in _ANT_ACTUATORS}
    actuator_of = {column: i for i, column in ((i, joint_column[lj]) for i, lj in enumerate(_ANT_ACTUATORS))}
    action = np.zeros((len(_ANT_ACTUATORS), len(_ANT_ACTUATORS)))
    for i, leg_joint in enumerate(_ANT_ACTUATORS):
        row = joint_column[leg_joint]
        source = int(np.flatnonzero(obs[row, _ANT_JOINT_ANGLES:_ANT_JOINT_ANGLES + 8])[0]) + _ANT_JOINT_ANGLES
        action[i, actuator_of[source]] = obs[row, source]
    return QuarterTurns("ant_quarter_turns", obs, action, velocity_columns=(13, 14))


#: The symmetries a ``kind: symmetric`` policy can use, by name.
SYMMETRIES = {"ant_quarter_turns": ant_quarter_turns}


def symmetry(name: str, obs_dim: int) -> QuarterTurns:
    """The symmetry ``name`` for an observation of ``obs_dim`` columns (Ant: 105 with contact forces, 27
    without); one clear error for an unknown name or a size it does not fit."""
    check_choice("symmetry", name, tuple(SYMMETRIES))
    for contact in (True, False):
        group = SYMMETRIES[name](contact)
        if group.obs_dim == obs_dim:
            return group
    raise PlasticRLError(f"symmetry {name!r} maps observations of 105 or 27 columns (Ant-v5 with or without "
                         f"contact forces); the base policy's observation has {obs_dim}")
