"""Perturbation names, their parameters, validation and parsing.

A perturbation is a name plus parameters plus ``start_step``: the index (0-based, counted from
the episode start) of the first env step it affects. ``start_step=0`` means from reset (the
reset observation is already affected by sensing perturbations); ``start_step=k`` leaves the
first ``k`` transitions untouched and changes the transition of the ``k+1``-th ``step()`` call
onwards, which measures adaptation within a lifetime.

Accepted forms wherever a perturbation is expected: ``None`` (nominal), a name (all defaults),
a dict ``{"name": ..., **params}``, a :class:`Perturbation`, or a list of those (composed).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EnvError, unknown

Check = Callable[[Any], str | None]


def _number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Check:
    """Finite number in [lo, hi] (or (lo, hi] with lo_open)."""
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return "must be a finite number"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {'>' if lo_open else '>='} {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"
        return None
    return check


def _count(lo: int = 0, hi: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            return f"must be an int >= {lo}" + ("" if hi is None else f" and <= {hi}")
        return None
    return check


#: Longest observation/action delay in env steps (sizes the history ring buffers).
MAX_DELAY = 100


def _target(v: Any) -> str | None:
    """A name, an index, 'all', or a non-empty list of names/indices (checked against the model later)."""
    items = v if isinstance(v, (list, tuple)) else [v]
    if not items or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in items):
        return "must be a name, an index, 'all', or a non-empty list of names/indices"
    return None


def _optional_number(v: Any) -> str | None:
    return None if v is None else _number()(v)


@dataclass(frozen=True)
class Param:
    """One parameter of a perturbation type."""

    name: str
    default: Any
    doc: str
    check: Check = field(repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "doc": self.doc}


@dataclass(frozen=True)
class PerturbationType:
    """A named family of perturbations; ``severity`` names the parameter that sets its strength."""

    name: str
    kind: str  # "morphology" | "dynamics" | "sensing" | "action"
    doc: str
    params: tuple[Param, ...]
    severity: str | None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise unknown(f"parameter of {self.name}", name, [p.name for p in self.params])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "doc": self.doc, "severity": self.severity,
                "params": [p.describe() for p in self.params] + [START_STEP.describe()]}


START_STEP = Param("start_step", 0, "first env step (0-based, from episode start) it affects",
                   _count(0))
_SCALE_POS = "multiplier, > 0"
_SCALE_NONNEG = "multiplier, >= 0"

TYPES: dict[str, PerturbationType] = {t.name: t for t in (
    # --- morphology (MjSpec edits, recompiled) ---
    PerturbationType("shorten_limb", "morphology",
                     "scale the length of a limb segment about its joint; children move with its end",
                     (Param("segment", None, "segment name or list (see catalog per env)", _target),
                      Param("scale", 0.5, "length multiplier in (0, 1]; 1 = nominal",
                            _number(0.0, 1.0, lo_open=True))), "scale"),
    PerturbationType("remove_limb", "morphology",
                     "remove a segment and everything below it (kept as massless, non-colliding "
                     "geometry so observation sizes stay; its motors are disabled)",
                     (Param("segment", None, "segment name or list (see catalog per env)", _target),),
                     None),
    # --- dynamics (compiled-model edits) ---
    PerturbationType("mass_scale", "dynamics", "scale body masses (and inertias, same factor)",
                     (Param("scale", 1.0, _SCALE_POS, _number(0.0, lo_open=True)),
                      Param("body", "all", "body name, list, or 'all' (every body but the world)",
                            _target)), "scale"),
    PerturbationType("friction_scale", "dynamics", "scale sliding friction of every geom",
                     (Param("scale", 1.0, _SCALE_NONNEG, _number(0.0)),), "scale"),
    PerturbationType("gravity", "dynamics", "scale gravity and tilt its direction",
                     (Param("scale", 1.0, _SCALE_NONNEG, _number(0.0)),
                      Param("tilt_deg", 0.0, "angle from straight down, degrees in [0, 90]",
                            _number(0.0, 90.0)),
                      Param("azimuth_deg", 0.0, "direction of the tilt in the xy plane, degrees",
                            _number())), "scale"),
    PerturbationType("joint_damping_scale", "dynamics", "scale joint damping",
                     (Param("scale", 1.0, _SCALE_NONNEG, _number(0.0)),
                      Param("joint", "all", "joint name, list, or 'all'", _target)), "scale"),
    PerturbationType("actuator_strength", "dynamics", "scale actuator gains (force per control)",
                     (Param("scale", 1.0, _SCALE_NONNEG, _number(0.0)),
                      Param("actuator", "all", "actuator name/index, list, or 'all'", _target)),
                     "scale"),
    PerturbationType("dead_actuator", "dynamics", "a motor that produces no force",
                     (Param("actuator", 0, "actuator name/index or list", _target),), None),
    PerturbationType("stuck_actuator", "action",
                     "a motor whose control is frozen (at `value`, or at the last command "
                     "before it got stuck when value is None)",
                     (Param("actuator", 0, "actuator name/index or list", _target),
                      Param("value", None, "frozen control value, or None", _optional_number)),
                     None),
    PerturbationType("push", "dynamics",
                     "horizontal force on a body (default: torso) for `duration` steps, "
                     "repeated every `period` steps (0: once)",
                     (Param("force", 100.0, "newtons, >= 0", _number(0.0)),
                      Param("direction_deg", 0.0, "azimuth in the xy plane, degrees", _number()),
                      Param("duration", 1, "env steps per push, >= 1", _count(1)),
                      Param("period", 0, "env steps between push starts (0: once)", _count(0)),
                      Param("body", None, "body name (None: the task's torso)",
                            lambda v: None if v is None or isinstance(v, str) else "must be a name")),
                     "force"),
    # --- sensing ---
    PerturbationType("obs_noise", "sensing", "additive Gaussian observation noise",
                     (Param("std", 0.1, "standard deviation, >= 0", _number(0.0)),), "std"),
    PerturbationType("obs_dropout", "sensing", "each observation entry reads 0 with probability p",
                     (Param("p", 0.1, "probability in [0, 1]", _number(0.0, 1.0)),), "p"),
    PerturbationType("stuck_sensor", "sensing",
                     "observation entries frozen at their value when the fault starts",
                     (Param("index", 0, "observation index, list of indices, or 'all'", _target),),
                     None),
    PerturbationType("obs_delay", "sensing", "observations arrive `steps` env steps late",
                     (Param("steps", 1, f"delay in env steps, 0..{MAX_DELAY}", _count(0, MAX_DELAY)),), "steps"),
    # --- action ---
    PerturbationType("action_noise", "action", "additive Gaussian noise on the applied control",
                     (Param("std", 0.1, "standard deviation, >= 0", _number(0.0)),), "std"),
    PerturbationType("action_delay", "action", "controls take effect `steps` env steps late",
                     (Param("steps", 1, f"delay in env steps, 0..{MAX_DELAY}", _count(0, MAX_DELAY)),), "steps"),
)}


@dataclass(frozen=True)
class Perturbation:
    """One validated perturbation: a type name, its full parameter dict and its start step."""

    name: str
    params: tuple[tuple[str, Any], ...]
    start_step: int = 0

    @property
    def type(self) -> PerturbationType:
        return TYPES[self.name]

    @property
    def kind(self) -> str:
        return TYPES[self.name].kind

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (round-trips through :func:`parse`)."""
        out: dict[str, Any] = {"name": self.name}
        for k, v in self.params:
            out[k] = list(v) if isinstance(v, tuple) else v
        out["start_step"] = self.start_step
        return out


