"""Batched evaluation rollout: many (condition, episode) rows of one controller in one vector env.

Rows are laid out condition-major, ``row = c * episodes + e``, and row ``(c, e)`` is reset with
seed ``seed + e`` whatever its condition, so episode ``e`` starts from the same state in every
condition (paired episodes). Conditions are given per row through the engine's
``options={"perturbations": [...]}``; when there are more rows than ``max_rows`` the
conditions are split into chunks that each run as one batch, and a condition with more episodes
than ``max_rows`` into batches of ``max_rows`` episodes (:func:`stream_batch` yields each batch's
episodes as it ends, so an evaluation that reduces them holds one batch at a time).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    which each episode's goal changes (-1: never); ``None`` on other tasks. ``goal_term [T, E]``: on those
    tasks, the goal term of each step's reward (``info["reward_forward"]``: the velocity toward the goal
    times ``forward_reward_weight`` on the direction tasks), 0 after the episode ended; ``None`` elsewhere.
    """

    returns: np.ndarray
    lengths: np.ndarray
    invalid: np.ndarray
    rewards: np.ndarray
    survival: np.ndarray | None = None
    goal_switch_steps: np.ndarray | None = None
    goal_term: np.ndarray | None = None


def plan_chunks(conditions: int, episodes: int, max_rows: int) -> list[list[tuple[int, int, int]]]:
    """The engine batches of an evaluation: each a list of ``(condition index, first episode, end
    episode)`` segments, at most ``max_rows`` rows in all. Whole conditions share a batch while they fit
    (``max_rows // episodes`` per batch); a condition with more episodes than ``max_rows`` is split into
    batches of ``max_rows`` episodes, so memory does not grow with the episode count."""
    max_rows = max(1, int(max_rows))
    if episodes <= max_rows:
        per_chunk = max_rows // episodes
        return [[(c, 0, episodes) for c in range(start, min(start + per_chunk, conditions))]
                for start in range(0, conditions, per_chunk)]
    return [[(c, e0, min(e0 + max_rows, episodes))] for c in range(conditions)
            for e0 in range(0, episodes, max_rows)]


def stream_batch(
    controller: Controller,
    env_id: str,
    conditions: Sequence[tuple[str, Any]],
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_steps: int | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, int, EpisodeBatch]]:
    """Run ``episodes`` paired episodes of every condition, one engine batch of at most ``max_rows``
    rows at a time (:func:`plan_chunks`); yields ``(condition name, first episode, EpisodeBatch of
    that condition's episodes in this batch)`` as each batch ends, in condition then episode order
    within a batch. A consumer that reduces each piece holds one batch's per-step rewards at a time.

    ``on_steps(n)`` is called after every control step with the number of finished-or-running
    transitions just simulated, for progress displays.
    """
    from plasticrl.envs import make_vec

    env, rows = None, 0
    try:
        for chunk in plan_chunks(len(conditions), episodes, max_rows):
            segments = [(conditions[c][0], conditions[c][1], e0, e1) for c, e0, e1 in chunk]
            size = sum(e1 - e0 for _, _, e0, e1 in segments)
            if env is None or size != rows:
                # One env for every batch of the same size: each reset sets every row's seed and condition
                # afresh, and making a new env per batch (its models and data, ~0.5 MB a row) leaves the
                # allocator holding freed memory that grows with the number of batches.
                if env is not None:
                    env.close()
                env, rows = make_vec(env_id, size, **dict(env_kwargs or {})), size
                given = int(np.prod(env.single_observation_space.shape))
                wanted = getattr(controller, "obs_dim", None)
                if wanted is not None and wanted != given:
                    raise PlasticRLError(f"agent {controller.name!r} reads {wanted} observations; {env_id} gives "
                                         f"{given} (evaluate it on the env it was trained on, or one with the same "
                                         f"observation)")
            yield from _run_chunk(controller, env, segments, seed, max_steps, on_steps)
    finally:
        if env is not None:
            env.close()


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
    """Run ``episodes`` paired episodes of every condition; returns one :class:`EpisodeBatch` per name,
    with every episode's per-step rewards (``rewards [T, E]``: memory grows with ``episodes``; an
    evaluation of many episodes reduces the pieces of :func:`stream_batch` instead).

    ``on_steps(n)`` is called after every control step with the number of finished-or-running
    transitions just simulated, for progress displays.
    """
    pieces: dict[str, list[EpisodeBatch]] = {}
    for name, _, piece in stream_batch(controller, env_id, conditions, episodes, seed, env_kwargs, max_rows,
                                       max_steps, on_steps):
        pieces.setdefault(name, []).append(piece)
    return {name: join_pieces(parts) for name, parts in pieces.items()}


def join_pieces(parts: list[EpisodeBatch]) -> EpisodeBatch:
    """One :class:`EpisodeBatch` from the pieces of one condition, in episode order (reward traces of
    different lengths padded with 0: the episodes had ended)."""
    if len(parts) == 1:
        return parts[0]
    steps = max(p.rewards.shape[0] for p in parts)
    rewards = np.concatenate([np.pad(p.rewards, ((0, steps - p.rewards.shape[0]), (0, 0))) for p in parts], axis=1)

    def cat(field: str) -> np.ndarray | None:
        values = [getattr(p, field) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    terms = [p.goal_term for p in parts]
    goal_term = (None if any(t is None for t in terms) else
                 np.concatenate([np.pad(t, ((0, steps - t.shape[0]), (0, 0))) for t in terms], axis=1))
    return EpisodeBatch(cat("returns"), cat("lengths"), cat("invalid"), rewards, cat("survival"),
                        cat("goal_switch_steps"), goal_term)


def _run_chunk(controller, env, segments, seed, max_steps, on_steps) -> list[tuple[str, int, EpisodeBatch]]:
    rows = sum(e1 - e0 for _, _, e0, e1 in segments)
    seeds = [seed + e for _, _, e0, e1 in segments for e in range(e0, e1)]
    perturbations = [p for _, p, e0, e1 in segments for _ in range(e0, e1)]
    obs, _ = env.reset(seed=seeds, options={"perturbations": perturbations})
    controller.start(rows, seeds)
    active = np.ones(rows, dtype=bool)
    lengths = np.zeros(rows, dtype=np.int64)
    bad = np.zeros(rows, dtype=bool)  # non-finite observation or reward, or unstable physics (info["unstable"])
    trace: list[np.ndarray] = []
    survival: np.ndarray | None = None
    goal_switch: np.ndarray | None = None
    goal_term: list[np.ndarray] = []
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
        if goal_switch is not None and "reward_forward" in info:
            goal_term.append(np.where(active, np.asarray(info["reward_forward"], dtype=np.float64), 0.0))
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
    terms = np.stack(goal_term) if goal_term and len(goal_term) == len(trace) else None
    invalid = controller.invalid() | bad
    out, first = [], 0
    for name, _, e0, e1 in segments:
        cols = slice(first, first + e1 - e0)
        first += e1 - e0
        out.append((name, e0, EpisodeBatch(returns[cols].copy(), lengths[cols].copy(), invalid[cols].copy(),
                                           rewards[:, cols].astype(np.float32),
                                           None if survival is None else survival[cols].copy(),
                                           None if goal_switch is None else goal_switch[cols].copy(),
                                           None if terms is None else terms[:, cols].astype(np.float32))))
    return out
