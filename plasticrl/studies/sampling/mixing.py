"""Mixing metrics: classify sampled visible states and count how often chains change class.

A sample's class is that of the nearest class prototype (the mean binarised image of each class
in the training data, Euclidean distance): simple, deterministic and enough to tell digit
modes apart. Chains are ``[samples, chains, n_v]``; switches are counted between consecutive
samples of the same chain and reported per 1000 samples.
"""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError


def class_prototypes(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes [K], prototypes [K, n_v])``: the sorted class labels and each class's mean image."""
    if x.dim() != 2 or labels.shape != (len(x),):
        raise PlasticRLError(f"x {list(x.shape)} and labels {list(labels.shape)} do not match; expected [N, n] and [N]")
    classes = torch.unique(labels)
    return classes, torch.stack([x[labels == c].mean(0) for c in classes])


def classify(v: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Index of the nearest prototype for every state ``v [..., n_v]`` (ties: lowest index)."""
    d = ((v[..., None, :] - prototypes) ** 2).sum(-1)
    return d.argmin(-1)


def switches_per_1000(labels: torch.Tensor) -> torch.Tensor:
    """Class changes between consecutive samples per 1000 samples, one value per chain (``labels [T, C]``)."""
    if labels.dim() != 2 or labels.shape[0] < 2:
        raise PlasticRLError(f"labels have shape {list(labels.shape)}; expected [samples >= 2, chains]")
    changes = (labels[1:] != labels[:-1]).to(torch.float64).sum(0)
    return 1000.0 * changes / (labels.shape[0] - 1)


def class_proportions(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Fraction of all samples in each of ``count`` classes."""
    counts = torch.bincount(labels.flatten(), minlength=count).to(torch.float64)
    return counts / counts.sum()


def categorical_kl(q: torch.Tensor, p: torch.Tensor, floor: float = 1e-4) -> float:
    """``KL(q || p)`` between class proportions, with ``p`` floored so an unseen class stays finite."""
    p = p.clamp_min(floor)
    p = p / p.sum()
    seen = q > 0
    return float((q[seen] * torch.log(q[seen] / p[seen])).sum())


def distance_to_data(v: torch.Tensor, data: torch.Tensor, chunk: int = 4096) -> float:
    """Mean Hamming distance (pixels) from each sampled state ``v [..., n_v]`` to its nearest data row.

    A sample quality check: a sampler can switch classes often by producing states that resemble
    no digit at all, which the nearest-prototype labels alone would not show.
    """
    flat = v.reshape(-1, v.shape[-1])
    best = [torch.cdist(flat[i:i + chunk], data, p=1).min(1).values for i in range(0, len(flat), chunk)]
    return float(torch.cat(best).mean())
