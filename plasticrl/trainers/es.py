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

The run's lifecycle (lock, stamp, logger, evaluation schedule, best and final agents, checkpoint
order, summary) is :class:`plasticrl.trainers.lifecycle.RunLoop`'s; this module implements one
generation (ask, evaluate the population, tell) and the ES state.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from plasticrl.rollouts.saved_agent import save_agent, training_metadata
from plasticrl.config import ExperimentConfig, config_to_dict
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_torch_save
from plasticrl.es import make_es
from plasticrl.seeding import Stream, derive_env_seed, derive_seed
from plasticrl.rollouts.env_setup import load_initial_agent, training_reset_options, with_policy_base
from plasticrl.trainers.evaluator import LocalEvaluator
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.trainers.lifecycle import (KILL_HOOK_ENV, Callback, RunLoop, RunState, TrainResult, default_wandb_id,
                                          load_checkpoint_payload)
from plasticrl.trainers.runs import CHECKPOINT_FILE

__all__ = ["ESState", "ESTrainer", "KILL_HOOK_ENV", "TrainResult"]

CHECKPOINT_FORMAT = 1


@dataclass(kw_only=True)
class ESState(RunState):
    """The state of an ES run between generations (with :class:`RunState`'s counters and best)."""

    es: Any = None
    """The ES algorithm's own state (its ``init``/``tell`` result: centre, step size, optimiser moments)."""
    obs_norm: ObsNormalizer | None = None
    """Observation statistics, merged after each generation and frozen within it; None when
    ``train.obs_norm`` is off."""

    def to_checkpoint(self, algo: Any) -> dict[str, Any]:
        """Plain data for ``checkpoint.pt`` (format 1; ``algo`` turns the ES state into tensors)."""
        return {"format": CHECKPOINT_FORMAT, "es": algo.state_dict(self.es),
                "obs_norm": self.obs_norm.state_dict() if self.obs_norm is not None else None, **self.counters()}

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any], algo: Any) -> "ESState":
        """The state :meth:`to_checkpoint` wrote (``payload`` checked to be format 1 by
        :func:`~plasticrl.trainers.lifecycle.load_checkpoint_payload`). Format 1 has always been this
        dict, so checkpoints of runs from before the typed state resume too."""
        return cls(es=algo.load_state(payload["es"]),
                   obs_norm=ObsNormalizer.from_state_dict(payload["obs_norm"]) if payload["obs_norm"] else None,
                   **cls.counters_from(payload))


def _default_evaluator(config: ExperimentConfig, rows: int):
    if config.distributed.backend == "ray":
        from plasticrl.trainers.ray_evaluator import RayEvaluator

        return RayEvaluator(config, rows, config.distributed.workers, config.distributed.address)
    return LocalEvaluator(config, rows)


