"""Negative samples for contrastive learning.

- Supervised: the same input with a *wrong* label in the label context.
- Self-supervised: inputs that look like data locally but not globally. ``mix`` blends two
  different images through a smooth random mask (Hinton's forward-forward negatives);
  ``corrupt`` keeps an image but shuffles a random subset of its pixels among each other.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from plasticrl.errors import check_choice

NEGATIVE_KINDS = ("wrong_label", "mix", "corrupt")


def wrong_labels(labels: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from each true one: ``(y + U{1..C-1}) mod C``."""
    shift = torch.randint(1, n_classes, labels.shape, generator=generator)
    return (labels + shift) % n_classes


def _smooth_mask(n: int, side: int, generator: torch.Generator, blur_passes: int = 2) -> torch.Tensor:
    """Binary masks ``[n, side*side]`` with blob-shaped regions (blurred noise thresholded at 0.5)."""
    noise = torch.rand(n, 1, side, side, generator=generator)
    kernel = torch.full((1, 1, 3, 3), 1.0 / 9.0)
    for _ in range(blur_passes):
        noise = F.conv2d(F.pad(noise, (1, 1, 1, 1), mode="replicate"), kernel)
    flat = noise.flatten(1)
    # threshold at each mask's median so every mask takes about half of each image
    return (flat > flat.median(dim=1, keepdim=True).values).to(torch.float32)


def mix_inputs(x: torch.Tensor, generator: torch.Generator, side: int = 8) -> torch.Tensor:
    """Blend each image with another one of the batch through a smooth random mask."""
    n = x.shape[0]
    # a derangement-like partner: shift a random permutation so no image pairs with itself
    perm = torch.randperm(n, generator=generator)
    partner = torch.empty_like(perm)
    partner[perm] = perm.roll(1)
    mask = _smooth_mask(n, side, generator)
    return mask * x + (1.0 - mask) * x[partner]


def corrupt_inputs(x: torch.Tensor, generator: torch.Generator, fraction: float = 0.5) -> torch.Tensor:
    """Shuffle a random ``fraction`` of each image's pixels among themselves (vectorised).

    Sorting by ``position`` (chosen pixels first) and by ``random key`` (chosen pixels first,
    in random order) lists the same chosen set twice; pairing the two lists is a random
    bijection on it, while the unchosen pixels (sorted identically in both) map to themselves.
    """
    n, d = x.shape
    chosen = torch.rand(n, d, generator=generator) < fraction
    position = torch.arange(d, dtype=x.dtype).expand(n, d)
    ascending = torch.argsort(torch.where(chosen, position, position + d), dim=1)
    shuffled = torch.argsort(torch.where(chosen, torch.rand(n, d, generator=generator), position + 2.0), dim=1)
    return torch.empty_like(x).scatter_(1, ascending, x.gather(1, shuffled))


def make_negatives(
    kind: str,
    x: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_neg, labels_neg)`` for one batch; labels of self-supervised negatives are unchanged."""
    check_choice("negative kind", kind, NEGATIVE_KINDS)
    if kind == "wrong_label":
        return x, wrong_labels(labels, n_classes, generator)
    if kind == "mix":
        return mix_inputs(x, generator), labels
    return corrupt_inputs(x, generator), labels
