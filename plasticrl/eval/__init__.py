"""Evaluation of trained agents: robustness suites, paired statistics and the typed result.

- :func:`evaluate_conditions`: one agent, named conditions, paired episodes (simple API).
- :func:`evaluate`: several agents (plasticrl or SB3) on nominal + a suite, batched, with bootstrap
  intervals, retained fractions and adaptation curves. Reports of a result are written by
  :mod:`plasticrl.report`; agent files in, report files out is :mod:`plasticrl.experiments.evaluation`.
"""
from plasticrl.eval.robustness import ConditionResult, evaluate_conditions


def __getattr__(name: str):
    # Lazy: evaluate pulls in scipy, which training does not need.
    if name == "evaluate":
        from plasticrl.eval.evaluate import evaluate

        return evaluate
    raise AttributeError(name)


__all__ = ["ConditionResult", "evaluate", "evaluate_conditions"]
