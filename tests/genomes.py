"""Genome batches for the tests that compare two kernels of one policy (imported by those tests)."""
from __future__ import annotations

import torch


def perturbed_genome(policy, population: int, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``population`` rows of the policy's initial genome plus seeded Gaussian noise of scale ``noise``:
    members that differ, so a kernel that mixed up rows would show."""
    g = torch.Generator().manual_seed(seed)
    flat = policy.initial_genome(population)
    return flat + noise * torch.randn(flat.shape, generator=g, dtype=flat.dtype)