class ESTrainer(RunLoop):
    """Trains one config in one run directory. ``ESTrainer(cfg, dir).train()``."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path,
        evaluator_factory: Callable[[ExperimentConfig, int], Any] | None = None,
        on_generation: Callback | None = None,
    ):
        config = with_policy_base(config)  # a symmetric policy's base from train.init_agent (else unchanged)
        super().__init__(config, run_dir, on_generation)
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
    def _fresh_state(self) -> ESState:
        cfg = self.config
        # The search distribution lives on the CPU; evaluators move genomes to the policy's device.
        center = self.policy.initial_genome(1)[0].cpu()
        obs_norm = (ObsNormalizer(self.policy.obs_dim, cfg.train.obs_clip, std_floor=cfg.train.obs_std_floor)
                    if cfg.train.obs_norm else None)
        if cfg.train.init_agent is not None:
            center, obs_norm = self._initial_agent(center, obs_norm)
        if cfg.train.init_noise > 0:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 0, Stream.ES_INIT_NOISE))
            center = center + cfg.train.init_noise * torch.randn(center.shape, generator=gen, dtype=center.dtype)
        return ESState(es=self.algo.init(center, seed=cfg.seed), obs_norm=obs_norm,
                       wandb_id=default_wandb_id(self.run_dir))

    def _initial_agent(self, center: torch.Tensor, obs_norm: ObsNormalizer | None
                       ) -> tuple[torch.Tensor, ObsNormalizer | None]:
        """Genome and observation statistics of a saved agent, to fine-tune it (e.g. under damage), with the
        normaliser's clip and floor from this run's config."""
        genome, saved_norm = load_initial_agent(self.config, self.policy)
        if obs_norm is not None and saved_norm is not None:
            obs_norm = saved_norm
            obs_norm.clip = float(self.config.train.obs_clip)
            obs_norm.std_floor = float(self.config.train.obs_std_floor)
        return genome.to(center.dtype).reshape(center.shape).clone(), obs_norm

    def _save_checkpoint(self, state: ESState) -> None:
        atomic_torch_save(self.run_dir / CHECKPOINT_FILE, state.to_checkpoint(self.algo))

    def _load_checkpoint(self) -> ESState:
        return ESState.from_checkpoint(load_checkpoint_payload(self.run_dir, CHECKPOINT_FORMAT), self.algo)

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

    def _save_agent(self, name: str, genome: torch.Tensor, state: ESState, eval_return: float) -> Path:
        return save_agent(self.run_dir / name, self.policy, config_to_dict(self.config)["policy"], genome,
                          state.obs_norm, training_metadata(self.config, self.run_dir, state.generation,
                                                            state.env_steps, eval_return))

    def _restore_scheduled_best(self, state: ESState) -> None:
        """Put the checkpoint's best (scheduled evaluations only) back into ``best_agent.pt``: the
        finished run may have replaced it with its final centre, evaluated off the schedule, which a
        straight run of the extended length never evaluates. Checkpoints written before the best's
        observation statistics were kept carry neither ``env_steps`` nor ``obs_norm`` in ``best`` and are
        left as they are."""
        best = state.best
        if best.genome is None or best.env_steps is None:
            return
        obs_norm = ObsNormalizer.from_state_dict(best.obs_norm) if best.obs_norm is not None else None
        save_agent(self.run_dir / "best_agent.pt", self.policy, config_to_dict(self.config)["policy"], best.genome,
                   obs_norm, training_metadata(self.config, self.run_dir, best.generation, best.env_steps,
                                               best.eval_return))

    # -- the lifecycle's hooks -------------------------------------------------------------
    @property
    def policy_kernel(self) -> str:
        return self.policy.kernel

    def close(self) -> None:
        self.evaluator.close()
        self.eval_evaluator.close()

    def _after_resume(self, state: ESState) -> None:
        self._restore_scheduled_best(state)

    def _current_genome(self, state: ESState) -> torch.Tensor:
        return self.algo.center(state.es)

    def _evaluate(self, genome: torch.Tensor, state: ESState) -> tuple[float, float]:
        return self._evaluate_center(genome, state.obs_norm)[:2]

    def _best_extra(self, state: ESState) -> dict[str, Any]:
        return {"env_steps": state.env_steps,
                "obs_norm": state.obs_norm.state_dict() if state.obs_norm else None}

    def _summary_extra(self, state: ESState) -> dict[str, Any]:
        return {"population": self.population, "genome_dim": self.dim}

    def _step(self, state: ESState) -> dict[str, Any]:
        """One generation: ask, evaluate every member on its episodes, tell; merge the statistics."""
        cfg = self.config
        t0 = time.perf_counter()
        gen = state.generation
        samples, es_state = self.algo.ask(state.es)
        res = self.evaluator.evaluate(samples, cfg.train.episodes_per_member,
                                      derive_env_seed(cfg.seed, gen, Stream.ES_TRAIN_ENV), state.obs_norm,
                                      state.obs_norm is not None, self._train_options(gen))
        fitness = res.member_fitness(cfg.train.fitness).to(samples.dtype)
        rollout_seconds = time.perf_counter() - t0
        es_state, info = self.algo.tell(es_state, samples, fitness)
        if state.obs_norm is not None:
            state.obs_norm.update(res.obs_moments)
        state.es = es_state
        state.generation = gen + 1
        state.env_steps += res.env_steps
        return {
            "generation": state.generation,
            "env_steps": state.env_steps,
            "fitness_mean": info["fitness_mean"], "fitness_max": info["fitness_max"],
            "fitness_min": info["fitness_min"], "fitness_std": info["fitness_std"],
            "invalid_members": int(info["num_invalid"]),
            "sigma": info.get("sigma"), "step_norm": info.get("step_norm"),
            # the rollouts' rate (the row's generation_seconds also counts the update and evaluation)
            "env_steps_per_s": res.env_steps / max(rollout_seconds, 1e-9),
        }
