"""User-facing validation helpers: every error names the bad value and the valid choices."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


class PlasticRLError(ValueError):
    """Raised for invalid user input (names, shapes, parameter values)."""


def check_choice(what: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise naming both."""
    valid = sorted(choices)
    if value not in valid:
        raise PlasticRLError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
    return value  # type: ignore[return-value]


def check_shape(what: str, tensor: torch.Tensor, expected: Sequence[int | None]) -> None:
    """Raise if ``tensor`` does not match ``expected`` (``None`` matches any size)."""
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        pretty = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise PlasticRLError(f"{what} has shape {list(shape)}; expected {pretty}")
