"""Evaluation of trained agents: robustness suites, paired statistics and the typed result.

- :func:`evaluate_conditions`: one agent, named conditions, paired episodes (simple API).
- :func:`evaluate`: several agents (plasticrl or SB3) on nominal + a suite, batched, with bootstrap
  intervals, retained fractions and adaptation curves; returns an :class:`EvaluationResult` (rows of
  :class:`ConditionSummary`, :class:`PlasticityEffect`, :class:`GoalAdaptation`) whose ``to_json()`` is
  ``eval.json``, under one validated :class:`EvalSettings`. Reports of a result are written by
  :mod:`plasticrl.report`; agent files in, report files out is :mod:`plasticrl.experiments.evaluation`.
"""
from plasticrl.eval.result import (
    ConditionCurve,
    ConditionSummary,
    EvaluationResult,
    GoalAdaptation,
    PlasticityEffect,
)
from plasticrl.eval.robustness import ConditionResult, evaluate_conditions
from plasticrl.eval.settings import EvalSettings


def __getattr__(name: str):
    # Lazy: evaluate pulls in scipy, which training does not need.
    if name == "evaluate":
        from plasticrl.eval.evaluate import evaluate

        return evaluate
    raise AttributeError(name)


__all__ = ["ConditionCurve", "ConditionResult", "ConditionSummary", "EvalSettings", "EvaluationResult",
           "GoalAdaptation", "PlasticityEffect", "evaluate", "evaluate_conditions"]
