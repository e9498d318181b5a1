"""Stable-Baselines3 models as batched controllers for ``plasticrl eval``.

A baseline saved by ``plasticrl baseline`` is ``NAME.zip`` (the SB3 model) plus ``NAME.json``
beside it: the algorithm, the env it was trained on and, for algorithms trained under
``VecNormalize``, the frozen observation statistics. Models from elsewhere work too: without
the JSON the algorithm is read from the policy class recorded inside the zip, and observations
are used raw.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from plasticrl.errors import PlasticRLError, check_choice

ALGOS = ("ppo", "sac", "td3")


def algo_class(algo: str):
    """The SB3 class of ``algo`` (one of :data:`ALGOS`)."""
    import stable_baselines3 as sb3

    check_choice("algorithm", algo, ALGOS)
    return {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]


def sidecar_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def _algo_from_zip(path: Path) -> str:
    # SB3 stores the policy class under data["policy_class"]; its module names the algorithm
    # (e.g. stable_baselines3.sac.policies), which is enough to pick the loader.
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
        module = data["policy_class"].get("__module__", "")
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise PlasticRLError(f"{str(path)!r} is not a Stable-Baselines3 model zip ({exc})") from exc
    for algo in ALGOS:
        if f".{algo}." in f"{module}.":
            return algo
    raise PlasticRLError(f"cannot tell the algorithm of {str(path)!r} (policy module {module!r}); "
                         f"supported: {', '.join(ALGOS)}")


class SB3Controller:
    """Deterministic actions of an SB3 model for a batch of observations; no within-episode learning."""

    def __init__(self, model, name: str, meta: dict[str, Any]):
        self.model = model
        self.name = name
        self.meta = meta
        self.env_id = meta.get("env_id")
        self.env_kwargs = dict(meta.get("env_kwargs") or {})
        norm = meta.get("obs_norm")
        # (mean, scale, clip) as VecNormalize applies them: clip((obs - mean) / sqrt(var + eps))
        self._norm = None if not norm else (np.asarray(norm["mean"]),
                                            np.sqrt(np.asarray(norm["var"]) + norm["epsilon"]), float(norm["clip"]))
        self._invalid = np.zeros(0, dtype=bool)

    @classmethod
    def load(cls, path: str | Path, name: str | None = None, device: str = "cpu") -> "SB3Controller":
        path = Path(path)
        if not path.is_file():
            raise PlasticRLError(f"model file {str(path)!r} does not exist")
        side = sidecar_path(path)
        meta = json.loads(side.read_text()) if side.is_file() else {"algo": _algo_from_zip(path)}
        model = algo_class(meta["algo"]).load(str(path), device=device)
        return cls(model, name or path.stem, meta)

    def start(self, rows: int) -> None:
        self._invalid = np.zeros(rows, dtype=bool)

    def act(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        if self._norm is not None:
            mean, scale, clip = self._norm
            x = np.clip((x - mean) / scale, -clip, clip)
        actions, _ = self.model.predict(x.astype(np.float32), deterministic=True)
        actions = np.asarray(actions, dtype=np.float64).reshape(x.shape[0], -1)
        bad = ~np.isfinite(actions).all(axis=1)
        self._invalid |= bad
        # A non-finite action would poison the physics of that row; hold it at zero instead.
        actions[bad] = 0.0
        space = self.model.action_space
        return np.clip(actions, space.low, space.high)

    def learn(self, reward: np.ndarray) -> None:  # SB3 policies are fixed during evaluation
        return None

    def invalid(self) -> np.ndarray:
        return self._invalid.copy()
