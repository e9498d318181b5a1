"""Train a Stable-Baselines3 baseline on a plasticrl env and save it for ``plasticrl eval``.

The run directory mirrors the ES trainer's: ``config.yaml``, ``metrics.jsonl`` (``env_steps``,
``eval_return_mean`` of deterministic nominal episodes on held-out seeds, ``train_return_mean``),
``model.zip`` + ``model.json`` and the W&B run (offline by default). With ``train_perturbations``
every training episode is drawn from the env's ``train`` distribution (domain randomisation),
the same distribution the ES trainer uses, so the baselines see what the plastic agent saw.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from plasticrl.baselines.hyperparams import hyperparams, sb3_kwargs
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_write_json, atomic_write_text

#: eval episodes use seeds far from the training seeds so the score is on unseen initial states
EVAL_SEED_OFFSET = 1_000_000


class TrainDistribution(gym.Wrapper):
    """Each reset draws a fresh condition from the env's ``train`` distribution (seeded generator)."""

    def __init__(self, env: gym.Env, env_id: str, seed: int):
        super().__init__(env)
        self.env_id = env_id
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        from plasticrl.envs import sample_train

        options = dict(options or {})
        options["perturbation"] = sample_train(self.env_id, 1, self.rng)[0]
        return self.env.reset(seed=seed, options=options)


def make_env(env_id: str, env_kwargs: dict[str, Any], seed: int, train_perturbations: bool) -> gym.Env:
    """One monitored training env (``plasticrl/<env_id>``), optionally under domain randomisation."""
    from stable_baselines3.common.monitor import Monitor

    import plasticrl.envs  # noqa: F401 - registers the plasticrl/<id> Gymnasium ids

    kwargs = dict(env_kwargs)
    max_steps = kwargs.pop("max_episode_steps", None)
    env = gym.make(f"plasticrl/{env_id}", max_episode_steps=max_steps, **kwargs)
    if train_perturbations:
        env = TrainDistribution(env, env_id, seed)
    return Monitor(env)


def obs_norm_dict(vec_normalize) -> dict[str, Any] | None:
    """Frozen observation statistics of a ``VecNormalize`` (or ``None``), JSON-ready."""
    if vec_normalize is None:
        return None
    rms = vec_normalize.obs_rms
    return {"mean": rms.mean.tolist(), "var": rms.var.tolist(), "clip": float(vec_normalize.clip_obs),
            "epsilon": float(vec_normalize.epsilon)}


def save_model(model, vec_normalize, path: Path, meta: dict[str, Any]) -> Path:
    """``path`` (.zip) plus its JSON sidecar with the algorithm, env and observation statistics."""
    from plasticrl.agents.sb3 import sidecar_path

    model.save(str(path))
    atomic_write_json(sidecar_path(path), {**meta, "obs_norm": obs_norm_dict(vec_normalize)})
    return path


def _evaluate_now(model, vec_normalize, meta: dict[str, Any], episodes: int, seed: int) -> np.ndarray:
    from plasticrl.agents.sb3 import SB3Controller
    from plasticrl.eval.batch import run_batch

    ctrl = SB3Controller(model, "current", {**meta, "obs_norm": obs_norm_dict(vec_normalize)})
    out = run_batch(ctrl, meta["env_id"], [("nominal", None)], episodes, seed, meta["env_kwargs"])
    return out["nominal"].returns


def train_baseline(
    algo: str,
    env_id: str,
    steps: int,
    out_dir: str | Path,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    train_perturbations: bool = False,
    overrides: dict[str, Any] | None = None,
    eval_every: int = 10_000,
    eval_episodes: int = 5,
    wandb_mode: str = "offline",
    device: str = "cpu",
) -> Path:
    """Train ``algo`` for ``steps`` env steps; returns the path of the saved ``model.zip``."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from plasticrl.agents.sb3 import algo_class
    from plasticrl.logging import RunLogger

    if steps < 1:
        raise PlasticRLError(f"steps must be >= 1; got {steps}")
    env_kwargs = dict(env_kwargs or {})
    params = hyperparams(algo, env_id, overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"kind": "sb3-baseline", "algo": algo, "env_id": env_id, "env_kwargs": env_kwargs, "steps": steps,
              "seed": seed, "train_perturbations": train_perturbations, "hyperparams": params,
              "eval_every": eval_every, "eval_episodes": eval_episodes}
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    meta = {"algo": algo, "env_id": env_id, "env_kwargs": env_kwargs, "train_perturbations": train_perturbations}

    venv = DummyVecEnv([lambda: make_env(env_id, env_kwargs, seed, train_perturbations)])
    venv.seed(seed)
    vec_norm = VecNormalize(venv, norm_obs=True, norm_reward=True) if params.get("normalize") else None
    train_env = vec_norm if vec_norm is not None else venv
    model = algo_class(algo)("MlpPolicy", train_env, seed=seed, device=device, verbose=0,
                             **sb3_kwargs(algo, params, int(np.prod(venv.action_space.shape))))
    logger = RunLogger(out, config, wandb_mode=wandb_mode, run_name=out.name, tags=["baseline", algo])

    class _Eval(BaseCallback):
        """Every ``eval_every`` steps (and at the end): deterministic nominal episodes -> metrics.jsonl."""

        def __init__(self):
            super().__init__()
            self.next_eval, self.index = eval_every, 0

        def log_now(self) -> None:
            returns = _evaluate_now(self.model, vec_norm, meta, eval_episodes, seed + EVAL_SEED_OFFSET)
            recent = [ep["r"] for ep in self.model.ep_info_buffer]
            row = {"generation": self.index, "env_steps": int(self.num_timesteps),
                   "eval_return_mean": float(returns.mean()), "eval_return_std": float(returns.std())}
            if recent:
                row["train_return_mean"] = float(np.mean(recent))
            logger.log(row)
            self.index += 1

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += eval_every
                self.log_now()
            return True

    callback = _Eval()
    try:
        model.learn(total_timesteps=steps, callback=callback, progress_bar=False)
        if callback.index == 0 or callback.num_timesteps % eval_every:
            callback.log_now()
        path = save_model(model, vec_norm, out / "model.zip", meta)
        logger.log_artifact(path, name=f"{algo}-{env_id}", kind="model", aliases=["final"])
        summary = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        logger.summary({"final_eval_return": summary["eval_return_mean"], "env_steps": summary["env_steps"]})
    finally:
        logger.finish()
        train_env.close()
    return path
