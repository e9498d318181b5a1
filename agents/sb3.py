"""Stable-Baselines3 models as batched controllers for ``plasticrl eval``.

A baseline saved by ``plasticrl baseline`` is ``NAME.zip`` (the SB3 model) plus ``NAME.json``
beside it: the algorithm, the env it was trained on and, for algorithms trained under
``VecNormalize``, the frozen observation statistics. Models from elsewhere work too: without
the JSON the algorithm is read from the policy class recorded inside the zip, the env comes
from ``--env``, and observations are used raw.

Loading never unpickles. SB3 stores every attribute it cannot write as JSON as a cloudpickle
(a ``:serialized:`` entry of the zip's ``data``), and unpickling runs whatever code the file
names. :func:`load_sb3_model` instead rebuilds each such entry from what plasticrl knows (the
spaces from the env, the policy class from the algorithm, schedules and policy keyword
arguments from the entry's plain-text description) and hands them to SB3's ``load`` as
``custom_objects``, which SB3 uses in place of the pickle. Weights (``*.pth``) are read by SB3
with ``torch.load(weights_only=True)``, which builds tensors only. An entry plasticrl cannot
rebuild is refused, unless the caller passes ``trust_pickle=True`` (``--trust-pickle``):
then SB3 unpickles that entry, which is only safe for a file from a trusted source.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from plasticrl.errors import PlasticRLError, check_choice

ALGOS = ("ppo", "sac", "td3")

#: zip ``data`` keys that only training reads. When pickled, a model loaded to act gets a neutral
#: stand-in; a resumed baseline passes the real values as ``known``.
TRAINING_STATE = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
                  "ep_success_buffer", "action_noise", "train_freq")
_SCHEDULES = ("lr_schedule", "clip_range", "clip_range_vf")
_TRUST_HINT = "pass --trust-pickle only if you trust where the file came from (unpickling can run code)"


def algo_class(algo: str):
    """The SB3 class of ``algo`` (one of :data:`ALGOS`)."""
    import stable_baselines3 as sb3

    check_choice("algorithm", algo, ALGOS)
    return {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]


def sidecar_path(model_path: Path) -> Path:
    """``NAME.json`` beside ``NAME.zip``: what ``plasticrl baseline`` records about the model."""
    return Path(model_path).with_suffix(".json")


def read_zip_data(source: str | Path | bytes) -> dict[str, Any]:
    """The ``data`` JSON of an SB3 model zip (a path or the zip's bytes), parsed as JSON only."""
    label = "model bytes" if isinstance(source, bytes) else repr(str(source))
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            data = json.loads(zf.read("data"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PlasticRLError(f"{label} is not a Stable-Baselines3 model zip ({exc})") from None
    if not isinstance(data, dict):
        raise PlasticRLError(f"{label} is not a Stable-Baselines3 model zip (its data is not a mapping)")
    return data


def _algo_from_zip(path: Path) -> str:
    # SB3 stores the policy class under data["policy_class"]; its module names the algorithm
    # (e.g. stable_baselines3.sac.policies), which is enough to pick the loader.
    entry = read_zip_data(path).get("policy_class")
    module = entry.get("__module__", "") if isinstance(entry, dict) else ""
    for algo in ALGOS:
        if f".{algo}." in f"{module}.":
            return algo
    if module == "stable_baselines3.common.policies":  # ActorCriticPolicy: of the supported ones, PPO's
        return "ppo"
    raise PlasticRLError(f"cannot tell the algorithm of {str(path)!r} (policy module {module!r}); "
                         f"supported: {', '.join(ALGOS)}")


def env_spaces(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """Observation and action space of ``plasticrl/<env_id>``, the env ``plasticrl baseline`` trains on."""
    import gymnasium as gym

    from plasticrl.envs import make_config

    kwargs = {k: v for k, v in dict(env_kwargs or {}).items() if k != "max_episode_steps"}
    make_config(env_id, **kwargs)  # names the valid env ids and keyword arguments
    env = gym.make(f"plasticrl/{env_id}", **kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_space(key: str, entry: Mapping[str, Any], space: Any) -> Any:
    """``space`` if the pickled space described by ``entry`` has its type, shape and dtype."""
    recorded = (str(entry.get(":type:")).rsplit(".", 1)[-1].rstrip("'>"), entry.get("_shape"), entry.get("dtype"))
    wanted = (type(space).__name__, list(space.shape), str(space.dtype))
    if recorded != wanted:
        raise PlasticRLError(f"the model's {key} is {recorded[0]} of shape {recorded[1]} ({recorded[2]}); the env "
                             f"has {wanted[0]} of shape {wanted[1]} ({wanted[2]}): give the --env it was trained on")
    return space


def _class_from_entry(entry: Mapping[str, Any], candidates: list[type]) -> type | None:
    """The class among ``candidates`` that the pickled-class description ``entry`` names (its module
    and the qualified name of its ``__init__``, both written as text by SB3), else None."""
    init = str(entry.get("__init__", ""))
    for cls in candidates:
        if entry.get("__module__") == cls.__module__ and init.startswith(f"<function {cls.__init__.__qualname__} "):
            return cls
    return None


def _allowed_classes() -> dict[str, type]:
    """Classes a policy's keyword arguments may name: activations, optimisers, feature extractors."""
    import torch
    from stable_baselines3.common import torch_layers

    classes: list[type] = [getattr(torch.nn, n) for n in ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU",
                                                          "Sigmoid", "Softplus", "Identity", "SELU", "Mish")]
    classes += [getattr(torch.optim, n) for n in ("Adam", "AdamW", "SGD", "RMSprop")]
    classes += [torch_layers.FlattenExtractor, torch_layers.NatureCNN, torch_layers.CombinedExtractor]
    return {f"<class '{c.__module__}.{c.__qualname__}'>": c for c in classes}


def _policy_kwargs(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pickled ``policy_kwargs`` dict rebuilt from SB3's text copy of its items (JSON values as
    they are, classes by their recorded name when they are on the allowed list); None if an item
    is neither."""
    if entry.get(":type:") != "<class 'dict'>":
        return None
    allowed = _allowed_classes()
    kwargs: dict[str, Any] = {}
    for key, value in entry.items():
        if key in (":type:", ":serialized:"):
            continue
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            if value not in allowed:
                return None  # an object SB3 could only describe, not one we can rebuild
            value = allowed[value]
        kwargs[key] = value
    return kwargs


_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _schedule(entry: Mapping[str, Any]) -> Any:
    """A pickled ``FloatSchedule`` of a constant or linear schedule, rebuilt from its text form."""
    from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule

    if entry.get(":type:") != "<class 'stable_baselines3.common.utils.FloatSchedule'>":
        return None
    text = str(entry.get("value_schedule", ""))
    match = re.fullmatch(rf"ConstantSchedule\(val={_NUMBER}\)", text)
    if match:
        return FloatSchedule(ConstantSchedule(float(match.group(1))))
    match = re.fullmatch(rf"LinearSchedule\(start={_NUMBER}, end={_NUMBER}, end_fraction={_NUMBER}\)", text)
    if match:
        return FloatSchedule(LinearSchedule(*(float(g) for g in match.groups())))
    return None


def rebuild_serialized(data: Mapping[str, Any], algo: str, spaces: tuple[Any, Any] | None,
                       known: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """``(custom_objects, missing)``: a stand-in for every ``:serialized:`` entry of ``data`` that
    plasticrl can rebuild, and the keys of those it cannot.

    ``spaces`` are the env's (observation, action) spaces (None: unknown); ``known`` gives exact
    values for keys of :data:`TRAINING_STATE` (a resumed run knows its action noise and training
    frequency); without them a model can act but not continue training faithfully."""
    from stable_baselines3.common import buffers
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
    from stable_baselines3.common.utils import FloatSchedule

    known = dict(known or {})
    cls = algo_class(algo)
    # A stored env is never used: SB3 would rebuild it with gym.make, which imports modules by name.
    custom: dict[str, Any] = {"env": None}
    missing: list[str] = []
    for key, entry in data.items():
        if not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        value: Any = None
        if key in known:
            value = known[key]
        elif key in ("observation_space", "action_space"):
            if spaces is not None:
                value = _check_space(key, entry, spaces[0] if key == "observation_space" else spaces[1])
        elif key == "policy_class":
            value = _class_from_entry(entry, list(cls.policy_aliases.values()))
        elif key in ("rollout_buffer_class", "replay_buffer_class"):
            value = _class_from_entry(entry, [buffers.RolloutBuffer, buffers.DictRolloutBuffer,
                                              buffers.ReplayBuffer, buffers.DictReplayBuffer])
        elif key == "policy_kwargs":
            value = _policy_kwargs(entry)
        elif key == "lr_schedule" and isinstance(data.get("learning_rate"), (int, float)):
            value = FloatSchedule(data["learning_rate"])  # what SB3 rebuilds it from anyway
        elif key in _SCHEDULES:
            value = _schedule(entry)
        elif key == "train_freq":
            value = TrainFreq(1, TrainFrequencyUnit.STEP)  # stand-in: read by training only
        elif key in TRAINING_STATE:
            custom[key] = None  # training state: SB3 starts afresh from None
            continue
        if value is None:
            missing.append(key)
        else:
            custom[key] = value
    return custom, missing


def load_sb3_model(source: str | Path | bytes, algo: str, spaces: tuple[Any, Any] | None, *, env: Any = None,
                   device: str = "cpu", known: Mapping[str, Any] | None = None, trust_pickle: bool = False):
    """Load an SB3 model (a zip path or its bytes) without unpickling anything (see the module doc).

    Entries plasticrl cannot rebuild raise :class:`PlasticRLError` naming them, unless
    ``trust_pickle``: then SB3 unpickles just those. ``env`` is passed to SB3 (training resumes
    on it); ``known`` as in :func:`rebuild_serialized`."""
    label = "model bytes" if isinstance(source, bytes) else repr(str(source))
    data = read_zip_data(source)
    try:
        custom, missing = rebuild_serialized(data, algo, spaces, known)
    except PlasticRLError as exc:
        raise PlasticRLError(f"{label}: {exc}") from None
    if missing and not trust_pickle:
        why = " (plasticrl rebuilds the spaces from the env: give --env)" if spaces is None and \
            {"observation_space", "action_space"} & set(missing) else ""
        raise PlasticRLError(f"{label} needs unpickling to load {', '.join(sorted(missing))}{why}; refused, as "
                             f"unpickling can run code: {_TRUST_HINT}")
    try:
        return algo_class(algo).load(io.BytesIO(source) if isinstance(source, bytes) else str(source), env=env,
                                     device=device, custom_objects=custom)
    except Exception as exc:  # noqa: BLE001 - a file from anywhere can fail in any way: one line, no traceback
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise PlasticRLError(f"{label} could not be loaded as an SB3 {algo} model ({detail[:300]})") from None


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
    def load(cls, path: str | Path, name: str | None = None, device: str = "cpu", env_id: str | None = None,
             trust_pickle: bool = False) -> "SB3Controller":
        """Load ``path`` (and its sidecar) without unpickling; ``env_id`` (``--env``) supplies the
        spaces of a model without a sidecar. ``trust_pickle``: see :func:`load_sb3_model`."""
        path = Path(path)
        if not path.is_file():
            raise PlasticRLError(f"model file {str(path)!r} does not exist")
        side = sidecar_path(path)
        if side.is_file():
            try:
                meta = json.loads(side.read_text())
            except (ValueError, OSError) as exc:
                raise PlasticRLError(f"model sidecar {str(side)!r} is not valid JSON ({exc})") from None
            if not isinstance(meta, dict) or not isinstance(meta.get("algo"), str):
                raise PlasticRLError(f"model sidecar {str(side)!r} does not name the algorithm ('algo')")
        else:
            meta = {"algo": _algo_from_zip(path)}
        check_choice("algorithm", meta["algo"], ALGOS)
        spaces_env = meta.get("env_id") or env_id
        env_kwargs = meta.get("env_kwargs") if isinstance(meta.get("env_kwargs"), dict) else {}
        spaces = env_spaces(spaces_env, env_kwargs) if spaces_env else None
        model = load_sb3_model(path, meta["algo"], spaces, device=device, trust_pickle=trust_pickle)
        return cls(model, name or path.stem, meta)

    def start(self, rows: int, seeds: list[int] | None = None) -> None:
        """Fresh episodes for ``rows`` rows; an SB3 model has no per-episode state (``seeds`` unused)."""
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
