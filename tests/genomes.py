"""Genome batches and observation normalisers for the tests that compare two paths of one computation (two
kernels of one policy, sharded and unsharded rollouts; imported by those tests)."""
from __future__ import annotations

import torch


def perturbed_genome(policy, population: int, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``population`` rows of the policy's initial genome plus seeded Gaussian noise of scale ``noise``:
    members that differ, so a kernel that mixed up rows would show."""
    g = torch.Generator().manual_seed(seed)
    flat = policy.initial_genome(population)
    return flat + noise * torch.randn(flat.shape, generator=g, dtype=flat.dtype)


def seeded_normalizer(obs_dim: int, clip: float = 2.0):
    """An observation normaliser with seeded, non-trivial statistics (means and stds differ per entry), so a
    rollout that skipped or misapplied normalisation would show."""
    from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer

    g = torch.Generator().manual_seed(4)
    norm = ObsNormalizer(obs_dim, clip=clip)
    total = torch.randn(obs_dim, generator=g, dtype=torch.float64)
    norm.update(ObsBatchMoments(10.0, total, total * total / 10 + 2.0))
    return norm
