"""Errors raised by plasticrl.envs, all naming the bad value and the valid choices."""
from __future__ import annotations

from collections.abc import Iterable

from plasticrl.errors import PlasticRLError


class EnvError(PlasticRLError):
    """Invalid environment id, keyword argument, perturbation name, parameter or severity."""


def unknown(what: str, value: object, valid: Iterable[str]) -> EnvError:
    """Build the error for a name that is not one of ``valid``."""
    return EnvError(f"unknown {what} {value!r}; valid choices: {', '.join(sorted(valid))}")
