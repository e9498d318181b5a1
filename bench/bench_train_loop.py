"""Whole-loop ES throughput against the raw-physics ceiling, printed as JSON.

One ES generation = ask + batched rollout of P members (policy step, engine step,
observation normalisation, return bookkeeping, plasticity) + tell. Env steps per second of
whole generations (centre evaluation excluded) are compared with the ceiling measured in the
same run: threaded ``mj_step x frame_skip`` for P instances with no observations, rewards or
policy (``bench_envs.Ceiling``). On a shared machine the speed of a core drifts by tens of
percent within a minute, so each repeat measures the ceiling right before and right after the
loop and divides by their mean; the median over repeats is the figure to quote.

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
from plasticrl.envs.engine import default_num_threads  # noqa: E402
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
                            "whole_loop_over_ceiling": row["whole_loop_steps_per_s"] / ceiling})
        ratios = [r["whole_loop_over_ceiling"] for r in repeats]
        results[name] = {
            "whole_loop_over_ceiling_median": round(float(np.median(ratios)), 3),
            "whole_loop_over_ceiling_each": [round(x, 3) for x in ratios],
            "whole_loop_steps_per_s_median": round(float(np.median([r["whole_loop_steps_per_s"] for r in repeats])), 1),
            "ceiling_steps_per_s_median": round(float(np.median([r["ceiling_steps_per_s"] for r in repeats])), 1),
            "generations_timed": repeats[0]["generations_timed"],
        }
    print(json.dumps({
        "benchmark": "whole_es_loop_vs_physics_ceiling", "env": args.env, "population": args.population,
        "cpu_count": os.cpu_count(), "physics_threads": default_num_threads(), "repeats": args.repeats,
        "target": "whole_loop_over_ceiling >= 0.7 (plastic policy)", "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
