"""Perturbations: named, parameterised, composable, per instance, from reset or mid-episode."""
from .spec import TYPES, Perturbation, PerturbationType, make, parse

__all__ = ["TYPES", "Perturbation", "PerturbationType", "make", "parse"]
