"""The ask/tell interface shared by every ES, and the pieces they all need.

Contract (pure functions over an explicit, immutable state)::

    algo = OpenAIES(dim, params, search=mask)      # hyper-parameters only, no run state
    state = algo.init(center, seed)                # everything that changes lives in `state`
    samples, state = algo.ask(state)               # [P, D] on center's device/dtype
    state, info = algo.tell(state, samples, fitness)   # fitness [P], maximised
    algo.center(state)                             # [D]

``ask`` is a pure function of the state: the noise of generation ``g`` comes from a
generator seeded with ``(seed, g)``, so asking twice gives the same samples and a run
resumed from a saved state draws exactly the noise the uninterrupted run would have.
``state_dict(state)`` / ``load_state(d)`` convert to and from a plain dict of tensors and
Python scalars that ``torch.save`` / ``torch.load(weights_only=True)`` round-trip exactly.

``ask`` never changes the state (only ``tell`` does), so a checkpoint taken between ask and
tell is as good as one taken after tell. ``info`` always holds ``generation`` (the one just
told), ``num_invalid``, ``fitness_mean/std/max/min`` over valid members, ``sigma`` (mean
step size) and ``step_norm`` (how far the centre moved); algorithms add their own keys.

Only the dims selected by ``search`` are perturbed and updated; the others stay at the
centre's values, so any subset of a genome can be searched.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Mapping, TypeVar

import torch
from torch import Tensor

from plasticrl.errors import PlasticRLError

from .params import ESParams

__all__ = ["ESAlgorithm", "SearchSpace", "fitness_info"]

S = TypeVar("S")

STATE_FORMAT = 1


class SearchSpace:
    """Which of the D genome dims are searched, and how to move between [D] and the searched [d].

    ``search`` may be None (all dims), a boolean mask ``[D]``, or an index tensor/sequence of
    distinct indices in ``[0, D)``. Indices are kept sorted so that a mask and the equivalent
    index list behave identically.
    """

    def __init__(self, dim: int, search: Tensor | Any | None = None) -> None:
        self.dim = dim
        if search is None:
            self.index: Tensor | None = None
            self.size = dim
            return
        t = torch.as_tensor(search).detach().cpu()
        if t.dtype == torch.bool:
            if t.shape != (dim,):
                raise PlasticRLError(f"boolean search mask must have shape ({dim},); got {tuple(t.shape)}")
            idx = torch.nonzero(t).flatten()
        elif not t.is_floating_point() and not t.is_complex():
            if t.ndim != 1:
                raise PlasticRLError(f"search index must be 1-D; got shape {tuple(t.shape)}")
            idx = t.to(torch.long)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= dim):
                bad = idx[(idx < 0) | (idx >= dim)].tolist()
                raise PlasticRLError(f"search indices {bad} are out of range; valid range is [0, {dim})")
            idx = torch.sort(idx).values
            if idx.numel() > 1 and bool((idx[1:] == idx[:-1]).any()):
                raise PlasticRLError(f"search indices must be distinct; got duplicates in {t.tolist()}")
        else:
            raise TypeError(f"search must be a boolean mask or an integer index tensor; got dtype {t.dtype}")
        if idx.numel() == 0:
            raise PlasticRLError("search selects no dims; select at least one (or pass search=None for all)")
        # A selection of every dim is the unmasked case; skip the gathers and scatters.
        self.index = None if idx.numel() == dim else idx
        self.size = int(idx.numel())

    def gather(self, full: Tensor) -> Tensor:
        """Searched part ``[..., d]`` of ``full`` ``[..., D]``."""
        if self.index is None:
            return full
        return full.index_select(-1, self.index.to(full.device))

    def scatter(self, center: Tensor, searched: Tensor) -> Tensor:
        """A new ``[D]`` centre equal to ``center`` with the searched dims replaced."""
        if self.index is None:
            return searched.clone()
        return center.index_copy(0, self.index.to(center.device), searched)

    def expand(self, center: Tensor, searched: Tensor) -> Tensor:
        """Full samples ``[P, D]``: searched dims from ``searched`` ``[P, d]``, the rest from ``center``."""
        if self.index is None:
            return searched
        out = center.unsqueeze(0).expand(searched.shape[0], -1).clone()
        out.index_copy_(1, self.index.to(center.device), searched)
        return out


def fitness_info(fitness: Tensor, invalid: Tensor) -> dict[str, float | int]:
    """Per-generation fitness statistics over the valid members (NaN when none is valid)."""
    valid = fitness[~invalid].to(torch.float64)
    n_valid = int(valid.numel())
    nan = float("nan")
    return {
        "num_invalid": int(invalid.numel() - n_valid),
        "fitness_mean": float(valid.mean()) if n_valid else nan,
        "fitness_std": float(valid.std(unbiased=False)) if n_valid else nan,
        "fitness_max": float(valid.max()) if n_valid else nan,
        "fitness_min": float(valid.min()) if n_valid else nan,
    }


class ESAlgorithm(ABC, Generic[S]):
    """Base class: holds hyper-parameters and the search space; all run state lives in ``S``."""

    name: ClassVar[str]
    state_type: ClassVar[type]
    #: the pydantic model of the hyper-parameters (:mod:`plasticrl.es.params`); ``self.config`` is one
    params_type: ClassVar[type[ESParams]]

    def __init__(self, dim: int, search: Tensor | Any | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise PlasticRLError(f"dim must be a positive integer; got {dim!r}")
        self.dim = dim
        self.space = SearchSpace(dim, search)

    # -- the interface -------------------------------------------------------------------
    @property
    @abstractmethod
    def population_size(self) -> int:
        """P, the number of samples ``ask`` returns."""

    @abstractmethod
    def init(self, center: Tensor, seed: int) -> S:
        """Initial state around ``center`` ``[D]``; device and dtype follow ``center``."""

    @abstractmethod
    def ask(self, state: S) -> tuple[Tensor, S]:
        """Samples ``[P, D]`` for this generation (deterministic given the state)."""

    @abstractmethod
    def tell(self, state: S, samples: Tensor, fitness: Tensor) -> tuple[S, dict[str, Any]]:
        """Update from the fitness ``[P]`` (maximised) of ``samples``; returns the new state and info."""

    def center(self, state: S) -> Tensor:
        """The current search-distribution centre ``[D]`` (the solution to deploy)."""
        return state.center  # type: ignore[attr-defined]

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self, state: S) -> dict[str, Any]:
        """A plain dict (tensors, ints, floats, str, None, nested dicts) for ``torch.save``."""
        payload = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}  # type: ignore[arg-type]
        return {**self._header(), "state": payload}

    def load_state(self, d: Mapping[str, Any]) -> S:
        """Inverse of ``state_dict``; checks that the dict belongs to an equally configured algorithm.

        Tensors stay where ``torch.load`` put them: pass ``map_location`` there to resume on
        another device (CMA-ES internals are moved to the CPU when used, wherever they load).
        """
        self._check_header(d)
        payload = d["state"]
        names = [f.name for f in dataclasses.fields(self.state_type)]
        missing = [n for n in names if n not in payload]
        if missing:
            raise PlasticRLError(f"{self.name} state dict is missing field(s) {missing}")
        center = payload["center"]
        if not isinstance(center, Tensor) or center.shape != (self.dim,):
            shape = tuple(center.shape) if isinstance(center, Tensor) else type(center).__name__
            raise PlasticRLError(f"{self.name} state dict has a centre of shape {shape}; expected ({self.dim},)")
        return self.state_type(**{n: payload[n] for n in names})

    def _header(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "algorithm": self.name,
            "dim": self.dim,
            "search_index": None if self.space.index is None else self.space.index.clone(),
        }

    def _check_header(self, d: Mapping[str, Any]) -> None:
        if d.get("format") != STATE_FORMAT:
            raise PlasticRLError(f"unsupported ES state format {d.get('format')!r}; this version reads {STATE_FORMAT}")
        if d.get("algorithm") != self.name:
            raise PlasticRLError(f"state dict is for algorithm {d.get('algorithm')!r}, not {self.name!r}")
        if d.get("dim") != self.dim:
            raise PlasticRLError(f"state dict has dim {d.get('dim')!r}; this {self.name} has dim {self.dim}")
        saved = d.get("search_index")
        mine = self.space.index
        same = (saved is None and mine is None) or (
            saved is not None and mine is not None and torch.equal(torch.as_tensor(saved).cpu(), mine)
        )
        if not same:
            raise PlasticRLError(f"state dict was saved with a different search selection than this {self.name}")

    # -- shared validation ----------------------------------------------------------------
    def _check_init(self, center: Tensor, seed: int) -> Tensor:
        if not isinstance(center, Tensor):
            raise TypeError(f"center must be a torch.Tensor; got {type(center).__name__}")
        if center.shape != (self.dim,):
            raise PlasticRLError(f"center must have shape ({self.dim},); got {tuple(center.shape)}")
        if not center.is_floating_point():
            raise TypeError(f"center must be a floating tensor; got dtype {center.dtype}")
        if not bool(torch.isfinite(center).all()):
            raise PlasticRLError("center contains non-finite values")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PlasticRLError(f"seed must be an integer >= 0; got {seed!r}")
        return center.detach().clone()

    def _check_tell(self, center: Tensor, samples: Tensor, fitness: Tensor) -> tuple[Tensor, Tensor]:
        p = self.population_size
        if samples.shape != (p, self.dim):
            raise PlasticRLError(f"samples must have shape ({p}, {self.dim}); got {tuple(samples.shape)}")
        fitness = torch.as_tensor(fitness)
        if fitness.shape != (p,):
            raise PlasticRLError(f"fitness must have shape ({p},); got {tuple(fitness.shape)}")
        return samples.to(device=center.device, dtype=center.dtype), fitness.to(center.device)

