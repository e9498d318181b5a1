"""Peak memory of ``plasticrl eval`` against the episode count, printed as JSON.

Evaluation streams its episodes through engine batches of at most ``--max-rows`` rows and keeps a few
numbers per episode, so its peak resident memory should stay flat as the episode count grows. Each
count runs in a fresh interpreter (peak RSS, ``resource.getrusage``, is per process) evaluating an
untrained linear agent on HalfCheetah-v5, nominal condition, episodes of 10 steps.

    python bench/bench_eval_memory.py
    python bench/bench_eval_memory.py --episodes 1000 10000 100000 --max-rows 512
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(episodes: int, max_rows: int, workdir: Path) -> dict:
    """Evaluate ``episodes`` episodes in this process; returns its peak RSS and time."""
    import resource

    import torch

    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec
    from plasticrl.eval.settings import EvalSettings
    from plasticrl.experiments.evaluation import evaluate_agents
    from plasticrl.rollouts.saved_agent import save_agent

    env = make_vec("HalfCheetah-v5", 1)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    genome = 0.5 * torch.randn(policy.genome.dim, generator=torch.Generator().manual_seed(0), dtype=policy.dtype)
    agent = save_agent(workdir / "agent.pt", policy, {"kind": "linear"}, genome, None,
                       {"env_id": "HalfCheetah-v5", "env_kwargs": {}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    settings = EvalSettings(suite="nominal", episodes=episodes, max_rows=max_rows, max_episode_steps=10)
    result, _ = evaluate_agents([agent], workdir / "eval", settings, wandb_mode="disabled", plots=False)
    return {"episodes": episodes, "max_rows": max_rows, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_eval_mb": round(before / 1024, 1),
            "eval_json_mb": round((workdir / "eval" / "eval.json").stat().st_size / 2**20, 2),
            "valid_episodes": episodes - result.rows[0].invalid_episodes}


def main() -> None:
    """Run every episode count in its own interpreter and print one JSON list."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--max-rows", type=int, default=512)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(args.one, args.max_rows, Path(tmp))))
        return
    rows = []
    for n in args.episodes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--max-rows", str(args.max_rows)],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({"cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
