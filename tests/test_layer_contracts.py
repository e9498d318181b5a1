"""The import-linter contracts of pyproject.toml cover every core module: a new top-level module or
sub-package must be placed in a layer, and none may import the seed studies."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plasticrl"
#: not part of the import graph's layers: the seed studies (kept apart by their own contract), the
#: shipped agent files and the bundled configs (data only)
OUTSIDE_LAYERS = {"studies", "pretrained", "configs"}


def _core_modules() -> set[str]:
    names = set()
    for entry in PACKAGE.iterdir():
        if entry.name.startswith(("_", ".")) or entry.name in OUTSIDE_LAYERS:
            continue
        if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").is_file()):
            names.add(f"plasticrl.{entry.stem}")
    return names


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {c["type"]: c for c in config["contracts"]}


def test_every_core_module_is_in_a_layer():
    layered = {name.strip() for layer in _contracts()["layers"]["layers"] for name in layer.split(":")}
    assert _core_modules() - layered == set()
    assert "plasticrl.studies" not in layered


def test_no_core_module_may_import_the_seed_studies():
    forbidden = _contracts()["forbidden"]
    assert forbidden["forbidden_modules"] == ["plasticrl.studies"]
    assert _core_modules() - set(forbidden["source_modules"]) == set()

