"""Batched evaluation rollout: many (condition, episode) rows of one controller in one vector env.

Rows are laid out condition-major, ``row = c * episodes + e``, and row ``(c, e)`` is reset with
seed ``seed + e`` whatever its condition, so episode ``e`` starts from the same state in every
condition (paired episodes). Conditions are given per row through the engine's
``options={"perturbations": [...]}``; when there are more rows than ``max_rows`` the
conditions are split into chunks that each run as one batch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.controllers import Controller

DEFAULT_MAX_ROWS = 512


@dataclass
class EpisodeBatch:
    """The episodes of one condition: ``returns/lengths/invalid [E]``, ``rewards [T, E]``.

    ``invalid[e]``: the controller went non-finite, or the episode met a non-finite observation or
    reward or unstable physics; its return is not a result (evaluations leave it out and count it).

    ``rewards[t, e]`` is the reward of step ``t`` of episode ``e``, 0 after the episode ended
    (a robot that fell earns nothing from then on, which is what the adaptation curve shows).
    ``survival [E]`` is the part of each return paid for staying healthy (the task's
    ``reward_survive`` info, e.g. Ant's 1 per step); ``None`` when the task pays no such bonus.
    ``goal_switch_steps [E]``: on goal-switching tasks (``info["goal_switch_step"]``), the step at
    which each episode's goal changes (-1: never); ``None`` on other tasks.
    """

    returns: np.ndarray
    lengths: np.ndarray
    invalid: np.ndarray
    rewards: np.ndarray
    survival: np.ndarray | None = None
    goal_switch_steps: np.ndarray | None = None


def run_batch(
    controller: Controller,
    env_id: str,
    conditions: Sequence[tuple[str, Any]],
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_steps: int | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> dict[str, EpisodeBatch]:
    """Run ``episodes`` paired episodes of every condition; returns one :class:`EpisodeBatch` per name.

    ``on_steps(n)`` is called after every control step with the number of finished-or-running
    transitions just simulated, for progress displays.
    """
    from plasticrl.envs import make_vec

    per_chunk = max(1, max_rows // episodes)
    out: dict[str, EpisodeBatch] = {}
    for start in range(0, len(conditions), per_chunk):
        chunk = list(conditions[start:start + per_chunk])
        env = make_vec(env_id, len(chunk) * episodes, **dict(env_kwargs or {}))
        given, wanted = int(np.prod(env.single_observation_space.shape)), getattr(controller, "obs_dim", None)
        if wanted is not None and wanted != given:
            env.close()
            raise PlasticRLError(f"agent {controller.name!r} reads {wanted} observations; {env_id} gives {given} "
                                 f"(evaluate it on the env it was trained on, or one with the same observation)")
        try:
            out.update(_run_chunk(controller, env, chunk, episodes, seed, max_steps, on_steps))
        finally:
            env.close()
    return out


def _run_chunk(controller, env, chunk, episodes, seed, max_steps, on_steps) -> dict[str, EpisodeBatch]:
    rows = len(chunk) * episodes
    seeds = [seed + e for _ in chunk for e in range(episodes)]
    perturbations = [p for _, p in chunk for _ in range(episodes)]
    obs, _ = env.reset(seed=seeds, options={"perturbations": perturbations})
    controller.start(rows, seeds)
    active = np.ones(rows, dtype=bool)
    lengths = np.zeros(rows, dtype=np.int64)
    bad = np.zeros(rows, dtype=bool)  # non-finite observation or reward, or unstable physics (info["unstable"])
    trace: list[np.ndarray] = []
    survival: np.ndarray | None = None
    goal_switch: np.ndarray | None = None
    while active.any() and (max_steps is None or len(trace) < max_steps):
        raw = np.asarray(obs, dtype=np.float64).reshape(rows, -1)
        bad |= active & ~np.isfinite(raw).all(axis=1)
        actions = controller.act(raw)
        obs, reward, terminated, truncated, info = env.step(actions)
        reward = np.asarray(reward, dtype=np.float64)
        bad |= active & ~np.isfinite(reward)
        if "unstable" in info:
            bad |= active & np.asarray(info["unstable"], dtype=bool)
        trace.append(np.where(active, reward, 0.0))
        if not lengths.any() and "goal_switch_step" in info:  # the first step echoes each episode's draw
            goal_switch = np.asarray(info["goal_switch_step"], dtype=np.int64).copy()
        if "reward_survive" in info:
            paid = np.asarray(info["reward_survive"], dtype=np.float64)
            stepped = active & np.asarray(info.get("_reward_survive", active), dtype=bool)
            survival = (0.0 if survival is None else survival) + np.where(stepped, paid, 0.0)
        lengths += active
        controller.learn(reward)
        active &= ~np.logical_or(terminated, truncated)
        if on_steps is not None:
            on_steps(rows)
    rewards = np.stack(trace) if trace else np.zeros((0, rows))
    returns = rewards.sum(axis=0)
    invalid = controller.invalid() | bad
    out = {}
    for c, (name, _) in enumerate(chunk):
        cols = slice(c * episodes, (c + 1) * episodes)
        out[name] = EpisodeBatch(returns[cols].copy(), lengths[cols].copy(), invalid[cols].copy(),
                                 rewards[:, cols].astype(np.float32),
                                 None if survival is None else survival[cols].copy(),
                                 None if goal_switch is None else goal_switch[cols].copy())
    return out
