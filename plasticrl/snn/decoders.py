"""Decoders: output-layer activity -> continuous actions inside the action space's bounds."""
from __future__ import annotations

import torch


def membrane_decode(v: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Squash output membrane potentials into ``[low, high]`` with tanh."""
    mid = 0.5 * (high + low)
    half = 0.5 * (high - low)
    return mid + half * torch.tanh(v)


def rate_decode(spike_count: torch.Tensor, substeps: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map the output neurons' firing rate over the control step (0..1) linearly onto ``[low, high]``."""
    rate = spike_count / float(substeps)
    return low + (high - low) * rate
