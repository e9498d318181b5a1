"""Compiled per-step bookkeeping of the rollout loop (numba, GIL released), bit-identical to numpy's.

The rollout loop does a dozen tiny array operations per control step around the policy and the env:
copy and normalise the observations, convert them to the policy's dtype, sum the observation
statistics of the active rows, add the rewards to the returns, count the lengths, convert the
rewards and update the active mask. In numpy each is a separate call with its own temporaries; here
they are three compiled loops over rows. Each loop performs the numpy path's IEEE operations in the
same order on the same operands (no fastmath, no reassociation), so every result is bit for bit the
numpy path's; ``tests/test_rollout_compiled.py`` checks that on every task, with resets, terminations
and perturbations.

Used by :func:`plasticrl.rollouts.loop.rollout` when numba is installed (the ``fast`` extra) and the
policy runs on the CPU in float32 or float64; otherwise the loop keeps its numpy path.

With a fused spiking policy or Hebbian MLP (:meth:`~plasticrl.agents.base.BatchedPolicy.kernel_step`)
the loop runs the policy's kernels here too: :func:`finish_spiking` (:func:`finish_mlp`), one call per
control step once the env has stepped, does the step's statistics and bookkeeping, the policy's
``learn`` and, if the loop goes on, the next step's observations and ``act`` (:func:`begin_spiking`,
:func:`begin_mlp` alone for a step it did not begin), so
that Python runs once per step and shard between the physics and the policy
(``tests/test_rollout_kernel_step.py``: the same bits as ``act`` and ``learn`` called from Python).
"""
from __future__ import annotations

import math

import numpy as np

try:
    import numba as _numba
except ImportError:  # pragma: no cover - the loop then keeps its numpy path
    _numba = None


def _prepare_obs(obs, mean, std, clip, normalise, active, bad, raw, policy_obs):
    # raw = float64 copy of obs; policy_obs = policy dtype of clip((raw - mean) / std, -clip, clip)
    # (np.clip keeps NaN: both comparisons are false for it, as here); bad |= active & ~isfinite(raw).all(1)
    rows, dim = raw.shape
    neg_clip = -clip
    for r in range(rows):
        finite = True
        for j in range(dim):
            x = obs[r, j]
            raw[r, j] = x
            if not math.isfinite(x):
                finite = False
            if normalise:
                x = (x - mean[j]) / std[j]
                if x < neg_clip:
                    x = neg_clip
                if x > clip:
                    x = clip
            policy_obs[r, j] = x
        if active[r] and not finite:
            bad[r] = True


def _accumulate_moments(raw, active, bad, row_count, row_sum, row_sumsq):
    # counted = active & ~bad; live = where(counted, raw, 0); row_count += counted; row_sum += live;
    # row_sumsq += live * live
    rows, dim = raw.shape
    for r in range(rows):
        on = active[r] and not bad[r]
        row_count[r] = row_count[r] + (1.0 if on else 0.0)
        for j in range(dim):
            live = raw[r, j] if on else 0.0
            row_sum[r, j] = row_sum[r, j] + live
            row_sumsq[r, j] = row_sumsq[r, j] + live * live


def _after_step(reward, terminated, truncated, active, bad, returns, lengths, policy_reward):
    # bad |= active & ~isfinite(reward); returns += where(active, reward, 0); lengths += active;
    # policy_reward = reward in the policy's dtype; active &= ~(terminated | truncated)
    for r in range(reward.shape[0]):
        on = active[r]
        x = reward[r]
        if on and not math.isfinite(x):
            bad[r] = True
        returns[r] = returns[r] + (x if on else 0.0)
        lengths[r] = lengths[r] + (1 if on else 0)
        policy_reward[r] = x
        active[r] = on and not (terminated[r] or truncated[r])


def _begin_spiking(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions, actions,
                   reward_scale, reward):
    # the first half of a control step with a fused spiking policy: prepare_obs (and the reward input
    # column), the policy's act (act_args hold policy_obs and policy_actions), then actions = policy_actions
    # as float64
    prepare_obs(obs, mean, std, clip, normalise, active, bad, raw, policy_obs)
    _reward_column(reward_scale, reward, raw.shape[1], policy_obs)
    act_kernel(*act_args)
    _copy_actions(policy_actions, actions)


