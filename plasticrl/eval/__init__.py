"""Evaluation of trained agents: robustness suites, statistics, reports and plots.

- :func:`evaluate_conditions`: one agent, named conditions, paired episodes (simple API).
- :func:`evaluate`: several agents (plasticrl or SB3) on nominal + a suite, batched, with bootstrap
  intervals, retained fractions and adaptation curves; :func:`write_reports` writes the files.
- :func:`evaluate_agents`: agent files in, report files out (what ``plasticrl eval`` does).
"""
from plasticrl.eval.robustness import ConditionResult, evaluate_conditions


def __getattr__(name: str):
    # Lazy: evaluate/write_reports pull in scipy and (for plots) matplotlib, which training does not need.
    if name == "evaluate":
        from plasticrl.eval.evaluate import evaluate

        return evaluate
    if name == "write_reports":
        from plasticrl.eval.report import write_reports

        return write_reports
    if name == "evaluate_agents":
        from plasticrl.eval.run import evaluate_agents

        return evaluate_agents
    raise AttributeError(name)


__all__ = ["ConditionResult", "evaluate", "evaluate_agents", "evaluate_conditions", "write_reports"]
