"""Observation normalisation from running statistics of training rollouts.

Statistics are merged once per generation (Chan et al.'s parallel update) and frozen while
a generation runs, so every member of a generation sees the same normalisation and a
resumed run normalises exactly as the uninterrupted one. Evaluation and deployed agents use
the frozen statistics saved with the agent.

``std_floor`` bounds the divisor from below. Without it an entry that never varied in training
(Ant-v5's contact forces on bodies that never touch anything) is divided by ``sqrt(eps)`` = 1e-4,
so the slightest sensor noise on it reaches the policy as a saturated input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class ObsBatchMoments:
    """Raw sums over a batch of observations (float64), cheap to accumulate per step."""

    count: float
    total: torch.Tensor
    total_sq: torch.Tensor


class ObsNormalizer:
    def __init__(self, obs_dim: int, clip: float = 5.0, eps: float = 1e-8, std_floor: float = 0.0):
        if not std_floor >= 0:
            raise ValueError(f"std_floor must be >= 0, got {std_floor!r}")
        self.obs_dim = obs_dim
        self.clip = float(clip)
        self.eps = eps
        self.std_floor = float(std_floor)
        self.count = 0.0
        self.mean = torch.zeros(obs_dim, dtype=torch.float64)
        self.m2 = torch.zeros(obs_dim, dtype=torch.float64)

    @property
    def var(self) -> torch.Tensor:
        return self.m2 / self.count if self.count > 0 else torch.ones(self.obs_dim, dtype=torch.float64)

    @property
    def std(self) -> torch.Tensor:
        """``max(sqrt(var + eps), std_floor)``: what observations are divided by."""
        std = torch.sqrt(self.var + self.eps)
        return std.clamp_min(self.std_floor) if self.std_floor > 0 else std

    def update(self, batch: ObsBatchMoments) -> None:
        """Merge a batch's moments into the running ones. A batch with a non-finite sum is not
        merged (it would make every later statistic NaN); rollouts leave such rows out already."""
        if batch.count <= 0:
            return
        if not (bool(torch.isfinite(batch.total).all()) and bool(torch.isfinite(batch.total_sq).all())):
            return
        b_mean = batch.total / batch.count
        b_m2 = (batch.total_sq - batch.count * b_mean * b_mean).clamp_min(0.0)
        n = self.count + batch.count
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (batch.count / n)
        self.m2 = self.m2 + b_m2 + delta * delta * (self.count * batch.count / n)
        self.count = n

    def affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mean, std)`` as float64 arrays for normalising many batches with the same frozen
        statistics (``None`` while there are none: identity); same arithmetic as :meth:`normalise`."""
        if self.count <= 0:
            return None
        return self.mean.numpy().copy(), self.std.numpy().copy()

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        """``clip((obs - mean) / std)``; identity until statistics exist."""
        if self.count <= 0:
            return obs
        mean = self.mean.to(device=obs.device, dtype=obs.dtype)
        std = self.std.to(device=obs.device, dtype=obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "clip": self.clip, "eps": self.eps, "std_floor": self.std_floor,
                "count": self.count, "mean": self.mean.clone(), "m2": self.m2.clone()}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> "ObsNormalizer":
        # Agent files written before the floor existed carry none: 0 keeps their behaviour.
        norm = cls(int(d["obs_dim"]), float(d["clip"]), float(d["eps"]), float(d.get("std_floor", 0.0)))
        norm.count = float(d["count"])
        norm.mean = torch.as_tensor(d["mean"], dtype=torch.float64).clone()
        norm.m2 = torch.as_tensor(d["m2"], dtype=torch.float64).clone()
        return norm
