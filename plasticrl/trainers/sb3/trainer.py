"""Train a Stable-Baselines3 baseline on a plasticrl env and save it for ``plasticrl eval``.

The run directory mirrors the ES trainer's: ``config.yaml``, ``metrics.jsonl`` (``env_steps``,
``eval_return_mean`` of deterministic nominal episodes on held-out seeds, ``train_return_mean``),
``model.zip`` + ``model.json`` and the W&B run (offline by default). ``train_perturbation``
takes the values of the ES trainer's ``env.train_perturbation`` (``'train'``: domain
randomisation; ``'damage'``: damage to the limbs the novel suite leaves intact; or one fixed
perturbation), so a baseline can train under what the plastic agent trained under.
"""
from __future__ import annotations

import io
import json
import math
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from plasticrl.trainers.sb3.hyperparams import ALGOS, hyperparams, sb3_kwargs
from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text
from plasticrl.rollouts.env_setup import check_training_condition
from plasticrl.seeding import SB3_EVAL_SEED_OFFSET
from plasticrl.trainers.runs import hold_run, stamp_run

#: eval episodes use seeds far from the training seeds so the score is on unseen initial states


def check_settings(algo: str, env_id: str, env_kwargs: dict[str, Any] | None = None,
                   train_perturbation: Any = None) -> None:
    """Validate a baseline's algorithm, env id, env kwargs and training condition, so a bad value
    fails with its valid choices before any run directory is made."""
    from plasticrl.envs import make_config

    check_choice("algorithm", algo, ALGOS)
    make_config(env_id, **(env_kwargs or {}))
    if train_perturbation is not None:
        check_training_condition(env_id, train_perturbation)


class TrainingConditions(gym.Wrapper):
    """Each reset sets the episode's condition: a fresh draw from a named training distribution
    (``train``, ``damage``, ``front_legs_short``, ``motor_failure``; seeded generator), or one fixed
    perturbation spec for every episode."""

    def __init__(self, env: gym.Env, env_id: str, spec: Any, seed: int):
        from plasticrl.envs import TRAINING_DISTRIBUTIONS

        super().__init__(env)
        self.env_id = env_id
        self.condition = spec
        self.rng = np.random.default_rng(seed)
        self._sample = TRAINING_DISTRIBUTIONS.get(spec) if isinstance(spec, str) else None
        check_training_condition(env_id, spec)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        options["perturbation"] = self._sample(self.env_id, 1, self.rng)[0] if self._sample else self.condition
        return self.env.reset(seed=seed, options=options)


def make_env(env_id: str, env_kwargs: dict[str, Any], seed: int, train_perturbation: Any = None) -> gym.Env:
    """One monitored training env (``plasticrl/<env_id>``), optionally under a training perturbation
    (a named training distribution such as ``'train'`` or ``'damage'``, or a fixed perturbation spec; see
    :class:`TrainingConditions`)."""
    from stable_baselines3.common.monitor import Monitor

    import plasticrl.envs  # noqa: F401 - registers the plasticrl/<id> Gymnasium ids

    kwargs = dict(env_kwargs)
    max_steps = kwargs.pop("max_episode_steps", None)
    env = gym.make(f"plasticrl/{env_id}", max_episode_steps=max_steps, **kwargs)
    if train_perturbation is not None:
        env = TrainingConditions(env, env_id, train_perturbation, seed)
    return Monitor(env)


def obs_norm_dict(vec_normalize) -> dict[str, Any] | None:
    """Frozen observation statistics of a ``VecNormalize`` (or ``None``), JSON-ready."""
    if vec_normalize is None:
        return None
    rms = vec_normalize.obs_rms
    return {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "clip": float(vec_normalize.clip_obs),
            "epsilon": float(vec_normalize.epsilon)}


def _model_bytes(model) -> bytes:
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def save_model(model, vec_normalize, path: Path, meta: dict[str, Any]) -> Path:
    """``path`` (.zip) plus its JSON sidecar with the algorithm, env and observation statistics.

    Both are written atomically; the sidecar goes first so a zip never pairs with a stale one
    for longer than the rename between them."""
    from plasticrl.agents.sb3 import sidecar_path

    atomic_write_json(sidecar_path(path), {**meta, "obs_norm": obs_norm_dict(vec_normalize)})
    atomic_write_bytes(path, _model_bytes(model))
    return path


