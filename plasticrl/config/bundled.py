"""The configs that ship inside the package: ``plasticrl train halfcheetah/bcm_modulated`` from any directory.

The repository's top-level ``configs/`` folder is the one source: a non-editable install copies it to
``plasticrl/configs`` as package data, and in a checkout (or an editable install) ``plasticrl/configs``
is a symlink to it. A config is named by its path under that folder without ``.yaml``
(``halfcheetah/bcm_modulated``, ``experiments/halfcheetah``, ``demo``); a leading ``configs/`` and a
trailing ``.yaml`` are accepted too, so the repository paths of the README work after an install.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from plasticrl.errors import PlasticRLError

SUFFIX = ".yaml"


def configs_dir() -> Path:
    """The folder of the bundled configs (``plasticrl/configs`` of the installed package)."""
    return Path(__file__).resolve().parent.parent / "configs"


def list_configs() -> list[str]:
    """Names of every bundled config, sorted (``experiments/...`` are experiment specs)."""
    root = configs_dir()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob(f"*{SUFFIX}"))


def bundled_name(name: str) -> str:
    """``name`` as a bundled config name: a leading ``configs/`` and a trailing ``.yaml`` removed."""
    name = name.replace(os.sep, "/")
    if name.startswith("./"):
        name = name[2:]
    if name.startswith("configs/"):
        name = name[len("configs/"):]
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


def bundled_path(name: str) -> Path:
    """The file of the bundled config ``name``; one error line with the close names if there is none."""
    wanted = bundled_name(name)
    names = list_configs()
    if wanted in names:
        return configs_dir() / f"{wanted}{SUFFIX}"
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise PlasticRLError(f"config {name!r} is neither a file nor a bundled config{hint} "
                         f"(`plasticrl configs` lists the {len(names)} bundled ones)")


def resolve_config(name_or_path: str | os.PathLike, relative_to: Path | None = None) -> Path:
    """A config file from a path or a bundled name.

    In order: ``name_or_path`` as a path (absolute, or relative to the working directory); relative to
    ``relative_to`` (an experiment spec's folder); a bundled config of that name. One error line
    naming the value (and close bundled names) when none exists.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if relative_to is not None and not path.is_absolute() and (relative_to / path).is_file():
        return relative_to / path
    if path.is_absolute():
        raise PlasticRLError(f"config file {str(path)!r} does not exist")
    return bundled_path(str(name_or_path))
