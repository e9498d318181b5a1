"""The whole ES loop against the ``mujoco.batch`` ceiling over tasks, populations, cores and policies,
with a cost model fitted to it, printed as JSON.

Each cell runs ``bench_train_loop.py`` in its own process pinned to the first ``threads`` CPUs
(``os.sched_setaffinity``: the engine and the ceiling use as many worker threads as the process may
run on), so a cell reports its own peak resident memory. The load average is printed beside every
cell: on a shared machine other jobs slow both the loop and its ceiling.

Cost model (per control step of P members on c cores): the physics takes ``P / ceiling_c`` (the
ceiling measured beside the loop), and everything else (policy, env observations and rewards, rollout
bookkeeping, ES) runs on the main thread while the physics waits, ``serial(P)`` seconds, which does not
shrink with cores. Fitted on the 1-core cell: ``serial(P) = P / loop_1 - P / ceiling_1``; predicted
loop / ceiling on c cores: ``(P / ceiling_c) / (P / ceiling_c + serial(P))``, checked against the
measured 2-core cell, and extrapolated to 16 and 64 cores with ``ceiling_c = c x ceiling_1`` (perfect
physics scaling). ``sharded_bound`` is what a design that runs the serial part on every core too
(population shards stepping end to end) would approach: ``(P / ceiling_1) / (P / ceiling_1 + serial(P))``.
Every core count runs with one batched env and, where ``--shard-modes`` has ``cores``, with one population shard
per core (``train.threads``), reported beside the model's prediction as ``measured_C_cores_C_shards``.

    python bench/bench_loop_matrix.py                                   # the full matrix (long)
    python bench/bench_loop_matrix.py --envs HalfCheetah-v5 --populations 64 256 --generations 3

A cell's ``peak_rss_mib`` is its whole benchmark process, ceilings included (each ceiling holds P MuJoCo
instances of its own, and freed memory is not always returned to the system); ``memory`` gives the training
loop's own peak at the largest P (``bench_train_loop.py --loop-only``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

POLICY_NAMES = {"plastic_fused": "plastic_bcm_reward_fused", "linear": "linear"}
HERE = Path(__file__).resolve().parent


def loop_command(env: str, population: int, policy: str, args: argparse.Namespace, shards: int) -> list[str]:
    """``bench_train_loop.py``'s command line for one policy, task, population and shard count."""
    cmd = [sys.executable, str(HERE / "bench_train_loop.py"), "--env", env, "--population", str(population),
           "--policies", POLICY_NAMES[policy], "--generations", str(args.generations), "--shards", str(shards)]
    if args.episode_steps is not None:
        cmd += ["--episode-steps", str(args.episode_steps)]
    return cmd


