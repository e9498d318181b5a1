"""Adaptation tasks: a v5 locomotion task whose goal is drawn per episode and may change mid-episode.

- ``HalfCheetahDir-v5``: HalfCheetah-v5 rewarded for running in ``direction`` (+1 forward, -1 backward).
- ``AntDir-v5``: Ant-v5 rewarded for the torso velocity projected on a goal direction in the plane.
- ``HalfCheetahVel-v5``: HalfCheetah-v5 rewarded for running at a target velocity.

Each instance's goal schedule for an episode is ``(first goal, switch step, second goal)``, drawn at
the episode's reset from the instance's *goal generator* (see :func:`goal_generator`), which is
separate from the reset-noise generator: the reset states, and so exactness with the parent task,
do not change. Switch semantics: with switch step ``k`` the reward of the step with index ``k``
(0-based, the ``k+1``-th ``step()`` of the episode) and the observation it returns are the first to
use the second goal. The goal is not observed unless ``goal_observed=True``, which appends it to the
observation (the oracle).

The vector env owns the per-instance schedules and sets :attr:`GoalTask.goal` (the goal in force
for the observation and reward being computed, one float per instance) before calling
:meth:`observe` / :meth:`evaluate`.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import mujoco
import numpy as np

from ..errors import EnvError
from .ant import Ant
from . import compiled
from .base import Arrays, Evaluation, Task, ctrl_cost
from .planar import HalfCheetah

#: Index of the goal stream among the streams derived from an instance's reset seed
#: (0 is the perturbation-noise stream, see ``vector.py``).
GOAL_STREAM = 1
#: HalfCheetahVel-v5's target velocities (m/s) are drawn uniformly from this range.
TARGET_VELOCITY_RANGE = (0.5, 3.0)
#: AntDir-v5's choices of ``directions``.
DIRECTION_SETS = (2, 4, "continuous")

#: (No square brackets: the CLI prints errors through rich, which would read them as markup.)
SWITCH_CHOICES = ("None, an int >= 1, or a list of two ints low, high with 1 <= low <= high "
                  "(drawn per episode)")


def goal_generator(reset_rng: np.random.Generator) -> np.random.Generator:
    """The goal generator of an instance whose reset-noise generator is ``reset_rng``.

    ``reset_rng`` is built from ``SeedSequence(seed)`` (``gymnasium.utils.seeding.np_random``);
    the goal generator is ``np.random.default_rng(SeedSequence(seed, spawn_key=(1,)))``, the
    second child of that seed sequence, so it never draws from the reset-noise stream."""
    seq = reset_rng.bit_generator.seed_seq
    return np.random.default_rng(np.random.SeedSequence(
        seq.entropy, spawn_key=(*seq.spawn_key, GOAL_STREAM), pool_size=seq.pool_size))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))


class GoalTask(Task):
    """Mixin (listed before the parent task class) for tasks with a per-episode goal."""

    #: Gymnasium id of the task whose robot, time limit, segments and suites this task uses.
    parent_id: ClassVar[str]
    #: Keywords every goal task adds to its parent's.
    goal_defaults: ClassVar[dict[str, Any]] = {"switch_step": None, "goal_observed": False}
    #: How many observation columns ``goal_observed=True`` appends.
    goal_width: ClassVar[int] = 1

    def __init__(self, model: mujoco.MjModel, **cfg: Any) -> None:
        super().__init__(model, **cfg)
        self.check_kwargs(self.cfg)
        #: Goal in force per instance, set by the vector env before observe/evaluate.
        self.goal = np.zeros(0)

    # --- keywords -----------------------------------------------------------------------------
    @classmethod
    def check_kwargs(cls, kwargs: dict[str, Any], max_episode_steps: int | None = None) -> None:
        """Raise :class:`EnvError` (one line: bad value, valid choices) for a bad goal keyword."""
        cfg = {**cls.defaults, **kwargs}
        switch = cfg["switch_step"]
        if isinstance(switch, np.ndarray):
            switch = switch.tolist()
        if switch is None:
            pass
        elif _is_int(switch):
            if switch < 1:
                raise EnvError(f"switch_step={switch!r} is invalid for {cls.env_id}; valid choices: "
                               f"{SWITCH_CHOICES}")
        elif (isinstance(switch, (list, tuple)) and len(switch) == 2 and all(_is_int(v) for v in switch)
              and 1 <= switch[0] <= switch[1]):
            pass
        else:
            raise EnvError(f"switch_step={switch!r} is invalid for {cls.env_id}; valid choices: "
                           f"{SWITCH_CHOICES}")
        latest = switch if switch is None or _is_int(switch) else switch[1]
        if latest is not None and max_episode_steps is not None and latest >= max_episode_steps:
            raise EnvError(f"switch_step={switch!r} never happens in episodes of max_episode_steps="
                           f"{max_episode_steps}; valid choices: steps 1..{max_episode_steps - 1}")
        if not isinstance(cfg["goal_observed"], (bool, np.bool_)):
            raise EnvError(f"goal_observed={cfg['goal_observed']!r} is invalid for {cls.env_id}; "
                           "valid choices: True, False")
        cls.check_goal(cfg)

    @classmethod
    def check_goal(cls, cfg: dict[str, Any]) -> None:
        """Validate the task's own goal keywords."""
        raise NotImplementedError

    # --- the per-episode schedule -------------------------------------------------------------
    def initial_goal(self, rng: np.random.Generator) -> float:
        """The episode's first goal: the fixed one, or drawn from ``rng``."""
        raise NotImplementedError

    def switched_goal(self, rng: np.random.Generator, current: float) -> float:
        """The goal that replaces ``current`` at the switch (may draw from ``rng``)."""
        raise NotImplementedError

    def schedule(self, rng: np.random.Generator) -> tuple[float, int, float]:
        """One episode's ``(first goal, switch step or -1, second goal)``, drawn in this order:
        the first goal (unless fixed), the switch step (if ``switch_step`` is a range), the second
        goal (if there is a switch)."""
        first = self.initial_goal(rng)
        switch = self.cfg["switch_step"]
        if switch is None:
            return first, -1, first
        if isinstance(switch, np.ndarray):
            switch = switch.tolist()
        step = int(switch) if _is_int(switch) else int(rng.integers(switch[0], switch[1] + 1))
        return first, step, self.switched_goal(rng, first)

    # --- observation ----------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return super().obs_dim + (self.goal_width if self.cfg["goal_observed"] else 0)

    def goal_features(self, goal: np.ndarray) -> np.ndarray:
        """The observed goal columns ``[n, goal_width]`` for goals ``[n]``."""
        return goal[:, None].astype(np.float64)

    def observe(self, s: Arrays) -> np.ndarray:
        obs = super().observe(s)
        if not self.cfg["goal_observed"]:
            return obs
        return np.concatenate((obs, self.goal_features(self.goal)), axis=1)

    def compiled_goal(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        columns = self.goal_features(self.goal) if self.cfg["goal_observed"] else np.empty((rows, 0))
        return np.ascontiguousarray(self.goal, dtype=np.float64), columns


class HalfCheetahDir(GoalTask, HalfCheetah):
    """Reward ``direction * forward_reward_weight * x_velocity - ctrl_cost``; direction +1 or -1.

    ``direction=None`` draws +1 or -1 with equal odds per episode; a switch flips it."""

    env_id = "HalfCheetahDir-v5"
    parent_id = "HalfCheetah-v5"
    defaults = {**HalfCheetah.defaults, "direction": None, **GoalTask.goal_defaults}

    @classmethod
    def check_goal(cls, cfg: dict[str, Any]) -> None:
        d = cfg["direction"]
        if d is not None and not (_is_number(d) and d in (1, -1)):
            raise EnvError(f"direction={d!r} is invalid for {cls.env_id}; valid choices: None (drawn per "
                           "episode), 1, -1")

    def initial_goal(self, rng: np.random.Generator) -> float:
        if self.cfg["direction"] is not None:
            return float(self.cfg["direction"])
        return 1.0 if int(rng.integers(2)) == 0 else -1.0

    def switched_goal(self, rng: np.random.Generator, current: float) -> float:
        return -current

    compiled_mode = compiled.DIRECTION

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        x_velocity = (s["qpos"][:, 0] - before) / dt
        # Same product as HalfCheetah-v5's (weight * velocity), then the sign: exact for +1.
        forward = self.goal * (self.cfg["forward_reward_weight"] * x_velocity)
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action)
        info: Arrays = {"x_position": s["qpos"][:, 0].copy(), "x_velocity": x_velocity,
                        "reward_forward": forward, "reward_ctrl": -ctrl}
        return forward - ctrl, np.zeros(len(forward), dtype=bool), info


