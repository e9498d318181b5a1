"""Policy throughput against MuJoCo physics, printed as JSON.

For P members (one episode each) it times one control step of the plastic spiking policy
(obs 27 / hidden 128 / act 8, K = 4 sub-steps, BCM with reward modulation, including the
plasticity update) and, in the same run, Ant-v5 physics for P instances (mj_step x
frame_skip, no observations or rewards), both serially and on a thread pool using every
core (MuJoCo releases the GIL in mj_step). Each P runs in its own process so its peak
resident memory can be reported.

    python bench/bench_policy.py                 # P in 64 256 1024
    python bench/bench_policy.py --population 64 --steps 500
    python bench/bench_policy.py --kernel fused  # torch | fused | both (default)

Each result row has ``kernels: {name: {policy_ms_per_control_step, ...}}`` per policy kernel;
the top-level ``policy_*`` keys are those of the first kernel timed (torch with ``both``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_policy(population: int, steps: int, device: str, torch_threads: int, kernel: str = "torch") -> dict:
    import torch

    torch.set_num_threads(torch_threads)
    from plasticrl.agents import PlasticSpikingPolicy

    config = {"hidden": [128], "substeps": 4, "kernel": kernel,
              "plasticity": {"rule": "bcm", "modulation": "reward", "sharing": "synapse"}}
    policy = PlasticSpikingPolicy(27, 8, [-1.0] * 8, [1.0] * 8, config, device=device)
    gen = torch.Generator(device=policy.device).manual_seed(0)
    genome = policy.initial_genome(population)
    genome = genome + 0.02 * torch.randn(genome.shape, generator=gen, device=policy.device)
    rss_before = _peak_rss_mib()
    with torch.inference_mode():
        policy.load_genome(genome)
        obs = torch.randn(population, 27, generator=gen, device=policy.device)
        reward = torch.randn(population, generator=gen, device=policy.device)
        for _ in range(20):  # warm-up
            policy.act(obs)
            policy.learn(reward)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            policy.act(obs)
            policy.learn(reward)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return {
        "policy_ms_per_control_step": 1e3 * elapsed / steps,
        "policy_member_steps_per_s": population * steps / elapsed,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_increase_mib": _peak_rss_mib() - rss_before,
        "genome_dim": policy.genome.dim,
    }


def time_physics(population: int, steps: int, threads: int) -> dict:
    import gymnasium as gym
    import mujoco

    env = gym.make("Ant-v5")
    model = env.unwrapped.model
    frame_skip = env.unwrapped.frame_skip
    datas = [mujoco.MjData(model) for _ in range(population)]
    for d in datas:
        mujoco.mj_forward(model, d)

    def step_chunk(chunk):
        for d in chunk:
            mujoco.mj_step(model, d, nstep=frame_skip)

    chunks = [datas[i::threads] for i in range(threads)]
    result = {}
    for name, workers in (("serial", 1), ("threaded", threads)):
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        start = time.perf_counter()
        for _ in range(steps):
            if pool is None:
                step_chunk(datas)
            else:
                list(pool.map(step_chunk, chunks))
        elapsed = time.perf_counter() - start
        if pool is not None:
            pool.shutdown()
        result[f"physics_{name}_ms_per_control_step"] = 1e3 * elapsed / steps
    result["frame_skip"] = frame_skip
    result["physics_threads"] = threads
    return result


def run_one(population: int, steps: int, device: str, torch_threads: int, kernels: list[str],
            physics: bool = True) -> dict:
    """One P: the policy kernels timed, and (unless ``physics`` is False) Ant-v5 physics beside them."""
    out = {"population": population, "torch_threads": torch_threads}
    timed = {k: time_policy(population, steps, device, torch_threads, k) for k in kernels}
    out.update(timed[kernels[0]])
    if not physics:
        out["kernels"] = timed
        return out
    physics_steps = max(20, steps // max(1, population // 64))
    out.update(time_physics(population, physics_steps, os.cpu_count() or 1))
    out["policy_over_physics_serial"] = out["policy_ms_per_control_step"] / out["physics_serial_ms_per_control_step"]
    out["policy_over_physics_threaded"] = (
        out["policy_ms_per_control_step"] / out["physics_threaded_ms_per_control_step"]
    )
    for k, t in timed.items():
        t["policy_over_physics_serial"] = t["policy_ms_per_control_step"] / out["physics_serial_ms_per_control_step"]
    out["kernels"] = timed
    if "torch" in timed and "fused" in timed:
        out["fused_speedup"] = (timed["torch"]["policy_ms_per_control_step"]
                                / timed["fused"]["policy_ms_per_control_step"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--steps", type=int, default=300, help="control steps timed at P=64 (fewer at larger P)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads for the policy (the trainer's default is 1)")
    parser.add_argument("--kernel", choices=("torch", "fused", "both"), default="both",
                        help="policy kernel(s) to time (policy.kernel)")
    parser.add_argument("--skip-physics", action="store_true",
                        help="time the policy only (no Ant-v5 physics beside it: quick at large P)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (population,) = args.population
        kernels = ["torch", "fused"] if args.kernel == "both" else [args.kernel]
        print(json.dumps(run_one(population, args.steps, args.device, args.torch_threads, kernels,
                                 physics=not args.skip_physics)))
        return
    import torch

    rows = []
    for population in args.population:
        steps = max(30, args.steps * 64 // population)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", "--population", str(population), "--steps", str(steps),
             "--device", args.device, "--torch-threads", str(args.torch_threads), "--kernel", args.kernel,
             *(["--skip-physics"] if args.skip_physics else [])],
            check=False, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"benchmark worker for P={population} failed:\n{proc.stderr}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "policy_vs_physics",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": args.device,
        "config": "plastic spiking, obs 27 / hidden 128 / act 8, K=4, LIF, BCM x reward, per-synapse eta",
        "target": "policy_over_physics <= 0.2 at P=64",
        "results": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