#: tag of the checkpoint layout below; a file without it is not one of ours
CHECKPOINT_FORMAT = "plasticrl-sb3-checkpoint/1"
#: arrays of an SB3 ReplayBuffer that hold its transitions (the rest is fixed by the run's settings)
_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
_RMS_FIELDS = ("obs", "ret")


def _tensor(array: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _vec_normalize_state(vec_normalize) -> dict[str, Any] | None:
    """The statistics and settings of a ``VecNormalize``, as tensors and plain numbers."""
    if vec_normalize is None:
        return None
    state: dict[str, Any] = {}
    for field in _RMS_FIELDS:
        rms = getattr(vec_normalize, f"{field}_rms")
        state[f"{field}_mean"] = _tensor(np.asarray(rms.mean, dtype=np.float64))
        state[f"{field}_var"] = _tensor(np.asarray(rms.var, dtype=np.float64))
        state[f"{field}_count"] = float(rms.count)
    for key in ("clip_obs", "clip_reward", "gamma", "epsilon"):
        state[key] = float(getattr(vec_normalize, key))
    for key in ("norm_obs", "norm_reward", "training"):
        state[key] = bool(getattr(vec_normalize, key))
    return state


def _replay_state(buffer) -> dict[str, Any]:
    """The transitions of an SB3 ``ReplayBuffer`` (arrays as tensors) and its write position."""
    arrays = {name: _tensor(getattr(buffer, name)) for name in _REPLAY_ARRAYS
              if isinstance(getattr(buffer, name, None), np.ndarray)}
    return {"arrays": arrays, "pos": int(buffer.pos), "full": bool(buffer.full)}


def write_checkpoint(path: Path, model, vec_normalize, progress: dict[str, Any]) -> Path:
    """Everything a resumed run needs, in one atomically written file that loads without running code.

    A ``torch.save`` of plain data (read back with ``weights_only=True``): the model zip's bytes
    (weights and optimiser states; loaded again without unpickling, see
    :func:`plasticrl.agents.sb3.load_sb3_model`), the recent episode statistics, the
    ``VecNormalize`` statistics and the replay buffer of an off-policy algorithm as tensors, and
    ``progress`` (env steps, evaluation index, best return)."""
    episodes = [{str(k): float(v) for k, v in info.items() if isinstance(v, (int, float, np.number))}
                for info in (model.ep_info_buffer or [])]
    state: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "progress": dict(progress), "model": _model_bytes(model),
                             "ep_info": episodes, "vec_normalize": _vec_normalize_state(vec_normalize),
                             "replay_buffer": None}
    if getattr(model, "replay_buffer", None) is not None:
        state["replay_buffer"] = _replay_state(model.replay_buffer)
    return atomic_torch_save(path, state)


