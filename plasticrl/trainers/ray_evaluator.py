"""Ray backend: the population is split into contiguous shards of members, each evaluated by
a Ray actor that owns its own batched engine and policy.

Equality with the local backend is by construction: a vector env reset with seed ``s`` seeds
its sub-env ``i`` with ``s + i``, so a shard whose first row is ``r0`` is reset with
``seed + r0`` and every row sees the episode it would see locally; rows never interact; the
per-row observation sums are concatenated in row order before they are reduced. Only
``env_steps`` differs: each shard stops when its own rows are done, so fewer finished-row
transitions are simulated in total.

A worker that dies mid-generation (its process killed, its node lost) is restarted by Ray and its
shard's evaluation is run again (``max_restarts`` / ``max_task_retries`` of Ray's actor fault
tolerance): a shard's evaluation is a pure function of its inputs, so the retried generation is the
one the run would have had. When the retries are used up, the generation fails with one line and
``plasticrl train --resume RUN`` continues from the last checkpoint.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from plasticrl.config import ExperimentConfig, config_from_dict, config_to_dict
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.obs_norm import ObsNormalizer
from plasticrl.rollouts.loop import RolloutResult
from plasticrl.rollouts.shards import shard_bounds

#: how often Ray restarts a dead shard worker, and retries the evaluation it was running
WORKER_RESTARTS = 3


def _require_ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the install
        raise PlasticRLError("the ray backend needs Ray: pip install 'plasticrl[dist]'") from None
    return ray


class _ShardWorker:
    """Runs inside a Ray actor: one local evaluator for one shard's rows."""

    def __init__(self, config: dict[str, Any], rows: int):
        from plasticrl.trainers.evaluator import LocalEvaluator

        cfg = config_from_dict(config, "shard config")
        torch.set_num_threads(cfg.torch_threads)
        self.evaluator = LocalEvaluator(cfg, rows)

    def evaluate(self, genomes, episodes, seed, obs_norm_state, collect, options):
        norm = ObsNormalizer.from_state_dict(obs_norm_state) if obs_norm_state is not None else None
        res = self.evaluator.evaluate(genomes, episodes, seed, norm, collect, options)
        return {"returns": res.returns, "lengths": res.lengths, "invalid": res.invalid, "env_steps": res.env_steps,
                "obs_rows": res.obs_rows}

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()


class RayEvaluator:
    """Same interface as :class:`~plasticrl.trainers.evaluator.LocalEvaluator`, sharded over Ray actors."""

    def __init__(self, config: ExperimentConfig, rows: int, workers: int | None = None, address: str | None = None):
        ray = _require_ray()
        self._ray = ray
        self.config = config
        episodes = config.train.episodes_per_member
        if rows % episodes:
            raise PlasticRLError(f"rows ({rows}) must be a multiple of episodes_per_member ({episodes})")
        population = rows // episodes
        if not ray.is_initialized():
            init_kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                           "ignore_reinit_error": True}
            if address is None:
                init_kwargs["num_cpus"] = workers or None
            ray.init(**init_kwargs)
        if workers is None:
            workers = max(1, int(ray.available_resources().get("CPU", 1)))
        self.bounds = shard_bounds(population, max(1, workers))
        # A dead worker is restarted (its __init__ runs again) and its pending evaluation retried.
        remote_cls = ray.remote(num_cpus=1, max_restarts=WORKER_RESTARTS, max_task_retries=WORKER_RESTARTS)(_ShardWorker)
        cfg = config_to_dict(config)
        self.episodes = episodes
        self.actors = [remote_cls.remote(cfg, (b - a) * episodes) for a, b in self.bounds]

    def evaluate(self, genomes: torch.Tensor, episodes_per_member: int, seed: int,
                 obs_norm: ObsNormalizer | None, collect_obs_moments: bool,
                 options: dict[str, Any] | None = None) -> RolloutResult:
        if episodes_per_member != self.episodes:
            raise PlasticRLError(f"this evaluator was built for {self.episodes} episodes per member, "
                                 f"not {episodes_per_member}")
        norm_state = obs_norm.state_dict() if obs_norm is not None else None
        genomes = genomes.detach().cpu()
        futures = []
        for actor, (a, b) in zip(self.actors, self.bounds):
            r0, r1 = a * episodes_per_member, b * episodes_per_member
            shard_options = options
            if options is not None and "perturbations" in options:
                shard_options = {**options, "perturbations": list(options["perturbations"][r0:r1])}
            # shared episode seeds depend on the episode index only: every shard gets the same base seed
            shard_seed = seed if self.config.env.train_episode_seeds == "shared" else seed + r0
            futures.append(actor.evaluate.remote(genomes[a:b], episodes_per_member, shard_seed, norm_state,
                                                 collect_obs_moments, shard_options))
        try:
            parts = self._ray.get(futures)
        except self._ray.exceptions.RayActorError as exc:
            cause = " ".join(str(exc).split())[:160]
            raise PlasticRLError(f"a Ray worker died in this generation with its {WORKER_RESTARTS} restarts used up "
                                 f"({cause}); plasticrl train --resume RUN continues from the last checkpoint") from None
        obs_rows = None
        if collect_obs_moments:
            obs_rows = tuple(torch.cat([p["obs_rows"][i] for p in parts]) for i in range(3))
        return RolloutResult(
            returns=torch.cat([p["returns"] for p in parts]),
            lengths=torch.cat([p["lengths"] for p in parts]),
            invalid=torch.cat([p["invalid"] for p in parts]),
            env_steps=sum(p["env_steps"] for p in parts),
            obs_rows=obs_rows,
        )

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
