"""Observation normalisation from running statistics of training rollouts.

Statistics are merged once per generation (Chan et al.'s parallel update) and frozen while
a generation runs, so every member of a generation sees the same normalisation and a
resumed run normalises exactly as the uninterrupted one. Evaluation and deployed agents use
the frozen statistics saved with the agent.
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
    def __init__(self, obs_dim: int, clip: float = 5.0, eps: float = 1e-8):
        self.obs_dim = obs_dim
        self.clip = float(clip)
        self.eps = eps
        self.count = 0.0
        self.mean = torch.zeros(obs_dim, dtype=torch.float64)
        self.m2 = torch.zeros(obs_dim, dtype=torch.float64)

    @property
    def var(self) -> torch.Tensor:
        return self.m2 / self.count if self.count > 0 else torch.ones(self.obs_dim, dtype=torch.float64)

    @property
    def std(self) -> torch.Tensor:
        """``sqrt(var + eps)``: what observations are divided by."""
        return torch.sqrt(self.var + self.eps)

    def update(self, batch: ObsBatchMoments) -> None:
        """Merge a batch's moments into the running ones."""
        if batch.count <= 0:
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
        """``clip((obs - mean) / sqrt(var + eps))``; identity until statistics exist."""
        if self.count <= 0:
            return obs
        mean = self.mean.to(device=obs.device, dtype=obs.dtype)
        std = self.std.to(device=obs.device, dtype=obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "clip": self.clip, "eps": self.eps, "count": self.count,
                "mean": self.mean.clone(), "m2": self.m2.clone()}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> "ObsNormalizer":
        norm = cls(int(d["obs_dim"]), float(d["clip"]), float(d["eps"]))
        norm.count = float(d["count"])
        norm.mean = torch.as_tensor(d["mean"], dtype=torch.float64).clone()
        norm.m2 = torch.as_tensor(d["m2"], dtype=torch.float64).clone()
        return norm
