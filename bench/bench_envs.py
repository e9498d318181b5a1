"""Throughput of the batched MuJoCo engine against the raw-physics ceiling and Gymnasium.

For each env, with the same instance count and worker-thread count, measures env steps per
second of:
  (a) ceiling: ``mj_step(model, data, frame_skip)`` alone (no observations, rewards, resets or
      contact-force pass) through ``mujoco.batch`` (one C++ call per step), same start states;
  (b) thread_loop_ceiling: the same physics as a per-instance ``mj_step`` loop on Python threads
      (the ceiling before MuJoCo 4, and the engine's backend for Ant and Humanoid);
  (c) engine: ``plasticrl.envs.make_vec`` (full step: obs, rewards, terminations, autoreset), and
      where it steps through ``mujoco.batch`` the same engine on its thread backend too;
  (d) gymnasium: ``gymnasium.make_vec(..., vectorization_mode="sync")``.
They are timed in interleaved rounds and each reports its best round, so a burst of load
from other processes on a shared machine hits all of them alike instead of one. Tasks whose
robots fall over (Hopper, Walker2d, Humanoid) can exceed the ceiling: the engine's resets keep
them standing, while the ceiling keeps simulating fallen robots with many contacts.
Prints one JSON object. Actions are uniform random from a fixed seed.

    python bench/bench_envs.py                       # defaults: 64 instances, 5 envs
    python bench/bench_envs.py --envs HalfCheetah-v5 --steps 600 --instances 128
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import mujoco
import numpy as np

from plasticrl.envs import make_vec
from plasticrl.envs.engine import BatchPhysicsPool, default_num_threads
from plasticrl.envs.registry import make_config

DEFAULT_ENVS = ["HalfCheetah-v5", "Ant-v5", "Hopper-v5", "Walker2d-v5", "Humanoid-v5"]
WARMUP = 10


def ceiling_backend() -> str:
    """"batch" where this MuJoCo has ``mujoco.batch`` (>= 4), else "threads"."""
    try:
        import mujoco.batch  # noqa: F401
    except ImportError:
        return "threads"
    return "batch"


class Ceiling:
    """Raw physics: ``mj_step x frame_skip`` for ``n`` instances on ``threads`` threads, nothing else.

    ``backend="batch"``: one ``mujoco.batch.Batch.step`` call per step (C++ threads, no Python per
    instance), the fastest way this MuJoCo steps many instances, so the ceiling. ``"threads"``: the
    per-instance ``mj_step`` loop on Python threads (the caller is one of them, same load
    balancing as the engine's thread backend), which was the ceiling before MuJoCo 4.
    """

    def __init__(self, env_id: str, n: int, threads: int, backend: str = "batch") -> None:
        if backend not in ("batch", "threads"):
            raise ValueError(f"unknown ceiling backend {backend!r}; valid choices: batch, threads")
        cfg = make_config(env_id)
        base = cfg.load_model()
        self.backend = backend
        self.n, self.threads = n, threads
        self.frame_skip = cfg.frame_skip
        self.nu = base.nu
        if backend == "batch":
            from mujoco.batch import Batch

            self.batch = Batch(base, n, nthread=threads, persistent=True)
            self._ctrl = self.batch.bind("ctrl")
        else:
            self.models = [copy.copy(base) for _ in range(n)]
            self.datas = [mujoco.MjData(m) for m in self.models]
            self.ctrl = [d.ctrl for d in self.datas]
            self.pool = ThreadPoolExecutor(max(threads - 1, 1))
        starts = make_vec(env_id, n, num_threads=1)  # the engine's reset states, seed 0
        starts.reset(seed=0)
        self.set_states([(src.qpos, src.qvel) for src in starts.datas])
        starts.close()

    def set_states(self, states: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Put instance ``i`` in state ``states[i] = (qpos, qvel)`` as the engine's reset does."""
        if self.backend == "batch":
            self.batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
            self.batch.bind("qpos")[:] = np.stack([q for q, _ in states])
            self.batch.bind("qvel")[:] = np.stack([v for _, v in states])
            self.batch.forward()
            return
        for (qpos, qvel), m, d in zip(states, self.models, self.datas):
            mujoco.mj_resetData(m, d)
            d.qpos[:], d.qvel[:] = qpos, qvel
            mujoco.mj_forward(m, d)

    def qpos(self) -> np.ndarray:
        """``[n, nq]`` positions now."""
        if self.backend == "batch":
            return self.batch.bind("qpos").copy()
        return np.stack([d.qpos for d in self.datas])

    def _run(self, next_index: Callable[[], int], a: np.ndarray) -> None:
        while (i := next_index()) < self.n:
            self.ctrl[i][:] = a[i]
            mujoco.mj_step(self.models[i], self.datas[i], self.frame_skip)

    def step(self, a: np.ndarray) -> None:
        if self.backend == "batch":
            self._ctrl[:] = a
            self.batch.step(nstep=self.frame_skip)
            return
        next_index = itertools.count().__next__  # same load balancing as the engine
        futs = [self.pool.submit(self._run, next_index, a) for _ in range(self.threads - 1)]
        self._run(next_index, a)
        for f in futs:
            f.result()

    def close(self) -> None:
        if self.backend == "threads":
            self.pool.shutdown()


def _timed(step: Callable[[np.ndarray], object], actions: np.ndarray) -> float:
    start = time.perf_counter()
    for a in actions:
        step(a)
    return time.perf_counter() - start


def bench_env(env_id: str, n: int, steps: int, rounds: int, threads: int, seed: int,
              gymnasium_too: bool, perturbation: object) -> dict[str, float]:
    """Steps/s of each contender (best of ``rounds`` interleaved rounds of ``steps`` steps)."""
    engine = make_vec(env_id, n, num_threads=threads)
    space = engine.single_action_space
    rng = np.random.default_rng(seed)
    actions = rng.uniform(space.low, space.high, (WARMUP + rounds * steps, n, *space.shape))
    actions = actions.astype(np.float32)
    contenders: dict[str, Callable[[np.ndarray], object]] = {}
    closers = []
    ceiling = Ceiling(env_id, n, threads, ceiling_backend())
    contenders["ceiling"], closers = ceiling.step, [ceiling.close]
    if ceiling.backend == "batch":
        loop = Ceiling(env_id, n, threads, "threads")
        contenders["thread_loop_ceiling"] = loop.step
        closers.append(loop.close)
    engine.reset(seed=0)
    contenders["engine"] = engine.step
    closers.append(engine.close)
    if isinstance(engine.pool, BatchPhysicsPool):  # the same engine on its other physics backend
        threaded = make_vec(env_id, n, num_threads=threads, physics_backend="threads")
        threaded.reset(seed=0)
        contenders["engine_thread_backend"] = threaded.step
        closers.append(threaded.close)
    if perturbation is not None:
        perturbed = make_vec(env_id, n, num_threads=threads)
        perturbed.reset(seed=0, options={"perturbation": perturbation})
        contenders["perturbed_engine"] = perturbed.step
        closers.append(perturbed.close)
    if gymnasium_too:
        ref = gym.make_vec(env_id, n, vectorization_mode="sync")
        ref.reset(seed=0)
        contenders["gymnasium"] = ref.step
        closers.append(ref.close)
    for step in contenders.values():
        for a in actions[:WARMUP]:
            step(a)
    best = {name: float("inf") for name in contenders}
    for r in range(rounds):
        chunk = actions[WARMUP + r * steps: WARMUP + (r + 1) * steps]
        for name, step in contenders.items():
            best[name] = min(best[name], _timed(step, chunk))
    for close in closers:
        close()
    row = {f"{name}_steps_per_s": n * steps / t for name, t in best.items()}
    row["engine_over_ceiling"] = row["engine_steps_per_s"] / row["ceiling_steps_per_s"]
    if "engine_thread_backend_steps_per_s" in row:
        row["engine_over_thread_backend"] = row["engine_steps_per_s"] / row["engine_thread_backend_steps_per_s"]
    if "thread_loop_ceiling_steps_per_s" in row:
        row["engine_over_thread_loop_ceiling"] = (row["engine_steps_per_s"]
                                                  / row["thread_loop_ceiling_steps_per_s"])
    if gymnasium_too:
        row["gymnasium_over_ceiling"] = row["gymnasium_steps_per_s"] / row["ceiling_steps_per_s"]
        row["engine_over_gymnasium"] = row["engine_steps_per_s"] / row["gymnasium_steps_per_s"]
    return {k: round(v, 3) for k, v in row.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    p.add_argument("--instances", type=int, default=64)
    p.add_argument("--steps", type=int, default=100, help="vector steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best is reported)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all CPUs)")
    p.add_argument("--no-gymnasium", action="store_true", help="skip the slow Gymnasium baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--perturbation", type=json.loads, default=None,
                   help='also time the engine under this condition, JSON, e.g. '
                        '\'[{"name": "obs_noise", "std": 0.1}, {"name": "action_delay"}]\'')
    args = p.parse_args()

    n = args.instances
    threads = min(args.threads or default_num_threads(), n)
    result: dict = {"cpu_count": os.cpu_count(), "threads": threads, "instances": n,
                    "steps_per_round": args.steps, "rounds": args.rounds,
                    "perturbation": args.perturbation, "mujoco": mujoco.__version__,
                    "gymnasium": gym.__version__, "python": platform.python_version(), "envs": {}}
    for env_id in args.envs:
        result["envs"][env_id] = bench_env(env_id, n, args.steps, args.rounds, threads, args.seed,
                                           not args.no_gymnasium, args.perturbation)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
