"""Run directories: one per run, holding everything needed to inspect, resume or deploy it.

    <run_dir>/config.yaml      the fully resolved config (every default written out)
    <run_dir>/versions.json    package versions, Python, platform, core count
    <run_dir>/metrics.jsonl    one JSON row per generation
    <run_dir>/checkpoint.pt    latest trainer state (atomic); what --resume continues from
    <run_dir>/best_agent.pt    best centre by evaluation return; final_agent.pt at the end
    <run_dir>/summary.json     final figures
    <run_dir>/wandb/           the W&B run (offline unless configured otherwise)
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from plasticrl.config import ExperimentConfig, config_from_dict, config_to_dict, load_yaml
from plasticrl.errors import PlasticRLError, check_name
from plasticrl.io import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
_PACKAGES = ("plasticrl", "torch", "numpy", "gymnasium", "mujoco", "wandb", "stable-baselines3", "cmaes",
             "pydantic", "ray")


def new_run_dir(base: str | os.PathLike, name: str) -> Path:
    """``<base>/<name>-<YYYYmmdd-HHMMSS>``, suffixed if that already exists; ``name`` must be one
    safe path component (:func:`~plasticrl.errors.check_name`), so the run stays inside ``base``."""
    check_name("run name", name)
    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = base / f"{name}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = base / f"{name}-{stamp}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def package_versions() -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"packages": versions, "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count()}


def write_run_files(run_dir: Path, config: ExperimentConfig, policy_kernel: str | None = None) -> None:
    """Write ``config.yaml`` and ``versions.json``; ``policy_kernel`` (what ``policy.kernel: auto``
    resolved to on this machine: "fused" or "torch") goes into ``versions.json``."""
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(config_to_dict(config), sort_keys=False))
    versions = package_versions()
    if policy_kernel is not None:
        versions["policy_kernel"] = policy_kernel
    atomic_write_json(run_dir / "versions.json", versions)


def read_run_config(run_dir: Path) -> ExperimentConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise PlasticRLError(f"{str(run_dir)!r} is not a plasticrl run directory (no {CONFIG_FILE})")
    data = load_yaml(path.read_bytes(), f"run config {str(path)!r}")
    if not isinstance(data, dict):
        raise PlasticRLError(f"run config {str(path)!r} must hold a mapping, not {type(data).__name__}")
    return config_from_dict(data, f"run config {str(path)!r}")
