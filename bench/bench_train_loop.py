"""Whole-loop ES throughput against the raw-physics ceiling, printed as JSON.

One ES generation = ask + batched rollout of P members (policy step, engine step,
observation normalisation, return bookkeeping, plasticity) + tell. Env steps per second of
whole generations (centre evaluation excluded) are compared with the ceiling measured in the
same run: threaded ``mj_step x frame_skip`` for P instances with no observations, rewards or
policy (``bench_envs.Ceiling``).

    python bench/bench_train_loop.py                       # HalfCheetah-v5, P = 64
    python bench/bench_train_loop.py --env Ant-v5 --generations 3
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
from plasticrl.envs.engine import default_num_threads  # noqa: E402
from plasticrl.train.trainer import ESTrainer  # noqa: E402

POLICIES = {
    "plastic_bcm_reward": ["policy.kind=plastic_spiking", "policy.hidden=[64]", "policy.plasticity.rule=bcm",
                           "policy.plasticity.modulation=reward"],
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


def loop_steps_per_s(env_id: str, population: int, generations: int, policy: list[str]) -> dict:
    overrides = [f"env.id={env_id}", "es.algorithm=pgpe",
                 f"es.params={{population_size: {population}, stdev_init: 0.1}}",
                 f"train.generations={generations}", f"train.eval_every={generations + 1}",
                 f"train.checkpoint_every={generations + 1}", "logging.wandb.mode=disabled"] + policy
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ESTrainer(load_config(None, overrides), Path(tmp) / "run", on_generation=rows.append).train()
    # The first generation pays one-off warm-up costs; the trainer always evaluates the centre
    # after its last generation, and that evaluation is not part of the loop being measured.
    timed = [r for r in rows[1:] if "eval_return_mean" not in r]
    if not timed:
        raise SystemExit(f"--generations {generations} leaves no generation to time; use at least 3")
    steps = sum(r["env_steps"] - p["env_steps"] for p, r in zip(rows, rows[1:]) if "eval_return_mean" not in r)
    seconds = sum(r["generation_seconds"] for r in timed)
    return {"whole_loop_steps_per_s": steps / seconds, "rollout_only_steps_per_s":
            float(np.mean([r["env_steps_per_s"] for r in timed])), "generations_timed": len(timed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--ceiling-steps", type=int, default=1000)
    args = parser.parse_args()
    ceiling = ceiling_steps_per_s(args.env, args.population, args.ceiling_steps)
    results = {}
    for name, policy in POLICIES.items():
        row = loop_steps_per_s(args.env, args.population, args.generations, policy)
        row["whole_loop_over_ceiling"] = row["whole_loop_steps_per_s"] / ceiling
        results[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    print(json.dumps({
        "benchmark": "whole_es_loop_vs_physics_ceiling", "env": args.env, "population": args.population,
        "cpu_count": os.cpu_count(), "physics_threads": default_num_threads(),
        "ceiling_steps_per_s": round(ceiling, 1), "target": "whole_loop_over_ceiling >= 0.7 (plastic policy)",
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