def saved_settings(run_dir: Path) -> dict[str, Any]:
    """A baseline run's ``config.yaml``; runs from before ``train_perturbation`` took a distribution
    name saved the boolean ``train_perturbations`` (True = the ``train`` distribution)."""
    from plasticrl.trainers.runs import read_run_config_dict

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PlasticRLError(f"{str(run_dir)!r}: no config.yaml there (not a baseline run)")
    saved = read_run_config_dict(run_dir)  # config.yaml and what each resume changed (overrides.jsonl)
    needed = ("algo", "env_id", "env_kwargs", "steps", "seed", "hyperparams", "eval_every", "eval_episodes")
    if not isinstance(saved, dict) or saved.get("kind") != "sb3-baseline" or any(k not in saved for k in needed):
        raise PlasticRLError(f"{str(path)!r} is not the config of a plasticrl baseline run (needs kind: sb3-baseline "
                             f"and {', '.join(needed)})")
    if "train_perturbations" in saved:
        saved["train_perturbation"] = "train" if saved.pop("train_perturbations") else None
    saved.setdefault("train_perturbation", None)
    return saved


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The dictionary :func:`write_checkpoint` wrote, read with ``torch.load(weights_only=True)``
    (tensors and plain data only: a crafted file cannot run code)."""
    from plasticrl.io import torch_load

    try:
        state = torch_load(path)
    except PlasticRLError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, one line and no traceback
        detail = " ".join(str(exc).split())[:200]
        raise PlasticRLError(f"cannot read baseline checkpoint {str(path)!r}: not a plasticrl checkpoint of "
                             f"tensors and plain data ({type(exc).__name__}: {detail})") from None
    progress = state.get("progress") if isinstance(state, dict) else None
    ok = (isinstance(progress, dict) and state.get("format") == CHECKPOINT_FORMAT
          and isinstance(state.get("model"), bytes) and isinstance(state.get("ep_info"), list)
          and all(isinstance(progress.get(k), int) for k in ("env_steps", "evaluations"))
          and isinstance(progress.get("best_eval_return"), float) and not math.isnan(progress["best_eval_return"]))
    if not ok:
        raise PlasticRLError(f"{str(path)!r} is not a plasticrl baseline checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def _restore_vec_normalize(state: dict[str, Any], venv):
    """A ``VecNormalize`` around ``venv`` with the settings and statistics of :func:`_vec_normalize_state`."""
    from stable_baselines3.common.vec_env import VecNormalize

    vec_norm = VecNormalize(venv, norm_obs=bool(state["norm_obs"]), norm_reward=bool(state["norm_reward"]),
                            clip_obs=float(state["clip_obs"]), clip_reward=float(state["clip_reward"]),
                            gamma=float(state["gamma"]), epsilon=float(state["epsilon"]),
                            training=bool(state["training"]))
    for field in _RMS_FIELDS:
        rms = getattr(vec_norm, f"{field}_rms")
        mean, var = state[f"{field}_mean"].numpy(), state[f"{field}_var"].numpy()
        # sizes, not shapes: SB3's reward statistics start as shape () and become (n_envs,) once updated
        if mean.size != np.size(rms.mean) or var.size != np.size(rms.var):
            raise PlasticRLError(f"checkpoint's {field} statistics have {mean.size} entries; the env's "
                                 f"{np.size(rms.mean)}")
        rms.mean, rms.var, rms.count = mean.astype(np.float64), var.astype(np.float64), float(state[f"{field}_count"])
    return vec_norm


def _restore_replay(state: dict[str, Any], buffer) -> None:
    """Copy :func:`_replay_state`'s transitions into the freshly built ``buffer`` of the same settings."""
    for name, tensor in state["arrays"].items():
        target = getattr(buffer, name, None) if name in _REPLAY_ARRAYS else None
        array = tensor.numpy()
        if not isinstance(target, np.ndarray) or target.shape != array.shape or target.dtype != array.dtype:
            raise PlasticRLError(f"checkpoint's replay buffer {name} is {array.dtype}{list(array.shape)}; the run's "
                                 f"buffer is {getattr(target, 'dtype', None)}{list(getattr(target, 'shape', []))}")
        np.copyto(target, array)
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])


def _training_objects(algo: str, params: dict[str, Any], action_dim: int, ep_info: list[dict[str, float]],
                      window: int) -> dict[str, Any]:
    """The objects of a baseline's training state that SB3 pickles into its zip, rebuilt from the
    run's settings (what the constructor was given) and the checkpoint's episode statistics."""
    import inspect

    from plasticrl.agents.sb3 import algo_class

    kwargs = sb3_kwargs(algo, params, action_dim)
    signature = inspect.signature(algo_class(algo).__init__).parameters
    known: dict[str, Any] = {"action_noise": kwargs.get("action_noise"),
                             "ep_info_buffer": deque(ep_info, maxlen=window), "ep_success_buffer": deque(maxlen=window)}
    if "train_freq" in signature:
        train_freq = kwargs.get("train_freq", signature["train_freq"].default)
        known["train_freq"] = tuple(train_freq) if isinstance(train_freq, list) else train_freq
    return known


def _evaluate_now(model, vec_normalize, meta: dict[str, Any], episodes: int, seed: int) -> np.ndarray:
    from plasticrl.agents.sb3 import SB3Controller
    from plasticrl.rollouts.batch import run_batch

    ctrl = SB3Controller(model, "current", {**meta, "obs_norm": obs_norm_dict(vec_normalize)})
    out = run_batch(ctrl, meta["env_id"], [("nominal", None)], episodes, seed, meta["env_kwargs"])
    return out["nominal"].returns


