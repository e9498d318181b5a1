"""Whole-loop ES throughput against the raw-physics ceiling, printed as JSON.

One ES generation = ask + batched rollout of P members (policy step, engine step,
observation normalisation, return bookkeeping, plasticity) + tell. Env steps per second of
whole generations (centre evaluation excluded) are compared with the ceiling measured in the
same run: ``mj_step x frame_skip`` for P instances with no observations, rewards or policy,
stepped through ``mujoco.batch`` (``bench_envs.Ceiling``), the fastest raw physics this MuJoCo
has. The ratio to the older per-instance ``mj_step`` loop on Python threads (the ceiling before
MuJoCo 4, ``thread_loop``) is printed beside it. On a shared machine the speed of a core drifts by tens of
percent within a minute, so each repeat measures the ceiling right before and right after the
loop and divides by their mean; the median over repeats is the figure to quote.

Random actions are not the policy's: a policy drives the robots into other states, whose contacts
cost other amounts of physics. So each repeat also records the controls and start states of its
last timed generation and replays them through the same threaded ``mj_step`` loop: the physics
of exactly the trajectories the loop simulated (checked: the replay ends in the same states). Its
ratio, ``whole_loop_over_replayed_physics``, is the share of the loop's time that its own physics
would take alone.

    python bench/bench_train_loop.py                       # HalfCheetah-v5, P = 64
    python bench/bench_train_loop.py --env Ant-v5 --generations 3 --repeats 5
    python bench/bench_train_loop.py --shards 2             # population shards on 2 threads (train.threads)
    python bench/bench_train_loop.py --population 1024 --loop-only   # the loop's own peak memory
    python bench/bench_train_loop.py --env Ant-v5 --shards 2 --policies hebbian_random_mlp_fused \
        --overrides "env.kwargs={include_cfrc_ext_in_observation: false}"   # configs/ant/hebbian_random_mlp.yaml
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import Ceiling, ceiling_backend  # noqa: E402  (shared ceiling measurement)

from plasticrl.config import load_config  # noqa: E402
from plasticrl.envs.engine import BatchPhysicsPool, CompiledPhysicsPool, PhysicsPool, default_num_threads  # noqa: E402
from plasticrl.envs.vector import MujocoVectorEnv  # noqa: E402
from plasticrl.trainers.es import ESTrainer  # noqa: E402

_HEBBIAN_RANDOM_MLP = [
    "policy.kind=hebbian_mlp", "policy.hidden=[128, 64]",
    "policy.initial_weights={kind: random, distribution: uniform, scale: 0.1, draw: per_episode}",
    "policy.plasticity={rule: hebbian_abcd, sharing: synapse, modulation: none, eta_scale: 0.1, "
    "bounds: normalise, weight_limit: 1.0}"]

POLICIES = {
    "plastic_bcm_reward": ["policy.kind=plastic_spiking", "policy.hidden=[64]", "policy.plasticity.rule=bcm",
                           "policy.plasticity.modulation=reward", "policy.kernel=torch"],
    "plastic_bcm_reward_fused": ["policy.kind=plastic_spiking", "policy.hidden=[64]", "policy.plasticity.rule=bcm",
                                 "policy.plasticity.modulation=reward", "policy.kernel=fused"],
    "linear": ["policy.kind=linear"],
    # the network of configs/ant/hebbian_random_mlp.yaml (random per-episode weights, ABCD per synapse);
    # for its Ant-v5 observation add --overrides "env.kwargs={include_cfrc_ext_in_observation: false}"
    "hebbian_random_mlp_fused": _HEBBIAN_RANDOM_MLP + ["policy.kernel=fused"],
    "hebbian_random_mlp": _HEBBIAN_RANDOM_MLP + ["policy.kernel=torch"],
}


#: env steps per CPU-second of the last ceiling measured (process CPU time, all threads)
_CEILING_CPU: dict[str, float] = {}


def ceiling_steps_per_s(env_id: str, population: int, steps: int, backend: str) -> float:
    ceiling = Ceiling(env_id, population, default_num_threads(), backend)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, population, ceiling.nu))
    for a in actions[:10]:
        ceiling.step(a)
    start, cpu_start = time.perf_counter(), time.process_time()
    for a in actions:
        ceiling.step(a)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    ceiling.close()
    _CEILING_CPU[backend] = population * steps / cpu
    return population * steps / elapsed


class _Recorder:
    """Records, for the training env (``rows`` instances), the start states of each rollout and
    the controls of every step after them, by wrapping ``reset`` and the physics pools' ``start``
    for the duration of a ``with`` block (bench-only instrumentation)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.starts: list[tuple[np.ndarray, np.ndarray]] = []
        self.controls: list[np.ndarray] = []
        self.env: MujocoVectorEnv | None = None
        self.final_qpos: np.ndarray | None = None
        self.replayable = True

    def __enter__(self) -> "_Recorder":
        self._reset, self._close = MujocoVectorEnv.reset, MujocoVectorEnv.close_extras
        self._starts = {cls: cls.start for cls in (PhysicsPool, BatchPhysicsPool)}
        rec = self

        def reset(env, **kwargs):
            out = rec._reset(env, **kwargs)
            if env.num_envs == rec.rows:
                rec.env = env
                if isinstance(env.pool, CompiledPhysicsPool):
                    # whole control steps run compiled, past the pool's start: their controls are not seen
                    rec.replayable = False
                rec.starts = [(d.qpos.copy(), d.qvel.copy()) for d in env.pool.datas]
                rec.controls = []
            return out

        def start(pool, ctrl, active=None):
            # one array copy per step inside the timed loop: ~1 us against ~1.5 ms per step
            if rec.env is not None and pool is rec.env.pool:
                if active is not None and not active.all():
                    rec.replayable = False  # an episode ended inside the rollout (Ant-v5): no replay
                rec.controls.append(np.array(ctrl))
            original = rec._starts[BatchPhysicsPool if isinstance(pool, BatchPhysicsPool) else PhysicsPool]
            return original(pool, ctrl, active)

        def close_extras(env, **kwargs):
            if env is rec.env:  # the states its last generation ended in, before the pool goes
                rec.final_qpos = np.stack([d.qpos.copy() for d in env.pool.datas])
            return rec._close(env, **kwargs)

        MujocoVectorEnv.reset, MujocoVectorEnv.close_extras = reset, close_extras
        for cls in self._starts:
            cls.start = start
        return self

    def __exit__(self, *exc) -> None:
        MujocoVectorEnv.reset, MujocoVectorEnv.close_extras = self._reset, self._close
        for cls, original in self._starts.items():
            cls.start = original


