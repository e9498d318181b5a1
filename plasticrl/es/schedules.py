"""Hyper-parameter schedules (sigma, learning rate) as pure functions of the generation.

A schedule is a value, not a stateful object: ``schedule.value(generation)`` is all
an ES needs, so the only state to checkpoint is the generation counter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Union

from plasticrl.errors import PlasticRLError

__all__ = ["Schedule", "ScheduleLike", "as_schedule", "SCHEDULE_KINDS"]

SCHEDULE_KINDS = ("constant", "linear", "exponential")


@dataclass(frozen=True)
class Schedule:
    """A value that decays with the generation count, never below ``floor``.

    - ``constant``: ``init``.
    - ``linear``: from ``init`` at generation 0 to ``floor`` at generation ``steps``, then ``floor``.
    - ``exponential``: ``max(floor, init * rate ** generation)`` with ``0 < rate <= 1``.
    """

    init: float
    kind: str = "constant"
    floor: float = 0.0
    steps: int | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise PlasticRLError(f"unknown schedule kind {self.kind!r}; valid kinds: {', '.join(SCHEDULE_KINDS)}")
        if not math.isfinite(self.init) or self.init < 0:
            raise PlasticRLError(f"schedule init must be a finite value >= 0; got {self.init!r}")
        if not math.isfinite(self.floor) or self.floor < 0 or self.floor > self.init:
            raise PlasticRLError(f"schedule floor must be in [0, init={self.init}]; got {self.floor!r}")
        if self.kind == "linear" and (self.steps is None or int(self.steps) != self.steps or self.steps < 1):
            raise PlasticRLError(f"a linear schedule needs an integer steps >= 1; got steps={self.steps!r}")
        if self.kind == "exponential" and (self.rate is None or not 0.0 < self.rate <= 1.0):
            raise PlasticRLError(f"an exponential schedule needs 0 < rate <= 1; got rate={self.rate!r}")

    def value(self, generation: int) -> float:
        """The scheduled value at ``generation`` (0-based), as a Python float."""
        if generation < 0:
            raise PlasticRLError(f"generation must be >= 0; got {generation}")
        if self.kind == "constant":
            return float(self.init)
        if self.kind == "linear":
            assert self.steps is not None
            frac = min(generation / self.steps, 1.0)
            return float(self.init + (self.floor - self.init) * frac)
        assert self.rate is not None
        return float(max(self.floor, self.init * self.rate**generation))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for configs and logging)."""
        return {"kind": self.kind, "init": self.init, "floor": self.floor, "steps": self.steps, "rate": self.rate}


ScheduleLike = Union[float, int, Schedule, Mapping[str, Any]]


def as_schedule(value: ScheduleLike, name: str) -> Schedule:
    """Turn a number (constant), a mapping of Schedule fields, or a Schedule into a Schedule.

    ``name`` is the config key, used in error messages.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        raise PlasticRLError(f"{name} must be a number or a schedule mapping; got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise PlasticRLError(f"{name} must be a finite value >= 0; got {value!r}")
        return Schedule(init=float(value))
    if isinstance(value, Mapping):
        valid = ("init", "kind", "floor", "steps", "rate")
        unknown = [k for k in value if k not in valid]
        if unknown:
            raise PlasticRLError(f"unknown key(s) {unknown} in schedule {name}; valid keys: {', '.join(valid)}")
        if "init" not in value:
            raise PlasticRLError(f"schedule {name} needs an 'init' value; got {dict(value)!r}")
        try:
            return Schedule(**dict(value))
        except ValueError as exc:
            raise PlasticRLError(f"{name}: {exc}") from None
        except TypeError:  # e.g. init: "a" (math.isfinite refuses a string)
            raise PlasticRLError(f"schedule {name} needs numbers for init, floor, steps and rate; "
                                 f"got {dict(value)!r}") from None
    raise PlasticRLError(f"{name} must be a number, a Schedule or a mapping; got {type(value).__name__} {value!r}")
