"""Evaluation of trained agents: robustness under perturbations (reports come with issue 5)."""
from plasticrl.eval.robustness import ConditionResult, evaluate_conditions

__all__ = ["ConditionResult", "evaluate_conditions"]
