"""Train a Stable-Baselines3 baseline on a plasticrl env and save it for ``plasticrl eval``.

The run directory mirrors the ES trainer's: ``config.yaml``, ``metrics.jsonl`` (``env_steps``,
``eval_return_mean`` of deterministic nominal episodes on held-out seeds, ``train_return_mean``),
``model.zip`` + ``model.json``, ``best_model.zip``, ``checkpoint.pt``, ``summary.json`` and the W&B
run (offline by default). ``train_perturbation`` takes the values of the ES trainer's
``env.train_perturbation`` (``'train'``: domain randomisation; ``'damage'``: damage to the limbs the
novel suite leaves intact; or one fixed perturbation), so a baseline can train under what the
plastic agent trained under.

The run's lifecycle is :class:`plasticrl.trainers.lifecycle.RunLoop`'s, as for ES and PPO. One step
of :class:`SB3Trainer` is one *chunk*: ``model.learn(n, reset_num_timesteps=False)`` up to the next
multiple of the chunk size, which is ``eval_every`` rounded up to whole collection units (PPO: one
rollout of ``n_steps`` x envs; SAC/TD3: ``train_freq`` steps), so the chunked run collects and
updates exactly as one ``learn`` call over the whole budget would (learning-rate and clip-range
*schedules*, which the JSON hyperparameters cannot express, would see a per-chunk horizon). Every
chunk ends with an evaluation (one metrics row each), the best model so far and a checkpoint.
"""
from __future__ import annotations

import inspect
import io
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from plasticrl.trainers.sb3.hyperparams import ALGOS, hyperparams, sb3_kwargs
from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.io import atomic_torch_save, atomic_write_bytes, atomic_write_json
from plasticrl.rollouts.env_setup import check_training_condition
from plasticrl.seeding import SB3_EVAL_SEED_OFFSET
from plasticrl.trainers.lifecycle import BestEvaluation, Callback, RunLoop, RunSchedule, RunState, default_wandb_id
from plasticrl.trainers.logger import RunLogger
from plasticrl.trainers.runs import CHECKPOINT_FILE, stamp_run

#: the baselines train on one env (a DummyVecEnv of one)
N_ENVS = 1


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


def _silence_logger(model) -> None:
    """Give ``model`` a logger with no outputs. Without one, every ``model.learn`` call configures SB3's
    default logger, which creates an empty ``SB3-<time>`` folder in the system temp dir (one per chunk);
    plasticrl logs the chunks itself (metrics.jsonl, W&B)."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))


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
    (tensors and plain data only: a crafted file cannot run code; :func:`plasticrl.io.torch_load` says
    in one line why a file is not that)."""
    from plasticrl.io import torch_load

    state = torch_load(path)
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


CHECKPOINT = CHECKPOINT_FILE
#: the pickled checkpoint of plasticrl versions before checkpoint.pt; never read (unpickling runs code)
LEGACY_CHECKPOINT = "checkpoint.pkl"
BEST_MODEL = "best_model.zip"
FINAL_MODEL = "model.zip"


