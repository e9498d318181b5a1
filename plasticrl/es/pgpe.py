"""PGPE (Sehnke et al. 2010) with the ClipUp optimiser (Toklu et al. 2020).

A separable Gaussian ``N(center, diag(stdev^2))`` with per-dimension adaptive stdev.
Symmetric sampling: ``samples[i] = center + z_i`` and ``samples[i + P/2] = center - z_i``
with ``z_i ~ N(0, diag(stdev^2))``. With centred-rank utilities ``u+``/``u-`` of a pair and
``n = P/2`` directions (the convention of pgpelib and EvoTorch)::

    grad_center = 1/n * sum_i (u+_i - u-_i)/2 * z_i
    grad_stdev  = 1/n * sum_i ((u+_i + u-_i)/2 - b) * (z_i^2 - stdev^2) / stdev,   b = mean(u)

The centre follows ``grad_center`` through ClipUp; the stdev takes a plain gradient step
``stdev + stdev_learning_rate * grad_stdev``, limited to a relative change of
``stdev_max_change`` per generation and clamped to ``[stdev_min, stdev_max]``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from plasticrl.errors import PlasticRLError
from plasticrl.seeding import Stream, derive_generator
from .base import ESAlgorithm, fitness_info
from .optimizers import clipup_step
from .params import PGPEParams, parse_params
from .shaping import centered_ranks

__all__ = ["PGPE", "PGPEState"]


@dataclass(frozen=True)
class PGPEState:
    """Everything that changes during a PGPE run: full ``[D]`` centre, ``[d]`` stdev and ClipUp velocity."""

    center: Tensor
    stdev: Tensor
    velocity: Tensor
    seed: int
    generation: int


class PGPE(ESAlgorithm[PGPEState]):
    """PGPE with symmetric sampling, centred ranks, adaptive per-dim stdev and ClipUp."""

    name = "pgpe"
    state_type = PGPEState
    params_type = PGPEParams

    def __init__(
        self, dim: int, config: PGPEParams | Mapping[str, Any] | None = None, search: Tensor | Any | None = None
    ) -> None:
        super().__init__(dim, search)
        self.config: PGPEParams = parse_params(self.params_type, config)
        if self.config.stdev_init is not None:
            t = torch.as_tensor(self.config.stdev_init)
            if t.ndim == 1 and t.shape[0] != self.space.size:
                raise PlasticRLError(
                    f"stdev_init vector has length {t.shape[0]}; it must cover the {self.space.size} searched dims"
                )

    @property
    def population_size(self) -> int:
        return self.config.population_size

    def init(self, center: Tensor, seed: int) -> PGPEState:
        center = self._check_init(center, seed)
        cfg, d = self.config, self.space.size
        if cfg.radius_init is not None:
            stdev = torch.full((d,), cfg.radius_init / math.sqrt(d), dtype=center.dtype, device=center.device)
        else:
            init = torch.as_tensor(cfg.stdev_init_or_default, dtype=center.dtype, device=center.device)
            stdev = init.expand(d).clone()
        stdev = stdev.clamp(cfg.stdev_min, cfg.stdev_max)
        velocity = torch.zeros(d, dtype=center.dtype, device=center.device)
        return PGPEState(center=center, stdev=stdev, velocity=velocity, seed=seed, generation=0)

    def ask(self, state: PGPEState) -> tuple[Tensor, PGPEState]:
        n = self.population_size // 2
        gen = derive_generator(state.seed, state.generation, state.center.device, Stream.ES_SAMPLING)
        z = torch.randn(n, self.space.size, generator=gen, device=state.center.device, dtype=state.center.dtype)
        z = z * state.stdev
        theta = self.space.gather(state.center).unsqueeze(0)
        searched = torch.cat([theta + z, theta - z], 0)
        return self.space.expand(state.center, searched), state

    def tell(self, state: PGPEState, samples: Tensor, fitness: Tensor) -> tuple[PGPEState, dict[str, Any]]:
        samples, fitness = self._check_tell(state.center, samples, fitness)
        cfg = self.config
        utilities, invalid = centered_ranks(fitness)
        info: dict[str, Any] = {"generation": state.generation}
        info.update(fitness_info(fitness, invalid))
        # "sigma" under the same key as the other ES, for uniform logging; min/max show the spread.
        spread = state.stdev
        info.update(sigma=float(spread.mean()), sigma_min=float(spread.min()), sigma_max=float(spread.max()))

        if info["num_invalid"] == self.population_size:
            # Nothing to learn from: keep the distribution and velocity, move the noise on.
            info.update(grad_norm=0.0, step_norm=0.0)
            return dataclasses.replace(state, generation=state.generation + 1), info

        theta = self.space.gather(state.center)
        grad_center, grad_stdev = self.gradients(
            theta, state.stdev, self.space.gather(samples), utilities.to(theta.dtype)
        )
        new_theta, velocity = clipup_step(
            theta, grad_center, state.velocity, cfg.center_learning_rate, cfg.momentum, cfg.max_speed_or_default
        )
        stdev = state.stdev + cfg.stdev_learning_rate * grad_stdev
        if cfg.stdev_max_change is not None:
            # Bound the relative change so one noisy generation cannot collapse or blow up the spread.
            lower = state.stdev * (1.0 - cfg.stdev_max_change)
            upper = state.stdev * (1.0 + cfg.stdev_max_change)
            stdev = torch.minimum(torch.maximum(stdev, lower), upper)
        stdev = stdev.clamp(cfg.stdev_min, cfg.stdev_max)
        info.update(
            grad_norm=float(torch.linalg.vector_norm(grad_center)),
            step_norm=float(torch.linalg.vector_norm(new_theta - theta)),
        )
        new_state = PGPEState(
            center=self.space.scatter(state.center, new_theta),
            stdev=stdev,
            velocity=velocity,
            seed=state.seed,
            generation=state.generation + 1,
        )
        return new_state, info

    @staticmethod
    def gradients(theta: Tensor, stdev: Tensor, samples: Tensor, utilities: Tensor) -> tuple[Tensor, Tensor]:
        """``(grad_center, grad_stdev)`` from symmetric ``[P, d]`` samples and their utilities ``[P]``."""
        n = samples.shape[0] // 2
        z = samples[:n] - theta.unsqueeze(0)
        u_plus, u_minus = utilities[:n], utilities[n:]
        grad_center = ((u_plus - u_minus) / 2.0) @ z / n
        baseline = utilities.mean()
        grad_stdev = ((u_plus + u_minus) / 2.0 - baseline) @ ((z * z - stdev * stdev) / stdev) / n
        return grad_center, grad_stdev
