"""Genome: named parameter groups <-> one flat ``[P, D]`` tensor.

A policy declares every parameter it has as a :class:`ParamGroup` (initial weights, rule
coefficients, learning rates, neuron constants, encoder gains, modulator weights). Which
groups are *searched* (evolved by ES, or learned by gradients) and which stay *fixed* is
configuration: :meth:`GenomeSpec.select` takes glob patterns. Only searched groups occupy
columns of the flat tensor; fixed groups keep their initial value.

``unflatten`` returns views into the flat tensor, so a gradient trainer can make the flat
tensor a leaf and have gradients reach every named group.
"""
from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from plasticrl.errors import PlasticRLError, check_choice

INIT_KINDS = ("constant", "normal", "uniform")


@dataclass(frozen=True)
class ParamGroup:
    """One named parameter tensor of per-member shape ``shape``.

    ``init`` draws the starting value: ``constant`` (= ``mean``), ``normal(mean, std)`` or
    ``uniform(mean - std, mean + std)``.
    """

    name: str
    shape: tuple[int, ...]
    init: str = "constant"
    mean: float = 0.0
    std: float = 0.0
    searched: bool = True

    def __post_init__(self) -> None:
        check_choice(f"init for parameter group {self.name!r}", self.init, INIT_KINDS)
        if any(int(s) <= 0 for s in self.shape):
            raise PlasticRLError(f"parameter group {self.name!r} has shape {list(self.shape)}; sizes must be positive")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class GenomeSpec:
    """Maps named groups to and from flat ``[P, D]`` tensors. Immutable: ``select`` returns a copy."""

    def __init__(self, groups: Sequence[ParamGroup], seed: int = 0, values: Mapping[str, torch.Tensor] | None = None):
        names = [g.name for g in groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PlasticRLError(f"duplicate parameter group names: {', '.join(dupes)}")
        self.groups: tuple[ParamGroup, ...] = tuple(groups)
        self.seed = int(seed)
        self._by_name = {g.name: g for g in self.groups}
        self._values = self._draw_initial_values()
        for name, value in (values or {}).items():
            self._values[self._group(name).name] = self._checked_value(name, value)
        self._slices: dict[str, slice] = {}
        offset = 0
        for g in self.searched_groups:
            self._slices[g.name] = slice(offset, offset + g.numel)
            offset += g.numel
        self.dim = offset

    # -- description ------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def searched_groups(self) -> list[ParamGroup]:
        return [g for g in self.groups if g.searched]

    @property
    def searched_names(self) -> list[str]:
        return [g.name for g in self.searched_groups]

    def slice_of(self, name: str) -> slice:
        """Columns of the flat tensor that hold searched group ``name``."""
        group = self._group(name)
        if not group.searched:
            raise PlasticRLError(f"parameter group {name!r} is fixed, not searched; searched groups: "
                                 f"{', '.join(self.searched_names) or '(none)'}")
        return self._slices[name]

    def counts(self, searched_only: bool = True) -> dict[str, int]:
        """Number of scalars per group."""
        return {g.name: g.numel for g in self.groups if g.searched or not searched_only}

    def describe(self) -> list[dict]:
        """One row per group, for printing or logging."""
        return [
            {"name": g.name, "shape": list(g.shape), "count": g.numel, "searched": g.searched, "init": g.init}
            for g in self.groups
        ]

    def __repr__(self) -> str:
        return f"GenomeSpec(dim={self.dim}, groups={len(self.groups)}, searched={len(self.searched_groups)})"

    # -- configuration ----------------------------------------------------------------
    def select(self, search: Iterable[str] | None = None, fix: Iterable[str] | None = None) -> "GenomeSpec":
        """Return a copy in which groups matching ``search`` are searched and those matching ``fix`` fixed.

        Patterns are shell globs over group names (``"layers.*.w"``, ``"*eta*"``). ``fix`` wins
        over ``search``. ``search=None`` keeps each group's default. A pattern matching no group
        is an error listing the groups.
        """
        search = list(search) if search is not None else None
        fix = list(fix or [])
        for pattern in (search or []) + fix:
            if not fnmatch.filter(self.names, pattern):
                raise PlasticRLError(
                    f"genome pattern {pattern!r} matches no parameter group; groups: {', '.join(self.names)}"
                )
        groups = []
        for g in self.groups:
            searched = g.searched if search is None else any(fnmatch.fnmatchcase(g.name, p) for p in search)
            if any(fnmatch.fnmatchcase(g.name, p) for p in fix):
                searched = False
            groups.append(replace(g, searched=searched))
        return GenomeSpec(groups, seed=self.seed, values=self._values)

    def with_values(self, values: Mapping[str, torch.Tensor]) -> "GenomeSpec":
        """Copy whose initial (and, for fixed groups, permanent) values are overridden."""
        merged = dict(self._values)
        merged.update(values)
        return GenomeSpec(self.groups, seed=self.seed, values=merged)

    # -- values ---------------------------------------------------------------------
    def initial_values(self) -> dict[str, torch.Tensor]:
        """Per-member initial value of every group (deterministic for the spec's seed)."""
        return {k: v.clone() for k, v in self._values.items()}

    def initial_flat(self, population: int = 1, device=None, dtype=torch.float32) -> torch.Tensor:
        """``[population, D]``: every member at the initial values (an ES centre to start from)."""
        named = {k: v.unsqueeze(0).expand(population, *v.shape) for k, v in self._values.items()}
        return self.flatten(named).to(device=device, dtype=dtype)

    def flatten(self, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Named ``{group: [P, *shape]}`` -> flat ``[P, D]`` (searched groups only, in spec order)."""
        missing = [n for n in self.searched_names if n not in named]
        if missing:
            raise PlasticRLError(f"flatten is missing searched groups: {', '.join(missing)}")
        parts = []
        population = None
        for g in self.searched_groups:
            t = named[g.name]
            if tuple(t.shape[1:]) != g.shape:
                raise PlasticRLError(
                    f"parameter group {g.name!r} has shape {list(t.shape)}; expected [P, {', '.join(map(str, g.shape))}]"
                )
            population = t.shape[0] if population is None else population
            if t.shape[0] != population:
                raise PlasticRLError(f"parameter group {g.name!r} has {t.shape[0]} members; others have {population}")
            parts.append(t.reshape(t.shape[0], -1))
        if not parts:
            first = next(iter(named.values()))
            return first.new_zeros((first.shape[0], 0))
        return torch.cat(parts, dim=1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat ``[P, D]`` -> ``{group: [P, *shape]}``; fixed groups are broadcast views of their value."""
        if flat.dim() != 2 or flat.shape[1] != self.dim:
            raise PlasticRLError(f"flat genome has shape {list(flat.shape)}; expected [P, {self.dim}]")
        population = flat.shape[0]
        out: dict[str, torch.Tensor] = {}
        for g in self.groups:
            if g.searched:
                out[g.name] = flat[:, self._slices[g.name]].reshape(population, *g.shape)
            else:
                value = self._values[g.name].to(device=flat.device, dtype=flat.dtype)
                out[g.name] = value.unsqueeze(0).expand(population, *g.shape)
        return out

    # -- internals ------------------------------------------------------------------
    def _group(self, name: str) -> ParamGroup:
        if name not in self._by_name:
            raise PlasticRLError(f"unknown parameter group {name!r}; groups: {', '.join(self.names)}")
        return self._by_name[name]

    def _checked_value(self, name: str, value: torch.Tensor) -> torch.Tensor:
        g = self._group(name)
        value = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
        if tuple(value.shape) != g.shape:
            raise PlasticRLError(f"value for {name!r} has shape {list(value.shape)}; expected {list(g.shape)}")
        return value.clone()

    def _draw_initial_values(self) -> dict[str, torch.Tensor]:
        # One generator walked in group order: a group's initial value does not depend on
        # which groups are searched, so re-selecting never changes the starting point.
        gen = torch.Generator().manual_seed(self.seed)
        values = {}
        for g in self.groups:
            if g.init == "constant":
                values[g.name] = torch.full(g.shape, float(g.mean))
            elif g.init == "normal":
                values[g.name] = g.mean + g.std * torch.randn(g.shape, generator=gen)
            else:
                values[g.name] = g.mean + g.std * (2.0 * torch.rand(g.shape, generator=gen) - 1.0)
        return values
