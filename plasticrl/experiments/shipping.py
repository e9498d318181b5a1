"""Shipping trained agents with plasticrl (for maintainers): copy an agent into the package's
``pretrained/`` folder and record its env, training config, budget and the nominal score it earns on
named seeds, which ``tests/test_pretrained.py`` checks the shipped file still earns."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.pretrained import pretrained_folder



def nominal_score(path: str | Path, episodes: int, seed: int) -> float:
    """Mean return of an agent on its own task (the env id and keyword arguments it was trained
    with), nominal condition, over the paired episodes ``seed .. seed + episodes - 1``."""
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import load_controller

    controller = load_controller(path)
    batches = run_batch(controller, controller.env_id, [("nominal", None)], episodes, seed,
                        env_kwargs=controller.env_kwargs)
    nominal = batches["nominal"]
    if nominal.invalid.any():
        raise PlasticRLError(f"{str(path)!r} produced {int(nominal.invalid.sum())} invalid episodes; not shippable")
    return float(nominal.returns.mean())


def ship_agent(path: str | Path, name: str, note: str, episodes: int = 5, seed: int = 10_000,
               folder: Path | None = None) -> dict[str, Any]:
    """Copy an agent file into the shipped folder (``folder``, default the package's) under ``name``
    and record its entry: env, training config and budget (from the file's metadata), and its nominal
    score on ``episodes`` paired episodes from ``seed``. For maintainers; returns the entry."""
    import shutil

    from plasticrl.errors import check_name
    from plasticrl.io import atomic_write_json
    from plasticrl.rollouts.saved_agent import load

    check_name("pretrained agent name", name)
    agent = load(path)
    meta = agent.metadata
    folder = pretrained_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(path) if not Path(path).is_dir() else Path(path) / "best_agent.pt"
    shutil.copyfile(source, folder / f"{name}.pt")
    entry = {
        "file": f"{name}.pt", "env_id": meta.get("env_id"), "env_kwargs": meta.get("env_kwargs") or {},
        "config_name": meta.get("config_name"), "env_steps": meta.get("env_steps"), "note": note,
        "policy": agent.policy_config.model_dump(mode="json") if hasattr(agent.policy_config, "model_dump")
        else dict(agent.policy_config),
        "scores": {"mean_return": nominal_score(folder / f"{name}.pt", episodes, seed), "episodes": episodes,
                   "seed": seed, "condition": "nominal"},
    }
    index_path = folder / "index.json"
    data = json.loads(index_path.read_text()) if index_path.is_file() else {"format": 1, "agents": {}}
    data["agents"][name] = entry
    atomic_write_json(index_path, data)
    return entry
