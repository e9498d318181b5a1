"""The README's main job until the trainer lands: a short, real batched rollout.

A population of plastic spiking controllers (BCM, reward-modulated) and their static
spiking twins, perturbed around the same initial genome, each drive one episode of a
MuJoCo task through plasticrl's batched engine. The summary reports returns, how far the
fast weights moved within the episode, invalid members and throughput, and is written to
``<out>/demo-<time>/summary.json``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from plasticrl.agents import make_policy, parse_policy_config
from plasticrl.device import resolve_device
from plasticrl.errors import PlasticRLError
from plasticrl.io import atomic_write_json
from plasticrl.train.rollout import rollout

DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    "plastic_bcm_reward": {"kind": "plastic_spiking", "hidden": [64],
                           "plasticity": {"rule": "bcm", "modulation": "reward"}},
    "static_spiking": {"kind": "static_spiking", "hidden": [64]},
}


@dataclass
class DemoConfig:
    env: str = "HalfCheetah-v5"
    population: int = 16
    episodes: int = 1
    max_steps: int = 1000
    noise: float = 0.05
    seed: int = 0
    device: str = "cpu"
    torch_threads: int = 1
    policies: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_POLICIES))

    def validate(self) -> None:
        for name in ("population", "episodes", "max_steps", "torch_threads"):
            if getattr(self, name) < 1:
                raise PlasticRLError(f"demo {name} must be >= 1; got {getattr(self, name)}")
        if not self.policies:
            raise PlasticRLError("demo needs at least one policy under 'policies'")
        for name, cfg in self.policies.items():
            try:
                parse_policy_config(cfg)
            except PlasticRLError as exc:
                raise PlasticRLError(f"policy {name!r}: {exc}") from None


def run_demo(config: DemoConfig, out_dir: Path, progress=None) -> dict[str, Any]:
    """Run the demo and write ``summary.json``; returns the summary."""
    from plasticrl.envs import make_vec

    config.validate()
    torch.set_num_threads(config.torch_threads)  # tiny per-step tensors: extra threads only add sync cost
    device = resolve_device(config.device)
    rows = config.population * config.episodes
    env = make_vec(config.env, rows)
    results = {}
    for name, policy_cfg in config.policies.items():
        if progress is not None:
            progress(name)
        policy = make_policy(policy_cfg, env.single_observation_space, env.single_action_space, device=device)
        gen = torch.Generator().manual_seed(config.seed)
        base = policy.initial_genome(1).cpu()
        genome = base + config.noise * torch.randn(config.population, policy.genome.dim, generator=gen)
        start = time.perf_counter()
        result = rollout(policy, env, genome.to(device), config.episodes, config.max_steps, seed=config.seed)
        elapsed = time.perf_counter() - start
        drift = _weight_drift(policy)
        fitness = result.fitness
        results[name] = {
            "policy": parse_policy_config(policy_cfg).model_dump(),
            "genome_dim": policy.genome.dim,
            "mean_return": float(result.returns.mean()),
            "best_return": float(fitness.max()),
            "worst_return": float(fitness.min()),
            "mean_episode_length": float(result.lengths.float().mean()),
            "fast_weight_relative_change": drift,
            "invalid_members": int(result.invalid.sum()),
            "env_steps": result.env_steps,
            "env_steps_per_s": result.env_steps / elapsed,
            "seconds": elapsed,
        }
    env.close()
    summary = {
        "env": config.env, "population": config.population, "episodes_per_member": config.episodes,
        "max_steps": config.max_steps, "seed": config.seed, "device": str(device), "results": results,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def _weight_drift(policy) -> float | None:
    """Mean ``|W_end - W_0| / mean|W_0|`` over layers: how much the synapses learned in-episode."""
    if not hasattr(policy, "fast_weights"):
        return None
    changes = []
    for w, w0 in zip(policy.fast_weights, policy.initial_weights):
        changes.append(float((w - w0).abs().mean() / w0.abs().mean().clamp_min(1e-12)))
    return sum(changes) / len(changes)
