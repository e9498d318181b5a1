"""Bounds on fast weights, so within-episode plasticity cannot run away."""
from __future__ import annotations

import torch

from plasticrl.errors import check_choice

BOUND_KINDS = ("none", "clip", "normalise")


def clip_weights(weights: torch.Tensor, limit: float) -> torch.Tensor:
    """Clip each weight into ``[-limit, limit]``."""
    return weights.clamp(-limit, limit)


def normalise_by_max(weights: torch.Tensor, limit: float = 1.0, eps: float = 1e-12) -> torch.Tensor:
    """Rescale each member's matrix so its largest magnitude equals ``limit``.

    HebbianMetaLearning divides by the max magnitude after every update; the direction of
    the matrix survives, its scale is pinned. ``weights [N, out, in]``.
    """
    peak = weights.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(eps)
    return weights * (limit / peak)


def bound_weights(weights: torch.Tensor, kind: str, limit: float) -> torch.Tensor:
    """Apply the configured bound (``none``, ``clip`` or ``normalise``)."""
    if kind == "clip":
        return clip_weights(weights, limit)
    if kind == "normalise":
        return normalise_by_max(weights, limit)
    if kind == "none":
        return weights
    check_choice("weight bound", kind, BOUND_KINDS)
    raise AssertionError("unreachable")
