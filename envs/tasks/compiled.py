"""Compiled observation, reward and termination of the locomotion tasks (numba, GIL released).

Each function does, row by row in one loop, what the task's ``observe``, ``evaluate`` and ``position``
do with numpy: the same IEEE operations in the same order (no fastmath), with numpy's pairwise
summation for the control and contact costs (:func:`_pairwise_sum`, numpy's algorithm for a contiguous
row), so every value is the numpy path's bit for bit (``tests/test_envs_compiled.py``). They serve
:meth:`plasticrl.envs.vector.MujocoVectorEnv.step_wait_lean`, the step the rollout loop takes, so that
population shards stepped on threads (:mod:`plasticrl.rollouts.shards`) hold the GIL for less of their
step; :meth:`~plasticrl.envs.vector.MujocoVectorEnv.step`, which Gymnasium's API and the parity tests
use, keeps the numpy code.

Without numba (the ``fast`` extra) :data:`AVAILABLE` is False and the env keeps the numpy path.
"""
from __future__ import annotations

import math

import numpy as np

try:
    import numba as _numba
except ImportError:  # pragma: no cover - the env keeps its numpy path
    _numba = None

AVAILABLE = _numba is not None

#: forward-reward modes of :func:`planar_step`: HalfCheetah-v5, HalfCheetahDir-v5, HalfCheetahVel-v5
FORWARD, DIRECTION, VELOCITY = 0, 1, 2


def _block_sum(a, lo, n):
    # numpy's pairwise summation of a contiguous run of n <= 128 values (numpy/_core/src/umath/
    # loops_utils.h.src): below 8 values a plain loop from -0.0, else eight partial sums combined as
    # ((0+1)+(2+3))+((4+5)+(6+7)) plus the rest in order
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


