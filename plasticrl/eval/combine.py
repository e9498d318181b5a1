"""Combine evaluations of different agents on the same paired episodes into one result.

An evaluation is a pure function of the agent, the env (id and keyword arguments), the conditions and
the episode seeds, so agents evaluated apart (trained on different machines, in different sessions)
with the same protocol saw exactly the episodes they would have seen evaluated together: their rows
can be put side by side, compared episode by episode and aggregated over seeds.
:func:`combine_results` checks that protocol (everything that decides which episodes were run and how
they were summarised) and refuses, naming the field and both values, when it differs. A goal-switching
task's oracle, where each result has one, must be the same agent with the same returns; it is kept once.
The derived parts (plasticity effect, goal adaptation) are derived again from the combined rows.
"""
from __future__ import annotations

from collections.abc import Sequence

from plasticrl.errors import PlasticRLError
from plasticrl.eval.evaluate import with_derived
from plasticrl.eval.result import NOT_RECORDED, EvaluationResult

#: header fields that decide which episodes an evaluation ran and how it summarised them
PROTOCOL_FIELDS = ("kind", "env_id", "env_kwargs", "suite", "episodes", "seed", "confidence", "window",
                   "conditions", "reference_conditions", "oracle")


def _differs(field: str, first: object, other: object, sources: Sequence[str], index: int) -> PlasticRLError:
    return PlasticRLError(f"cannot combine {sources[index]} with {sources[0]}: {field} is {other!r} there and "
                          f"{first!r} in {sources[0]}; only evaluations with the same {', '.join(PROTOCOL_FIELDS[1:])} "
                          "and observation std floor ran the same paired episodes")


def _check_protocol(results: Sequence[EvaluationResult], sources: Sequence[str]) -> None:
    first = results[0]
    for i, other in enumerate(results[1:], start=1):
        for field in PROTOCOL_FIELDS:
            if getattr(other, field) != getattr(first, field):
                raise _differs(field, getattr(first, field), getattr(other, field), sources, i)
        if other.recorded_obs_std_floor != first.recorded_obs_std_floor:
            raise _differs("obs_std_floor", first.recorded_obs_std_floor, other.recorded_obs_std_floor, sources, i)
        # the same condition names must be the same perturbations (a suite changed between versions)
        for cond in first.conditions:
            mine = next((r.perturbation for r in first.rows if r.condition == cond), None)
            theirs = next((r.perturbation for r in other.rows if r.condition == cond), None)
            if mine != theirs:
                raise _differs(f"the perturbation of condition {cond!r}", mine, theirs, sources, i)


def combine_results(results: Sequence[EvaluationResult], sources: Sequence[str] | None = None) -> EvaluationResult:
    """One result holding the agents of every result in ``results``, in order (the oracle first).

    ``sources`` name the results in error messages (default ``result 1``, ``result 2``, ...). Raises
    :class:`~plasticrl.errors.PlasticRLError` when fewer than two results are given, when their protocol
    differs (see :data:`PROTOCOL_FIELDS`; also the observation std floor and each condition's
    perturbation), when an agent label appears in two of them, or when their oracles' returns differ.
    """
    names = list(sources) if sources is not None else [f"result {i + 1}" for i in range(len(results))]
    if len(names) != len(results):
        raise PlasticRLError(f"{len(names)} source names for {len(results)} results")
    if len(results) < 2:
        raise PlasticRLError(f"combining needs at least two evaluations; got {len(results)}")
    _check_protocol(results, names)
    oracle = results[0].oracle
    seen: dict[str, str] = {}
    agents: list[str] = []
    rows, curves = [], []
    for name, result in zip(names, results):
        for agent in result.agents:
            if agent == oracle and oracle in seen:
                if result.rows_of(agent) != results[0].rows_of(agent):
                    raise PlasticRLError(f"cannot combine {name} with {names[0]}: their oracle {agent!r} returned "
                                         "different episodes (a different oracle file under the same name?)")
                continue
            if agent in seen:
                raise PlasticRLError(f"agent {agent!r} is in both {seen[agent]} and {name}; evaluate one of them "
                                     "again with another --name")
            seen[agent] = name
            agents.append(agent)
            rows += result.rows_of(agent)
            curves += [c for c in result.curves if c.agent == agent]
    recorded = next((r.obs_std_floor for r in results if r.obs_std_floor is not NOT_RECORDED), NOT_RECORDED)
    combined = results[0].replace(agents=tuple(agents), rows=tuple(rows), curves=tuple(curves),
                                  obs_std_floor=recorded, plasticity_effect=(), goal_adaptation=())
    return with_derived(combined)
