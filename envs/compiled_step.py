"""A whole env step in compiled code: physics, the task's observation, reward and termination, the time limit
and the instability flags, as one numba function a caller's compiled loop can call step after step.

:meth:`plasticrl.envs.vector.MujocoVectorEnv.compiled_step` hands out a :class:`CompiledStep` (addresses and
buffers over the env's own state) when the env can be stepped this way; :func:`env_step` does what
``step_async`` followed by ``step_wait_lean`` do for a step in which no instance is being reset, in the same
order and with the same functions, so the env ends in the same state bit for bit
(``tests/test_rollout_segment.py``). The rollout loop runs its control steps through it
(:mod:`plasticrl.rollouts.compiled`), so that a population shard steps end to end (physics, observations,
rewards, bookkeeping, act and learn) with no Python between the steps.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import compiled_physics
from .tasks import compiled as task_compiled


class CompiledStep(NamedTuple):
    """The arguments of :func:`env_step`, over the env's live state (written in place)."""

    #: (mj_step, mj_rnePostConstraint, post constraint?, model, data, ctrl and field addresses, the gathered
    #: arrays as [n, size] views, frame skip, warning-counter addresses, the warnings that mark instability)
    physics: tuple
    #: (task code, qpos, qvel, xpos, cfrc_ext, planar parameters, ant parameters): the task's compiled step
    task: tuple
    #: (observations, reward, terminated, truncated, unstable, elapsed, autoreset, time limit, x position,
    #: xy position): what the step writes; the obs, elapsed and autoreset arrays and one position are the env's
    state: tuple


def _env_step(physics, task, state, actions):
    # one step of every instance with controls `actions` (float64 [n, nu]); returns whether an instance now
    # awaits its reset (then the env's next step must be the Python one, which resets it)
    mj_step, rne, post, models, datas, ctrls, field_ptrs, outs, frame_skip, warnings, codes = physics
    code, qpos, qvel, xpos, cfrc_ext, planar, ant = task
    obs, reward, terminated, truncated, unstable, elapsed, autoreset, limit, x_position, xy_position = state
    rows = actions.shape[0]
    every_row = np.zeros(0, dtype=np.bool_)
    _step_rows(mj_step, rne, post, models, datas, ctrls, field_ptrs, outs, actions, every_row, 0, rows, frame_skip)
    _task_step(code, qpos, qvel, xpos, cfrc_ext, actions, planar, ant, obs, reward, terminated, x_position,
               xy_position)
    waiting = False
    for r in range(rows):
        elapsed[r] += 1
        truncated[r] = elapsed[r] >= limit
        autoreset[r] = terminated[r] or truncated[r]
        waiting = waiting or autoreset[r]
    _unstable_rows(warnings, codes, unstable)
    return waiting


if compiled_physics.AVAILABLE:
    import numba as _numba

    _step_rows, _unstable_rows = compiled_physics.step_rows, compiled_physics.unstable_rows
    _task_step = task_compiled.task_step
    env_step = _numba.njit(nogil=True, cache=True, error_model="numpy")(_env_step)
else:  # pragma: no cover
    env_step = None