def replayed_physics_steps_per_s(env_id: str, rec: _Recorder, final_qpos: np.ndarray) -> float:
    """Steps/s of the ceiling's physics replaying the recorded generation."""
    ceiling = Ceiling(env_id, rec.rows, default_num_threads(), ceiling_backend())
    ceiling.set_states(rec.starts)
    start = time.perf_counter()
    for ctrl in rec.controls:
        ceiling.step(ctrl)
    elapsed = time.perf_counter() - start
    replay_qpos = ceiling.qpos()
    ceiling.close()
    if not np.array_equal(replay_qpos, final_qpos):
        raise SystemExit("the replayed physics diverged from the recorded rollout")
    return rec.rows * len(rec.controls) / elapsed


def loop_steps_per_s(env_id: str, population: int, generations: int, policy: list[str],
                     device: str = "cpu", shards: int = 1, episode_steps: int | None = None,
                     extra: list[str] | None = None, replay: bool = True) -> dict:
    """Whole-loop env steps per second (and per CPU-second) of ``generations`` ES generations;
    ``extra``: more config overrides (``key=value``), applied last; ``replay``: also replay the last
    generation's controls through the ceiling's physics (``replayed_physics_steps_per_s``, else NaN)."""
    overrides = [f"env.id={env_id}", f"device={device}", "es.algorithm=pgpe",
                 f"es.params={{population_size: {population}, stdev_init: 0.1}}",
                 f"train.generations={generations}", f"train.eval_every={generations + 1}",
                 f"train.checkpoint_every={generations + 1}", "logging.wandb.mode=disabled",
                 f"train.threads={shards}"] + policy + list(extra or [])
    if episode_steps is not None:  # shorter episodes: the same per-step work, fewer steps per generation
        overrides.append(f"env.max_episode_steps={episode_steps}")
    rows = []
    cpu_stamps = [time.process_time()]  # process CPU time (every thread) at each generation's end

    def on_generation(row: dict) -> None:
        cpu_stamps.append(time.process_time())
        rows.append(row)

    # without the replay nothing is recorded: the recorded controls would count in the loop's memory
    rec = _Recorder(population) if replay else None
    with tempfile.TemporaryDirectory() as tmp, rec if rec is not None else contextlib.nullcontext():
        ESTrainer(load_config(None, overrides), Path(tmp) / "run", on_generation=on_generation).train()
    # The first generation pays one-off warm-up costs; the trainer always evaluates the centre
    # after its last generation, and that evaluation is not part of the loop being measured.
    timed = [r for r in rows[1:] if "eval_return_mean" not in r]
    if not timed:
        raise SystemExit(f"--generations {generations} leaves no generation to time; use at least 3")
    steps = sum(r["env_steps"] - p["env_steps"] for p, r in zip(rows, rows[1:]) if "eval_return_mean" not in r)
    seconds = sum(r["generation_seconds"] for r in timed)
    cpu_seconds = sum(cpu_stamps[i + 1] - cpu_stamps[i] for i in range(1, len(rows))
                      if "eval_return_mean" not in rows[i])
    # with shards the training env is several envs, whose controls the recorder does not collect: no replay
    # The training env is idle after its last generation (the final centre evaluation runs in
    # an env of its own), so when it closed its instances still held the states that generation
    # ended in (rec.final_qpos).
    replay = (replayed_physics_steps_per_s(env_id, rec, rec.final_qpos)
              if rec is not None and shards == 1 and rec.replayable else float("nan"))
    return {"whole_loop_steps_per_s": steps / seconds, "whole_loop_steps_per_cpu_s": steps / cpu_seconds,
            "rollout_only_steps_per_s":
            float(np.mean([r["env_steps_per_s"] for r in timed])), "generations_timed": len(timed),
            "replayed_physics_steps_per_s": replay}


