"""Task interface: how one MuJoCo v5 locomotion task turns batched simulator arrays into
observations, rewards and terminations.

A task never touches an ``MjData``. The engine gathers the fields a task names in
:attr:`Task.fields` from every instance into arrays shaped ``[num_envs, ...]``, and the task
computes everything vectorised over the leading dimension. The arithmetic follows Gymnasium's
``*_v5.py`` files operation by operation so results agree to rounding (reductions keep the same
order and dtype; e.g. the control cost is summed in the action's dtype as Gymnasium does).
"""
from __future__ import annotations

from typing import Any, ClassVar

import mujoco
import numpy as np

Arrays = dict[str, np.ndarray]
#: What :meth:`Task.evaluate` returns: reward [n] float64, terminated [n] bool, info arrays.
Evaluation = tuple[np.ndarray, np.ndarray, Arrays]
_NO_GOAL = np.zeros(0)


class Task:
    """Base class; subclasses set the class variables and implement the four hooks."""

    #: Gymnasium id, e.g. ``"HalfCheetah-v5"``.
    env_id: ClassVar[str]
    #: Gymnasium's default MJCF file name (resolved in Gymnasium's asset folder).
    xml_file: ClassVar[str]
    #: Gymnasium's default number of physics steps per env step.
    frame_skip: ClassVar[int]
    #: Task keyword arguments with their Gymnasium v5 defaults (besides xml_file/frame_skip).
    defaults: ClassVar[dict[str, Any]]
    #: Body whose torso gets external pushes (perturbations) and whose morphology is edited.
    torso: ClassVar[str] = "torso"
    #: For a task built on another one (the adaptation tasks): that task's id, whose robot,
    #: time limit, morphology segments and perturbation suites it shares. ``None``: itself.
    parent_id: ClassVar[str | None] = None

    def __init__(self, model: mujoco.MjModel, **cfg: Any) -> None:
        self.model = model
        self.cfg = {**self.defaults, **cfg}
        self.nq, self.nv, self.nu, self.nbody = model.nq, model.nv, model.nu, model.nbody

    @classmethod
    def check_kwargs(cls, kwargs: dict[str, Any], max_episode_steps: int | None = None) -> None:
        """Validate task-specific keyword values (raise ``EnvError``); Gymnasium's own keywords
        are taken as Gymnasium takes them, so the base accepts everything."""

    # --- what the engine must provide -------------------------------------------------------
    @property
    def fields(self) -> tuple[str, ...]:
        """Names of ``MjData`` arrays to gather after every step and reset."""
        return ("qpos", "qvel")

    @property
    def needs_post_constraint(self) -> bool:
        """Whether ``mj_rnePostConstraint`` must run after stepping (contact forces are read).

        Gymnasium always calls it; it only fills cacc/cfrc_int/cfrc_ext, outputs that the
        next ``mj_step`` recomputes, so tasks that never read them may skip it."""
        return False

    @property
    def obs_dim(self) -> int:
        raise NotImplementedError

    # --- hooks ------------------------------------------------------------------------------
    def observe(self, s: Arrays) -> np.ndarray:
        """Observations ``[n, obs_dim]`` (float64) from gathered arrays."""
        raise NotImplementedError

    def position(self, s: Arrays) -> np.ndarray | None:
        """The position whose finite difference is the forward velocity (``None``: unused).

        Read before stepping (from the previous gather) and after, exactly as Gymnasium reads
        it before and after ``do_simulation``. Return a copy, not a view: with the batch backend
        the gathered arrays are live and change at the next step."""
        return None

    def evaluate(
        self, s: Arrays, before: np.ndarray | None, action: np.ndarray, dt: float
    ) -> Evaluation:
        """Return ``(reward [n] float64, terminated [n] bool, info arrays)`` after a step."""
        raise NotImplementedError

    def evaluate_compiled(
        self, s: Arrays, before: np.ndarray | None, action: np.ndarray, dt: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """``(observations, reward, terminated, position)`` as :meth:`observe`, :meth:`evaluate` and
        :meth:`position` give them, bit for bit, from one compiled loop that releases the GIL (no info
        arrays); ``None`` where the task has no compiled step (numba missing, or a task left on numpy)."""
        return None

    def compiled_params(self, rows: int, dt: float) -> tuple[int, tuple, tuple] | None:
        """What :func:`plasticrl.envs.tasks.compiled.task_step` needs besides the state: the task's code
        (``PLANAR`` or ``ANT``) and its parameter tuple, the other task's placeholder beside it (``NO_PLANAR``,
        ``NO_ANT``: one signature for both); ``None`` where the task has no compiled step."""
        return None

    def compiled_goal(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The per-row goal ``[rows]`` and the observed goal columns ``[rows, width]`` a compiled step
        reads (none here; :class:`~plasticrl.envs.tasks.adaptation.GoalTask` gives its own)."""
        return _NO_GOAL, np.empty((rows, 0))

    def reset_noise(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Initial (qpos, qvel) of one instance; the draw order matches Gymnasium's reset_model."""
        scale = self.cfg["reset_noise_scale"]
        qpos = init_qpos + rng.uniform(low=-scale, high=scale, size=self.nq)
        qvel = init_qvel + rng.uniform(low=-scale, high=scale, size=self.nv)
        return qpos, qvel


def ctrl_cost(weight: float, action: np.ndarray) -> np.ndarray:
    """Per-row ``weight * sum(action**2)`` in the action's dtype, like Gymnasium's scalar code."""
    return weight * np.sum(np.square(action), axis=1)


def normal_qvel_noise(
    task: Task, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reset draw of HalfCheetah/Ant: uniform qpos noise, then Gaussian qvel noise."""
    scale = task.cfg["reset_noise_scale"]
    qpos = init_qpos + rng.uniform(low=-scale, high=scale, size=task.nq)
    qvel = init_qvel + scale * rng.standard_normal(task.nv)
    return qpos, qvel
