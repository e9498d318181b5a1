"""Whole-loop ES throughput against the raw-physics ceiling, printed as JSON.

One ES generation = ask + batched rollout of P members (policy step, engine step,
observation normalisation, return bookkeeping, plasticity) + tell. Env steps per second of
whole generations (centre evaluation excluded) are compared with the ceiling measured in the
same run: threaded ``mj_step x frame_skip`` for P instances with no observations, rewards or
policy (``bench_envs.Ceiling``). On a shared machine the speed of a core drifts by tens of
percent within a minute, so each repeat measures the ceiling right before and right after the
loop and divides by their mean; the median over repeats is the figure to quote.

Random actions are not the policy's: a policy drives the robots into other states, whose contacts
cost other amounts of physics. So each repeat also records the controls and start states of its
last timed generation and replays them through the same threaded ``mj_step`` loop: the physics
of exactly the trajectories the loop simulated (checked: the replay ends in the same states). Its
ratio, ``whole_loop_over_replayed_physics``, is the share of the loop's time that its own physics
would take alone.

    python bench/bench_train_loop.py                       # HalfCheetah-v5, P = 64
    python bench/bench_train_loop.py --env Ant-v5 --generations 3 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import Ceiling  # noqa: E402  (shared ceiling measurement)

from plasticrl.config import load_config  # noqa: E402
from plasticrl.envs.engine import PhysicsPool, default_num_threads  # noqa: E402
from plasticrl.envs.vector import MujocoVectorEnv  # noqa: E402
from plasticrl.train.trainer import ESTrainer  # noqa: E402

POLICIES = {
    "plastic_bcm_reward": ["policy.kind=plastic_spiking", "policy.hidden=[64]", "policy.plasticity.rule=bcm",
                           "policy.plasticity.modulation=reward"],
    "plastic_bcm_reward_fused": ["policy.kind=plastic_spiking", "policy.hidden=[64]", "policy.plasticity.rule=bcm",
                                 "policy.plasticity.modulation=reward", "policy.kernel=fused"],
    "linear": ["policy.kind=linear"],
}


def ceiling_steps_per_s(env_id: str, population: int, steps: int) -> float:
    ceiling = Ceiling(env_id, population, default_num_threads())
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, population, ceiling.ctrl[0].shape[0]))
    for a in actions[:10]:
        ceiling.step(a)
    start = time.perf_counter()
    for a in actions:
        ceiling.step(a)
    elapsed = time.perf_counter() - start
    ceiling.close()
    return population * steps / elapsed


class _Recorder:
    """Records, for the training env (``rows`` instances), the start states of each rollout and
    the controls of every step after them, by wrapping ``reset`` and ``PhysicsPool.start`` for
    the duration of a ``with`` block (bench-only instrumentation)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.starts: list[tuple[np.ndarray, np.ndarray]] = []
        self.controls: list[np.ndarray] = []
        self.env: MujocoVectorEnv | None = None

    def __enter__(self) -> "_Recorder":
        self._reset, self._start = MujocoVectorEnv.reset, PhysicsPool.start
        rec = self

        def reset(env, **kwargs):
            out = rec._reset(env, **kwargs)
            if env.num_envs == rec.rows:
                rec.env = env
                rec.starts = [(d.qpos.copy(), d.qvel.copy()) for d in env.pool.datas]
                rec.controls = []
            return out

        def start(pool, ctrl, active=None):
            # one array copy per step inside the timed loop: ~1 us against ~1.7 ms per step
            if rec.env is not None and pool is rec.env.pool:
                if active is not None and not active.all():
                    raise SystemExit("replay needs episodes that do not end inside the rollout (HalfCheetah-v5)")
                rec.controls.append(np.array(ctrl))
            return rec._start(pool, ctrl, active)

        MujocoVectorEnv.reset, PhysicsPool.start = reset, start
        return self

    def __exit__(self, *exc) -> None:
        MujocoVectorEnv.reset, PhysicsPool.start = self._reset, self._start


