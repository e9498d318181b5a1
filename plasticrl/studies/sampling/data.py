"""Binarised data for the sampling study: sklearn's 8x8 digits (no download) and tiny built patterns.

Digits are thresholded at ``threshold`` (of 16 grey levels) into 64 binary pixels. A subset of
classes can be chosen, with ``proportions`` to make the set imbalanced: the largest class keeps
all its images and the others are subsampled (fixed seed) so the counts follow the proportions.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from plasticrl.errors import PlasticRLError


def binarized_digits(classes: Sequence[int], proportions: Sequence[float] | None = None, threshold: float = 8.0,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [N, 64] in {0, 1} float64, labels [N])`` for the digit ``classes``.

    ``proportions`` (one per class, summing to 1): subsample so the class counts follow them.
    """
    from sklearn.datasets import (
        load_digits,  # imported here: only this loader needs scikit-learn
    )

    if not classes or any(c not in range(10) for c in classes) or len(set(classes)) != len(classes):
        raise PlasticRLError(f"digit classes {list(classes)!r} are invalid; valid: distinct integers 0-9")
    if not 0 < threshold < 16:
        raise PlasticRLError(f"threshold={threshold!r} is invalid; valid: 0 < threshold < 16")
    digits = load_digits()
    x_all = torch.as_tensor(digits.data >= threshold, dtype=torch.float64)
    y_all = torch.as_tensor(digits.target)
    pools = [torch.nonzero(y_all == c).flatten() for c in classes]
    if proportions is not None:
        if len(proportions) != len(classes) or any(p <= 0 for p in proportions) or abs(sum(proportions) - 1) > 1e-6:
            raise PlasticRLError(
                f"proportions {list(proportions)!r} are invalid; valid: {len(classes)} positive numbers summing to 1")
        # the largest affordable total: every class must have enough images for its share
        total = min(len(pool) / p for pool, p in zip(pools, proportions))
        g = torch.Generator().manual_seed(seed)
        pools = [pool[torch.randperm(len(pool), generator=g)[: max(1, round(total * p))]]
                 for pool, p in zip(pools, proportions)]
    index = torch.cat(pools)
    return x_all[index], y_all[index]


def bars_and_stripes(side: int = 3) -> torch.Tensor:
    """All ``side x side`` bars-and-stripes images (MacKay), flattened row-major, without duplicates.

    A classic tiny multimodal data set for exactly enumerable tests (``side = 3``: 14 images, 9 pixels).
    """
    if not 2 <= side <= 4:
        raise PlasticRLError(f"side={side!r} is invalid; valid: 2, 3 or 4")
    rows = [[(k >> i) & 1 for i in range(side)] for k in range(2 ** side)]
    images = set()
    for r in rows:
        images.add(tuple(bit for bit in r for _ in range(side)))  # horizontal stripes: row i all = r[i]
        images.add(tuple(r * side))  # vertical bars: column j all = r[j]
    return torch.tensor(sorted(images), dtype=torch.float64)