def chunk_size(algo: str, params: dict[str, Any], eval_every: int) -> int:
    """Env steps per chunk (one :class:`SB3Trainer` step): ``eval_every`` rounded up to whole units of
    what one ``collect_rollouts`` gathers before SB3 updates (PPO: ``n_steps`` x envs; SAC/TD3:
    ``train_freq`` steps x envs, or 1 for a ``train_freq`` in episodes, which always ends at an
    episode end), so a chunk boundary is a boundary of SB3's own loop."""
    from plasticrl.agents.sb3 import algo_class

    signature = inspect.signature(algo_class(algo).__init__).parameters

    def setting(name: str) -> Any:
        return params.get(name, signature[name].default)

    if algo == "ppo":
        unit = int(setting("n_steps")) * N_ENVS
    else:
        freq = setting("train_freq")
        count, what = (freq[0], freq[1]) if isinstance(freq, (list, tuple)) else (freq, "step")
        unit = int(count) * N_ENVS if what == "step" else 1
    return -(-eval_every // unit) * unit


@dataclass(kw_only=True)
class SB3State(RunState):
    """The state of a baseline between chunks (with :class:`RunState`'s counters; ``generation``
    counts chunks, each one evaluation). ``best.genome`` stays None: the best model is
    ``best_model.zip``."""

    model: Any = None
    """The SB3 algorithm: weights, optimiser states, the replay buffer (SAC/TD3), episode statistics
    and the observation the next chunk continues from."""
    vec_normalize: Any = None
    """The ``VecNormalize`` the model trains through (PPO, rl-zoo setting), or None."""

    def progress(self) -> dict[str, Any]:
        """The checkpoint's ``progress`` entry (plain data; ``evaluations`` counts chunks)."""
        return {"env_steps": self.env_steps, "evaluations": self.generation,
                "best_eval_return": float(self.best.eval_return), "best_generation": self.best.generation,
                "elapsed": self.elapsed, "wandb_id": self.wandb_id}


class SB3Trainer(RunLoop):
    """One baseline run on the shared run loop; built by :func:`train_baseline` once its settings are
    checked (module doc)."""

    step_name = "chunks"
    best_agent_file = BEST_MODEL
    final_agent_file = FINAL_MODEL

    def __init__(self, settings: dict[str, Any], run_dir: Path, wandb_mode: str = "offline", device: str = "cpu",
                 checkpoint: dict[str, Any] | None = None, on_generation: Callback | None = None):
        """``settings`` is the run's ``config.yaml`` mapping (``kind: sb3-baseline``); ``checkpoint``
        the already read :func:`read_checkpoint` of a resumed run."""
        from stable_baselines3.common.vec_env import DummyVecEnv

        self.settings = settings
        self.algo, self.env_id, self.steps = settings["algo"], settings["env_id"], int(settings["steps"])
        self.seed, self.params = int(settings["seed"]), settings["hyperparams"]
        self.chunk = chunk_size(self.algo, self.params, int(settings["eval_every"]))
        super().__init__(settings, run_dir, on_generation, self._schedule_from(0, 0))
        self.trainer_name = f"sb3-{self.algo}"
        self.wandb_mode, self.device, self._checkpoint = wandb_mode, device, checkpoint
        self.meta = {"algo": self.algo, "env_id": self.env_id, "env_kwargs": settings["env_kwargs"],
                     "train_perturbation": settings["train_perturbation"]}
        self.venv = DummyVecEnv([lambda: make_env(self.env_id, settings["env_kwargs"], self.seed,
                                                  settings["train_perturbation"])])
        self.venv.seed(self.seed)
        self.action_dim = int(np.prod(self.venv.action_space.shape))
        self._saved_generation: int | None = None

    def _schedule_from(self, chunks_done: int, env_steps_done: int) -> RunSchedule:
        """The schedule of a run at ``chunks_done`` chunks and ``env_steps_done`` steps: the env-step
        budget ends the run (``max_env_steps``); the chunk count only has to reach it. A resumed run may
        stand off the chunk grid (a budget that was not a multiple, now raised): its first chunk then
        ends at the next multiple, one chunk more than the steps left fill."""
        left = max(self.steps - env_steps_done, 0)
        chunks = -(-left // self.chunk) + (1 if left and env_steps_done % self.chunk else 0)
        return RunSchedule(steps=chunks_done + chunks, eval_every=1, checkpoint_every=1, max_env_steps=self.steps,
                           log_artifacts=True)

    # -- state ---------------------------------------------------------------------------
    def _fresh_state(self) -> SB3State:
        from stable_baselines3.common.vec_env import VecNormalize

        from plasticrl.agents.sb3 import algo_class

        vec_norm = VecNormalize(self.venv, norm_obs=True, norm_reward=True) if self.params.get("normalize") else None
        model = algo_class(self.algo)("MlpPolicy", vec_norm if vec_norm is not None else self.venv, seed=self.seed,
                                      device=self.device, verbose=0,
                                      **sb3_kwargs(self.algo, self.params, self.action_dim))
        _silence_logger(model)
        return SB3State(model=model, vec_normalize=vec_norm, wandb_id=default_wandb_id(self.run_dir))

    def _load_checkpoint(self) -> SB3State:
        """The state of :func:`write_checkpoint`'s file. Checkpoints from before the shared run loop
        (no ``best_generation``, ``elapsed``, ``wandb_id`` in ``progress``) resume too: their W&B id is
        the run's ``wandb_id.txt``."""
        from plasticrl.agents.sb3 import load_sb3_model, read_zip_data

        checkpoint = self._checkpoint or read_checkpoint(self.run_dir / CHECKPOINT)
        progress = checkpoint["progress"]
        vec_norm = None
        if checkpoint["vec_normalize"] is not None:
            vec_norm = _restore_vec_normalize(checkpoint["vec_normalize"], self.venv)
        window = read_zip_data(checkpoint["model"]).get("_stats_window_size", 100)
        known = _training_objects(self.algo, self.params, self.action_dim, checkpoint["ep_info"],
                                  window if isinstance(window, int) and window > 0 else 100)
        model = load_sb3_model(checkpoint["model"], self.algo, (self.venv.observation_space, self.venv.action_space),
                               env=vec_norm if vec_norm is not None else self.venv, device=self.device, known=known)
        _silence_logger(model)
        if checkpoint["replay_buffer"] is not None:
            _restore_replay(checkpoint["replay_buffer"], model.replay_buffer)
        legacy_id = self.run_dir / "wandb_id.txt"
        wandb_id = progress.get("wandb_id") or (legacy_id.read_text().strip() if legacy_id.is_file() else "")
        self._saved_generation = int(progress["evaluations"])
        self.schedule = self._schedule_from(int(progress["evaluations"]), int(progress["env_steps"]))
        return SB3State(model=model, vec_normalize=vec_norm, generation=int(progress["evaluations"]),
                        env_steps=int(progress["env_steps"]), elapsed=float(progress.get("elapsed", 0.0)),
                        best=BestEvaluation(eval_return=float(progress["best_eval_return"]),
                                            generation=int(progress.get("best_generation", -1))),
                        wandb_id=wandb_id or default_wandb_id(self.run_dir))

    def _save_checkpoint(self, state: SB3State) -> None:
        # The run's end saves again what its last chunk saved: a replay buffer is worth not writing twice.
        if state.generation == self._saved_generation:
            return
        write_checkpoint(self.run_dir / CHECKPOINT, state.model, state.vec_normalize, state.progress())
        self._saved_generation = state.generation

    # -- one chunk -------------------------------------------------------------------------
    def _step(self, state: SB3State) -> dict[str, Any]:
        """``model.learn`` to the next chunk boundary (or the budget); the row's ``generation`` is the
        chunk's (and its evaluation's) index from 0, as baseline rows have always counted."""
        model = state.model
        target = min((model.num_timesteps // self.chunk + 1) * self.chunk, self.steps)
        if target > model.num_timesteps:
            model.learn(total_timesteps=target - model.num_timesteps, reset_num_timesteps=False, progress_bar=False)
        state.generation += 1
        state.env_steps = int(model.num_timesteps)
        row: dict[str, Any] = {"generation": state.generation - 1, "env_steps": state.env_steps}
        recent = [ep["r"] for ep in model.ep_info_buffer or []]
        if recent:
            row["train_return_mean"] = float(np.mean(recent))
        return row

    def _current_genome(self, state: SB3State) -> None:
        return None  # the agent is the model in the state

    def _evaluate(self, genome: None, state: SB3State) -> tuple[float, float]:
        returns = _evaluate_now(state.model, state.vec_normalize, self.meta, int(self.settings["eval_episodes"]),
                                self.seed + SB3_EVAL_SEED_OFFSET)
        return float(returns.mean()), float(returns.std())

    def _save_agent(self, name: str, genome: None, state: SB3State, eval_return: float) -> Path:
        return save_model(state.model, state.vec_normalize, self.run_dir / name,
                          {**self.meta, "env_steps": int(state.model.num_timesteps)})

    # -- the lifecycle's hooks -------------------------------------------------------------
    @property
    def policy_kernel(self) -> None:
        return None  # an SB3 MLP has no kernel choice

    def close(self) -> None:
        self.venv.close()

    def _stamp(self, resume: bool, started: bool) -> None:
        # A run killed before its first checkpoint (config.yaml only) starts again from step 0.
        stamp_run(self.run_dir, self.settings, resume=started)

    def _open_logger(self, state: SB3State, resume: bool) -> RunLogger:
        return RunLogger(self.run_dir, self.settings, wandb_mode=self.wandb_mode, run_name=self.run_dir.name,
                         tags=["baseline", self.algo], run_id=state.wandb_id,
                         resume_from_generation=state.generation - 1 if resume else -1)

    def _artifact_name(self, which: str) -> str:
        return f"{self.algo}-{self.env_id}" + ("-best" if which == "best" else "")

    def _summary_extra(self, state: SB3State) -> dict[str, Any]:
        return {"chunk_env_steps": self.chunk}


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
    on_chunk: Callback | None = None,
) -> Path:
    """Train ``algo`` for ``steps`` env steps; returns the path of the saved final ``model.zip``.

    The run goes in chunks of ``eval_every`` env steps (rounded up to whole PPO rollouts or
    ``train_freq`` units, see :func:`chunk_size`); after each chunk it evaluates, writes the row,
    ``best_model.zip`` when the evaluation is the best so far, and ``checkpoint.pt`` (atomically);
    ``on_chunk(row)`` is called after each. ``resume=True`` continues a killed run from its last
    chunk: same weights, optimiser states, replay buffer, normalisation statistics, step count and
    metrics rows (a budget at or below the steps done trains nothing more and finishes); the episode that was running when it stopped starts afresh and the random streams
    are not restored, so unlike the ES trainer the continuation is not bit-identical to an
    uninterrupted run.
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
    SB3Trainer(config, out, wandb_mode=wandb_mode, device=device, checkpoint=checkpoint,
               on_generation=on_chunk).train(resume=resume)
    return out / FINAL_MODEL
