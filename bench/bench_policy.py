"""Policy throughput against MuJoCo physics, printed as JSON.

For P members (one episode each) it times one control step of a policy, including the
plasticity update, and, in the same run, the env's physics for P instances (mj_step x
frame_skip, no observations or rewards), both serially and on a thread pool using every
core (MuJoCo releases the GIL in mj_step). Each P runs in its own process so its peak
resident memory can be reported. Policies (``--policy``):

* ``plastic_spiking`` (default): obs 27 / hidden 128 / act 8, K = 4 sub-steps, BCM with reward
  modulation (``--env`` only picks the physics timed beside it);
* ``hebbian_mlp``: the shipped ``configs/{ant,halfcheetah}/hebbian_random_mlp.yaml`` network,
  ``obs -> 128 -> 64 -> act`` with the env's dimensions (Ant-v5 without contact forces: 27 -> 8;
  HalfCheetah-v5: 17 -> 6), random per-episode weights, ABCD per synapse, max-norm.

    python bench/bench_policy.py                 # P in 64 256 1024
    python bench/bench_policy.py --population 64 --steps 500
    python bench/bench_policy.py --kernel fused  # torch | fused | both (default)
    python bench/bench_policy.py --policy hebbian_mlp --env HalfCheetah-v5 --population 64 256

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


#: the env dimensions the policies are sized for (Ant-v5 without contact forces, as the Hebbian configs)
ENV_DIMS = {"Ant-v5": (27, 8), "HalfCheetah-v5": (17, 6)}
POLICIES = {
    "plastic_spiking": {"hidden": [128], "substeps": 4,
                        "plasticity": {"rule": "bcm", "modulation": "reward", "sharing": "synapse"}},
    # configs/{ant,halfcheetah}/hebbian_random_mlp.yaml
    "hebbian_mlp": {"kind": "hebbian_mlp", "hidden": [128, 64],
                    "initial_weights": {"kind": "random", "distribution": "uniform", "scale": 0.1,
                                        "draw": "per_episode"},
                    "plasticity": {"rule": "hebbian_abcd", "sharing": "synapse", "modulation": "none",
                                   "eta_scale": 0.1, "bounds": "normalise", "weight_limit": 1.0}},
}
CONFIG_LABELS = {
    "plastic_spiking": "plastic spiking, obs 27 / hidden 128 / act 8, K=4, LIF, BCM x reward, per-synapse eta",
    "hebbian_mlp": "hebbian_mlp obs -> 128 -> 64 -> act (env dims), random per-episode weights, ABCD per synapse, "
                   "normalise",
}


def time_policy(population: int, steps: int, device: str, torch_threads: int, kernel: str = "torch",
                policy_name: str = "plastic_spiking", env_id: str = "Ant-v5") -> dict:
    """ms per control step (act + learn) of ``policy_name`` with ``kernel`` for ``population`` rows."""
    import torch

    torch.set_num_threads(torch_threads)
    from plasticrl.agents.factory import parse_policy_config
    from plasticrl.agents.hebbian_mlp import HebbianMLPPolicy
    from plasticrl.agents.plastic_spiking import PlasticSpikingPolicy

    obs_dim, act_dim = ENV_DIMS[env_id] if policy_name == "hebbian_mlp" else (27, 8)
    config = parse_policy_config({**POLICIES[policy_name], "kernel": kernel})
    cls = HebbianMLPPolicy if policy_name == "hebbian_mlp" else PlasticSpikingPolicy
    policy = cls(obs_dim, act_dim, [-1.0] * act_dim, [1.0] * act_dim, config, device=device)
    gen = torch.Generator(device=policy.device).manual_seed(0)
    genome = policy.initial_genome(population)
    genome = genome + 0.02 * torch.randn(genome.shape, generator=gen, device=policy.device)
    rss_before = _peak_rss_mib()
    with torch.inference_mode():
        policy.load_genome(genome)
        obs = torch.randn(population, obs_dim, generator=gen, device=policy.device)
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
        # the two halves apart (on the CPU: a GPU would need a sync per call), for where the time goes
        act_s = learn_s = 0.0
        for _ in range(steps if policy.device.type == "cpu" else 0):
            t0 = time.perf_counter()
            policy.act(obs)
            t1 = time.perf_counter()
            policy.learn(reward)
            act_s += t1 - t0
            learn_s += time.perf_counter() - t1
    return {
        "policy_ms_per_control_step": 1e3 * elapsed / steps,
        **({"act_ms": 1e3 * act_s / steps, "learn_ms": 1e3 * learn_s / steps} if act_s else {}),
        "policy_member_steps_per_s": population * steps / elapsed,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_increase_mib": _peak_rss_mib() - rss_before,
        "genome_dim": policy.genome.dim,
        "kernel": policy.kernel,
    }


def time_physics(population: int, steps: int, threads: int, env_id: str = "Ant-v5") -> dict:
    import gymnasium as gym
    import mujoco

    env = gym.make(env_id)
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
            physics: bool = True, policy_name: str = "plastic_spiking", env_id: str = "Ant-v5") -> dict:
    """One P: the policy kernels timed, and (unless ``physics`` is False) the env's physics beside them."""
    out = {"population": population, "torch_threads": torch_threads}
    timed = {k: time_policy(population, steps, device, torch_threads, k, policy_name, env_id) for k in kernels}
    out.update(timed[kernels[0]])
    if not physics:
        out["kernels"] = timed
        return out
    physics_steps = max(20, steps // max(1, population // 64))
    out.update(time_physics(population, physics_steps, os.cpu_count() or 1, env_id))
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
    parser.add_argument("--policy", choices=sorted(POLICIES), default="plastic_spiking",
                        help="policy timed (see the module docstring)")
    parser.add_argument("--env", choices=sorted(ENV_DIMS), default="Ant-v5",
                        help="physics timed beside the policy; hebbian_mlp also takes its dimensions")
    parser.add_argument("--skip-physics", action="store_true",
                        help="time the policy only (no Ant-v5 physics beside it: quick at large P)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (population,) = args.population
        kernels = ["torch", "fused"] if args.kernel == "both" else [args.kernel]
        print(json.dumps(run_one(population, args.steps, args.device, args.torch_threads, kernels,
                                 physics=not args.skip_physics, policy_name=args.policy, env_id=args.env)))
        return
    import torch

    rows = []
    for population in args.population:
        steps = max(30, args.steps * 64 // population)
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", "--population", str(population), "--steps", str(steps),
             "--device", args.device, "--torch-threads", str(args.torch_threads), "--kernel", args.kernel,
             "--policy", args.policy, "--env", args.env,
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
        "policy": args.policy,
        "env": args.env,
        "config": CONFIG_LABELS[args.policy],
        "load_average": list(os.getloadavg()),
        "target": "policy_over_physics <= 0.2 at P=64",
        "results": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
