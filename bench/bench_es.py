"""Per-generation cost of the ES ask/tell updates (no rollouts), printed as JSON.

The ES update should be negligible next to the rollouts; this measures it so that claim can
be checked. For each algorithm, population P and genome size D it times ``ask`` + ``tell``
on a sphere fitness (the fitness evaluation itself is excluded) and reports milliseconds per
generation, median over repeats. Full CMA-ES is O(d^2) memory and O(d^3) per eigen-
decomposition, so it only runs up to ``--cma-max-dim``.

    python bench/bench_es.py                                  # defaults below
    python bench/bench_es.py --dims 1000 100000 --populations 64 256 --device cuda
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from plasticrl.es import es_names, make_es


def bench_one(name: str, population: int, dim: int, generations: int, device: str, dtype: torch.dtype) -> float:
    """Median milliseconds for one ask + tell."""
    config = {"population_size": population}
    algo = make_es(name, dim, **config)
    state = algo.init(torch.zeros(dim, device=device, dtype=dtype), seed=0)
    times = []
    for _ in range(generations + 1):  # the first generation is warm-up
        t0 = time.perf_counter()
        samples, state = algo.ask(state)
        fitness = -(samples**2).sum(1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        state, _ = algo.tell(state, samples, fitness)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        times.append((t1 - t0) + (t2 - t1))
    return 1000.0 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=es_names(), choices=es_names())
    parser.add_argument("--populations", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--dims", nargs="+", type=int, default=[1_000, 10_000, 100_000])
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--cma-max-dim", type=int, default=2_000)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    rows = []
    for name in args.algorithms:
        for population in args.populations:
            for dim in args.dims:
                if name == "cma_es" and dim > args.cma_max_dim:
                    continue
                ms = bench_one(name, population, dim, args.generations, args.device, dtype)
                rows.append(
                    {"algorithm": name, "population": population, "dim": dim, "ms_per_generation": round(ms, 3)}
                )
    print(json.dumps({
        "benchmark": "es_ask_tell",
        "device": args.device,
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "results": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
