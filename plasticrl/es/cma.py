"""CMA-ES and separable CMA-ES through the ``cmaes`` library, behind the ask/tell interface.

The library's optimiser is a mutable object; the ES state here holds its *internals*
instead: the dict of its pickling protocol (``__getstate__``), with numpy arrays turned into
float64 CPU tensors and numpy scalars into Python numbers. Every ``ask``/``tell`` rebuilds a
throw-away optimiser from that dict (``__setstate__``), works on it and exports the result,
so the state stays immutable and ``torch.save`` of ``state_dict`` is a full checkpoint.

How resume stays exact: ``cmaes`` drops its RNG when pickled, so the wrapper never relies on
it. Before each ask it reseeds the rebuilt optimiser from ``(seed, generation)``; the
uninterrupted run and a resumed run therefore start every generation from bit-identical
internals and draw identical samples. (A run also passes through the same export/import
at every step, so there is no "in-memory only" path that a resumed run could miss.)

The internals stay float64 whatever the centre's dtype; samples are cast to the centre's
dtype and device. Full CMA-ES holds a d x d covariance, does an eigendecomposition in both
ask and tell, and the library's tell builds a P x d x d temporary (2 GB at P = 256, d = 1000);
measured on one CPU thread: 8 ms/generation at d = 100, 0.7 s at d = 1000 (P = 64). Keep it
to searched subsets of a few hundred dims and use ``sep_cma_es`` (diagonal, O(P d)) beyond.

Non-finite fitness: ``cmaes`` minimises, so it is told ``-fitness``; invalid members get a
loss strictly worse than every valid one. A generation with no valid member is skipped.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from plasticrl.errors import PlasticRLError
from plasticrl.seeding import Stream, derive_seed
from .base import ESAlgorithm, fitness_info
from .params import CMAESParams, SepCMAESParams, parse_params
from .shaping import invalid_mask

__all__ = ["CMAES", "SepCMAES", "CMAESState"]

try:  # optional at import time: only CMA-ES needs it, and its constructor says how to install it.
    import cmaes as _cmaes
except ImportError:  # pragma: no cover - exercised only without the dependency
    _cmaes = None

# cmaes asserts |x| < 1e32 (its _MEAN_MAX); checked up front to raise a readable error.
_ABS_MAX = 1e32


@dataclass(frozen=True)
class CMAESState:
    """Full ``[D]`` centre, the library optimiser's internals (treated as read-only), seed, generation."""

    center: Tensor
    internals: dict[str, Any]
    seed: int
    generation: int


