"""Where one control step of the ES rollout spends its time, printed as JSON (microseconds per step).

Runs the real ``plasticrl.rollouts.loop.rollout`` (HalfCheetah-v5, P = 64, plastic spiking BCM x
reward, hidden 64) with timers wrapped around the policy's ``act`` and ``learn``, the physics call
of the engine (``pool.finish``), the task's observation and reward code and the env's step methods.
What the wrappers do not cover is the rollout's own bookkeeping (observation copy and
normalisation, observation statistics, returns, masks, torch/numpy conversions); the wrappers'
own cost lands in the parts they wrap.

With the fused kernel the loop runs the policy's act and learn and its own bookkeeping in one
compiled call per step (``compiled.finish_spiking``, and ``begin_spiking`` for a step it did not
begin): ``compiled_step`` times those calls and ``act``/``learn`` stay 0. ``--python-act-learn``
times the policy's ``act`` and ``learn`` called from Python instead (a policy whose ``act`` is
wrapped takes that path), as the loop did before.

This explains the whole-loop ratio of bench_train_loop.py: physics runs on every core, everything
else on the main thread while the physics waits.

The physics inside the loop costs more than the ceiling's, for two reasons this benchmark separates. Each
timed rollout's start states and controls are recorded and replayed through the ceiling's physics
(``bench_envs.Ceiling``, same threads) with nothing between the steps (``physics_replayed``: the same
trajectories, checked to end in the same states), and the ceiling's own uniform random actions are stepped
from the same start states (``physics_random_actions``). ``physics - physics_replayed`` is what the work
between the physics calls costs the physics (caches refilled after the policy and the task code ran);
``physics_replayed - physics_random_actions`` is what the policy's trajectories cost beyond random
actions (other states, other contacts).

    python bench/bench_step_breakdown.py                   # kernel: fused
    python bench/bench_step_breakdown.py --kernel torch --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import Ceiling, ceiling_backend  # noqa: E402  (the ceiling's physics)
from bench_envs import _timed as _timed_steps  # noqa: E402  (a step function over an action sequence)
from bench_train_loop import POLICIES, _Recorder, replayed_physics_steps_per_s  # noqa: E402

from plasticrl.config import load_config  # noqa: E402
from plasticrl.envs.engine import default_num_threads  # noqa: E402
from plasticrl.trainers.evaluator import LocalEvaluator  # noqa: E402
from plasticrl.rollouts.loop import rollout  # noqa: E402


def _timed(obj, name: str, key: str, totals: dict[str, float]) -> None:
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    setattr(obj, name, wrapper)


def random_actions_us_per_step(env_id: str, rec: _Recorder, seed: int) -> float:
    """Microseconds per control step of the ceiling's physics stepping uniform random actions (its
    benchmark's actions) for as many steps as ``rec`` recorded, from ``rec``'s start states."""
    ceiling = Ceiling(env_id, rec.rows, default_num_threads(), ceiling_backend())
    ceiling.set_states(rec.starts)
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (len(rec.controls), rec.rows, ceiling.nu))
    elapsed = _timed_steps(ceiling.step, actions)
    ceiling.close()
    return elapsed / len(actions) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--kernel", default="fused", choices=["fused", "torch"])
    parser.add_argument("--repeats", type=int, default=3, help="rollouts after one warm-up rollout")
    parser.add_argument("--bookkeeping", default="compiled", choices=["compiled", "numpy"],
                        help="the rollout's per-step bookkeeping: compiled loops (default, needs numba) or numpy")
    parser.add_argument("--python-act-learn", action="store_true",
                        help="call the policy's act and learn from Python (the loop's path before its compiled step)")
    args = parser.parse_args()
    from plasticrl.rollouts import compiled

    if args.bookkeeping == "numpy":
        compiled.available = lambda: False
    overrides = POLICIES["plastic_bcm_reward_fused" if args.kernel == "fused" else "plastic_bcm_reward"]
    config = load_config(None, [f"env.id={args.env}", *overrides, "logging.wandb.mode=disabled"])
    evaluator = LocalEvaluator(config, args.population)
    policy, env = evaluator.policy, evaluator.env
    totals: dict[str, float] = defaultdict(float)
    timed_policy = ([(policy, "act", "act"), (policy, "learn", "learn")] if args.python_act_learn else
                    [(compiled, "begin_spiking", "compiled_step"), (compiled, "finish_spiking", "compiled_step")])
    for obj, name, key in [*timed_policy, (env.pool, "finish", "physics"),
                           (env.task, "observe", "env_observe"), (env.task, "evaluate", "env_reward"),
                           (env, "_perturbation_infos", "env_perturbation_infos"),
                           (env.task, "evaluate_compiled", "env_task_compiled"),
                           (env, "step_async", "env_step_async"), (env, "step_wait", "env_step_wait"),
                           (env, "step_wait_lean", "env_step_wait")]:
        # the rollout takes the env's lean step where it has one (step_wait_lean), Gymnasium's otherwise
        _timed(obj, name, key, totals)
    genomes = torch.randn(args.population, policy.genome.dim, generator=torch.Generator().manual_seed(0)) * 0.1
    per_repeat = []
    for repeat in range(args.repeats + 1):
        totals.clear()
        with _Recorder(args.population) as rec:
            start = time.perf_counter()
            result = rollout(policy, env, genomes, 1, seed=repeat, collect_obs_moments=True)
            elapsed = time.perf_counter() - start
        replayable = rec.replayable and rec.env is env
        final_qpos = np.stack([d.qpos.copy() for d in env.pool.datas]) if replayable else None
        steps = result.env_steps / args.population
        us = defaultdict(float, {k: v / steps * 1e6 for k, v in totals.items()})
        row = {
            "step_total": elapsed / steps * 1e6,
            "physics": us["physics"],
            "act": us["act"], "learn": us["learn"], "compiled_step": us["compiled_step"],
            "env_python": us["env_step_async"] + us["env_step_wait"] - us["physics"],
            "env_observe": us["env_observe"], "env_reward": us["env_reward"],
            "env_task_compiled": us["env_task_compiled"],
            "env_perturbation_infos": us["env_perturbation_infos"],
            # (NaN where an episode ended inside the rollout: its autoresets are not replayed)
            "physics_replayed": (args.population / replayed_physics_steps_per_s(args.env, rec, final_qpos) * 1e6
                                 if replayable else float("nan")),
            "physics_random_actions": (random_actions_us_per_step(args.env, rec, repeat)
                                       if replayable else float("nan")),
            "rollout_bookkeeping": elapsed / steps * 1e6 - us["act"] - us["learn"] - us["compiled_step"]
                                   - us["env_step_async"] - us["env_step_wait"],
        }
        if repeat:  # the first rollout compiles and warms up
            per_repeat.append(row)
    median = {k: round(float(np.median([r[k] for r in per_repeat])), 1) for k in per_repeat[0]}
    median["outside_physics"] = round(median["step_total"] - median["physics"], 1)
    # on a loaded machine the minimum over repeats is the steadier figure (other jobs only add time)
    minimum = {k: round(float(np.min([r[k] for r in per_repeat])), 1) for k in per_repeat[0]}
    evaluator.close()
    print(json.dumps({
        "benchmark": "rollout_step_breakdown_us", "env": args.env, "population": args.population,
        "kernel": args.kernel, "cpu_count": os.cpu_count(), "physics_threads": default_num_threads(),
        "repeats": args.repeats, "bookkeeping": args.bookkeeping, "python_act_learn": args.python_act_learn,
        "load_average": os.getloadavg(),
        "median_us_per_step": median, "min_us_per_step": minimum,
    }, indent=2))


if __name__ == "__main__":
    main()
