"""Evolution-strategies trainer: ask/tell over genomes, batched rollouts, runs that resume.

Every random draw derives from ``(config.seed, generation)``: ES noise inside the algorithm,
environment reset seeds here. Observation statistics are merged after each generation and
frozen during it. Together with the checkpoint (ES state, statistics, best solution, counters)
this makes a resumed run continue exactly where the uninterrupted one would be: N generations
straight equal k generations, a kill, a resume and N - k more.

Extending a finished run (``--resume RUN train.generations=M``) equals a straight M-generation run
too: the centre is evaluated in the loop only every ``train.eval_every`` generations, and only
those evaluations enter the resumable state (``best`` in the checkpoint, ``metrics.jsonl``). The
evaluation of a final centre that falls off that schedule is recorded in ``final_agent.pt`` and
``summary.json``, and may make that centre the finished run's ``best_agent.pt``; a resume puts the
scheduled best back into ``best_agent.pt`` before it continues.

Test hook: with ``$PLASTICRL_TEST_SIGKILL_BEFORE_CHECKPOINT=G`` set, the trainer sends itself
SIGKILL after writing the metrics row of generation G and before writing that generation's
checkpoint (G must be a checkpointed generation). ``tests/test_trainer.py`` uses it to kill a
real run at the one point where ``metrics.jsonl`` is ahead of ``checkpoint.pt``.
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

from plasticrl.rollouts.saved_agent import load as load_agent
from plasticrl.rollouts.saved_agent import save_agent, training_metadata
from plasticrl.config import ExperimentConfig, config_to_dict
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_torch_save, atomic_write_json, torch_load
from plasticrl.trainers.logger import RunLogger
from plasticrl.es import make_es
from plasticrl.seeding import Stream, derive_env_seed, derive_seed
from plasticrl.rollouts.env_setup import training_reset_options
from plasticrl.trainers.evaluator import LocalEvaluator
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.trainers.runs import CHECKPOINT_FILE, hold_run, stamp_run

CHECKPOINT_FORMAT = 1
KILL_HOOK_ENV = "PLASTICRL_TEST_SIGKILL_BEFORE_CHECKPOINT"


def _kill_hook_generation() -> int | None:
    """The generation at which a test asks this process to SIGKILL itself (see the module docstring)."""
    value = os.environ.get(KILL_HOOK_ENV)
    return int(value) if value else None


def _default_evaluator(config: ExperimentConfig, rows: int):
    if config.distributed.backend == "ray":
        from plasticrl.trainers.ray_evaluator import RayEvaluator

        return RayEvaluator(config, rows, config.distributed.workers, config.distributed.address)
    return LocalEvaluator(config, rows)


@dataclass
class TrainResult:
    run_dir: Path
    generations: int
    env_steps: int
    best_eval_return: float
    best_generation: int
    final_eval_return: float
    center: torch.Tensor


class ESTrainer:
    """Trains one config in one run directory. ``ESTrainer(cfg, dir).train()``."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path,
        evaluator_factory: Callable[[ExperimentConfig, int], Any] | None = None,
        on_generation: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.on_generation = on_generation
        torch.set_num_threads(config.torch_threads)
        # The evaluation evaluator's policy tells the genome size before the ES (which fixes P)
        # and the training evaluator (which needs P) exist.
        self.eval_evaluator = LocalEvaluator(config, config.train.eval_episodes)
        self.policy = self.eval_evaluator.policy
        self.dim = self.policy.genome.dim
        if self.dim == 0:
            raise PlasticRLError("the genome has no searched parameters; check policy.genome.search / fix")
        self.algo = make_es(config.es.algorithm, self.dim, **dict(config.es.params))
        self.population = self.algo.population_size
        rows = self.population * config.train.episodes_per_member
        factory = evaluator_factory or _default_evaluator
        self.evaluator = factory(config, rows)

    # -- state --------------------------------------------------------------------------
    def _fresh_state(self) -> dict[str, Any]:
        cfg = self.config
        # The search distribution lives on the CPU; evaluators move genomes to the policy's device.
        center = self.policy.initial_genome(1)[0].cpu()
        obs_norm = (ObsNormalizer(self.policy.obs_dim, cfg.train.obs_clip, std_floor=cfg.train.obs_std_floor)
                    if cfg.train.obs_norm else None)
        if cfg.train.init_agent is not None:
            center, obs_norm = self._initial_agent(cfg.train.init_agent, center, obs_norm)
        if cfg.train.init_noise > 0:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 0, 7))
            center = center + cfg.train.init_noise * torch.randn(center.shape, generator=gen, dtype=center.dtype)
        return {
            "es": self.algo.init(center, seed=cfg.seed),
            "obs_norm": obs_norm,
            "generation": 0,
            "env_steps": 0,
            "best": {"eval_return": -math.inf, "generation": -1, "genome": None},
            "elapsed": 0.0,
            "wandb_id": f"{self.run_dir.name}".replace("/", "-")[-64:],
        }

    def _initial_agent(self, path: str, center: torch.Tensor, obs_norm: ObsNormalizer | None
                       ) -> tuple[torch.Tensor, ObsNormalizer | None]:
        """Genome and observation statistics of a saved agent, to fine-tune it (e.g. under damage)."""
        agent = load_agent(path)
        if agent.genome.numel() != center.numel():
            raise PlasticRLError(f"train.init_agent {path!r} has a genome of size {agent.genome.numel()}; this "
                                 f"policy's genome has {center.numel()} entries (the same policy config is required)")
        if obs_norm is not None and agent.obs_norm is not None:
            obs_norm = agent.obs_norm
            obs_norm.clip = float(self.config.train.obs_clip)
            obs_norm.std_floor = float(self.config.train.obs_std_floor)
        return agent.genome.to(center.dtype).reshape(center.shape).clone(), obs_norm

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "es": self.algo.state_dict(state["es"]),
            "obs_norm": state["obs_norm"].state_dict() if state["obs_norm"] is not None else None,
            "generation": state["generation"],
            "env_steps": state["env_steps"],
            "best": state["best"],
            "elapsed": state["elapsed"],
            "wandb_id": state["wandb_id"],
        }
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, payload)

    def _load_checkpoint(self) -> dict[str, Any]:
        if not (self.run_dir / CHECKPOINT_FILE).is_file():
            raise PlasticRLError(f"cannot resume: {str(self.run_dir)!r} has no {CHECKPOINT_FILE}")
        payload = torch_load(self.run_dir / CHECKPOINT_FILE)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise PlasticRLError(f"checkpoint format {payload.get('format')!r} is not {CHECKPOINT_FORMAT}")
        return {
            "es": self.algo.load_state(payload["es"]),
            "obs_norm": ObsNormalizer.from_state_dict(payload["obs_norm"]) if payload["obs_norm"] else None,
            "generation": int(payload["generation"]),
            "env_steps": int(payload["env_steps"]),
            "best": payload["best"],
            "elapsed": float(payload["elapsed"]),
            "wandb_id": payload["wandb_id"],
        }

    def _train_options(self, generation: int) -> dict[str, Any] | None:
        rows = self.population * self.config.train.episodes_per_member
        return training_reset_options(self.config, rows, derive_seed(self.config.seed, generation, Stream.ES_TRAIN_PERTURBATION),
                                      self.config.train.episodes_per_member)

    # -- evaluation ----------------------------------------------------------------------
    def _evaluate_center(self, center: torch.Tensor, obs_norm: ObsNormalizer | None) -> tuple[float, float, int]:
        # Fixed held-out seeds: every evaluation of every generation sees the same episodes,
        # so "best" compares like with like.
        seed = derive_env_seed(self.config.seed, 0, Stream.ES_EVAL_ENV)
        res = self.eval_evaluator.evaluate(center.unsqueeze(0), self.config.train.eval_episodes, seed, obs_norm, False)
        return (*res.return_stats(0), res.env_steps)

    def _save_agent(self, name: str, genome: torch.Tensor, state: dict[str, Any], eval_return: float) -> Path:
        return save_agent(self.run_dir / name, self.policy, config_to_dict(self.config)["policy"], genome,
                          state["obs_norm"], training_metadata(self.config, self.run_dir, state["generation"],
                                                               state["env_steps"], eval_return))

    def _restore_scheduled_best(self, state: dict[str, Any]) -> None:
        """Put the checkpoint's best (scheduled evaluations only) back into ``best_agent.pt``: the
        finished run may have replaced it with its final centre, evaluated off the schedule, which a
        straight run of the extended length never evaluates. Checkpoints written before the best's
        observation statistics were kept carry no ``obs_norm`` in ``best`` and are left as they are."""
        best = state["best"]
        if best["genome"] is None or "obs_norm" not in best:
            return
        obs_norm = ObsNormalizer.from_state_dict(best["obs_norm"]) if best["obs_norm"] is not None else None
        save_agent(self.run_dir / "best_agent.pt", self.policy, config_to_dict(self.config)["policy"], best["genome"],
                   obs_norm, training_metadata(self.config, self.run_dir, best["generation"], best["env_steps"],
                                               best["eval_return"]))

    # -- the loop -----------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainResult:
        """Run the loop to ``train.generations`` while holding the run directory (one process per run).
        ``resume=True`` continues from ``checkpoint.pt``; a run killed before its first checkpoint
        restarts from generation 0 in the same directory."""
        try:
            with hold_run(self.run_dir):
                return self._train_held(resume)
        finally:
            self.evaluator.close()
            self.eval_evaluator.close()

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
            raise PlasticRLError(f"run {str(self.run_dir)!r} has done {state['generation']} generations; "
                                 f"train.generations={cfg.train.generations} would end it before that (give "
                                 f"at least {state['generation']})")
        if started:
            self._restore_scheduled_best(state)
        stamp_run(self.run_dir, cfg, resume=resume, policy_kernel=self.policy.kernel)
        # A fresh start (also a resume with no checkpoint yet) drops every row a killed attempt left.
        logger = RunLogger.for_run(cfg, self.run_dir, state["wandb_id"],
                                   resume_from_generation=state["generation"] if resume else -1)
        try:
            return self._loop(state, logger)
        finally:
            logger.finish()

    def _loop(self, state: dict[str, Any], logger: RunLogger) -> TrainResult:
        cfg = self.config
        E = cfg.train.episodes_per_member
        kill_at = _kill_hook_generation()
        last_eval = (float("nan"), float("nan"))
        while state["generation"] < cfg.train.generations:
            if cfg.train.max_env_steps is not None and state["env_steps"] >= cfg.train.max_env_steps:
                break
            t0 = time.perf_counter()
            gen = state["generation"]
            samples, es_state = self.algo.ask(state["es"])
            res = self.evaluator.evaluate(samples, E, derive_env_seed(cfg.seed, gen, Stream.ES_TRAIN_ENV), state["obs_norm"],
                                          state["obs_norm"] is not None, self._train_options(gen))
            fitness = res.member_fitness(cfg.train.fitness).to(samples.dtype)
            rollout_seconds = time.perf_counter() - t0
            es_state, info = self.algo.tell(es_state, samples, fitness)
            if state["obs_norm"] is not None:
                state["obs_norm"].update(res.obs_moments)
            state["es"] = es_state
            state["generation"] = gen + 1
            state["env_steps"] += res.env_steps
            metrics: dict[str, Any] = {
                "generation": state["generation"],
                "env_steps": state["env_steps"],
                "fitness_mean": info["fitness_mean"], "fitness_max": info["fitness_max"],
                "fitness_min": info["fitness_min"], "fitness_std": info["fitness_std"],
                "invalid_members": int(info["num_invalid"]),
                "sigma": info.get("sigma"), "step_norm": info.get("step_norm"),
                "env_steps_per_s": res.env_steps / max(rollout_seconds, 1e-9),
            }
            g = state["generation"]
            # Only the scheduled evaluations enter the state: an extra one at a final generation off
            # the schedule would make a run that is later extended differ from a straight run.
            if g % cfg.train.eval_every == 0:
                center = self.algo.center(state["es"])
                mean, std, _ = self._evaluate_center(center, state["obs_norm"])
                last_eval = (mean, std)
                metrics.update({"eval_return_mean": mean, "eval_return_std": std})
                if mean > state["best"]["eval_return"]:
                    state["best"] = {"eval_return": mean, "generation": g, "genome": center.detach().cpu().clone(),
                                     "env_steps": state["env_steps"],
                                     "obs_norm": state["obs_norm"].state_dict() if state["obs_norm"] else None}
                    self._save_agent("best_agent.pt", center, state, mean)
                metrics["best_eval_return"] = state["best"]["eval_return"]
            else:
                last_eval = (float("nan"), float("nan"))
            state["elapsed"] += time.perf_counter() - t0
            metrics["generation_seconds"] = time.perf_counter() - t0
            metrics["wall_seconds"] = state["elapsed"]
            # The row goes out before the checkpoint: a kill between the two leaves rows beyond the
            # checkpoint, which a resume drops and writes again, never a checkpoint without its row.
            logger.log(metrics)
            if g % cfg.train.checkpoint_every == 0 or g == cfg.train.generations:
                if g == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                self._save_checkpoint(state)
            if self.on_generation is not None:
                self.on_generation(metrics)
        self._save_checkpoint(state)
        center = self.algo.center(state["es"])
        best = {"eval_return": state["best"]["eval_return"], "generation": state["best"]["generation"]}
        if math.isnan(last_eval[0]):
            # The final centre was not evaluated on schedule (a final generation off the schedule, a
            # step budget that ended the loop, a resume of a finished run): evaluate it now, so the
            # final agent never records NaN. It may become this run's best agent, but not the
            # checkpoint's best, which an extension of the run continues from.
            last_eval = self._evaluate_center(center, state["obs_norm"])[:2]
            if last_eval[0] > best["eval_return"]:
                best = {"eval_return": last_eval[0], "generation": state["generation"]}
                self._save_agent("best_agent.pt", center, state, last_eval[0])
        final_path = self._save_agent("final_agent.pt", center, state, last_eval[0])
        best_path = self.run_dir / "best_agent.pt"
        if cfg.logging.wandb.log_artifacts:
            logger.log_artifact(final_path, f"{self.run_dir.name}-final", aliases=["final"])
            if best_path.is_file():
                logger.log_artifact(best_path, f"{self.run_dir.name}-best", aliases=["best"])
        summary = {
            "run_dir": str(self.run_dir), "generations": state["generation"], "env_steps": state["env_steps"],
            "best_eval_return": best["eval_return"], "best_generation": best["generation"],
            "final_eval_return": last_eval[0], "wall_seconds": state["elapsed"], "population": self.population,
            "genome_dim": self.dim, "policy_kernel": self.policy.kernel,
        }
        logger.summary(summary)
        atomic_write_json(self.run_dir / "summary.json", summary)
        if not math.isfinite(best["eval_return"]):
            # Every evaluation of the centre was invalid: there is no agent to point to (no
            # best_agent.pt), and "done" would hide it.
            raise PlasticRLError(
                f"run {str(self.run_dir)!r} has no valid evaluation: in {state['generation']} generations every "
                f"evaluation of the centre went invalid (non-finite observations, rewards, weights or actions, "
                f"or unstable physics); metrics.jsonl counts the invalid members of each generation")
        return TrainResult(self.run_dir, state["generation"], state["env_steps"], best["eval_return"],
                           best["generation"], last_eval[0], center.detach().cpu())
