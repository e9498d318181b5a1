"""Adaptation to a goal that changes within the episode (HalfCheetahDir, AntDir, HalfCheetahVel).

The goal (a direction, a target velocity) is revealed only through the reward and may switch at a
step drawn per episode; an agent that adapts earns after the switch about what an oracle that
observes the goal earns. Per episode ``e`` with switch step ``s_e`` and length ``L_e``:

- reward per step before the switch: ``sum(r[0:s_e]) / s_e``; after: ``sum(r[s_e:L_e]) / (L_e - s_e)``.
  Episodes that ended before their switch, or have none, have no "after" (NaN, left out).
- adaptation ratio: the agent's mean after-switch rate over the oracle's, on the same paired
  episodes (same reset seeds, so the same goals and switch steps), with a bootstrap interval that
  resamples episode pairs jointly.
- time to adapt: steps from the switch to the first step ``k`` after which the mean reward of every
  ``window``-step window ``r[s_e + j : s_e + j + window]``, ``j >= k``, stays at or above
  ``fraction`` of the oracle's after-switch rate (NaN when it never does). A window is a full one:
  the last ``window - 1`` steps of an episode start no window.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from plasticrl.eval.adaptation import RECOVER_FRACTION, first_staying_offset, recover_threshold
from plasticrl.eval.stats import CONFIDENCE, bootstrap_mean, bootstrap_ratio

ADAPT_WINDOW = 20


@dataclass(frozen=True)
class SwitchRates:
    """Per-episode reward per step before and after the switch (``[E]``, NaN where undefined)."""

    before: np.ndarray
    after: np.ndarray


def rates_around_switch(rewards: np.ndarray, lengths: np.ndarray, switch_steps: np.ndarray) -> SwitchRates:
    """Reward per step before and after each episode's switch, from ``rewards [T, E]`` (0 after an
    episode ended), ``lengths [E]`` and ``switch_steps [E]`` (negative: no switch)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    switch_steps = np.asarray(switch_steps, dtype=np.int64)
    episodes = rewards.shape[1]
    before = np.full(episodes, math.nan)
    after = np.full(episodes, math.nan)
    for e in range(episodes):
        s, n = int(switch_steps[e]), int(lengths[e])
        if s > 0:
            before[e] = rewards[:min(s, n), e].sum() / min(s, n)
        if 0 < s < n:
            after[e] = rewards[s:n, e].sum() / (n - s)
    return SwitchRates(before, after)


def time_to_adapt(rewards: np.ndarray, lengths: np.ndarray, switch_steps: np.ndarray, target_rate: float,
                  window: int = ADAPT_WINDOW, fraction: float = RECOVER_FRACTION) -> np.ndarray:
    """Per episode, steps from the switch until the ``window``-step mean reward stays at or above
    ``fraction`` of ``target_rate`` (the oracle's after-switch rate) to the episode's end; NaN when it
    never does, when the episode has no switch, or fewer than ``window`` steps after it."""
    rewards = np.asarray(rewards, dtype=np.float64)
    threshold = recover_threshold(float(target_rate), fraction)
    out = np.full(rewards.shape[1], math.nan)
    if not math.isfinite(threshold):
        return out
    for e in range(rewards.shape[1]):
        s, n = int(switch_steps[e]), int(lengths[e])
        if s <= 0 or n - s < window:
            continue
        seg = rewards[s:n, e]
        sums = np.convolve(seg, np.ones(window), mode="valid") / window  # means of seg[j:j+window]
        found = first_staying_offset(list(range(sums.size)), sums.tolist(), threshold)
        if found is not None:
            out[e] = found
    return out


@dataclass(frozen=True)
class AdaptationSummary:
    """One agent's adaptation figures on a goal-switching task (NaN where undefined)."""

    agent: str
    episodes_with_switch: int
    reward_rate_before: float
    reward_rate_after: float
    after_over_before: float
    adaptation_ratio: float
    adaptation_ratio_low: float
    adaptation_ratio_high: float
    time_to_adapt_median: float
    adapted_fraction: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN stays NaN here; the report's JSON writer turns it into null)."""
        return asdict(self)


def summarise_adaptation(agent: str, rates: SwitchRates, adapt_steps: np.ndarray,
                         oracle_rates: SwitchRates | None, confidence: float = CONFIDENCE,
                         seed: int = 0) -> AdaptationSummary:
    """Summary of one agent: mean rates over the episodes that have an after-switch part, the
    paired adaptation ratio against the oracle's episodes, and time to adapt (median over the
    episodes that adapt; ``adapted_fraction`` counts those that do)."""
    keep = np.isfinite(rates.after) & np.isfinite(rates.before)
    if oracle_rates is not None:
        keep &= np.isfinite(oracle_rates.after)
    before = float(np.mean(rates.before[keep])) if keep.any() else math.nan
    after = float(np.mean(rates.after[keep])) if keep.any() else math.nan
    ratio = bootstrap_ratio(rates.after[keep], oracle_rates.after[keep], confidence, seed=seed) \
        if oracle_rates is not None and keep.any() else None
    adapted = np.isfinite(adapt_steps[keep])
    return AdaptationSummary(
        agent=agent, episodes_with_switch=int(keep.sum()), reward_rate_before=before, reward_rate_after=after,
        after_over_before=after / before if before and math.isfinite(before) and before > 0 else math.nan,
        adaptation_ratio=ratio.estimate if ratio else math.nan,
        adaptation_ratio_low=ratio.low if ratio else math.nan,
        adaptation_ratio_high=ratio.high if ratio else math.nan,
        time_to_adapt_median=float(np.median(adapt_steps[keep][adapted])) if adapted.any() else math.nan,
        adapted_fraction=float(adapted.mean()) if keep.any() else math.nan,
    )


def after_switch_difference(mine: SwitchRates, theirs: SwitchRates, confidence: float = CONFIDENCE,
                            seed: int = 0) -> tuple[float, float, float]:
    """Paired mean difference of the after-switch reward rate (e.g. plastic minus frozen twin) over the
    episodes where both are defined: ``(estimate, low, high)``."""
    keep = np.isfinite(mine.after) & np.isfinite(theirs.after)
    iv = bootstrap_mean(mine.after[keep] - theirs.after[keep], confidence, seed=seed)
    return iv.estimate, iv.low, iv.high
