"""MkDocs hook: give mkdocstrings a source tree with the installed package layout.

setuptools installs ``envs/`` and ``agents/`` as ``plasticrl.envs`` and ``plasticrl.agents``
(``package-dir`` in pyproject.toml). griffe, which mkdocstrings uses to read the sources,
only follows the top-level package of an editable install, so it cannot find those two
subpackages. This hook builds ``build/docs-src/plasticrl/``: symbolic links to every entry of
``plasticrl/`` plus ``envs`` and ``agents`` under their installed names. mkdocs.yml points the
Python handler's ``paths`` at ``build/docs-src``. Nothing is copied; the tree is rebuilt on
every build so that it follows the checkout.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
TREE = ROOT / "build" / "docs-src"
# installed name under plasticrl/ -> folder in the checkout (pyproject.toml's package-dir)
MAPPED_SUBPACKAGES = {"envs": ROOT / "envs", "agents": ROOT / "agents"}


def build_source_tree() -> Path:
    """Recreate ``build/docs-src/plasticrl`` as links into the checkout; return ``build/docs-src``."""
    package = TREE / "plasticrl"
    if TREE.exists():
        shutil.rmtree(TREE)
    package.mkdir(parents=True)
    for entry in (ROOT / "plasticrl").iterdir():
        if entry.name == "__pycache__":
            continue
        (package / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, folder in MAPPED_SUBPACKAGES.items():
        (package / name).symlink_to(folder, target_is_directory=True)
    return TREE


def on_startup(**kwargs: Any) -> None:
    """MkDocs entry point: runs once before the config is read."""
    build_source_tree()


# also at import, so that the tree exists before mkdocstrings reads its ``paths``
build_source_tree()
