"""Run directories: one per run, holding everything needed to inspect, resume or deploy it.

    <run_dir>/config.yaml      the fully resolved config as the run started (every default written out)
    <run_dir>/overrides.jsonl  what each --resume changed, one JSON row per resume (appended, never rewritten)
    <run_dir>/versions.json    package versions, Python, platform, core count
    <run_dir>/run.lock         held (flock) by the one process training the run; run.pid names it
    <run_dir>/metrics.jsonl    one JSON row per generation
    <run_dir>/checkpoint.pt    latest trainer state (atomic); what --resume continues from
    <run_dir>/best_agent.pt    best centre by evaluation return; final_agent.pt at the end
    <run_dir>/summary.json     final figures
    <run_dir>/wandb/           the W&B run (offline unless configured otherwise)
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from plasticrl.config import ExperimentConfig, config_from_dict, config_to_dict, load_yaml, set_dotted
from plasticrl.errors import PlasticRLError, check_name
from plasticrl.io import atomic_write_json, atomic_write_text, json_dumps, remove_stale_temporaries

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "overrides.jsonl"
LOCK_FILE = "run.lock"
PID_FILE = "run.pid"
#: run directories this process holds, with the nesting depth (an OS lock taken twice by one process
#: through two descriptors would refuse itself)
_HELD: dict[Path, int] = {}
_PACKAGES = ("plasticrl", "torch", "numpy", "gymnasium", "mujoco", "wandb", "stable-baselines3", "cmaes",
             "pydantic", "ray")


def new_run_dir(base: str | os.PathLike, name: str) -> Path:
    """``<base>/<name>-<YYYYmmdd-HHMMSS>``, suffixed if that already exists; ``name`` must be one
    safe path component (:func:`~plasticrl.errors.check_name`), so the run stays inside ``base``."""
    check_name("run name", name)
    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlasticRLError(f"cannot create the output directory {str(base)!r}: {exc.strerror or exc}") from None
    # mkdir without exist_ok is the atomic claim: two runs started in the same second (or a directory
    # made between a check and the mkdir) take the next suffix instead of failing.
    for n in range(1, 10_000):
        candidate = base / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise PlasticRLError(f"cannot create a run directory in {str(base)!r}: {exc.strerror or exc}") from None
    raise PlasticRLError(f"no free run directory name {name}-{stamp}-N in {str(base)!r}")


@contextmanager
def hold_run(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run directory's exclusive lock for the body (the run's lifetime): a second process that
    trains, resumes or extends the same run is refused with "run DIR is in use by PID N" instead of
    writing the same rows twice. The lock is an OS file lock (``filelock``, ``flock`` on POSIX), so it
    goes with the process: a killed run leaves nothing to clean up. Once held, temporary files of atomic
    writes that a kill interrupted are removed."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _HELD:  # this process holds it already (the CLI holds a resumed run before building its trainer)
        _HELD[key] += 1
        try:
            yield run_dir
        finally:
            _HELD[key] -= 1
        return
    if not run_dir.is_dir():
        raise PlasticRLError(f"run directory {str(run_dir)!r} does not exist")
    try:
        lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
        lock.acquire()
    except Timeout:
        try:
            holder = (run_dir / PID_FILE).read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise PlasticRLError(f"run {str(run_dir)!r} is in use by PID {holder} (a run is trained by one process "
                             f"at a time; wait for it to end or stop it)") from None
    except OSError as exc:
        raise PlasticRLError(f"cannot lock the run directory {str(run_dir)!r}: {exc.strerror or exc}") from None
    _HELD[key] = 1
    try:
        atomic_write_text(run_dir / PID_FILE, f"{os.getpid()}\n")
        remove_stale_temporaries(run_dir)
        yield run_dir
    finally:
        del _HELD[key]
        (run_dir / PID_FILE).unlink(missing_ok=True)
        lock.release()


def package_versions() -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"packages": versions, "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count()}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and other values are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _delete_dotted(tree: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = tree
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def stamp_run(run_dir: str | os.PathLike, config: ExperimentConfig | dict[str, Any], resume: bool = False,
              policy_kernel: str | None = None) -> None:
    """Write what describes the run: a new run gets ``config.yaml`` (fully resolved) and ``versions.json``;
    a resumed run keeps its ``config.yaml`` and appends one row to ``overrides.jsonl`` with the settings
    this resume changes (``changes``, ``previous``, ``removed``) and the versions it runs with, so the
    run's history is never overwritten. :func:`read_run_config_dict` replays the rows. Call it while
    holding the run (:func:`hold_run`). ``policy_kernel`` (what ``policy.kernel: auto`` resolved to on
    this machine: "fused" or "torch") goes into ``versions.json`` and the history row."""
    run_dir = Path(run_dir)
    data = config_to_dict(config) if isinstance(config, ExperimentConfig) else dict(config)
    if not resume or not (run_dir / CONFIG_FILE).is_file():
        atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False))
        versions = package_versions()
        if policy_kernel is not None:
            versions["policy_kernel"] = policy_kernel
        atomic_write_json(run_dir / "versions.json", versions)
        (run_dir / HISTORY_FILE).unlink(missing_ok=True)  # a restarted run starts its history afresh
        return
    before = _flatten(read_run_config_dict(run_dir))
    after = _flatten(data)
    changes = {k: v for k, v in after.items() if k not in before or before[k] != v}
    removed = sorted(k for k in before if k not in after)
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": changes,
           "previous": {k: before.get(k) for k in changes}, "removed": removed,
           "versions": package_versions()["packages"]}
    if policy_kernel is not None:
        row["policy_kernel"] = policy_kernel
    # Appended, not rewritten: a kill can at worst tear this one line, which a reader skips.
    with (run_dir / HISTORY_FILE).open("a") as fh:
        fh.write(json_dumps(row, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_run_config_dict(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's current settings as a mapping: ``config.yaml`` with every ``overrides.jsonl`` row
    applied in order (rows torn by a kill are skipped)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise PlasticRLError(f"{str(run_dir)!r} is not a plasticrl run directory (no {CONFIG_FILE})")
    data = load_yaml(path.read_bytes(), f"run config {str(path)!r}")
    if not isinstance(data, dict):
        raise PlasticRLError(f"run config {str(path)!r} must hold a mapping, not {type(data).__name__}")
    history = Path(run_dir) / HISTORY_FILE
    if history.is_file():
        for line in history.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            for key in row.get("removed", []):
                _delete_dotted(data, key)
            for key, value in (row.get("changes") or {}).items():
                set_dotted(data, key, value)
    return data


def read_run_config(run_dir: Path) -> ExperimentConfig:
    """The run's current :class:`ExperimentConfig` (see :func:`read_run_config_dict`)."""
    path = Path(run_dir) / CONFIG_FILE
    return config_from_dict(read_run_config_dict(run_dir), f"run config {str(path)!r}")
