"""Fitness shaping: centred ranks with non-finite members ranked worst.

Rank-based shaping makes the ES update invariant to monotone transformations of
the return and bounds the influence of outliers (Salimans et al. 2017). It is
also where invalid members are neutralised: a NaN/inf fitness becomes the worst
rank, a finite utility, so it can never poison the gradient estimate.
"""
from __future__ import annotations

import torch
from torch import Tensor

from plasticrl.errors import PlasticRLError

__all__ = ["centered_ranks", "invalid_mask"]


def invalid_mask(fitness: Tensor) -> Tensor:
    """Boolean ``[P]`` mask of members whose fitness is NaN or +/-inf."""
    return ~torch.isfinite(fitness)


def centered_ranks(fitness: Tensor) -> tuple[Tensor, Tensor]:
    """Map fitness ``[P]`` to centred-rank utilities in ``[-0.5, 0.5]`` (higher fitness, higher utility).

    Ranks run from 0 (worst) to P-1 (best) and are mapped by ``rank / (P - 1) - 0.5``.
    Tied members share the average of their ranks, so the utility does not depend on the
    order in which members happen to be listed (a tied antithetic pair then cancels
    exactly). Non-finite members (NaN, +inf and -inf alike: a rollout that returns +inf
    is a bug, not a success) are all tied at the bottom. The utilities therefore always
    sum to zero. A population of one gets utility 0.

    Returns:
        ``(utilities, invalid)``: float64 utilities ``[P]`` on the fitness's device and the
        boolean invalid mask ``[P]``.
    """
    if fitness.ndim != 1:
        raise PlasticRLError(f"fitness must be a 1-D tensor [P]; got shape {tuple(fitness.shape)}")
    # Rank in float64 so integer or low-precision fitness keeps its ordering and ties.
    values = fitness.to(torch.float64)
    invalid = ~torch.isfinite(values)
    n = values.shape[0]
    if n < 2:
        return torch.zeros_like(values), invalid
    # -inf sorts below every finite value and all invalid members compare equal,
    # which is exactly "tied at worst".
    keyed = torch.where(invalid, torch.full_like(values, float("-inf")), values)
    sorted_vals, order = torch.sort(keyed, stable=True)
    _, group, counts = torch.unique_consecutive(sorted_vals, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    # Average rank of each tie group: first position plus half the group's extent.
    avg_rank = starts.to(torch.float64) + (counts.to(torch.float64) - 1.0) / 2.0
    ranks = torch.empty_like(values)
    ranks[order] = avg_rank[group]
    return ranks / (n - 1) - 0.5, invalid
