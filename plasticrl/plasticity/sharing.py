"""Sharing granularity of rule coefficients.

A coefficient is one number per synapse, per post-neuron, per layer, or one global number
used by every plastic layer. The shapes below broadcast against fast weights ``[out, in]``.
"""
from __future__ import annotations

from plasticrl.errors import check_choice

SHARING_LEVELS = ("synapse", "post", "layer", "global")


def coefficient_shape(level: str, out_features: int, in_features: int) -> tuple[int, int]:
    """Per-member shape of one coefficient at the given sharing level."""
    check_choice("sharing level", level, SHARING_LEVELS)
    if level == "synapse":
        return (out_features, in_features)
    if level == "post":
        return (out_features, 1)
    return (1, 1)
