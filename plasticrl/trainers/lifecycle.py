"""One run lifecycle for every trainer (ES, recurrent PPO, the Stable-Baselines3 baselines).

:class:`RunLoop` owns everything a run does besides its optimisation step: it holds the run
directory (one process per run), loads the checkpoint or builds a fresh state, refuses a resume
that would shorten a run, stamps the run (config, versions, override history), opens the logger,
and then loops: one step of the subclass, the centre evaluated on schedule (best agent kept),
the metrics row written and flushed *before* the checkpoint (a kill between the two leaves a row
ahead of the checkpoint, which a resume drops and writes again; never a checkpoint without its
row), the callbacks, and at the end the final evaluation, ``final_agent.pt``, artifacts and
``summary.json``.

A subclass implements only what differs: ``_fresh_state``, ``_load_checkpoint``,
``_save_checkpoint``, ``_step`` (one generation, update or chunk: advance ``state.generation`` and
``state.env_steps``, return its metrics), ``_current_genome``, ``_evaluate``, ``_save_agent``,
``close`` and the ``policy_kernel`` it runs. Optional hooks: ``_is_scheduled_eval`` (default:
every ``eval_every`` steps of the :class:`RunSchedule`), ``_best_extra`` (more to keep with the best
genome), ``_after_resume``, ``_summary_extra``, and for a trainer whose settings are not an
:class:`~plasticrl.config.ExperimentConfig` (the SB3 baselines) ``_stamp``, ``_open_logger`` and
``_budget_text``.

The state is a :class:`RunState` subclass per trainer (a dataclass: the counters and best
evaluation every run has, plus the trainer's own fields, each with a docstring), checkpointed
atomically by the trainer as plain data (:meth:`RunState.counters` /
:meth:`RunState.counters_from`).

Test hook: with ``$PLASTICRL_TEST_SIGKILL_BEFORE_CHECKPOINT=G`` set, the loop sends its process
SIGKILL after writing the metrics row of step G and before writing that step's checkpoint (G must
be a checkpointed step). ``tests/test_trainer.py`` uses it to kill a real run at the one point where
``metrics.jsonl`` is ahead of ``checkpoint.pt``.
"""
from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from plasticrl.config import ExperimentConfig
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_write_json, torch_load
from plasticrl.trainers.logger import RunLogger
from plasticrl.trainers.runs import CHECKPOINT_FILE, hold_run, stamp_run

KILL_HOOK_ENV = "PLASTICRL_TEST_SIGKILL_BEFORE_CHECKPOINT"

#: a callback gets each step's metrics row (after it is written), e.g. a progress bar
Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What a finished run reports: where it is, how long it ran, its best and final evaluations and
    its final genome (the ES centre, the PPO actor's genome; None for an SB3 baseline, whose agent is
    its ``model.zip``)."""

    run_dir: Path
    generations: int
    env_steps: int
    best_eval_return: float
    best_generation: int
    final_eval_return: float
    center: torch.Tensor | None


@dataclass(kw_only=True)
class BestEvaluation:
    """The best scheduled evaluation of a run so far: what ``best_agent.pt`` holds, kept in the state
    so that a resumed or extended run compares against it."""

    eval_return: float = -math.inf
    """Mean return of the evaluation episodes; ``-inf`` before the first finite evaluation."""
    generation: int = -1
    """The step after which it was evaluated; -1 before the first evaluation."""
    genome: torch.Tensor | None = None
    """The evaluated genome (a detached CPU copy); None before the first evaluation and for SB3
    baselines (whose best model is ``best_model.zip``)."""
    env_steps: int | None = None
    """Env steps at that point (ES); None where the trainer does not keep it, and in ES checkpoints
    written before it was kept (together with ``obs_norm``)."""
    obs_norm: dict[str, Any] | None = None
    """``ObsNormalizer.state_dict()`` of the statistics the genome was evaluated with (ES, when
    ``env_steps`` is kept); None without observation normalisation."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint: the keys of the dict form older checkpoints hold (``env_steps``
        and ``obs_norm`` only when kept)."""
        out: dict[str, Any] = {"eval_return": self.eval_return, "generation": self.generation, "genome": self.genome}
        if self.env_steps is not None:
            out.update(env_steps=self.env_steps, obs_norm=self.obs_norm)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BestEvaluation":
        """The inverse of :meth:`to_dict`; also reads the dict form of older checkpoints."""
        env_steps = data.get("env_steps")
        return cls(eval_return=float(data["eval_return"]), generation=int(data["generation"]),
                   genome=data.get("genome"), env_steps=int(env_steps) if env_steps is not None else None,
                   obs_norm=data.get("obs_norm"))


def default_wandb_id(run_dir: Path) -> str:
    """The W&B run id of a new run: the run directory's name (W&B allows 64 characters)."""
    return Path(run_dir).name.replace("/", "-")[-64:]