def run_cell(env: str, population: int, threads: int, policy: str, args: argparse.Namespace,
             shards: int = 1) -> dict:
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    cmd = loop_command(env, population, policy, args, shards) + [
        "--repeats", str(args.repeats), "--ceiling-steps", str(args.ceiling_steps)]
    load_before = os.getloadavg()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if proc.returncode != 0:
        return {"env": env, "population": population, "threads": threads, "shards": shards, "policy": policy,
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    report = json.loads(proc.stdout)
    (row,) = report["results"].values()
    return {"env": env, "population": population, "threads": threads, "shards": shards, "policy": policy,
            "loop_over_ceiling_each": row["whole_loop_over_ceiling_each"],
            "cpu_efficiency": row["cpu_efficiency_median"], "cpu_efficiency_each": row["cpu_efficiency_each"],
            "member_us_per_step": round(1e6 / row["whole_loop_steps_per_s_median"], 2),
            "loop_over_ceiling": row["whole_loop_over_ceiling_median"],
            "loop_steps_per_s": row["whole_loop_steps_per_s_median"],
            "ceiling_steps_per_s": row["ceiling_steps_per_s_median"],
            "peak_rss_mib": round(report["peak_rss_mib"], 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in report["load_average"]]}


def memory_cell(env: str, population: int, policy: str, args: argparse.Namespace, shards: int) -> dict:
    """The training loop's own peak resident memory (``bench_train_loop.py --loop-only``: no ceilings, whose
    MuJoCo instances the loop cells' ``peak_rss_mib`` includes), on every CPU the matrix may use."""
    cmd = loop_command(env, population, policy, args, shards) + ["--loop-only"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"env": env, "population": population, "policy": policy, "shards": shards,
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    (row,) = json.loads(proc.stdout)["results"].values()
    return {"env": env, "population": population, "policy": policy, "shards": shards,
            "loop_peak_rss_mib": row["peak_rss_mib"], "loop_steps_per_s": row["whole_loop_steps_per_s"]}


def cost_model(cells: list[dict]) -> list[dict]:
    """Fit ``serial(P)`` on each 1-core cell; predict the other core counts (see the module docstring)."""
    out = []
    # the model describes one batched env (shards = 1); sharded cells are reported beside its prediction
    by_key = {(c["env"], c["population"], c["policy"], c["threads"]): c for c in cells
              if "error" not in c and c.get("shards", 1) == 1}
    sharded = {(c["env"], c["population"], c["policy"], c["threads"]): c for c in cells
               if "error" not in c and c.get("shards", 1) > 1}
    for (env, population, policy, threads), one in by_key.items():
        if threads != 1:
            continue
        physics_1 = population / one["ceiling_steps_per_s"]
        serial = population / one["loop_steps_per_s"] - physics_1
        row = {"env": env, "population": population, "policy": policy,
               "physics_ms_per_step_1_core": round(1e3 * physics_1, 3), "serial_ms_per_step": round(1e3 * serial, 3),
               "sharded_bound": round(physics_1 / (physics_1 + serial), 3)}
        for cores in (2, 16, 64):
            measured = by_key.get((env, population, policy, cores))
            physics_c = (population / measured["ceiling_steps_per_s"] if measured is not None
                         else physics_1 / cores)
            row[f"predicted_{cores}_cores"] = round(physics_c / (physics_c + serial), 3)
            if measured is not None:
                row[f"measured_{cores}_cores"] = measured["loop_over_ceiling"]
            if (env, population, policy, cores) in sharded:
                row[f"measured_{cores}_cores_{cores}_shards"] = sharded[(env, population, policy, cores)][
                    "loop_over_ceiling"]
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Ant-v5"])
    parser.add_argument("--populations", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--policies", nargs="+", default=list(POLICY_NAMES), choices=list(POLICY_NAMES))
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--ceiling-steps", type=int, default=300)
    parser.add_argument("--episode-steps", type=int, default=None, help="env.max_episode_steps of every cell")
    parser.add_argument("--shard-modes", nargs="+", default=["one", "cores"], choices=["one", "cores"],
                        help="one: a single batched env (train.threads=1); cores: one population shard per core")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the loop-only memory cells at the "
                        "largest P (shorter, as bench/gpu_check.sh runs it)")
    args = parser.parse_args()
    available = len(os.sched_getaffinity(0))
    cells = []
    for env in args.envs:
        for population in args.populations:
            for threads in args.threads:
                if threads > available:
                    continue
                for policy in args.policies:
                    for shards in sorted({1 if mode == "one" else threads for mode in args.shard_modes}):
                        cell = run_cell(env, population, threads, policy, args, shards)
                        print(json.dumps(cell), file=sys.stderr, flush=True)  # progress
                        cells.append(cell)
    # the loop's own memory at the largest population, one batched env and one shard per core
    memory = []
    for env in ([] if args.skip_memory else args.envs):
        for policy in args.policies:
            for shards in sorted({1, min(max(args.threads), available)}):
                memory.append(memory_cell(env, max(args.populations), policy, args, shards))
                print(json.dumps(memory[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "whole_loop_matrix", "cpu_count": os.cpu_count(),
                      "episode_steps": args.episode_steps, "cells": cells, "memory": memory,
                      "cost_model": cost_model(cells)}, indent=2))


if __name__ == "__main__":
    main()
