"""User-facing validation helpers: every error names the bad value and the valid choices."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

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


#: a name that becomes one path component: no separators, no "..", nothing hidden
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
NAME_RULE = "letters, digits, '-', '_' and '.', not starting with '.', at most 100 characters"


def check_name(what: str, value: object) -> str:
    """Return ``value`` if it is safe as a single directory name (see :data:`NAME_RULE`); otherwise
    raise naming it. Run and experiment names become directories under ``--out``, so a slash,
    ``..`` or an absolute path would write elsewhere."""
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return value
    shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else \
        f"{value[:60]!r}... ({len(value)} characters)"
    raise PlasticRLError(f"{what} {shown} cannot name a directory; allowed: {NAME_RULE}")


def validation_error(exc: Any, source: str, prefix: Sequence[str] = (), union_tags: Iterable[str] = (),
                     valid_keys: Callable[[list[str]], list[str]] | None = None,
                     name_location: Callable[[list[str]], str] | None = None) -> PlasticRLError:
    """The one way a pydantic ``ValidationError`` reaches a user: ``invalid SOURCE: key: message (got
    value)``, one line for one problem, one line per problem otherwise.

    ``prefix``: path components put before each location (``["ppo"]``); ``union_tags``: discriminator
    values pydantic inserts into locations, dropped from them; ``valid_keys(parent)``: the keys valid
    under ``parent``, named when a key is unknown; ``name_location(loc)``: how a location is written
    (default: its components joined by dots), e.g. as the command-line option the user typed.
    """
    tags = set(union_tags)
    lines = []
    for err in exc.errors():
        loc = [*prefix, *(str(p) for p in err["loc"] if str(p) not in tags)]
        msg = err["msg"]
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        if err["type"] == "value_error":  # our validators' messages name the value already
            msg, got = str(err.get("ctx", {}).get("error", msg)), ""
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("discriminator", "kind").strip("'")
            choices = err.get("ctx", {}).get("expected_tags", "")
            value = err["input"].get(tag) if isinstance(err["input"], dict) else err["input"]
            msg, got = f"unknown {tag} {value!r}; valid choices: {choices.replace(chr(39), '')}", ""
        elif err["type"] == "extra_forbidden" and valid_keys is not None:
            valid = valid_keys(loc[:-1])
            msg = "unknown key" + (f"; valid keys: {', '.join(valid)}" if valid else "")
        where = (name_location(loc) if name_location is not None else '.'.join(loc)) if loc else ""
        lines.append(f"{where}: {msg}{got}" if where else f"{msg}{got}")
    if len(lines) == 1:
        return PlasticRLError(f"invalid {source}: {lines[0]}")
    return PlasticRLError(f"invalid {source}:\n  " + "\n  ".join(lines))