def common_arguments(description: str) -> argparse.ArgumentParser:
    """The options every whole-loop benchmark shares (env, population, generations, repeats, ceiling)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ceiling-steps", type=int, default=500)
    parser.add_argument("--device", default="cpu", help="the policy's device (cuda: policy on the GPU, physics "
                        "on every CPU core; use a policy the torch kernel runs)")
    return parser


def between_ceilings(env_id: str, population: int, ceiling_steps: int, measure: Callable[[], dict],
                     key: str) -> dict:
    """Run ``measure()`` (a dict holding ``key``, in env steps/s) between two measurements of the
    ceiling (and, on MuJoCo >= 4, of the thread-loop ceiling) and divide by their means."""
    backends = [ceiling_backend()] + (["threads"] if ceiling_backend() == "batch" else [])
    before = [ceiling_steps_per_s(env_id, population, ceiling_steps, b) for b in backends]
    row = measure()
    after = [ceiling_steps_per_s(env_id, population, ceiling_steps, b) for b in backends]
    ceiling, loop = 0.5 * (before[0] + after[0]), 0.5 * (before[-1] + after[-1])
    out = {**row, "ceiling_steps_per_s": ceiling, "thread_loop_ceiling_steps_per_s": loop,
           "over_ceiling": row[key] / ceiling, "over_thread_loop_ceiling": row[key] / loop}
    if "whole_loop_steps_per_cpu_s" in row:
        # CPU time does not grow when other jobs take the cores, so this ratio holds under load: the share of
        # the loop's CPU time the ceiling's physics would take. Shards that keep every core busy (no GIL
        # waits) reach it on idle cores as wall-time loop / ceiling; one batched env does not.
        out["cpu_efficiency"] = row["whole_loop_steps_per_cpu_s"] / _CEILING_CPU[ceiling_backend()]
    return out


def print_loop_only(args: argparse.Namespace) -> None:
    """``--loop-only``: each policy's loop alone (no ceilings, no replay), with the process's peak RSS so far
    (a high-water mark: with several policies each figure covers those before it too; give one policy for its
    own peak, as ``bench_loop_matrix.py`` does)."""
    results = {}
    for name in args.policies:
        row = loop_steps_per_s(args.env, args.population, args.generations, POLICIES[name], args.device,
                               args.shards, args.episode_steps, args.overrides, replay=False)
        results[name] = {"whole_loop_steps_per_s": round(row["whole_loop_steps_per_s"], 1),
                         "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
    print(json.dumps({"benchmark": "whole_es_loop_memory", "env": args.env, "population": args.population,
                      "device": args.device, "cpu_count": os.cpu_count(), "shards": args.shards,
                      "episode_steps": args.episode_steps, "load_average": os.getloadavg(),
                      "results": results}, indent=2))


def main() -> None:
    parser = common_arguments(__doc__)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--episode-steps", type=int, default=None, help="env.max_episode_steps (default: the "
                        "task's 1000): shorter generations at large P")
    parser.add_argument("--shards", type=int, default=1, help="train.threads: population shards stepped end to "
                        "end on that many threads (1: one batched env whose physics uses every CPU)")
    parser.add_argument("--overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides, applied last (e.g. the env's kwargs)")
    parser.add_argument("--loop-only", action="store_true", help="run the loop once, without the ceilings and "
                        "the replay, and print its speed and this process's peak resident memory: the memory of "
                        "training itself (the ceilings' MuJoCo instances would otherwise count)")
    args = parser.parse_args()
    if args.loop_only:
        print_loop_only(args)
        return
    results = {}
    for name in args.policies:
        repeats = []
        for _ in range(args.repeats):
            row = between_ceilings(args.env, args.population, args.ceiling_steps, lambda: loop_steps_per_s(
                args.env, args.population, args.generations, POLICIES[name], args.device, args.shards,
                args.episode_steps, args.overrides),
                "whole_loop_steps_per_s")
            repeats.append({**row, "whole_loop_over_ceiling": row["over_ceiling"],
                            "whole_loop_over_thread_loop_ceiling": row["over_thread_loop_ceiling"],
                            "whole_loop_over_replayed_physics":
                                row["whole_loop_steps_per_s"] / row["replayed_physics_steps_per_s"]})

        def median(key: str, digits: int = 1) -> float | None:
            value = float(np.median([r[key] for r in repeats]))
            return round(value, digits) if np.isfinite(value) else None  # no replay with shards

        results[name] = {
            "whole_loop_over_ceiling_median": median("whole_loop_over_ceiling", 3),
            "whole_loop_over_ceiling_each": [round(r["whole_loop_over_ceiling"], 3) for r in repeats],
            "whole_loop_over_thread_loop_ceiling_median": median("whole_loop_over_thread_loop_ceiling", 3),
            "whole_loop_over_thread_loop_ceiling_each": [round(r["whole_loop_over_thread_loop_ceiling"], 3)
                                                         for r in repeats],
            "whole_loop_over_replayed_physics_median": median("whole_loop_over_replayed_physics", 3),
            "whole_loop_over_replayed_physics_each": [round(r["whole_loop_over_replayed_physics"], 3)
                                                      for r in repeats if np.isfinite(r["whole_loop_over_replayed_physics"])],
            "whole_loop_steps_per_s_median": median("whole_loop_steps_per_s"),
            "cpu_efficiency_median": median("cpu_efficiency", 3),
            "cpu_efficiency_each": [round(r["cpu_efficiency"], 3) for r in repeats],
            "ceiling_steps_per_s_median": median("ceiling_steps_per_s"),
            "thread_loop_ceiling_steps_per_s_median": median("thread_loop_ceiling_steps_per_s"),
            "replayed_physics_steps_per_s_median": median("replayed_physics_steps_per_s"),
            "generations_timed": repeats[0]["generations_timed"],
        }
    print(json.dumps({
        "benchmark": "whole_es_loop_vs_physics_ceiling", "env": args.env, "population": args.population,
        "device": args.device, "load_average": os.getloadavg(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "cpu_count": os.cpu_count(), "physics_threads": default_num_threads(), "repeats": args.repeats,
        "shards": args.shards, "episode_steps": args.episode_steps, "overrides": args.overrides,
        "ceiling_backend": ceiling_backend(),
        "target": "whole_loop_over_ceiling >= 0.7 (plastic policy)", "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