class HalfCheetahVel(GoalTask, HalfCheetah):
    """Reward ``-forward_reward_weight * |x_velocity - target_velocity| - ctrl_cost``.

    ``target_velocity=None`` draws the target uniformly from :data:`TARGET_VELOCITY_RANGE` per
    episode; a switch draws a new target from the same range."""

    env_id = "HalfCheetahVel-v5"
    parent_id = "HalfCheetah-v5"
    defaults = {**HalfCheetah.defaults, "target_velocity": None, **GoalTask.goal_defaults}

    @classmethod
    def check_goal(cls, cfg: dict[str, Any]) -> None:
        v = cfg["target_velocity"]
        if v is not None and not _is_number(v):
            raise EnvError(f"target_velocity={v!r} is invalid for {cls.env_id}; valid choices: None (drawn "
                           f"per episode from {list(TARGET_VELOCITY_RANGE)} m/s) or a finite number")

    def initial_goal(self, rng: np.random.Generator) -> float:
        if self.cfg["target_velocity"] is not None:
            return float(self.cfg["target_velocity"])
        return float(rng.uniform(*TARGET_VELOCITY_RANGE))

    def switched_goal(self, rng: np.random.Generator, current: float) -> float:
        return float(rng.uniform(*TARGET_VELOCITY_RANGE))

    compiled_mode = compiled.VELOCITY

    def compiled_forward_weight(self) -> float:
        return float(-self.cfg["forward_reward_weight"])  # negated before the product, as evaluate does

    def evaluate(self, s: Arrays, before: np.ndarray | None, action: np.ndarray,
                 dt: float) -> Evaluation:
        x_velocity = (s["qpos"][:, 0] - before) / dt
        forward = -self.cfg["forward_reward_weight"] * np.abs(x_velocity - self.goal)
        ctrl = ctrl_cost(self.cfg["ctrl_cost_weight"], action)
        info: Arrays = {"x_position": s["qpos"][:, 0].copy(), "x_velocity": x_velocity,
                        "reward_forward": forward, "reward_ctrl": -ctrl}
        return forward - ctrl, np.zeros(len(forward), dtype=bool), info


