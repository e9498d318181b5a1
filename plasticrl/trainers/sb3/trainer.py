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
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from plasticrl.trainers.sb3.hyperparams import ALGOS, hyperparams, sb3_kwargs
from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.seeding import SB3_EVAL_SEED_OFFSET
from plasticrl.io import atomic_write_bytes, atomic_write_json, atomic_write_text

#: eval episodes use seeds far from the training seeds so the score is on unseen initial states


def check_training_condition(env_id: str, spec: Any) -> None:
    """Raise, naming the bad value, if ``spec`` is neither a training distribution that ``env_id``
    has (``damage`` needs a damage table) nor one perturbation spec."""
    from plasticrl.envs import TRAINING_DISTRIBUTIONS, parse

    if isinstance(spec, str) and spec in TRAINING_DISTRIBUTIONS:
        TRAINING_DISTRIBUTIONS[spec](env_id, 1, np.random.default_rng(0))
        return
    try:
        parse(spec)
    except PlasticRLError as exc:
        raise PlasticRLError(f"unknown training perturbation {spec!r}; valid choices: "
                             f"{', '.join(TRAINING_DISTRIBUTIONS)} or one perturbation ({exc})") from None


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
    """Each reset sets the episode's condition: a fresh draw from the env's ``train`` or ``damage``
    distribution (seeded generator), or one fixed perturbation spec for every episode."""

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
    (``'train'``, ``'damage'`` or a fixed perturbation spec; see :class:`TrainingConditions`)."""
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


def write_checkpoint(path: Path, model, vec_normalize, progress: dict[str, Any]) -> Path:
    """Everything a resumed run needs, in one atomically written file.

    The model zip (weights and optimiser states), the replay buffer of an off-policy algorithm,
    the ``VecNormalize`` statistics and ``progress`` (env steps, evaluation index, best return)."""
    state: dict[str, Any] = {"progress": progress, "model": _model_bytes(model),
                             "vec_normalize": pickle.dumps(vec_normalize) if vec_normalize is not None else None,
                             "replay_buffer": None}
    if getattr(model, "replay_buffer", None) is not None:
        buffer = io.BytesIO()
        model.save_replay_buffer(buffer)
        state["replay_buffer"] = buffer.getvalue()
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def saved_settings(run_dir: Path) -> dict[str, Any]:
    """A baseline run's ``config.yaml``; runs from before ``train_perturbation`` took a distribution
    name saved the boolean ``train_perturbations`` (True = the ``train`` distribution)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PlasticRLError(f"{str(run_dir)!r}: no config.yaml there (not a baseline run)")
    saved = yaml.safe_load(path.read_text())
    if "train_perturbations" in saved:
        saved["train_perturbation"] = "train" if saved.pop("train_perturbations") else None
    return saved


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The dictionary :func:`write_checkpoint` wrote (our own file: unpickled as trusted)."""
    try:
        state = pickle.loads(Path(path).read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise PlasticRLError(f"cannot read baseline checkpoint {str(path)!r}: {exc}") from exc
    if not isinstance(state, dict) or "progress" not in state:
        raise PlasticRLError(f"{str(path)!r} is not a plasticrl baseline checkpoint")
    return state


def _evaluate_now(model, vec_normalize, meta: dict[str, Any], episodes: int, seed: int) -> np.ndarray:
    from plasticrl.agents.sb3 import SB3Controller
    from plasticrl.rollouts.batch import run_batch

    ctrl = SB3Controller(model, "current", {**meta, "obs_norm": obs_norm_dict(vec_normalize)})
    out = run_batch(ctrl, meta["env_id"], [("nominal", None)], episodes, seed, meta["env_kwargs"])
    return out["nominal"].returns


CHECKPOINT = "checkpoint.pkl"
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

    At every evaluation the run writes ``checkpoint.pkl`` (atomically) and, when the evaluation
    return is the best so far, ``best_model.zip``. ``resume=True`` continues a killed run from its
    checkpoint: same weights, optimiser states, replay buffer, normalisation statistics and step
    count; the episode that was running when it stopped starts afresh, so unlike the ES trainer
    the continuation is not bit-identical to an uninterrupted run.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from plasticrl.agents.sb3 import algo_class
    from plasticrl.trainers.logger import RunLogger

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
    checkpoint = read_checkpoint(out / CHECKPOINT) if resume and (out / CHECKPOINT).is_file() else None
    if resume and checkpoint is None:
        raise PlasticRLError(f"nothing to resume in {str(out)!r}: no {CHECKPOINT} there")
    if checkpoint is not None:
        saved = saved_settings(out)
        changed = [k for k in config if k != "steps" and saved.get(k) != config[k]]
        if changed:
            raise PlasticRLError(f"cannot resume {str(out)!r} with different settings: {', '.join(changed)} "
                                 f"(only steps may change)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
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
        progress.update(checkpoint["progress"])
        vec_norm = None
        if checkpoint["vec_normalize"] is not None:
            vec_norm = pickle.loads(checkpoint["vec_normalize"])
            vec_norm.set_venv(venv)
        train_env = vec_norm if vec_norm is not None else venv
        model = algo_class(algo).load(io.BytesIO(checkpoint["model"]), env=train_env, device=device)
        if checkpoint["replay_buffer"] is not None:
            model.load_replay_buffer(io.BytesIO(checkpoint["replay_buffer"]))
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
