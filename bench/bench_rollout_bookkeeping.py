"""The rollout's per-step bookkeeping alone, numpy against the compiled loops, printed as JSON.

Times exactly the work :func:`plasticrl.rollouts.loop.rollout` does per control step around the
policy and the env (observation copy, normalisation and clip, conversion to the policy's float32,
observation statistics of the active rows, returns, lengths, reward conversion, active mask), on
synthetic arrays of the sizes of HalfCheetah-v5 (obs 17) and Ant-v5 (obs 105), without physics or
policy: a measurement that another job on the machine can only slow down, so the minimum over
repeats is quoted, with the load average beside it.

    python bench/bench_rollout_bookkeeping.py
    python bench/bench_rollout_bookkeeping.py --population 64 1024 --repeats 9
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from plasticrl.rollouts import compiled


def numpy_step(obs, mean, std, clip, active, returns, lengths, row_count, row_sum, row_sumsq, reward, done):
    """The numpy path's per-step operations (plasticrl/rollouts/loop.py)."""
    raw = np.array(obs, dtype=np.float64)
    policy_obs = torch.from_numpy(np.clip((raw - mean) / std, -clip, clip)).to(dtype=torch.float32)
    bad = active & ~np.isfinite(raw).all(axis=1)
    counted = active & ~bad
    live = np.where(counted[:, None], raw, 0.0)
    row_count += counted
    row_sum += live
    row_sumsq += live * live
    r = np.asarray(reward, dtype=np.float64)
    bad |= active & ~np.isfinite(r)
    returns += np.where(active, r, 0.0)
    lengths += active
    policy_reward = torch.from_numpy(r).to(dtype=torch.float32)
    active &= ~np.logical_or(done, done)
    return policy_obs, policy_reward


def compiled_step(obs, mean, std, clip, active, returns, lengths, row_count, row_sum, row_sumsq, reward, done,
                  raw):
    """The compiled path's per-step operations (plasticrl/rollouts/loop.py, _rollout_compiled)."""
    rows, dim = raw.shape
    policy_obs = torch.empty((rows, dim), dtype=torch.float32)
    bad = np.zeros(rows, dtype=bool)
    compiled.prepare_obs(obs, mean, std, clip, True, active, bad, raw, policy_obs.numpy())
    compiled.accumulate_moments(raw, active, bad, row_count, row_sum, row_sumsq)
    policy_reward = torch.empty(rows, dtype=torch.float32)
    compiled.after_step(np.ascontiguousarray(reward, dtype=np.float64), compiled.as_bool(done),
                        compiled.as_bool(done), active, bad, returns, lengths, policy_reward.numpy())
    return policy_obs, policy_reward


def time_path(path: str, rows: int, dim: int, steps: int, repeats: int) -> float:
    """Minimum over ``repeats`` of the mean microseconds per step over ``steps`` steps."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(rows, dim))
    reward = rng.normal(size=rows)
    done = np.zeros(rows, dtype=bool)
    mean, std = rng.normal(size=dim), rng.uniform(0.5, 2.0, dim)
    best = float("inf")
    for _ in range(repeats + 1):  # the first repeat compiles and warms the caches
        active = np.ones(rows, dtype=bool)
        returns, lengths = np.zeros(rows), np.zeros(rows, dtype=np.int64)
        row_count, row_sum, row_sumsq = np.zeros(rows), np.zeros((rows, dim)), np.zeros((rows, dim))
        raw = np.zeros((rows, dim))
        start = time.perf_counter()
        for _ in range(steps):
            if path == "numpy":
                numpy_step(obs, mean, std, 5.0, active, returns, lengths, row_count, row_sum, row_sumsq, reward,
                           done)
            else:
                compiled_step(obs, mean, std, 5.0, active, returns, lengths, row_count, row_sum, row_sumsq,
                              reward, done, raw)
        best = min(best, (time.perf_counter() - start) / steps * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not compiled.available():
        raise SystemExit("numba is not installed (pip install 'plasticrl[fast]'): nothing to compare")
    torch.set_num_threads(1)
    rows = []
    for env, dim in (("HalfCheetah-v5", 17), ("Ant-v5", 105)):
        for population in args.population:
            numpy_us = time_path("numpy", population, dim, args.steps, args.repeats)
            compiled_us = time_path("compiled", population, dim, args.steps, args.repeats)
            rows.append({"env_shape": env, "obs_dim": dim, "population": population,
                         "numpy_us_per_step_min": round(numpy_us, 1), "compiled_us_per_step_min": round(compiled_us, 1),
                         "speedup": round(numpy_us / compiled_us, 2)})
    print(json.dumps({"benchmark": "rollout_bookkeeping_us", "cpu_count": os.cpu_count(),
                      "load_average": os.getloadavg(), "steps": args.steps, "repeats": args.repeats,
                      "results": rows}, indent=2))


if __name__ == "__main__":
    main()