CHECKPOINT = "checkpoint.pt"
#: the pickled checkpoint of plasticrl versions before checkpoint.pt; never read (unpickling runs code)
LEGACY_CHECKPOINT = "checkpoint.pkl"
BEST_MODEL = "best_model.zip"
FINAL_MODEL = "model.zip"


def train_baseline(
    algo: str,
    env_id: str,
    steps: int,
    out_dir: str | Path,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    train_perturbation: Any = None,
    overrides: dict[str, Any] | None = None,
    eval_every: int = 10_000,
    eval_episodes: int = 5,
    wandb_mode: str = "offline",
    device: str = "cpu",
    resume: bool = False,
) -> Path:
    """Train ``algo`` for ``steps`` env steps; returns the path of the saved final ``model.zip``.

    At every evaluation the run writes ``checkpoint.pt`` (atomically) and, when the evaluation
    return is the best so far, ``best_model.zip``. ``resume=True`` continues a killed run from its
    checkpoint: same weights, optimiser states, replay buffer, normalisation statistics and step
    count; the episode that was running when it stopped starts afresh, so unlike the ES trainer
    the continuation is not bit-identical to an uninterrupted run.
    """
    if steps < 1:
        raise PlasticRLError(f"steps must be >= 1; got {steps}")
    if eval_every < 1:
        raise PlasticRLError(f"eval_every must be >= 1; got {eval_every}")
    env_kwargs = dict(env_kwargs or {})
    check_settings(algo, env_id, env_kwargs, train_perturbation)
    params = hyperparams(algo, env_id, overrides)
    out = Path(out_dir)
    config = {"kind": "sb3-baseline", "algo": algo, "env_id": env_id, "env_kwargs": env_kwargs, "steps": steps,
              "seed": seed, "train_perturbation": train_perturbation, "hyperparams": params,
              "eval_every": eval_every, "eval_episodes": eval_episodes}
    # Read-only checks first, so that a refused resume leaves the run directory as it was (the writes
    # that could race with this read are atomic renames).
    if resume and not (out / CHECKPOINT).is_file() and (out / LEGACY_CHECKPOINT).is_file():
        raise PlasticRLError(f"{str(out / LEGACY_CHECKPOINT)!r} is a pickled checkpoint of an older plasticrl; it is "
                             f"not read, as unpickling can run code (start the run afresh to get {CHECKPOINT})")
    checkpoint = read_checkpoint(out / CHECKPOINT) if resume and (out / CHECKPOINT).is_file() else None
    if resume and checkpoint is None and not (out / "config.yaml").is_file():
        raise PlasticRLError(f"nothing to resume in {str(out)!r}: no {CHECKPOINT} there")
    if checkpoint is not None:
        saved = saved_settings(out)
        changed = [k for k in config if k != "steps" and saved.get(k) != config[k]]
        if changed:
            raise PlasticRLError(f"cannot resume {str(out)!r} with different settings: {', '.join(changed)} "
                                 f"(only steps may change)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlasticRLError(f"cannot create the run directory {str(out)!r}: {exc.strerror or exc}") from None
    with hold_run(out):
        return _train_baseline_held(algo, env_id, steps, out, seed, env_kwargs, train_perturbation, params, config,
                                    eval_every, eval_episodes, wandb_mode, device, checkpoint)


def _train_baseline_held(algo: str, env_id: str, steps: int, out: Path, seed: int, env_kwargs: dict[str, Any],
                         train_perturbation: Any, params: dict[str, Any], config: dict[str, Any], eval_every: int,
                         eval_episodes: int, wandb_mode: str, device: str, checkpoint: dict[str, Any] | None
                         ) -> Path:
    """:func:`train_baseline` once its settings (and checkpoint, to resume from) are checked and its run
    directory is held."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from plasticrl.agents.sb3 import algo_class
    from plasticrl.trainers.logger import RunLogger

    # A run killed before its first checkpoint (config.yaml only) starts again from step 0.
    stamp_run(out, config, resume=checkpoint is not None)
    meta = {"algo": algo, "env_id": env_id, "env_kwargs": env_kwargs, "train_perturbation": train_perturbation}

    venv = DummyVecEnv([lambda: make_env(env_id, env_kwargs, seed, train_perturbation)])
    venv.seed(seed)
    progress = {"env_steps": 0, "evaluations": 0, "best_eval_return": -float("inf")}
    if checkpoint is None:
        vec_norm = VecNormalize(venv, norm_obs=True, norm_reward=True) if params.get("normalize") else None
        train_env = vec_norm if vec_norm is not None else venv
        model = algo_class(algo)("MlpPolicy", train_env, seed=seed, device=device, verbose=0,
                                 **sb3_kwargs(algo, params, int(np.prod(venv.action_space.shape))))
    else:
        from plasticrl.agents.sb3 import load_sb3_model, read_zip_data

        progress.update(checkpoint["progress"])
        vec_norm = None
        if checkpoint["vec_normalize"] is not None:
            vec_norm = _restore_vec_normalize(checkpoint["vec_normalize"], venv)
        train_env = vec_norm if vec_norm is not None else venv
        window = read_zip_data(checkpoint["model"]).get("_stats_window_size", 100)
        known = _training_objects(algo, params, int(np.prod(venv.action_space.shape)), checkpoint["ep_info"],
                                  window if isinstance(window, int) and window > 0 else 100)
        model = load_sb3_model(checkpoint["model"], algo, (venv.observation_space, venv.action_space), env=train_env,
                               device=device, known=known)
        if checkpoint["replay_buffer"] is not None:
            _restore_replay(checkpoint["replay_buffer"], model.replay_buffer)
    logger = RunLogger(out, config, wandb_mode=wandb_mode, run_name=out.name, tags=["baseline", algo],
                       run_id=_wandb_id(out), resume_from_generation=(progress["evaluations"] - 1
                                                                      if checkpoint is not None else None))

    class _Eval(BaseCallback):
        """Every ``eval_every`` steps (and at the end): deterministic nominal episodes -> metrics.jsonl,
        the best model so far, and a checkpoint."""

        def __init__(self):
            super().__init__()
            self.next_eval = (progress["env_steps"] // eval_every + 1) * eval_every

        def log_now(self) -> None:
            returns = _evaluate_now(self.model, vec_norm, meta, eval_episodes, seed + SB3_EVAL_SEED_OFFSET)
            recent = [ep["r"] for ep in self.model.ep_info_buffer]
            row = {"generation": progress["evaluations"], "env_steps": int(self.num_timesteps),
                   "eval_return_mean": float(returns.mean()), "eval_return_std": float(returns.std())}
            if recent:
                row["train_return_mean"] = float(np.mean(recent))
            logger.log(row)
            if row["eval_return_mean"] > progress["best_eval_return"]:
                progress["best_eval_return"] = row["eval_return_mean"]
                save_model(self.model, vec_norm, out / BEST_MODEL, {**meta, "env_steps": row["env_steps"]})
            progress["evaluations"] += 1
            progress["env_steps"] = int(self.num_timesteps)
            write_checkpoint(out / CHECKPOINT, self.model, vec_norm, dict(progress))

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += eval_every
                self.log_now()
            return True

    callback = _Eval()
    try:
        remaining = steps - progress["env_steps"]
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callback, progress_bar=False,
                        reset_num_timesteps=checkpoint is None)
        if progress["evaluations"] == 0 or model.num_timesteps % eval_every:
            callback.log_now()
        path = save_model(model, vec_norm, out / FINAL_MODEL, {**meta, "env_steps": int(model.num_timesteps)})
        logger.log_artifact(path, name=f"{algo}-{env_id}", kind="model", aliases=["final"])
        logger.log_artifact(out / BEST_MODEL, name=f"{algo}-{env_id}-best", kind="model", aliases=["best"])
        summary = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        logger.summary({"final_eval_return": summary["eval_return_mean"], "env_steps": summary["env_steps"],
                        "best_eval_return": progress["best_eval_return"]})
    finally:
        logger.finish()
        train_env.close()
    return path


def _wandb_id(run_dir: Path) -> str:
    """A W&B run id kept in the run directory, so a resumed baseline logs to the same W&B run."""
    path = run_dir / "wandb_id.txt"
    if path.is_file():
        return path.read_text().strip()
    import uuid

    run_id = uuid.uuid4().hex[:12]
    atomic_write_text(path, run_id + "\n")
    return run_id
