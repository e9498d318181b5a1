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
from typing import Any, Mapping, Sequence, Union

import torch
from torch import Tensor

from plasticrl.errors import PlasticRLError
from plasticrl.seeding import derive_generator
from .base import ESAlgorithm, build_config, check_population, check_positive, fitness_info
from .optimizers import clipup_step
from .shaping import centered_ranks

__all__ = ["PGPE", "PGPEConfig", "PGPEState"]

StdevLike = Union[float, Sequence[float], Tensor]


@dataclass(frozen=True)
class PGPEConfig:
    """Hyper-parameters of PGPE + ClipUp.

    Give the initial spread either as ``stdev_init`` (a number, or a ``[d]`` vector over the
    searched dims) or as ``radius_init`` (the Euclidean norm of the initial stdev vector,
    ``stdev = radius_init / sqrt(d)``, ClipUp's recommended parametrisation); not both.
    ``max_speed`` defaults to twice ``center_learning_rate`` (the ClipUp paper's rule of thumb).
    ``stdev_min`` defaults to a tiny positive value because the stdev gradient divides by stdev.
    """

    population_size: int = 64
    center_learning_rate: float = 0.075
    max_speed: float | None = None
    momentum: float = 0.9
    stdev_init: StdevLike | None = None
    radius_init: float | None = None
    stdev_learning_rate: float = 0.1
    stdev_max_change: float | None = 0.2
    stdev_min: float = 1e-8
    stdev_max: float = math.inf

    def __post_init__(self) -> None:
        check_population("population_size", self.population_size, even=True)
        check_positive("center_learning_rate", self.center_learning_rate)
        if self.max_speed is None:
            object.__setattr__(self, "max_speed", 2.0 * self.center_learning_rate)
        check_positive("max_speed", self.max_speed)  # type: ignore[arg-type]
        if not (isinstance(self.momentum, (int, float)) and 0.0 <= self.momentum < 1.0):
            raise PlasticRLError(f"momentum must be in [0, 1); got {self.momentum!r}")
        if self.stdev_init is not None and self.radius_init is not None:
            raise PlasticRLError(
                f"give stdev_init or radius_init, not both; got stdev_init={self.stdev_init!r}, "
                f"radius_init={self.radius_init!r}"
            )
        if self.stdev_init is None and self.radius_init is None:
            object.__setattr__(self, "stdev_init", 0.1)
        if self.radius_init is not None:
            check_positive("radius_init", self.radius_init)
        if self.stdev_init is not None:
            t = torch.as_tensor(self.stdev_init, dtype=torch.float64)
            if t.ndim > 1 or not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
                raise PlasticRLError(
                    f"stdev_init must be a number or 1-D vector of finite values > 0; got {self.stdev_init!r}"
                )
        check_positive("stdev_learning_rate", self.stdev_learning_rate, allow_zero=True)
        if self.stdev_max_change is not None:
            check_positive("stdev_max_change", self.stdev_max_change)
        check_positive("stdev_min", self.stdev_min)
        if not (isinstance(self.stdev_max, (int, float)) and self.stdev_max >= self.stdev_min):
            raise PlasticRLError(f"stdev_max must be >= stdev_min={self.stdev_min}; got {self.stdev_max!r}")


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

    def __init__(
        self, dim: int, config: PGPEConfig | Mapping[str, Any] | None = None, search: Tensor | Any | None = None
    ) -> None:
        super().__init__(dim, search)
        self.config: PGPEConfig = build_config(PGPEConfig, config, self.name)
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
            init = torch.as_tensor(cfg.stdev_init, dtype=center.dtype, device=center.device)
            stdev = init.expand(d).clone()
        stdev = stdev.clamp(cfg.stdev_min, cfg.stdev_max)
        velocity = torch.zeros(d, dtype=center.dtype, device=center.device)
        return PGPEState(center=center, stdev=stdev, velocity=velocity, seed=seed, generation=0)

    def ask(self, state: PGPEState) -> tuple[Tensor, PGPEState]:
        n = self.population_size // 2
        gen = derive_generator(state.seed, state.generation, state.center.device)
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
        assert cfg.max_speed is not None  # filled in by PGPEConfig.__post_init__
        new_theta, velocity = clipup_step(
            theta, grad_center, state.velocity, cfg.center_learning_rate, cfg.momentum, cfg.max_speed
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
