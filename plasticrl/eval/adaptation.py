"""Adaptation to a mid-episode switch: reward per window around the switch, time to recover.

The curve is the mean reward per step in consecutive windows of ``window`` steps, aligned so
that window 0 starts at the switch (negative indices are before it). The pre-switch level is
the mean reward per step over the ``baseline`` steps just before the switch. Time to recover:
steps from the switch until the first window (at or after the switch) from which every window
reaches ``recover_fraction`` of that level to the end of the episode (``None`` if there is none).
"Stays", not "first reaches": the first window after a switch often still shows the old level
(the body has not yet felt the damage), and a drop that never recovers must not count as 0. Only episodes
still running at the switch count: one that fell before it never saw the perturbation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

RECOVER_FRACTION = 0.8
#: the horizon of "recovered quickly" in reports: Najarro & Risi (2020) report recovery "in less than 100
#: timesteps" after damage, so the report counts the episodes that recover within this many steps
QUICK_RECOVERY_STEPS = 100


def switch_step(perturbation: Any) -> int | None:
    """The first ``start_step > 0`` of a condition (a dict or list of dicts), or ``None`` if it
    acts from reset."""
    items: Iterable[Any] = perturbation if isinstance(perturbation, (list, tuple)) else [perturbation]
    steps = [int(p.get("start_step", 0)) for p in items if isinstance(p, dict)]
    steps = [s for s in steps if s > 0]
    return min(steps) if steps else None


@dataclass
class AdaptationCurve:
    """``offsets[k]``: first step of window k relative to the switch; ``reward[k]``: mean per step."""

    switch_step: int
    window: int
    offsets: list[int]
    reward: list[float]
    pre_switch_reward: float
    time_to_recover: int | None
    episodes_used: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def recover_threshold(pre: Any, fraction: float = RECOVER_FRACTION) -> Any:
    """``fraction`` of the pre-switch level (a float, or an array of them); for a negative level,
    'fraction of it' means losing at most ``1 - fraction`` of its magnitude (so the threshold stays
    below the level)."""
    return pre - (1.0 - fraction) * abs(pre)


def first_staying_offset(offsets: list[int], values: list[float], threshold: float) -> int | None:
    """The first offset from which every later value is ``>= threshold`` (``None`` if the last one
    is below it, or there are none)."""
    found = None
    for off, value in zip(reversed(offsets), reversed(values)):
        if not value >= threshold:  # NaN counts as below
            break
        found = off
    return found


def adaptation_curve(rewards: np.ndarray, lengths: np.ndarray, start: int, window: int = 20,
                     baseline: int = 100, fraction: float = RECOVER_FRACTION) -> AdaptationCurve | None:
    """Curve from ``rewards [T, E]`` (0 after an episode ended) for a switch at step ``start``.

    Returns ``None`` when no episode was still running at the switch.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    alive = np.asarray(lengths) > start
    if not alive.any() or rewards.shape[0] <= start:
        return None
    return curve_from_sum(rewards[:, alive].sum(axis=1), int(alive.sum()), start, window, baseline, fraction)


def curve_from_sum(reward_sum: np.ndarray, episodes: int, start: int, window: int = 20, baseline: int = 100,
                   fraction: float = RECOVER_FRACTION) -> AdaptationCurve | None:
    """:func:`adaptation_curve` from ``reward_sum [T]``, the per-step reward summed over the ``episodes``
    that were still running at the switch: what an evaluation that streams its episodes accumulates
    instead of keeping every episode's rewards. ``None`` when there are no such episodes."""
    if episodes < 1 or reward_sum.shape[0] <= start:
        return None
    per_step = np.asarray(reward_sum, dtype=np.float64) / episodes  # [T] mean over episodes that saw the switch
    lo = max(0, start - baseline)
    pre = float(per_step[lo:start].mean()) if start > lo else math.nan
    first = start - (start // window) * window  # windows tile the episode and one begins at the switch
    offsets, curve = [], []
    for w0 in range(first, per_step.shape[0], window):
        seg = per_step[w0:w0 + window]
        offsets.append(w0 - start)
        curve.append(float(seg.mean()))
    ttr = None
    if math.isfinite(pre):
        after = [(off, value) for off, value in zip(offsets, curve) if off >= 0]
        ttr = first_staying_offset([off for off, _ in after], [value for _, value in after],
                                   recover_threshold(pre, fraction))
    return AdaptationCurve(start, window, offsets, curve, pre, ttr, int(episodes))


def episode_times_to_recover(rewards: np.ndarray, lengths: np.ndarray, start: int, window: int = 20,
                             baseline: int = 100, fraction: float = RECOVER_FRACTION) -> list[int | None]:
    """Time to recover of each episode on its own: the first window start ``t >= 0`` after the switch
    from which the episode's mean reward per step, over the rest of the episode, is at least
    ``fraction`` of its own pre-switch level (the ``baseline`` steps before the switch).

    ``rewards [T, E]`` (0 after an episode ended), ``lengths [E]``; ``None``: never within the episode,
    or the episode ended before the switch. Why the rest of the episode and not "every window stays", as
    for the mean curve: one episode's 20-step windows are noisy, and one noisy window late in the episode
    would read as never recovering. An episode that ends after the switch keeps its zero-reward tail, as
    the mean curve does, so a fall counts against recovery."""
    r = np.asarray(rewards, dtype=np.float64)
    lengths = np.asarray(lengths)
    out: list[int | None] = [None] * r.shape[1]
    lo = max(0, start - baseline)
    if r.shape[0] <= start or start <= lo:
        return out
    threshold = recover_threshold(r[lo:start].mean(axis=0), fraction)  # [E]
    starts = np.arange(start, r.shape[0], window)  # window starts at and after the switch
    rest_sum = np.cumsum(r[::-1], axis=0)[::-1]  # [T, E]: reward from step t to the end
    rest_mean = rest_sum[starts] / (r.shape[0] - starts)[:, None]  # [W, E]
    ok = rest_mean >= threshold[None, :]  # NaN counts as below
    for e in np.flatnonzero((lengths > start) & ok.any(axis=0)):
        out[int(e)] = int(np.argmax(ok[:, e])) * window
    return out