def _begin_mlp(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions, actions,
               reward_scale, reward):
    # _begin_spiking for a fused Hebbian MLP: its act kernel is mlp_act_kernel
    prepare_obs(obs, mean, std, clip, normalise, active, bad, raw, policy_obs)
    _reward_column(reward_scale, reward, raw.shape[1], policy_obs)
    mlp_act_kernel(*act_args)
    _copy_actions(policy_actions, actions)


def _reward_column(reward_scale, reward, column, policy_obs):
    # a policy with reward_input: policy_obs[:, column] = scale * the last step's reward (BatchedPolicy.act's
    # cat of reward_input_scale * previous reward, in the policy's dtype); none without (reward_scale empty)
    if reward_scale.shape[0] == 0:
        return
    scale = reward_scale[0]
    for r in range(policy_obs.shape[0]):
        policy_obs[r, column] = scale * reward[r]


def _copy_actions(policy_actions, actions):
    # actions = policy_actions as float64 (the env's dtype)
    for r in range(actions.shape[0]):
        for i in range(actions.shape[1]):
            actions[r, i] = policy_actions[r, i]


def _settle(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated, truncated, active, bad,
            returns, lengths, policy_reward, learn_on, learn_args, may_continue):
    # the rest of a control step once the env has stepped, in the loop's order (so the same bits): the
    # observation statistics, unstable flags, bookkeeping and the policy's learn. Returns whether the loop
    # goes on (may_continue and a row still active).
    if collect:
        accumulate_moments(raw, active, bad, row_count, row_sum, row_sumsq)
    for r in range(active.shape[0]):
        if active[r] and unstable[r]:
            bad[r] = True
    after_step(reward, terminated, truncated, active, bad, returns, lengths, policy_reward)
    if learn_on:
        learn_kernel(*learn_args)
    if not may_continue:
        return False
    for r in range(active.shape[0]):
        if active[r]:
            return True
    return False


def _finish_spiking(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated, truncated, active,
                    bad, returns, lengths, policy_reward, learn_on, learn_args, may_continue, obs, mean, std, clip,
                    normalise, policy_obs, act_args, policy_actions, actions, reward_scale):
    # the rest of a control step once the env has stepped (_settle), and the first half of the next one
    # if the loop goes on (its reward input, if any, the reward of this step). Returns whether the next
    # step was begun.
    go_on = _settle(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated, truncated, active,
                    bad, returns, lengths, policy_reward, learn_on, learn_args, may_continue)
    if go_on:
        _begin_spiking(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions, actions,
                       reward_scale, policy_reward)
    return go_on


def _finish_mlp(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated, truncated, active,
                bad, returns, lengths, policy_reward, learn_on, learn_args, may_continue, obs, mean, std, clip,
                normalise, policy_obs, act_args, policy_actions, actions, reward_scale):
    # _finish_spiking for a fused Hebbian MLP (the same learn kernel, its own act kernel). Kept as its own
    # function rather than taking the begin step as an argument: each stays one cacheable numba function
    # with static calls (a dispatcher argument would not cache).
    go_on = _settle(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated, truncated, active,
                    bad, returns, lengths, policy_reward, learn_on, learn_args, may_continue)
    if go_on:
        _begin_mlp(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions, actions,
                   reward_scale, policy_reward)
    return go_on


def _run_spiking(physics, task, state, actions, began, steps, limit, stop_when_idle, max_steps, collect, raw,
                 row_count, row_sum, row_sumsq, active, bad, returns, lengths, policy_reward, learn_on, learn_args,
                 mean, std, clip, normalise, policy_obs, act_args, policy_actions, reward_scale):
    # control steps of a fused spiking policy with the env stepped in compiled code (env_step): each is
    # the Python loop's step (begin if not begun, the env's step, _finish_spiking), and the loop goes on
    # while it would (a row active and below max_steps, or, with stop_when_idle false, the sync phase's
    # steps to `limit`) and no instance awaits its reset. Returns (steps taken, whether the next was begun).
    obs, reward, terminated, truncated, unstable = state[0], state[1], state[2], state[3], state[4]
    taken = 0
    while True:
        if not began:
            _begin_spiking(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions,
                           actions, reward_scale, policy_reward)
        waiting = env_step(physics, task, state, actions)
        taken += 1
        began = _finish_spiking(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated,
                                truncated, active, bad, returns, lengths, policy_reward, learn_on, learn_args,
                                steps + taken < max_steps, obs, mean, std, clip, normalise, policy_obs, act_args,
                                policy_actions, actions, reward_scale)
        if (stop_when_idle and not began) or waiting or steps + taken >= limit:
            return taken, began


