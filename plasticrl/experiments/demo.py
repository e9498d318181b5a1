"""The README's main job: within-episode plasticity that pays, measured against the frozen twin.

The task is HalfCheetahDir-v5 with the goal direction forward at reset and flipped to backward at a
step drawn per episode in [300, 700]; the flip is revealed only through the reward (the observation
is HalfCheetah-v5's). A controller whose weights are fixed cannot know when the flip happened; one
whose synapses keep learning from the reward can. Two short PGPE stages on 2 cores:

1. ``run``: a plastic spiking controller (LIF, BCM gated by the reward-prediction error) learns to
   run forward (the goal fixed forward, no flip: HalfCheetah-v5 itself).
2. ``adapt``: starting from stage 1's best agent, the same network with its BCM rule gated by the
   signed reward (a 10x larger learning rate) is trained on the flipping task, every member on the
   same episodes (shared seeds).

The best agent of stage 2 is then evaluated on held-out paired episodes beside its frozen twin (the
same evolved weights with every learning rate at 0): the paired difference in return and in reward
per step after the flip, with bootstrap intervals, is what within-episode learning adds. The
robustness table (held-out body and sensor perturbations) follows. Everything is written to one
run directory: the two stage runs, ``eval/`` (eval.json, report.md, plots) and robustness.json.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plasticrl.config import ExperimentConfig, config_from_dict, parse_overrides, set_dotted
from plasticrl.eval.evaluate import NOMINAL, evaluate
from plasticrl.eval.plasticity_effect import FROZEN_SUFFIX
from plasticrl.errors import PlasticRLError
from plasticrl.eval.result import EvaluationResult, GoalAdaptation, PlasticityEffect
from plasticrl.eval.robustness import ConditionResult
from plasticrl.eval.settings import eval_settings
from plasticrl.io import atomic_write_json
from plasticrl.report.writer import write_reports
from plasticrl.rollouts.batch import run_batch
from plasticrl.rollouts.controllers import PlasticController
from plasticrl.rollouts.env_setup import check_config, env_kwargs
from plasticrl.rollouts.saved_agent import load
from plasticrl.seeding import HELD_OUT_SEED_OFFSET
from plasticrl.trainers.es import ESTrainer, TrainResult
from plasticrl.trainers.runs import new_run_dir

_POLICY: dict[str, Any] = {"kind": "plastic_spiking", "hidden": [64], "kernel": "auto",
                           "plasticity": {"rule": "bcm", "modulation": "rpe", "sharing": "post", "eta_scale": 0.001}}
_PGPE: dict[str, Any] = {"algorithm": "pgpe",
                         "params": {"population_size": 32, "center_learning_rate": 0.15, "max_speed": 0.3,
                                    "stdev_init": 0.1}}
#: Stage 1: learn to run forward (HalfCheetahDir with the goal fixed forward is HalfCheetah-v5).
DEMO_RUN_CONFIG: dict[str, Any] = {
    "name": "run", "seed": 0,
    "env": {"id": "HalfCheetahDir-v5", "kwargs": {"direction": 1}},
    "policy": _POLICY,
    "es": _PGPE,
    "train": {"generations": 40, "eval_every": 5, "eval_episodes": 3, "checkpoint_every": 5},
    "logging": {"wandb": {"group": "demo", "tags": ["demo", "run"]}},
}
#: Stage 2: the goal flips to backward at a step drawn in [300, 700]; plasticity gated by the reward.
DEMO_ADAPT_CONFIG: dict[str, Any] = {
    "name": "adapt", "seed": 0,
    "env": {"id": "HalfCheetahDir-v5", "kwargs": {"direction": 1, "switch_step": [300, 700]},
            "train_episode_seeds": "shared"},
    "policy": {**_POLICY, "plasticity": {**_POLICY["plasticity"], "modulation": "reward", "eta_scale": 0.01}},
    "es": _PGPE,
    "train": {"generations": 40, "episodes_per_member": 2, "eval_every": 5, "eval_episodes": 6,
              "checkpoint_every": 5},
    "logging": {"wandb": {"group": "demo", "tags": ["demo", "adapt"]}},
}
DEMO_NAME = "demo-halfcheetah-dir-flip"

DEMO_CONDITIONS: dict[str, Any] = {
    "nominal": None,
    "mass x1.5": {"name": "mass_scale", "scale": 1.5},
    "friction x0.5": {"name": "friction_scale", "scale": 0.5},
    "obs noise 0.1": {"name": "obs_noise", "std": 0.1},
    "dead back-thigh motor": {"name": "dead_actuator", "actuator": "bthigh"},
    "front shin x0.5": {"name": "shorten_limb", "segment": "fshin", "scale": 0.5},
}


def _with_overrides(base: dict[str, Any], overrides: Sequence[str], source: str) -> ExperimentConfig:
    data = copy.deepcopy(base)
    for key, value in parse_overrides(overrides):
        set_dotted(data, key, value)
    return config_from_dict(data, source)


def demo_configs(overrides: Sequence[str] = ()) -> tuple[ExperimentConfig, ExperimentConfig]:
    """The two stage configs; ``key=value`` overrides apply to both (e.g. ``seed=1``,
    ``train.generations=20``, ``logging.wandb.mode=disabled``)."""
    return (_with_overrides(DEMO_RUN_CONFIG, overrides, "demo config (stage run)"),
            _with_overrides(DEMO_ADAPT_CONFIG, overrides, "demo config (stage adapt)"))


@dataclass
class DemoResult:
    """What the demo measured: both stages' training results, the plastic-vs-frozen evaluation
    (the result of :func:`plasticrl.eval.evaluate.evaluate`), the robustness table, and where
    everything was written."""

    stages: list[TrainResult]
    evaluation: EvaluationResult
    robustness: list[ConditionResult]
    run_dir: Path
    report_paths: dict[str, Path]

    def plasticity_effect(self) -> PlasticityEffect | None:
        """The paired plastic-minus-frozen-twin difference in return on the nominal condition."""
        return next((e for e in self.evaluation.plasticity_effect if e.condition == NOMINAL), None)

    def goal_adaptation(self, agent: str) -> GoalAdaptation | None:
        """Reward per step before/after the flip of ``agent`` (and, for the plastic agent, the paired
        after-flip difference to its twin)."""
        return next((e for e in self.evaluation.goal_adaptation if e.agent == agent), None)


def run_demo(
    configs: Sequence[ExperimentConfig],
    out: Path,
    conditions: dict[str, Any] | None = None,
    episodes: int = 10,
    on_generation: Callable[[str, dict], None] | None = None,
) -> DemoResult:
    """Train the stages in order (each stage after the first starts from the previous stage's best
    agent), then evaluate the last stage's best agent beside its frozen twin on ``episodes`` held-out
    paired episodes, and under ``conditions``. ``on_generation(stage_name, metrics)`` reports progress."""
    if not isinstance(episodes, int) or episodes < 1:  # checked before training, not after it
        raise PlasticRLError(f"episodes must be an integer >= 1; got {episodes!r}")
    conditions = DEMO_CONDITIONS if conditions is None else conditions
    # Held-out seeds, disjoint from training (derived per generation) and from the centre evaluation:
    # what is reported was never used for selection.
    seed = HELD_OUT_SEED_OFFSET + configs[-1].seed
    settings = eval_settings("demo evaluation settings", suite=NOMINAL, episodes=episodes, seed=seed)
    for config in configs:  # every stage's settings, before the run directory exists
        check_config(config)
    run_dir = new_run_dir(out, DEMO_NAME if len(configs) > 1 else configs[0].name)
    results: list[TrainResult] = []
    previous: Path | None = None
    for i, config in enumerate(configs):
        if previous is not None and config.train.init_agent is None:
            config = config.model_copy(update={"train": config.train.model_copy(update={"init_agent": str(previous)})})
        stage_dir = run_dir / (f"{i + 1}-{config.name}" if len(configs) > 1 else "train")
        callback = (lambda m, name=config.name: on_generation(name, m)) if on_generation is not None else None
        results.append(ESTrainer(config, stage_dir, on_generation=callback).train())
        previous = stage_dir / "best_agent.pt"
    final = configs[-1]
    agent = load(previous, device=final.device)
    kwargs = env_kwargs(final)
    plastic = PlasticController(agent, "plastic")
    frozen = PlasticController(agent.frozen_copy(), "plastic" + FROZEN_SUFFIX)
    evaluation = evaluate([plastic, frozen], final.env.id, settings, env_kwargs=kwargs)
    paths = write_reports(evaluation, run_dir / "eval", plots=True)
    batches = run_batch(PlasticController(agent, "best"), final.env.id, list(conditions.items()), episodes,
                        seed=seed, env_kwargs=kwargs)
    robustness = [
        ConditionResult(name, perturbation,
                        [-math.inf if bad else float(r) for r, bad in zip(batches[name].returns, batches[name].invalid)],
                        [int(n) for n in batches[name].lengths])
        for name, perturbation in conditions.items()
    ]
    atomic_write_json(run_dir / "robustness.json", {
        "agent": str(previous), "env": final.env.id, "env_kwargs": kwargs, "episodes": episodes, "seed": seed,
        "results": [r.as_dict() for r in robustness],
    })
    return DemoResult(results, evaluation, robustness, run_dir, paths)