def _pairwise_sum(a, lo, n):
    # numpy's pairwise summation: runs above 128 values split in two halves (the first a multiple of 8
    # long), each summed the same way, then added; numpy recurses, here an explicit stack does (numba's
    # cached functions cannot call themselves)
    if n <= 128:
        return _block_sum(a, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stages = np.zeros(64, np.int64)
    values = np.empty(64)
    los[0], ns[0], top, count = lo, n, 1, 0
    while top > 0:
        t = top - 1
        if ns[t] <= 128:
            values[count] = _block_sum(a, los[t], ns[t])
            count += 1
            top -= 1
            continue
        half = ns[t] // 2
        half -= half % 8
        if stages[t] == 0:  # the first half next
            stages[t] = 1
            los[top], ns[top], stages[top] = los[t], half, 0
            top += 1
        elif stages[t] == 1:  # then the second
            stages[t] = 2
            los[top], ns[top], stages[top] = los[t] + half, ns[t] - half, 0
            top += 1
        else:  # both done: first + second
            values[count - 2] = values[count - 2] + values[count - 1]
            count -= 1
            top -= 1
    return values[0]


def _row_sum(values):
    # np.sum(x, axis=1) of one contiguous row: the reduction starts from the identity 0
    return 0.0 + _pairwise_sum(values, 0, values.shape[0])


def _squared_row_sum(x, r, scratch):
    # np.sum(np.square(x), axis=1)[r] for a 2-d x, through a row of squares as numpy forms it
    n = x.shape[1]
    for j in range(n):
        scratch[j] = x[r, j] * x[r, j]
    return 0.0 + _pairwise_sum(scratch, 0, n)


def _planar_step(qpos, qvel, before, action, dt, skip, forward_weight, ctrl_weight, mode, goal, goal_columns,
                 obs, reward, position):
    # HalfCheetah(-Dir, -Vel)-v5: obs = [qpos[skip:], qvel, goal columns]; x_velocity = (x - before) / dt;
    # forward by mode; reward = forward - ctrl_weight * sum(action**2); position = x (never terminates)
    rows = qpos.shape[0]
    width = goal_columns.shape[1]
    scratch = action[0].copy()
    for r in range(rows):
        k = _copy_state(obs, r, qpos, qvel, skip)
        for j in range(width):
            obs[r, k] = goal_columns[r, j]
            k += 1
        x = qpos[r, 0]
        x_velocity = (x - before[r]) / dt
        if mode == FORWARD:
            forward = forward_weight * x_velocity
        elif mode == DIRECTION:
            forward = goal[r] * (forward_weight * x_velocity)
        else:  # VELOCITY: forward_weight arrives negated, as the numpy code negates it before the product
            forward = forward_weight * abs(x_velocity - goal[r])
        ctrl = ctrl_weight * _squared_row_sum(action, r, scratch)
        reward[r] = forward - ctrl
        position[r] = x


def _copy_state(obs, r, qpos, qvel, skip):
    # obs[r, :k] = [qpos[r, skip:], qvel[r]]; returns k, the next free column
    k = 0
    for j in range(skip, qpos.shape[1]):
        obs[r, k] = qpos[r, j]
        k += 1
    for j in range(qvel.shape[1]):
        obs[r, k] = qvel[r, j]
        k += 1
    return k


def _clip(x, lo, hi):
    # np.clip (maximum then minimum): NaN stays NaN
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def _ant_step(qpos, qvel, xpos, cfrc_ext, before, action, dt, skip, include_cfrc, main_body, force_lo, force_hi,
              z_lo, z_hi, forward_weight, healthy_reward, ctrl_weight, contact_weight, terminate, direction,
              goal_columns, obs, reward, terminated, position):
    # Ant(-Dir)-v5: obs = [qpos[skip:], qvel, clip(cfrc_ext[1:]).ravel() if include_cfrc, goal columns];
    # xy velocity of the main body; healthy = finite state and z in range; forward = vx * weight, or for
    # AntDir (vx * ux + vy * uy) * weight with the goal's unit vector u (direction [n, 2], or empty);
    # reward = forward + healthy * healthy_reward - (ctrl + contact); terminated = ~healthy & terminate
    rows, nq = qpos.shape
    nv = qvel.shape[1]
    nbody = cfrc_ext.shape[1]
    width = goal_columns.shape[1]
    scratch = action[0].copy()
    forces = cfrc_ext[0].ravel().copy()
    for r in range(rows):
        k = _copy_state(obs, r, qpos, qvel, skip)
        m = 0
        for b in range(nbody):
            for c in range(6):
                f = _clip(cfrc_ext[r, b, c], force_lo, force_hi)
                forces[m] = f * f
                m += 1
                if include_cfrc and b > 0:
                    obs[r, k] = f
                    k += 1
        for j in range(width):
            obs[r, k] = goal_columns[r, j]
            k += 1
        x, y = xpos[r, main_body, 0], xpos[r, main_body, 1]
        vx = (x - before[r, 0]) / dt
        vy = (y - before[r, 1]) / dt
        finite = True
        for j in range(nq):
            if not math.isfinite(qpos[r, j]):
                finite = False
        for j in range(nv):
            if not math.isfinite(qvel[r, j]):
                finite = False
        z = qpos[r, 2]
        healthy = finite and z_lo <= z and z <= z_hi
        if direction.shape[0] == 0:
            velocity = vx
        else:
            velocity = vx * direction[r, 0] + vy * direction[r, 1]
        forward = velocity * forward_weight
        survive = (1.0 if healthy else 0.0) * healthy_reward
        ctrl = ctrl_weight * _squared_row_sum(action, r, scratch)
        contact = contact_weight * (0.0 + _pairwise_sum(forces, 0, m))
        reward[r] = forward + survive - (ctrl + contact)
        terminated[r] = (not healthy) and terminate
        position[r, 0] = x
        position[r, 1] = y


#: task codes of :func:`task_step`, and the placeholder parameters of the task not stepped
PLANAR, ANT = 0, 1
NO_PLANAR = (0.0, 0, 0.0, 0.0, FORWARD, np.zeros(0), np.zeros((0, 0)))
NO_ANT = (0.0, 0, False, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, np.zeros((0, 2)), np.zeros((0, 0)))


def _task_step(code, qpos, qvel, xpos, cfrc_ext, action, planar, ant, obs, reward, terminated, x_position,
               xy_position):
    # one step of the task `code` (PLANAR: planar_step with `planar`, ANT: ant_step with `ant`) with the
    # positions updated in place (x_position [n] or xy_position [n, 2]: each row's velocity is read from its
    # entry before the entry is overwritten); a planar task never terminates
    if code == PLANAR:
        dt, skip, forward_weight, ctrl_weight, mode, goal, columns = planar
        _planar_step(qpos, qvel, x_position, action, dt, skip, forward_weight, ctrl_weight, mode, goal, columns,
                     obs, reward, x_position)
        for r in range(terminated.shape[0]):
            terminated[r] = False
    else:
        (dt, skip, include_cfrc, main_body, force_lo, force_hi, z_lo, z_hi, forward_weight, healthy_reward,
         ctrl_weight, contact_weight, terminate, direction, columns) = ant
        _ant_step(qpos, qvel, xpos, cfrc_ext, xy_position, action, dt, skip, include_cfrc, main_body, force_lo,
                  force_hi, z_lo, z_hi, forward_weight, healthy_reward, ctrl_weight, contact_weight, terminate,
                  direction, columns, obs, reward, terminated, xy_position)


if _numba is not None:
    _jit = _numba.njit(nogil=True, cache=True, error_model="numpy")
    _block_sum = _jit(_block_sum)
    _pairwise_sum = _jit(_pairwise_sum)
    _row_sum = _jit(_row_sum)
    _squared_row_sum = _jit(_squared_row_sum)
    _clip = _numba.njit(nogil=True, cache=True, inline="always")(_clip)
    _copy_state = _jit(_copy_state)
    planar_step = _jit(_planar_step)
    ant_step = _jit(_ant_step)
    _planar_step, _ant_step = planar_step, ant_step
    task_step = _jit(_task_step)
    row_sum = _row_sum
else:  # pragma: no cover
    planar_step = ant_step = task_step = row_sum = None
