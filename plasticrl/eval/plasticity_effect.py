"""What within-episode learning adds: each plastic agent against its frozen twin (``NAME/frozen``,
the same evolved weights with every learning rate at 0) on the same paired episodes.

The difference is taken episode by episode (same seed, same condition), so everything the two
share (the gait evolution found, the episode's randomness) cancels and what is left is the
effect of the weights changing during the episode.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from plasticrl.eval.stats import CONFIDENCE, bootstrap_mean_difference

FROZEN_SUFFIX = "/frozen"
HELD_OUT = "held-out mean"
SWITCHED = "mid-episode mean"  # over the held-out conditions that switch on during the episode


class RowsOfResult(Protocol):
    """What the plasticity effect reads of an :class:`~plasticrl.eval.result.EvaluationResult` (a
    protocol, so that the result can derive its effect on reading without the two modules importing
    each other): the header and the typed rows (:class:`~plasticrl.eval.result.ConditionSummary`)."""

    @property
    def agents(self) -> Sequence[str]: ...
    @property
    def conditions(self) -> Sequence[str]: ...
    @property
    def reference_conditions(self) -> Sequence[str]: ...
    @property
    def rows(self) -> Sequence[Any]: ...
    @property
    def confidence(self) -> float: ...
    @property
    def seed(self) -> int: ...


def held_out_conditions(result: RowsOfResult) -> list[str]:
    """The conditions of ``result`` that its held-out means average over: every one but nominal and
    the ``reference_conditions`` (bodies the agents trained on, evaluated beside the held-out ones
    for reference, as in the ``morphology`` suite)."""
    reference = set(result.reference_conditions or ())
    return [c for c in result.conditions if c != "nominal" and c not in reference]


def plasticity_effect(result: RowsOfResult) -> list[dict[str, Any]]:
    """Per agent with a frozen twin in ``result`` (an :class:`~plasticrl.eval.result.EvaluationResult`):
    the paired difference in return (agent - twin) on nominal, on each condition and averaged over the
    held-out conditions, with bootstrap intervals; also as a fraction of the twin's nominal return, as
    ``eval.json``'s entries (the result holds them as :class:`~plasticrl.eval.result.PlasticityEffect`).
    Empty when there are no twins or the rows do not carry their episodes' returns."""
    agents = list(result.agents)
    confidence = result.confidence
    seed = int(result.seed)
    out: list[dict[str, Any]] = []
    for agent in agents:
        twin = agent + FROZEN_SUFFIX
        if agent.endswith(FROZEN_SUFFIX) or twin not in agents:
            continue
        mine = {r.condition: r for r in result.rows if r.agent == agent}
        theirs = {r.condition: r for r in result.rows if r.agent == twin}
        # Invalid episodes (returns written as null) have no pair: no effect is claimed for such agents.
        if any(r.returns is None or None in r.returns or None in (_returns_after_switch(r) or ())
               for r in [*mine.values(), *theirs.values()]):
            continue
        scale = float(np.mean(theirs["nominal"].returns))

        def entry(condition: str, conds: list[str]) -> dict[str, Any]:
            iv = bootstrap_mean_difference([mine[c].returns for c in conds], [theirs[c].returns for c in conds],
                                           confidence, seed=seed)
            e = {"agent": agent, "twin": twin, "condition": condition, "difference": iv.estimate,
                 "low": iv.low, "high": iv.high, "of_twin_nominal": _fraction(iv.estimate, scale),
                 "of_twin_nominal_low": _fraction(iv.low, scale), "of_twin_nominal_high": _fraction(iv.high, scale)}
            return {**e, **_around_switch([mine[c] for c in conds], [theirs[c] for c in conds], confidence, seed)}

        held_out = [c for c in held_out_conditions(result) if c in mine and c in theirs]
        switched = [c for c in held_out if _has_switch(mine[c]) and _has_switch(theirs[c])]
        reference = [c for c in result.conditions if c != "nominal" and c not in held_out and c in mine
                     and c in theirs]
        out.append(entry("nominal", ["nominal"]))
        if held_out:
            out.append(entry(HELD_OUT, held_out))
        if switched:
            out.append(entry(SWITCHED, switched))
        out += [entry(c, [c]) for c in reference + held_out]
    return out


def _returns_after_switch(row: Any) -> Sequence[float | None] | None:
    return row.after_switch.returns_after_switch if row.after_switch is not None else None


def _steps_after_switch(row: Any) -> int | None:
    return row.after_switch.steps_after_switch if row.after_switch is not None else None


def _has_switch(row: Any) -> bool:
    return bool(_returns_after_switch(row) is not None and row.switch_step and _steps_after_switch(row))


def _around_switch(mine: list[Any], theirs: list[Any], confidence: float, seed: int) -> dict[str, Any]:
    """For mid-episode conditions (all with the same switch step and horizon): the paired difference
    per step before the switch and per step after it. A plastic agent that adapts to the damage
    gains on its twin after the switch; one whose advantage is its gait on the intact body gains
    before it and loses the edge after."""
    rows = mine + theirs
    if not all(_has_switch(r) for r in rows) or len({(r.switch_step, _steps_after_switch(r)) for r in rows}) != 1:
        return {}
    before_steps, after_steps = rows[0].switch_step, _steps_after_switch(rows[0])
    out: dict[str, Any] = {}
    for key, part, steps in (("before_switch", _before, before_steps), ("after_switch", _after, after_steps)):
        iv = bootstrap_mean_difference([part(r) for r in mine], [part(r) for r in theirs], confidence, seed=seed)
        out.update({f"{key}_per_step": iv.estimate / steps, f"{key}_per_step_low": iv.low / steps,
                    f"{key}_per_step_high": iv.high / steps})
    return out


def _after(row: Any) -> list[float]:
    return list(_returns_after_switch(row))


def _before(row: Any) -> list[float]:
    return [total - after for total, after in zip(row.returns, _returns_after_switch(row))]


def _fraction(value: float, scale: float) -> float | None:
    """``value`` as a fraction of the twin's nominal return (by magnitude, so the sign stays the
    sign of the difference); None when that return is 0."""
    return value / abs(scale) if scale != 0 else None