@dataclass(kw_only=True)
class RunState:
    """What :class:`RunLoop` reads and advances in every trainer's state; each trainer subclasses
    it with the fields of its own optimisation state."""

    generation: int = 0
    """Steps done: ES generations, PPO updates, SB3 chunks."""
    env_steps: int = 0
    """Env steps taken by training (evaluations not counted)."""
    best: BestEvaluation = field(default_factory=BestEvaluation)
    """The best scheduled evaluation so far."""
    elapsed: float = 0.0
    """Wall seconds spent in steps and their evaluations, summed over every attempt of the run."""
    wandb_id: str = ""
    """The W&B run id, kept so that a resumed run logs to the same W&B run."""

    def counters(self) -> dict[str, Any]:
        """The fields above as plain data, for a checkpoint (the keys checkpoints have always had)."""
        return {"generation": self.generation, "env_steps": self.env_steps, "best": self.best.to_dict(),
                "elapsed": self.elapsed, "wandb_id": self.wandb_id}

    @staticmethod
    def counters_from(payload: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the fields above, read from a checkpoint written with :meth:`counters`."""
        return {"generation": int(payload["generation"]), "env_steps": int(payload["env_steps"]),
                "best": BestEvaluation.from_dict(payload["best"]), "elapsed": float(payload["elapsed"]),
                "wandb_id": str(payload["wandb_id"])}


@dataclass(frozen=True)
class RunSchedule:
    """When a run ends, evaluates and checkpoints, in its own steps."""

    steps: int
    """Steps the run trains for (``train.generations``)."""
    eval_every: int
    """Evaluate the current agent every this many steps."""
    checkpoint_every: int
    """Write ``checkpoint.pt`` every this many steps (and at the last)."""
    max_env_steps: int | None = None
    """End the run early once this many env steps are done (None: no such budget)."""
    log_artifacts: bool = False
    """Log the final and best agents as W&B artifacts."""

    @classmethod
    def of(cls, config: ExperimentConfig) -> "RunSchedule":
        """The schedule of an experiment config's ``train`` section."""
        t = config.train
        return cls(t.generations, t.eval_every, t.checkpoint_every, t.max_env_steps,
                   bool(config.logging.wandb.log_artifacts))


def load_checkpoint_payload(run_dir: Path, expected_format: Any, hint: str = "") -> dict[str, Any]:
    """A run's ``checkpoint.pt`` as plain data (no code runs), refused in one line unless it is a
    mapping tagged ``format: expected_format`` (``hint`` is added to that line)."""
    payload = torch_load(Path(run_dir) / CHECKPOINT_FILE)
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != expected_format:
        raise PlasticRLError(f"checkpoint format {found!r} is not {expected_format!r}{hint}")
    return payload


def kill_hook_step() -> int | None:
    """The step at which a test asks this process to SIGKILL itself (see the module docstring)."""
    value = os.environ.get(KILL_HOOK_ENV)
    return int(value) if value else None


class RunLoop:
    """The lifecycle of one run in one run directory; subclasses implement one step (module doc)."""

    #: what one step is called in messages ("generations" for ES, "updates" for PPO)
    step_name = "generations"
    #: ``summary.json``'s ``trainer`` entry (omitted when None)
    trainer_name: str | None = None
    #: the files of the best and the final agent in the run directory
    best_agent_file = "best_agent.pt"
    final_agent_file = "final_agent.pt"

    def __init__(self, config: Any, run_dir: Path, on_generation: Callback | None = None,
                 schedule: RunSchedule | None = None):
        """``config`` is an :class:`ExperimentConfig` (its ``train`` section gives the schedule) or, with
        ``schedule`` given, a trainer's own settings (the SB3 baselines' mapping)."""
        self.config = config
        self.schedule = schedule if schedule is not None else RunSchedule.of(config)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.callbacks: list[Callback] = [on_generation] if on_generation is not None else []
        if isinstance(config, ExperimentConfig):
            torch.set_num_threads(config.torch_threads)

    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(metrics)`` after every step's metrics row is written."""
        self.callbacks.append(callback)

    # -- what a subclass implements ------------------------------------------------------------
    @property
    def policy_kernel(self) -> str | None:
        """The kernel the policy runs ("fused" or "torch"), recorded in versions.json and the summary
        (None for a policy that has no such choice)."""
        raise NotImplementedError

    def _fresh_state(self) -> RunState:
        raise NotImplementedError

    def _load_checkpoint(self) -> RunState:
        raise NotImplementedError

    def _save_checkpoint(self, state: RunState) -> None:
        raise NotImplementedError

    def _step(self, state: RunState) -> dict[str, Any]:
        """One generation, update or chunk; advances the state's counters and returns the metrics row."""
        raise NotImplementedError

    def _current_genome(self, state: RunState) -> torch.Tensor | None:
        """The genome an evaluation and the agent files use now (a detached CPU tensor); None for a
        trainer whose agent lives in its state (the SB3 model)."""
        raise NotImplementedError

    def _evaluate(self, genome: torch.Tensor | None, state: RunState) -> tuple[float, float]:
        """Mean and std of the return of ``genome`` on the run's fixed evaluation episodes."""
        raise NotImplementedError

    def _save_agent(self, name: str, genome: torch.Tensor | None, state: RunState, eval_return: float) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        """Release the envs and workers."""

    # -- optional hooks ---------------------------------------------------------------------------
    def _is_scheduled_eval(self, step: int) -> bool:
        return step % self.schedule.eval_every == 0

    def _best_extra(self, state: RunState) -> dict[str, Any]:
        """More :class:`BestEvaluation` fields to keep beside the best genome (e.g. the observation
        statistics)."""
        return {}

    def _after_resume(self, state: RunState) -> None:
        """Called once a checkpoint is loaded, before the run is stamped again."""

    def _summary_extra(self, state: RunState) -> dict[str, Any]:
        return {}

    def _stamp(self, resume: bool, started: bool) -> None:
        """Write the run's config and versions (``started``: a checkpoint was loaded)."""
        stamp_run(self.run_dir, self.config, resume=resume, policy_kernel=self.policy_kernel)

    def _open_logger(self, state: RunState, resume: bool) -> RunLogger:
        """The run's logger; a fresh start (also a resume with no checkpoint yet) drops every row a
        killed attempt left, a resume the rows after the checkpoint."""
        return RunLogger.for_run(self.config, self.run_dir, state.wandb_id,
                                 resume_from_generation=state.generation if resume else -1)

    def _budget_text(self) -> str:
        """The setting that fixes the run's length, as the user gives it (for messages)."""
        return f"train.generations={self.schedule.steps}"

    def _artifact_name(self, which: str) -> str:
        """The W&B artifact name of the ``which`` ("final" or "best") agent."""
        return f"{self.run_dir.name}-{which}"

    # -- the lifecycle -------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainResult:
        """Run to the schedule's ``steps`` while holding the run directory (one process per run).
        ``resume=True`` continues from ``checkpoint.pt``; a run killed before its first checkpoint
        restarts from step 0 in the same directory."""
        try:
            with hold_run(self.run_dir):
                return self._train_held(resume)
        finally:
            self.close()

    def _train_held(self, resume: bool) -> TrainResult:
        started = resume and (self.run_dir / CHECKPOINT_FILE).is_file()
        try:
            state = self._load_checkpoint() if started else self._fresh_state()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            if isinstance(exc, PlasticRLError) or not started:
                raise
            # loadable plain data of the wrong shape (a hand-edited or foreign checkpoint.pt)
            raise PlasticRLError(f"{str(self.run_dir / CHECKPOINT_FILE)!r} is not a checkpoint of this run: "
                                 f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        if started and state.generation > self.schedule.steps:
            raise PlasticRLError(f"run {str(self.run_dir)!r} has done {state.generation} {self.step_name}; "
                                 f"{self._budget_text()} would end it before that (give at least "
                                 f"{state.generation} {self.step_name})")
        if started:
            self._after_resume(state)
        self._stamp(resume, started)
        logger = self._open_logger(state, resume)
        try:
            last_eval = self._loop(state, logger)
            return self._finish(state, logger, last_eval)
        finally:
            logger.finish()

    def _loop(self, state: RunState, logger: RunLogger) -> tuple[float, float]:
        """Steps to the end of the run; returns the last step's evaluation (NaN if it had none)."""
        schedule = self.schedule
        kill_at = kill_hook_step()
        last_eval = (math.nan, math.nan)
        while state.generation < schedule.steps:
            if schedule.max_env_steps is not None and state.env_steps >= schedule.max_env_steps:
                break
            t0 = time.perf_counter()
            steps_before = state.env_steps
            metrics = self._step(state)
            g = state.generation
            last_eval = (math.nan, math.nan)
            if self._is_scheduled_eval(g):
                # Only the scheduled evaluations enter the state: an extra one at a final step off
                # the schedule would make a run that is later extended differ from a straight run.
                genome = self._current_genome(state)
                last_eval = self._evaluate(genome, state)
                mean = last_eval[0]
                metrics.update({"eval_return_mean": mean, "eval_return_std": last_eval[1]})
                if mean > state.best.eval_return:
                    kept = genome.detach().cpu().clone() if genome is not None else None
                    state.best = BestEvaluation(eval_return=mean, generation=g, genome=kept,
                                                **self._best_extra(state))
                    self._save_agent(self.best_agent_file, genome, state, mean)
                metrics["best_eval_return"] = state.best.eval_return
            seconds = time.perf_counter() - t0
            state.elapsed += seconds
            metrics["generation_seconds"] = seconds
            metrics["wall_seconds"] = state.elapsed
            metrics.setdefault("env_steps_per_s", (state.env_steps - steps_before) / max(seconds, 1e-9))
            logger.log(metrics)  # the row first, then the checkpoint (module doc)
            if g % schedule.checkpoint_every == 0 or g == schedule.steps:
                if g == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                self._save_checkpoint(state)
            for callback in self.callbacks:
                callback(metrics)
        return last_eval

    def _finish(self, state: RunState, logger: RunLogger, last_eval: tuple[float, float]) -> TrainResult:
        self._save_checkpoint(state)
        genome = self._current_genome(state)
        best_return, best_generation = state.best.eval_return, state.best.generation
        if math.isnan(last_eval[0]):
            # The final genome was not evaluated on schedule (a final step off the schedule, a step
            # budget that ended the loop, a resume of a finished run): evaluate it now, so the final
            # agent never records NaN. It may become this run's best agent, but not the checkpoint's
            # best, which an extension of the run continues from.
            last_eval = self._evaluate(genome, state)
            if last_eval[0] > best_return:
                best_return, best_generation = last_eval[0], state.generation
                self._save_agent(self.best_agent_file, genome, state, last_eval[0])
        final_path = self._save_agent(self.final_agent_file, genome, state, last_eval[0])
        best_path = self.run_dir / self.best_agent_file
        if self.schedule.log_artifacts:
            logger.log_artifact(final_path, self._artifact_name("final"), aliases=["final"])
            if best_path.is_file():
                logger.log_artifact(best_path, self._artifact_name("best"), aliases=["best"])
        summary: dict[str, Any] = {"run_dir": str(self.run_dir)}
        if self.trainer_name is not None:
            summary["trainer"] = self.trainer_name
        summary.update({
            "generations": state.generation, "env_steps": state.env_steps,
            "best_eval_return": best_return, "best_generation": best_generation,
            "final_eval_return": last_eval[0], "wall_seconds": state.elapsed, **self._summary_extra(state),
        })
        if self.policy_kernel is not None:
            summary["policy_kernel"] = self.policy_kernel
        logger.summary(summary)
        atomic_write_json(self.run_dir / "summary.json", summary)
        if not math.isfinite(best_return):
            # Every evaluation went invalid: there is no agent to point to (no best agent), and
            # "done" would hide it.
            raise PlasticRLError(
                f"run {str(self.run_dir)!r} has no valid evaluation: in {state.generation} {self.step_name} "
                f"every evaluation of the agent went invalid (non-finite observations, rewards, weights or "
                f"actions, or unstable physics); metrics.jsonl counts the invalid members of each step")
        return TrainResult(self.run_dir, state.generation, state.env_steps, best_return, best_generation,
                           last_eval[0], genome.detach().cpu() if genome is not None else None)
