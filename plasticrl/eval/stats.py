"""Confidence intervals for evaluation results: percentile bootstrap through ``scipy.stats``.

The percentile method is used rather than BCa because evaluation samples are small (5-20
episodes) and often tied (a robot that falls at the same step), where BCa's acceleration
estimate is unstable or undefined; the percentile interval is also easy to check by hand.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from plasticrl.eval.settings import CONFIDENCE

__all__ = ["CONFIDENCE", "Interval", "bootstrap_mean", "bootstrap_mean_difference", "bootstrap_mean_over_conditions",
           "bootstrap_mean_retained", "bootstrap_ratio"]
N_RESAMPLES = 10_000
#: most resampled values (resamples x sample size) held at once: scipy draws every resample in one
#: array by default, 800 MB for 10^4 resamples of 10^4 episodes; evaluations of up to 838 episodes
#: still draw theirs in one batch, so their intervals are unchanged
RESAMPLED_VALUES_AT_ONCE = 1 << 23


def _batch(size: int, n_resamples: int) -> int | None:
    """scipy's ``batch`` (resamples per vectorised call) that keeps memory bounded; ``None``: all at once."""
    batch = max(1, RESAMPLED_VALUES_AT_ONCE // max(size, 1))
    return None if batch >= n_resamples else batch


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (``low`` = ``high`` = estimate for one sample)."""

    estimate: float
    low: float
    high: float


def _as_array(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr


def bootstrap_mean(values: Sequence[float], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                   seed: int = 0) -> Interval:
    """Mean of ``values`` with its percentile-bootstrap interval (seeded, so reports are reproducible)."""
    arr = _as_array(values)
    if arr.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    est = float(arr.mean())
    # One value or identical values: every resample has the same mean; scipy would warn
    # about a degenerate distribution, the interval is the point itself.
    if arr.size == 1 or not np.all(np.isfinite(arr)) or np.ptp(arr) == 0:
        return Interval(est, est, est)
    res = stats.bootstrap((arr,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          batch=_batch(arr.size, n_resamples), method="percentile", vectorized=True,
                          rng=np.random.default_rng(seed))
    return Interval(est, float(res.confidence_interval.low), float(res.confidence_interval.high))


def _ratio_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    den = np.mean(y, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(x, axis=axis) / den


def bootstrap_ratio(numerator: Sequence[float], denominator: Sequence[float], confidence: float = CONFIDENCE,
                    n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """``mean(numerator) / mean(denominator)`` for paired samples, resampling pairs jointly.

    Episodes are paired across conditions (same seeds), so the pair is the resampling unit:
    that keeps the correlation between a condition and nominal in the interval. A denominator
    whose mean is zero or negative gives NaN (undefined, shown as '-'): divided by a negative
    nominal return, a worse condition would read as a retained fraction above 1.
    """
    x, y = _as_array(numerator), _as_array(denominator)
    if x.size != y.size:
        raise ValueError(f"paired samples need equal sizes; got {x.size} and {y.size}")
    if x.size == 0 or not float(y.mean()) > 0.0:
        return Interval(math.nan, math.nan, math.nan)
    est = float(x.mean() / y.mean())
    if x.size == 1 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return Interval(est, est, est)
    res = stats.bootstrap((x, y), _ratio_of_means, paired=True, confidence_level=confidence,
                          n_resamples=n_resamples, batch=_batch(x.size, n_resamples), method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))
    return Interval(est, float(res.confidence_interval.low), float(res.confidence_interval.high))


def bootstrap_mean_retained(conditions: Sequence[Sequence[float]], nominal: Sequence[float],
                            confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                            seed: int = 0) -> Interval:
    """Mean over conditions of ``mean(condition) / mean(nominal)``, with an interval from resampling
    episodes jointly: episode ``e`` of every condition and of nominal share a seed, so an episode
    index is the resampling unit (the figure summarising an agent over a suite). NaN when the
    nominal mean is zero or negative, as for :func:`bootstrap_ratio`."""
    x, y = np.asarray(conditions, dtype=np.float64), _as_array(nominal)
    if x.ndim != 2 or x.shape[1] != y.size:
        raise ValueError(f"conditions must be [C, {y.size}] like nominal; got shape {x.shape}")
    if x.size == 0 or not float(y.mean()) > 0.0:
        return Interval(math.nan, math.nan, math.nan)
    est = float((x.mean(axis=1) / y.mean()).mean())
    if y.size == 1 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or (
            np.ptp(x, axis=1).max() == 0 and np.ptp(y) == 0):
        return Interval(est, est, est)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = idx.astype(np.intp)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (x[:, idx].mean(axis=-1) / y[idx].mean(axis=-1)).mean(axis=0)

    res = stats.bootstrap((np.arange(y.size),), statistic, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return Interval(est, float(res.confidence_interval.low), float(res.confidence_interval.high))


def bootstrap_mean_over_conditions(values: Sequence[Sequence[float]], confidence: float = CONFIDENCE,
                                   n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """Mean of ``values [conditions, episodes]``, with an interval from resampling episodes jointly
    across conditions (episode ``e`` has the same seed in every condition, so an episode index is
    the resampling unit). The mean over conditions is linear, so the per-episode means are resampled."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be [conditions, episodes]; got shape {x.shape}")
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    return bootstrap_mean(x.mean(axis=0), confidence, n_resamples, seed)


def bootstrap_mean_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                              confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                              seed: int = 0) -> Interval:
    """Mean over conditions of the paired mean difference ``mean_e(a[c, e] - b[c, e])``, with an
    interval from resampling episodes jointly across conditions (the same episode seeds for both
    agents). One condition gives the plain paired difference of means."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"a and b must be [conditions, episodes] of one shape; got {x.shape} and {y.shape}")
    return bootstrap_mean_over_conditions(x - y, confidence, n_resamples, seed)