def _run_mlp(physics, task, state, actions, began, steps, limit, stop_when_idle, max_steps, collect, raw,
             row_count, row_sum, row_sumsq, active, bad, returns, lengths, policy_reward, learn_on, learn_args,
             mean, std, clip, normalise, policy_obs, act_args, policy_actions, reward_scale):
    # _run_spiking for a fused Hebbian MLP (its own begin and finish; see _finish_mlp for why two functions:
    # numba prunes neither a None-marker nor a literal-marker branch here, so one function with both kinds'
    # calls would not type)
    obs, reward, terminated, truncated, unstable = state[0], state[1], state[2], state[3], state[4]
    taken = 0
    while True:
        if not began:
            _begin_mlp(obs, mean, std, clip, normalise, active, bad, raw, policy_obs, act_args, policy_actions,
                       actions, reward_scale, policy_reward)
        waiting = env_step(physics, task, state, actions)
        taken += 1
        began = _finish_mlp(collect, raw, row_count, row_sum, row_sumsq, unstable, reward, terminated,
                            truncated, active, bad, returns, lengths, policy_reward, learn_on, learn_args,
                            steps + taken < max_steps, obs, mean, std, clip, normalise, policy_obs, act_args,
                            policy_actions, actions, reward_scale)
        if (stop_when_idle and not began) or waiting or steps + taken >= limit:
            return taken, began


if _numba is not None:
    from plasticrl.agents.plastic_kernel import act_kernel, learn_kernel, mlp_act_kernel
    from plasticrl.envs.compiled_step import env_step

    prepare_obs = _numba.njit(nogil=True, cache=True, error_model="numpy")(_prepare_obs)
    accumulate_moments = _numba.njit(nogil=True, cache=True, error_model="numpy")(_accumulate_moments)
    after_step = _numba.njit(nogil=True, cache=True, error_model="numpy")(_after_step)
    _copy_actions = _numba.njit(nogil=True, cache=True)(_copy_actions)
    _reward_column = _numba.njit(nogil=True, cache=True, error_model="numpy")(_reward_column)
    _settle = _numba.njit(nogil=True, cache=True, error_model="numpy")(_settle)
    _begin_spiking = _numba.njit(nogil=True, cache=True, error_model="numpy")(_begin_spiking)
    _begin_mlp = _numba.njit(nogil=True, cache=True, error_model="numpy")(_begin_mlp)
    begin_spiking, begin_mlp = _begin_spiking, _begin_mlp
    finish_spiking = _numba.njit(nogil=True, cache=True, error_model="numpy")(_finish_spiking)
    finish_mlp = _numba.njit(nogil=True, cache=True, error_model="numpy")(_finish_mlp)
    _finish_spiking, _finish_mlp = finish_spiking, finish_mlp
    # the env stepped in compiled code too (None where MuJoCo's C library is not at hand)
    run_spiking = run_mlp = None
    if env_step is not None:
        run_spiking = _numba.njit(nogil=True, cache=True, error_model="numpy")(_run_spiking)
        run_mlp = _numba.njit(nogil=True, cache=True, error_model="numpy")(_run_mlp)
else:  # pragma: no cover
    prepare_obs = accumulate_moments = after_step = begin_spiking = finish_spiking = begin_mlp = finish_mlp = None
    run_spiking = run_mlp = None


def available() -> bool:
    """Whether the compiled bookkeeping can run here (numba imports)."""
    return _numba is not None


def as_bool(flags) -> np.ndarray:
    """``flags`` as a contiguous bool array (the env's ``terminated``/``truncated``), copied only if needed."""
    return np.ascontiguousarray(flags, dtype=np.bool_)
