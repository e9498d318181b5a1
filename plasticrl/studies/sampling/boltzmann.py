"""Boltzmann distributions over binary states and the distances used to check samplers.

``p(z) ∝ exp(z^T W z / 2 + b^T z)`` for ``z`` in ``{0, 1}^n``, ``W`` symmetric with a zero
diagonal. States are indexed by their binary code, first neuron = most significant bit, so
``all_states(n)[k]`` is the state of code ``k``. Exact enumeration: meant for small ``n``.
"""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError

MAX_ENUMERATED_NEURONS = 16


def all_states(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every binary state of ``n`` neurons, ``[2^n, n]``, in code order."""
    if not 1 <= n <= MAX_ENUMERATED_NEURONS:
        raise PlasticRLError(f"cannot enumerate n={n} neurons; valid: 1 <= n <= {MAX_ENUMERATED_NEURONS}")
    codes = torch.arange(2 ** n)
    bits = 2 ** torch.arange(n - 1, -1, -1)
    return ((codes[:, None] & bits) > 0).to(dtype)


def state_codes(z: torch.Tensor) -> torch.Tensor:
    """Binary states ``[..., n]`` -> integer codes ``[...]`` (first neuron = most significant bit)."""
    n = z.shape[-1]
    bits = 2 ** torch.arange(n - 1, -1, -1, device=z.device)
    return (z.long() * bits).sum(-1)


def boltzmann_distribution(weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Exact ``p(z)`` over all ``2^n`` states (code order) for symmetric ``weights [n, n]`` and ``bias [n]``."""
    n = bias.shape[-1]
    if weights.shape != (n, n):
        raise PlasticRLError(f"weights have shape {list(weights.shape)}; expected [{n}, {n}] to match the bias")
    if not torch.allclose(weights, weights.T) or bool(weights.diagonal().abs().gt(0).any()):
        raise PlasticRLError("Boltzmann weights must be symmetric with a zero diagonal")
    z = all_states(n, weights.dtype).to(weights.device)
    energy = 0.5 * ((z @ weights) * z).sum(-1) + z @ bias  # log-probability up to a constant
    return torch.softmax(energy, dim=0)


def empirical_distribution(z: torch.Tensor) -> torch.Tensor:
    """Relative frequency of each state (code order) among samples ``[..., n]``."""
    n = z.shape[-1]
    counts = torch.bincount(state_codes(z).flatten(), minlength=2 ** n).to(torch.float64)
    return counts / counts.sum()


def kl_divergence(q: torch.Tensor, p: torch.Tensor) -> float:
    """``KL(q || p) = sum q log(q / p)``, with ``0 log 0 = 0`` (q: sampled, p: target)."""
    seen = q > 0
    return float((q[seen] * torch.log(q[seen] / p[seen])).sum())
