"""Encoders: continuous observations -> input currents for the first spiking population."""
from __future__ import annotations

import torch


def direct_encode(obs: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Direct current injection, one input neuron per observation dimension.

    ``obs [N, obs_dim]``, ``gain``/``bias`` broadcastable to it (per member, per input).
    """
    return gain * obs + bias


def gaussian_centres(low: float, high: float, count: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Evenly spaced receptive-field centres covering ``[low, high]``."""
    return torch.linspace(low, high, count, device=device, dtype=dtype)


def population_encode(
    obs: torch.Tensor, centres: torch.Tensor, sigma: float | torch.Tensor, gain: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Population coding with Gaussian receptive fields.

    Each observation dimension drives ``len(centres)`` neurons with current
    ``gain * exp(-(x - c)^2 / (2 sigma^2))``. Returns ``[N, obs_dim * n_centres]`` with the
    centres of one observation dimension contiguous.
    """
    diff = (obs.unsqueeze(-1) - centres) / sigma
    current = torch.exp(-0.5 * diff * diff).flatten(-2)
    return gain * current
