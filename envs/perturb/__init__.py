"""Perturbations: named, parameterised, composable, per instance, from reset or mid-episode."""
from .dynamics import register_model_edit
from .spec import TYPES, Param, Perturbation, PerturbationType, make, parse

__all__ = ["TYPES", "Param", "Perturbation", "PerturbationType", "make", "parse", "register_model_edit"]