def _export(optimizer: Any) -> dict[str, Any]:
    """Optimiser -> dict of tensors / Python scalars (weights_only-loadable)."""
    out: dict[str, Any] = {}
    for key, value in optimizer.__getstate__().items():
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(value.copy())
        elif isinstance(value, np.bool_):
            out[key] = bool(value)
        elif isinstance(value, np.integer):
            out[key] = int(value)
        elif isinstance(value, np.floating):
            out[key] = float(value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:  # pragma: no cover - guards a future cmaes adding an unexpected attribute type
            raise TypeError(f"cannot checkpoint cmaes attribute {key!r} of type {type(value).__name__}")
    return out


def _restore(cls: type, internals: Mapping[str, Any]) -> Any:
    """Dict from ``_export`` -> a fresh optimiser; copies, so the state's tensors are never mutated."""
    plain = {k: (v.detach().cpu().numpy().copy() if isinstance(v, Tensor) else v) for k, v in internals.items()}
    optimizer = cls.__new__(cls)
    optimizer.__setstate__(plain)
    return optimizer


class CMAES(ESAlgorithm[CMAESState]):
    """CMA-ES (Hansen 2016) via ``cmaes.CMA``."""

    name = "cma_es"
    state_type = CMAESState
    params_type: type[SepCMAESParams] = CMAESParams
    _library_class = "CMA"

    def __init__(
        self, dim: int, config: SepCMAESParams | Mapping[str, Any] | None = None, search: Tensor | Any | None = None
    ) -> None:
        if _cmaes is None:
            raise ImportError(f"{self.name} needs the 'cmaes' package: pip install cmaes==0.13.1")
        super().__init__(dim, search)
        # CMAESParams for cma_es; SepCMAESParams (no lr_adapt) for sep_cma_es
        self.config: SepCMAESParams = parse_params(self.params_type, config)
        self._cls = getattr(_cmaes, self._library_class)

    @property
    def population_size(self) -> int:
        if self.config.population_size is not None:
            return self.config.population_size
        return 4 + math.floor(3 * math.log(self.space.size))

    def init(self, center: Tensor, seed: int) -> CMAESState:
        center = self._check_init(center, seed)
        mean = self.space.gather(center).detach().to(torch.float64).cpu().numpy()
        if np.abs(mean).max() >= _ABS_MAX:
            raise PlasticRLError(f"center values must be below {_ABS_MAX:g} in magnitude for cmaes")
        kwargs: dict[str, Any] = {"population_size": self.population_size,
                                  "seed": derive_seed(seed, 0, Stream.CMA_ES_SAMPLER) & 0xFFFFFFFF}
        if self._library_class == "CMA":
            assert isinstance(self.config, CMAESParams)
            kwargs["lr_adapt"] = self.config.lr_adapt
        internals = _export(self._cls(mean=mean, sigma=self.config.sigma, **kwargs))
        # The library allocates this history with np.empty; zero it so identical runs have identical states.
        internals["_funhist_values"] = torch.zeros_like(internals["_funhist_values"])
        return CMAESState(center=center, internals=internals, seed=seed, generation=0)

    def ask(self, state: CMAESState) -> tuple[Tensor, CMAESState]:
        optimizer = _restore(self._cls, state.internals)
        words = np.random.SeedSequence([state.seed, state.generation, 2]).generate_state(4, dtype=np.uint32)
        optimizer.reseed_rng(words)
        xs = self._sample(optimizer)
        searched = torch.from_numpy(xs).to(device=state.center.device, dtype=state.center.dtype)
        return self.space.expand(state.center, searched), state

    def _sample(self, optimizer: Any) -> np.ndarray:
        """P samples ``[P, d]`` from the rebuilt optimiser.

        ``cmaes.CMA.ask`` draws one sample per call and forms ``B @ diag(D)`` (a d x d matmul)
        each time, which costs seconds per generation at d ~ 1000. This draws the same
        standard-normal stream from the library's own RNG in one block and applies the
        library's own eigendecomposition once: the same samples as P calls to ``ask`` up to
        matmul rounding (checked in tests/test_es_cma.py). Bounds are never set here, so the
        library's resampling loop would accept the first draw anyway.
        """
        P = self.population_size
        if self._library_class != "CMA":
            return np.stack([optimizer.ask() for _ in range(P)])
        B, D = optimizer._eigen_decomposition()
        z = optimizer._rng.randn(P, optimizer.dim)
        return optimizer.mean + optimizer._sigma * ((z * D) @ B.T)

    def tell(self, state: CMAESState, samples: Tensor, fitness: Tensor) -> tuple[CMAESState, dict[str, Any]]:
        samples, fitness = self._check_tell(state.center, samples, fitness)
        invalid = invalid_mask(fitness)
        info: dict[str, Any] = {"generation": state.generation, "sigma": float(state.internals["_sigma"])}
        info.update(fitness_info(fitness, invalid))
        if info["num_invalid"] == self.population_size:
            info["step_norm"] = 0.0
            return dataclasses.replace(state, generation=state.generation + 1), info

        loss = (-fitness.to(torch.float64)).cpu()
        bad = invalid.cpu()
        if bool(bad.any()):
            worst = float(loss[~bad].max())
            # Strictly worse than every valid member, robust to huge magnitudes.
            loss = torch.where(bad, torch.full_like(loss, worst + 1.0 + abs(worst)), loss)
        xs = self.space.gather(samples).detach().to(torch.float64).cpu().numpy()
        if np.abs(xs).max() >= _ABS_MAX:
            raise PlasticRLError(f"samples must be below {_ABS_MAX:g} in magnitude for cmaes")

        optimizer = _restore(self._cls, state.internals)
        optimizer.tell([(xs[i], float(loss[i])) for i in range(xs.shape[0])])
        internals = _export(optimizer)
        mean = torch.from_numpy(np.asarray(optimizer.mean, dtype=np.float64).copy())
        center = self.space.scatter(state.center, mean.to(device=state.center.device, dtype=state.center.dtype))
        info["step_norm"] = float(torch.linalg.vector_norm(mean - state.internals["_mean"]))
        return CMAESState(center=center, internals=internals, seed=state.seed, generation=state.generation + 1), info


class SepCMAES(CMAES):
    """Separable CMA-ES (Ros & Hansen 2008; diagonal covariance) via ``cmaes.SepCMA``."""

    name = "sep_cma_es"
    params_type = SepCMAESParams
    _library_class = "SepCMA"