def replayed_physics_steps_per_s(env_id: str, rec: _Recorder, final_qpos: np.ndarray) -> float:
    """Steps/s of the threaded ``mj_step`` loop replaying the recorded generation."""
    ceiling = Ceiling(env_id, rec.rows, default_num_threads())
    ceiling.set_states(rec.starts)
    start = time.perf_counter()
    for ctrl in rec.controls:
        ceiling.step(ctrl)
    elapsed = time.perf_counter() - start
    replay_qpos = np.stack([d.qpos for d in ceiling.datas])
    ceiling.close()
    if not np.array_equal(replay_qpos, final_qpos):
        raise SystemExit("the replayed physics diverged from the recorded rollout")
    return rec.rows * len(rec.controls) / elapsed


def loop_steps_per_s(env_id: str, population: int, generations: int, policy: list[str]) -> dict:
    overrides = [f"env.id={env_id}", "es.algorithm=pgpe",
                 f"es.params={{population_size: {population}, stdev_init: 0.1}}",
                 f"train.generations={generations}", f"train.eval_every={generations + 1}",
                 f"train.checkpoint_every={generations + 1}", "logging.wandb.mode=disabled"] + policy
    rows = []
    with tempfile.TemporaryDirectory() as tmp, _Recorder(population) as rec:
        ESTrainer(load_config(None, overrides), Path(tmp) / "run", on_generation=rows.append).train()
    # The training env is idle after its last generation (the final centre evaluation runs in
    # an env of its own), so its instances still hold the states that generation ended in.
    final_qpos = np.stack([d.qpos.copy() for d in rec.env.pool.datas])
    # The first generation pays one-off warm-up costs; the trainer always evaluates the centre
    # after its last generation, and that evaluation is not part of the loop being measured.
    timed = [r for r in rows[1:] if "eval_return_mean" not in r]
    if not timed:
        raise SystemExit(f"--generations {generations} leaves no generation to time; use at least 3")
    steps = sum(r["env_steps"] - p["env_steps"] for p, r in zip(rows, rows[1:]) if "eval_return_mean" not in r)
    seconds = sum(r["generation_seconds"] for r in timed)
    return {"whole_loop_steps_per_s": steps / seconds, "rollout_only_steps_per_s":
            float(np.mean([r["env_steps_per_s"] for r in timed])), "generations_timed": len(timed),
            "replayed_physics_steps_per_s": replayed_physics_steps_per_s(env_id, rec, final_qpos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ceiling-steps", type=int, default=500)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    args = parser.parse_args()
    results = {}
    for name in args.policies:
        repeats = []
        for _ in range(args.repeats):
            before = ceiling_steps_per_s(args.env, args.population, args.ceiling_steps)
            row = loop_steps_per_s(args.env, args.population, args.generations, POLICIES[name])
            after = ceiling_steps_per_s(args.env, args.population, args.ceiling_steps)
            ceiling = 0.5 * (before + after)
            repeats.append({**row, "ceiling_steps_per_s": ceiling,
                            "whole_loop_over_ceiling": row["whole_loop_steps_per_s"] / ceiling,
                            "whole_loop_over_replayed_physics":
                                row["whole_loop_steps_per_s"] / row["replayed_physics_steps_per_s"]})

        def median(key: str, digits: int = 1) -> float:
            return round(float(np.median([r[key] for r in repeats])), digits)

        results[name] = {
            "whole_loop_over_ceiling_median": median("whole_loop_over_ceiling", 3),
            "whole_loop_over_ceiling_each": [round(r["whole_loop_over_ceiling"], 3) for r in repeats],
            "whole_loop_over_replayed_physics_median": median("whole_loop_over_replayed_physics", 3),
            "whole_loop_over_replayed_physics_each": [round(r["whole_loop_over_replayed_physics"], 3)
                                                      for r in repeats],
            "whole_loop_steps_per_s_median": median("whole_loop_steps_per_s"),
            "ceiling_steps_per_s_median": median("ceiling_steps_per_s"),
            "replayed_physics_steps_per_s_median": median("replayed_physics_steps_per_s"),
            "generations_timed": repeats[0]["generations_timed"],
        }
    print(json.dumps({
        "benchmark": "whole_es_loop_vs_physics_ceiling", "env": args.env, "population": args.population,
        "cpu_count": os.cpu_count(), "physics_threads": default_num_threads(), "repeats": args.repeats,
        "target": "whole_loop_over_ceiling >= 0.7 (plastic policy)", "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