def _plain(value: Any) -> Any:
    """NumPy scalars (e.g. drawn from a Generator) as Python numbers, lists as tuples."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_plain(v) for v in value)
    return value


def make(name: str, **params: Any) -> Perturbation:
    """Validate ``name`` and ``params`` (defaults filled in) into a :class:`Perturbation`."""
    if name not in TYPES:
        raise unknown("perturbation", name, TYPES)
    ptype = TYPES[name]
    valid = [p.name for p in ptype.params] + ["start_step"]
    bad = sorted(set(params) - set(valid))
    if bad:
        raise EnvError(f"unknown parameter(s) {bad} for perturbation {name!r}; "
                       f"valid choices: {', '.join(valid)}")
    values = []
    for p in ptype.params:
        v = _plain(params.get(p.name, p.default))
        if v is None and p.name in ("segment",):
            raise EnvError(f"perturbation {name!r} needs parameter {p.name!r}")
        problem = p.check(v)
        if problem:
            raise EnvError(f"invalid {name}.{p.name}={v!r}: {problem}")
        values.append((p.name, v))
    start = _plain(params.get("start_step", 0))
    problem = START_STEP.check(start)
    if problem:
        raise EnvError(f"invalid {name}.start_step={start!r}: {problem}")
    return Perturbation(name, tuple(values), start)


def parse(spec: Any) -> tuple[Perturbation, ...]:
    """Normalise any accepted perturbation form to a tuple (empty tuple = nominal)."""
    if spec is None:
        return ()
    if isinstance(spec, Perturbation):
        return (spec,)
    if isinstance(spec, str):
        return (make(spec),)
    if isinstance(spec, dict):
        if "name" not in spec:
            raise EnvError(f"perturbation dict {spec!r} has no 'name'; valid names: "
                           f"{', '.join(sorted(TYPES))}")
        params = {k: v for k, v in spec.items() if k != "name"}
        return (make(spec["name"], **params),)
    if isinstance(spec, Sequence):
        out: list[Perturbation] = []
        for item in spec:
            out.extend(parse(item))
        names = [p.name for p in out]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EnvError(f"perturbation(s) {dupes} given more than once in one condition; "
                           "combine them into one entry (targets accept lists)")
        return tuple(out)
    raise EnvError(f"cannot read a perturbation from {spec!r}; expected None, a name, a dict "
                   "with 'name', a Perturbation, or a list of those")
