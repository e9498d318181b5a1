"""The README's main job: a short real training run, then a robustness evaluation.

A plastic spiking controller (LIF, BCM gated by reward-prediction error) is trained with
PGPE on HalfCheetah-v5 for a few minutes on 2 cores; its best centre is then evaluated on
paired episodes under the nominal body and a handful of held-out perturbations (heavier body,
slippery ground, sensor noise, a dead motor, a shortened shin). Everything is written to one
run directory (config, metrics, checkpoints, agents, W&B offline run, robustness.json).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plasticrl.rollouts.saved_agent import load
from plasticrl.config import ExperimentConfig, config_from_dict, parse_overrides, set_dotted
from plasticrl.rollouts.batch import run_batch
from plasticrl.rollouts.controllers import PlasticController
from plasticrl.eval.robustness import ConditionResult
from plasticrl.io import atomic_write_json
from plasticrl.seeding import HELD_OUT_SEED_OFFSET
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.env_setup import check_config, env_kwargs
from plasticrl.trainers.runs import new_run_dir
from plasticrl.trainers.es import ESTrainer, TrainResult

DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-halfcheetah-bcm",
    "seed": 0,
    "env": {"id": "HalfCheetah-v5"},
    "policy": {"kind": "plastic_spiking", "hidden": [64],
               "plasticity": {"rule": "bcm", "modulation": "rpe", "sharing": "post", "eta_scale": 0.001}},
    "es": {"algorithm": "pgpe",
           "params": {"population_size": 32, "center_learning_rate": 0.15, "max_speed": 0.3, "stdev_init": 0.1}},
    "train": {"generations": 40, "eval_every": 5, "eval_episodes": 3, "checkpoint_every": 5},
    "logging": {"wandb": {"group": "demo", "tags": ["demo"]}},
}

DEMO_CONDITIONS: dict[str, Any] = {
    "nominal": None,
    "mass x1.5": {"name": "mass_scale", "scale": 1.5},
    "friction x0.5": {"name": "friction_scale", "scale": 0.5},
    "obs noise 0.1": {"name": "obs_noise", "std": 0.1},
    "dead back-thigh motor": {"name": "dead_actuator", "actuator": "bthigh"},
    "front shin x0.5": {"name": "shorten_limb", "segment": "fshin", "scale": 0.5},
}


def demo_config(overrides: Sequence[str] = ()) -> ExperimentConfig:
    data = copy.deepcopy(DEMO_CONFIG)
    for key, value in parse_overrides(overrides):
        set_dotted(data, key, value)
    return config_from_dict(data, "demo config")


def run_demo(
    config: ExperimentConfig,
    out: Path,
    conditions: dict[str, Any] | None = None,
    episodes: int = 5,
    on_generation: Callable[[dict], None] | None = None,
) -> tuple[TrainResult, list[ConditionResult], Path]:
    """Train, then evaluate the best agent under ``conditions``; returns the results and run dir."""
    conditions = DEMO_CONDITIONS if conditions is None else conditions
    if not isinstance(episodes, int) or episodes < 1:  # checked before training, not after it
        raise PlasticRLError(f"episodes must be an integer >= 1; got {episodes!r}")
    check_config(config)
    run_dir = new_run_dir(out, config.name)
    result = ESTrainer(config, run_dir, on_generation=on_generation).train()
    agent = load(run_dir / "best_agent.pt", device=config.device)
    # Held-out seeds, disjoint from training (derived per generation) and from the centre
    # evaluation: the robustness table is measured on episodes never used for selection.
    batches = run_batch(PlasticController(agent, "best"), config.env.id, list(conditions.items()), episodes,
                        seed=HELD_OUT_SEED_OFFSET + config.seed, env_kwargs=env_kwargs(config))
    robustness = [
        ConditionResult(name, perturbation,
                        [-math.inf if bad else float(r) for r, bad in zip(batches[name].returns, batches[name].invalid)],
                        [int(n) for n in batches[name].lengths])
        for name, perturbation in conditions.items()
    ]
    atomic_write_json(run_dir / "robustness.json", {
        "agent": str(run_dir / "best_agent.pt"), "env": config.env.id, "episodes": episodes,
        "seed": HELD_OUT_SEED_OFFSET + config.seed, "results": [r.as_dict() for r in robustness],
    })
    return result, robustness, run_dir
