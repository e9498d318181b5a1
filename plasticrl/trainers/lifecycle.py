"""One run lifecycle for the trainers that own their loop (ES, recurrent PPO).

:class:`RunLoop` owns everything a run does besides its optimisation step: it holds the run
directory (one process per run), loads the checkpoint or builds a fresh state, refuses a resume
that would shorten a run, stamps the run (config, versions, override history), opens the logger,
and then loops: one step of the subclass, the centre evaluated on schedule (best agent kept),
the metrics row written and flushed *before* the checkpoint (a kill between the two leaves a row
ahead of the checkpoint, which a resume drops and writes again; never a checkpoint without its
row), the callbacks, and at the end the final evaluation, ``final_agent.pt``, artifacts and
``summary.json``.

A subclass implements only what differs: ``_fresh_state``, ``_load_checkpoint``,
``_save_checkpoint``, ``_step`` (one generation or update: advance ``state["generation"]`` and
``state["env_steps"]``, return its metrics), ``_current_genome``, ``_evaluate``, ``_save_agent``,
``close`` and the ``policy_kernel`` it runs. Optional hooks: ``_is_scheduled_eval`` (default:
every ``train.eval_every`` steps), ``_best_extra`` (more to keep with the best genome),
``_after_resume``, ``_summary_extra``.

The state is a dict with at least ``generation``, ``env_steps``, ``best`` (``eval_return``,
``generation``, ``genome``, ...), ``elapsed`` and ``wandb_id``.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from plasticrl.config import ExperimentConfig
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_write_json
from plasticrl.trainers.logger import RunLogger
from plasticrl.trainers.runs import CHECKPOINT_FILE, hold_run, stamp_run

KILL_HOOK_ENV = "PLASTICRL_TEST_SIGKILL_BEFORE_CHECKPOINT"

#: a callback gets each step's metrics row (after it is written), e.g. a progress bar
Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What a finished run reports: where it is, how long it ran, its best and final evaluations and
    its final genome (the ES centre, the PPO actor's genome)."""

    run_dir: Path
    generations: int
    env_steps: int
    best_eval_return: float
    best_generation: int
    final_eval_return: float
    center: torch.Tensor


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

    def __init__(self, config: ExperimentConfig, run_dir: Path, on_generation: Callback | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.callbacks: list[Callback] = [on_generation] if on_generation is not None else []
        torch.set_num_threads(config.torch_threads)

    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(metrics)`` after every step's metrics row is written."""
        self.callbacks.append(callback)

    # -- what a subclass implements ------------------------------------------------------------
    @property
    def policy_kernel(self) -> str:
        """The kernel the policy runs ("fused" or "torch"), recorded in versions.json and the summary."""
        raise NotImplementedError

    def _fresh_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_checkpoint(self) -> dict[str, Any]:
        raise NotImplementedError

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _step(self, state: dict[str, Any]) -> dict[str, Any]:
        """One generation or update; advances the state's counters and returns the metrics row."""
        raise NotImplementedError

    def _current_genome(self, state: dict[str, Any]) -> torch.Tensor:
        """The genome an evaluation and the agent files use now (a detached CPU tensor)."""
        raise NotImplementedError

    def _evaluate(self, genome: torch.Tensor, state: dict[str, Any]) -> tuple[float, float]:
        """Mean and std of the return of ``genome`` on the run's fixed evaluation episodes."""
        raise NotImplementedError

    def _save_agent(self, name: str, genome: torch.Tensor, state: dict[str, Any], eval_return: float) -> Path:
        raise NotImplementedError

    def close(self) -> None:
        """Release the envs and workers."""

    # -- optional hooks ---------------------------------------------------------------------------
    def _is_scheduled_eval(self, step: int) -> bool:
        return step % self.config.train.eval_every == 0

    def _best_extra(self, state: dict[str, Any]) -> dict[str, Any]:
        """More to keep beside the best genome in the state (e.g. the observation statistics)."""
        return {}

    def _after_resume(self, state: dict[str, Any]) -> None:
        """Called once a checkpoint is loaded, before the run is stamped again."""

    def _summary_extra(self, state: dict[str, Any]) -> dict[str, Any]:
        return {}

    # -- the lifecycle -------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainResult:
        """Run to ``train.generations`` steps while holding the run directory (one process per run).
        ``resume=True`` continues from ``checkpoint.pt``; a run killed before its first checkpoint
        restarts from step 0 in the same directory."""
        try:
            with hold_run(self.run_dir):
                return self._train_held(resume)
        finally:
            self.close()

    def _train_held(self, resume: bool) -> TrainResult:
        cfg = self.config
        started = resume and (self.run_dir / CHECKPOINT_FILE).is_file()
        try:
            state = self._load_checkpoint() if started else self._fresh_state()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            if isinstance(exc, PlasticRLError) or not started:
                raise
            # loadable plain data of the wrong shape (a hand-edited or foreign checkpoint.pt)
            raise PlasticRLError(f"{str(self.run_dir / CHECKPOINT_FILE)!r} is not a checkpoint of this run: "
                                 f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        if started and state["generation"] > cfg.train.generations:
            raise PlasticRLError(f"run {str(self.run_dir)!r} has done {state['generation']} {self.step_name}; "
                                 f"train.generations={cfg.train.generations} would end it before that (give "
                                 f"at least {state['generation']})")
        if started:
            self._after_resume(state)
        stamp_run(self.run_dir, cfg, resume=resume, policy_kernel=self.policy_kernel)
        # A fresh start (also a resume with no checkpoint yet) drops every row a killed attempt left.
        logger = RunLogger.for_run(cfg, self.run_dir, state["wandb_id"],
                                   resume_from_generation=state["generation"] if resume else -1)
        try:
            last_eval = self._loop(state, logger)
            return self._finish(state, logger, last_eval)
        finally:
            logger.finish()

    def _loop(self, state: dict[str, Any], logger: RunLogger) -> tuple[float, float]:
        """Steps to the end of the run; returns the last step's evaluation (NaN if it had none)."""
        cfg = self.config
        kill_at = kill_hook_step()
        last_eval = (math.nan, math.nan)
        while state["generation"] < cfg.train.generations:
            if cfg.train.max_env_steps is not None and state["env_steps"] >= cfg.train.max_env_steps:
                break
            t0 = time.perf_counter()
            steps_before = state["env_steps"]
            metrics = self._step(state)
            g = state["generation"]
            last_eval = (math.nan, math.nan)
            if self._is_scheduled_eval(g):
                # Only the scheduled evaluations enter the state: an extra one at a final step off
                # the schedule would make a run that is later extended differ from a straight run.
                genome = self._current_genome(state)
                last_eval = self._evaluate(genome, state)
                mean = last_eval[0]
                metrics.update({"eval_return_mean": mean, "eval_return_std": last_eval[1]})
                if mean > state["best"]["eval_return"]:
                    state["best"] = {"eval_return": mean, "generation": g, "genome": genome.detach().cpu().clone(),
                                     **self._best_extra(state)}
                    self._save_agent("best_agent.pt", genome, state, mean)
                metrics["best_eval_return"] = state["best"]["eval_return"]
            seconds = time.perf_counter() - t0
            state["elapsed"] += seconds
            metrics["generation_seconds"] = seconds
            metrics["wall_seconds"] = state["elapsed"]
            metrics.setdefault("env_steps_per_s", (state["env_steps"] - steps_before) / max(seconds, 1e-9))
            logger.log(metrics)  # the row first, then the checkpoint (module doc)
            if g % cfg.train.checkpoint_every == 0 or g == cfg.train.generations:
                if g == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                self._save_checkpoint(state)
            for callback in self.callbacks:
                callback(metrics)
        return last_eval

    def _finish(self, state: dict[str, Any], logger: RunLogger, last_eval: tuple[float, float]) -> TrainResult:
        cfg = self.config
        self._save_checkpoint(state)
        genome = self._current_genome(state)
        best = {"eval_return": state["best"]["eval_return"], "generation": state["best"]["generation"]}
        if math.isnan(last_eval[0]):
            # The final genome was not evaluated on schedule (a final step off the schedule, a step
            # budget that ended the loop, a resume of a finished run): evaluate it now, so the final
            # agent never records NaN. It may become this run's best agent, but not the checkpoint's
            # best, which an extension of the run continues from.
            last_eval = self._evaluate(genome, state)
            if last_eval[0] > best["eval_return"]:
                best = {"eval_return": last_eval[0], "generation": state["generation"]}
                self._save_agent("best_agent.pt", genome, state, last_eval[0])
        final_path = self._save_agent("final_agent.pt", genome, state, last_eval[0])
        best_path = self.run_dir / "best_agent.pt"
        if cfg.logging.wandb.log_artifacts:
            logger.log_artifact(final_path, f"{self.run_dir.name}-final", aliases=["final"])
            if best_path.is_file():
                logger.log_artifact(best_path, f"{self.run_dir.name}-best", aliases=["best"])
        summary: dict[str, Any] = {"run_dir": str(self.run_dir)}
        if self.trainer_name is not None:
            summary["trainer"] = self.trainer_name
        summary.update({
            "generations": state["generation"], "env_steps": state["env_steps"],
            "best_eval_return": best["eval_return"], "best_generation": best["generation"],
            "final_eval_return": last_eval[0], "wall_seconds": state["elapsed"],
            **self._summary_extra(state), "policy_kernel": self.policy_kernel,
        })
        logger.summary(summary)
        atomic_write_json(self.run_dir / "summary.json", summary)
        if not math.isfinite(best["eval_return"]):
            # Every evaluation went invalid: there is no agent to point to (no best_agent.pt), and
            # "done" would hide it.
            raise PlasticRLError(
                f"run {str(self.run_dir)!r} has no valid evaluation: in {state['generation']} {self.step_name} "
                f"every evaluation of the agent went invalid (non-finite observations, rewards, weights or "
                f"actions, or unstable physics); metrics.jsonl counts the invalid members of each step")
        return TrainResult(self.run_dir, state["generation"], state["env_steps"], best["eval_return"],
                           best["generation"], last_eval[0], genome.detach().cpu())