def unit_vectors(angle: np.ndarray) -> np.ndarray:
    """``[n, 2]`` (cos, sin) of ``angle``, with rounding residues below 1e-12 set to 0 so that the
    axis directions (0, pi/2, pi, 3pi/2) give exact unit vectors."""
    out = np.stack((np.cos(angle), np.sin(angle)), axis=1)
    out[np.abs(out) < 1e-12] = 0.0
    return out


class AntDir(GoalTask, Ant):
    """Ant-v5 whose forward reward is ``forward_reward_weight * (v_xy . (cos a, sin a))``.

    ``directions``: 2 (angles 0, pi), 4 (0, pi/2, pi, 3pi/2) or ``"continuous"`` (uniform in
    [0, 2pi)). ``direction`` fixes the first goal: for 2 or 4 an angle *index* ``k`` (angle
    ``2 pi k / directions``, so 0 is forward, +x), for ``"continuous"`` an angle in radians. A
    switch moves to a different direction: for 2 or 4 one of the others with equal odds, for
    ``"continuous"`` an angle drawn uniformly among those at least pi/2 away from the current one.
    ``info["goal"]`` is the angle in radians; ``goal_observed`` appends (cos, sin)."""

    env_id = "AntDir-v5"
    parent_id = "Ant-v5"
    goal_width = 2
    defaults = {**Ant.defaults, "directions": 2, "direction": None, **GoalTask.goal_defaults}

    @classmethod
    def check_goal(cls, cfg: dict[str, Any]) -> None:
        sets, d = cfg["directions"], cfg["direction"]
        if not ((_is_int(sets) and sets in (2, 4)) or (isinstance(sets, str) and sets == "continuous")):
            raise EnvError(f"directions={sets!r} is invalid for {cls.env_id}; valid choices: 2, 4, "
                           "'continuous'")
        if d is None:
            return
        if sets == "continuous":
            if not _is_number(d):
                raise EnvError(f"direction={d!r} is invalid for {cls.env_id} with directions='continuous'; "
                               "valid choices: None (drawn per episode) or a finite angle in radians")
        elif not (_is_int(d) and 0 <= d < sets):
            raise EnvError(f"direction={d!r} is invalid for {cls.env_id} with directions={sets}; valid "
                           f"choices: None (drawn per episode) or an angle index "
                           f"{', '.join(str(k) for k in range(sets))} (angle 2*pi*index/{sets})")

    def _index_angle(self, k: int) -> float:
        return 2.0 * math.pi * k / self.cfg["directions"]

    def _index(self, angle: float) -> int:
        n = self.cfg["directions"]
        return int(round(angle / (2.0 * math.pi / n))) % n

    def initial_goal(self, rng: np.random.Generator) -> float:
        d, sets = self.cfg["direction"], self.cfg["directions"]
        if sets == "continuous":
            return float(d) if d is not None else float(rng.uniform(0.0, 2.0 * math.pi))
        return self._index_angle(int(d) if d is not None else int(rng.integers(sets)))

    def switched_goal(self, rng: np.random.Generator, current: float) -> float:
        sets = self.cfg["directions"]
        if sets == "continuous":
            return float((current + rng.uniform(0.5 * math.pi, 1.5 * math.pi)) % (2.0 * math.pi))
        return self._index_angle((self._index(current) + int(rng.integers(1, sets))) % sets)

    def goal_features(self, goal: np.ndarray) -> np.ndarray:
        return unit_vectors(goal)

    def compiled_direction(self, rows: int) -> np.ndarray:
        return unit_vectors(self.goal)

    def forward_velocity(self, xy_velocity: np.ndarray) -> np.ndarray:
        """The torso velocity projected on the goal direction: with goal (1, 0) it is
        ``vx * 1 + vy * 0``, i.e. Ant-v5's x velocity exactly."""
        unit = unit_vectors(self.goal)
        return xy_velocity[:, 0] * unit[:, 0] + xy_velocity[:, 1] * unit[:, 1]
