"""EvoTorch's GymNE against the same raw-physics ceilings as bench_train_loop.py, printed as JSON.

The reference point of the whole-loop throughput target: EvoTorch's neuroevolution problem on a
Gymnasium env (PGPE with ClipUp, a linear policy, observation normalisation, one Ray actor per
core), on HalfCheetah-v5 with P = 64. Env steps per second of whole generations (the first,
which starts the actors, excluded) are divided by the mean of the ceilings measured right before
and right after, as bench_train_loop.py does for plasticrl's loop, so the two ratios compare on a
machine whose core speed drifts.

EvoTorch is not a dependency of plasticrl: install it to run this (``pip install evotorch``;
measured with 0.6.1). Without it the benchmark prints why it was skipped and exits 0.

    python bench/bench_evotorch.py                 # HalfCheetah-v5, P = 64, 2 actors on 2 cores
    python bench/bench_evotorch.py --generations 6 --repeats 3
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import ceiling_backend  # noqa: E402
from bench_train_loop import between_ceilings, common_arguments  # noqa: E402

from plasticrl.envs.engine import default_num_threads  # noqa: E402


def gymne_steps_per_s(env_id: str, population: int, generations: int, actors: int) -> dict:
    """Env steps/s of ``generations`` timed PGPE generations of EvoTorch's GymNE."""
    from evotorch.algorithms import PGPE
    from evotorch.neuroevolution import GymNE

    problem = GymNE(env=env_id, network="Linear(obs_length, act_length)", observation_normalization=True,
                    num_actors=actors)
    searcher = PGPE(problem, popsize=population, center_learning_rate=0.0075, stdev_learning_rate=0.1,
                    stdev_init=0.1, optimizer="clipup", optimizer_config={"max_speed": 0.15})
    searcher.step()  # starts the Ray actors and builds their envs: not part of the loop
    done = searcher.status["total_interaction_count"]
    start = time.perf_counter()
    for _ in range(generations):
        searcher.step()
    elapsed = time.perf_counter() - start
    steps = searcher.status["total_interaction_count"] - done
    problem.kill_actors()
    return {"gymne_steps_per_s": steps / elapsed, "generations_timed": generations, "env_steps_timed": int(steps)}


def main() -> None:
    parser = common_arguments(__doc__)
    parser.add_argument("--actors", type=int, default=None, help="Ray actors (default: one per CPU)")
    args = parser.parse_args()
    try:
        import evotorch
    except ImportError:
        print(json.dumps({"benchmark": "evotorch_gymne_vs_physics_ceiling",
                          "skipped": "evotorch is not installed (pip install evotorch)"}, indent=2))
        return
    import ray

    actors = args.actors or default_num_threads()
    # one local Ray instance for every repeat, without its dashboard (nothing to serve here)
    ray.init(num_cpus=actors, include_dashboard=False, log_to_driver=False)
    repeats = [between_ceilings(args.env, args.population, args.ceiling_steps, lambda: gymne_steps_per_s(
        args.env, args.population, args.generations, actors), "gymne_steps_per_s") for _ in range(args.repeats)]
    ray.shutdown()

    def median(key: str, digits: int = 1) -> float:
        return round(float(np.median([r[key] for r in repeats])), digits)

    print(json.dumps({
        "benchmark": "evotorch_gymne_vs_physics_ceiling", "env": args.env, "population": args.population,
        "evotorch": evotorch.__version__, "actors": actors, "cpu_count": os.cpu_count(),
        "physics_threads": default_num_threads(), "repeats": args.repeats, "ceiling_backend": ceiling_backend(),
        "policy": "linear, observation normalisation, PGPE + ClipUp",
        "results": {
            "gymne_over_ceiling_median": median("over_ceiling", 3),
            "gymne_over_ceiling_each": [round(r["over_ceiling"], 3) for r in repeats],
            "gymne_over_thread_loop_ceiling_median": median("over_thread_loop_ceiling", 3),
            "gymne_over_thread_loop_ceiling_each": [round(r["over_thread_loop_ceiling"], 3) for r in repeats],
            "gymne_steps_per_s_median": median("gymne_steps_per_s"),
            "ceiling_steps_per_s_median": median("ceiling_steps_per_s"),
            "thread_loop_ceiling_steps_per_s_median": median("thread_loop_ceiling_steps_per_s"),
            "generations_timed": args.generations,
        },
    }, indent=2))


if __name__ == "__main__":
    main()
