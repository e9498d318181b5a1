"""Trained agents shipped inside the package, loaded by name: ``pretrained:NAME``.

``plasticrl/pretrained/index.json`` lists each agent: its file (next to the index), the env id and
keyword arguments it was trained on, the training config and budget, and the scores recorded when it
was shipped (mean return on named seeds), so that ``plasticrl pretrained`` can show them and a test
can check that the shipped file still earns them.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from plasticrl.errors import PlasticRLError

PREFIX = "pretrained:"


def pretrained_folder() -> Path:
    """The package folder that holds the shipped agents and their index.json."""
    return Path(str(resources.files("plasticrl") / "pretrained"))


def pretrained_index() -> dict[str, dict[str, Any]]:
    """Name -> entry (``file``, ``env_id``, ``env_kwargs``, ``config_name``, ``policy``, ``env_steps``,
    ``scores``, ``note``)."""
    index = pretrained_folder() / "index.json"
    if not index.is_file():
        return {}
    return json.loads(index.read_text())["agents"]


def is_pretrained(path: str | Path) -> bool:
    """Whether ``path`` names a shipped agent (``pretrained:NAME``)."""
    return str(path).startswith(PREFIX)


def resolve_pretrained(path: str | Path) -> Path:
    """The file of the shipped agent ``pretrained:NAME``; an unknown name lists the valid ones."""
    name = str(path)[len(PREFIX):]
    index = pretrained_index()
    if name not in index:
        raise PlasticRLError(f"unknown pretrained agent {name!r}; valid choices: "
                             f"{', '.join(sorted(index)) or '(none shipped)'} (plasticrl pretrained lists them)")
    return pretrained_folder() / index[name]["file"]

