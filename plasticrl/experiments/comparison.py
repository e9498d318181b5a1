"""``plasticrl experiment CONFIG``: train the plastic agent, its static twin and SB3 baselines on one
env, evaluate them all on the same suite with paired episodes, and write the comparison report.

Layout of the experiment directory: one run directory per agent (``<label>/``, ES or SB3),
``eval/`` (the comparison: eval.json, CSV, report.md, PNGs), ``training.png``/``training.md``
(curves of every run) and ``experiment.json`` (what ran where). Re-running with the same
``--out`` skips finished stages and resumes an ES run from its checkpoint, so a long experiment
that was killed continues.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plasticrl.errors import PlasticRLError, check_name, validation_error
from plasticrl.eval.settings import EvalSettings
from plasticrl.io import atomic_write_json

if TYPE_CHECKING:
    from plasticrl.experiments.evaluation import ProgressFactory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ExpEnv(_Strict):
    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Gymnasium keyword arguments, for every agent")
    train_perturbation: Optional[Any] = Field(None, description="every agent and baseline trains under it: "
                                                                "'train' (the env's domain randomisation), 'damage' "
                                                                "or one perturbation (as env.train_perturbation)")
    train_perturbation_draw: Literal["per_row", "shared"] = Field(
        "per_row", description="as env.train_perturbation_draw, for every ES agent ('shared': the members of a "
                               "generation train on the same conditions); baselines draw per episode")


class ESAgent(_Strict):
    config: Path = Field(description="trainer YAML: a path (as given, else relative to the experiment file) or "
                                     "a bundled config name (halfcheetah/bcm_modulated); env is replaced by the "
                                     "experiment's")
    overrides: list[str] = Field(default_factory=list, description="key=value overrides for the trainer config, "
                                 "applied after the experiment's env and seed (so e.g. seed=1 or "
                                 "env.train_perturbation=null set this agent's own)")
    agent_file: str = Field("best_agent.pt", description="which saved agent is evaluated")
    init_from: Optional[str] = Field(None, description="label of an agent listed earlier: training starts from its "
                                     "agent_file (train.init_agent; a curriculum stage, e.g. learn to run, then adapt)")
    evaluate: bool = Field(True, description="false: train only (e.g. a curriculum stage another agent starts from)")


class Baseline(_Strict):
    algo: str
    steps: int = Field(gt=0)
    hp: dict[str, Any] = Field(default_factory=dict, description="hyperparameter overrides")
    eval_every: int = Field(10_000, gt=0)
    eval_episodes: int = Field(5, gt=0)
    model_file: Literal["best_model.zip", "model.zip"] = Field(
        "best_model.zip", description="which saved model is evaluated: the best by nominal evaluation "
        "(as best_agent.pt for the ES agents) or the final one")
    train_perturbation: Optional[Any] = Field(None, description="as env.train_perturbation, for this baseline "
                                                                "only (default: the experiment's; null: nominal)")


class ExpEval(EvalSettings):
    """The ``eval:`` section: the evaluation settings of ``plasticrl eval``, with held-out episode seeds
    from 1000 on (training episodes start at the run's seed) and the oracle named by its agent label."""

    seed: int = Field(1000, description="first episode seed (held out: training episodes start at the run's seed)")
    """First episode seed."""
    oracle: Optional[str] = Field(None, description="goal-switching tasks: label of the agent trained with "
                                  "env.kwargs.goal_observed=true; evaluated as the oracle (as eval --oracle)")


class ExperimentSpec(_Strict):
    name: str
    seed: int = 0
    env: ExpEnv
    agents: dict[str, ESAgent] = Field(description="label -> ES-trained plasticrl agent")
    baselines: dict[str, Baseline] = Field(default_factory=dict, description="label -> SB3 baseline")
    eval: ExpEval = Field(default_factory=ExpEval)
    wandb_mode: Optional[str] = None


def load_spec(path: str | Path, overrides: list[str] = ()) -> ExperimentSpec:
    """Read and validate an experiment YAML; ``key=value`` overrides use dotted paths."""
    from plasticrl.config import check_finite, load_yaml, parse_overrides, resolve_config, set_dotted

    try:
        path = resolve_config(path)
    except PlasticRLError as exc:
        raise PlasticRLError(f"experiment {exc}") from None
    data = load_yaml(path.read_bytes(), f"experiment config {str(path)!r}")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise PlasticRLError(f"experiment config {str(path)!r} must hold a mapping, not {type(data).__name__}")
    for key, value in parse_overrides(list(overrides)):
        set_dotted(data, key, value)
    try:
        check_finite(data)
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, f"experiment config {str(path)!r}") from None
    except PlasticRLError as exc:
        raise PlasticRLError(f"invalid experiment config {str(path)!r}: {exc}") from None
    labels = list(spec.agents) + list(spec.baselines)
    # the name and every label become directories of the experiment
    check_name("experiment name", spec.name)
    for label in labels:
        check_name("agent label", label)
    if len(set(labels)) != len(labels):
        raise PlasticRLError(f"agent and baseline labels must differ; got {labels}")
    order = list(spec.agents)
    for i, (label, agent) in enumerate(spec.agents.items()):
        if agent.init_from is not None and agent.init_from not in order[:i]:
            raise PlasticRLError(f"agents.{label}.init_from {agent.init_from!r} must name an agent listed before it; "
                                 f"valid choices: {', '.join(order[:i]) or '(none)'}")
    if spec.eval.oracle is not None and spec.eval.oracle not in spec.agents:
        raise PlasticRLError(f"eval.oracle {spec.eval.oracle!r} is not an agent label; valid choices: "
                             f"{', '.join(order)}")
    for label, agent in spec.agents.items():
        # a path (as given, or relative to the experiment file) or a bundled config name, so the bundled
        # experiments run from any directory after an install
        try:
            agent.config = resolve_config(agent.config, relative_to=path.parent)
        except PlasticRLError as exc:
            raise PlasticRLError(f"agents.{label}.config: {exc}") from None
    return spec


def check_spec(spec: ExperimentSpec, force: bool = False) -> None:
    """Raise :class:`~plasticrl.errors.PlasticRLError` for any setting of ``spec`` that would fail only
    once used (every ES agent's config with the experiment's env, the baselines' algorithms,
    settings and hyperparameters, the evaluation suite and ``only`` globs, the W&B mode), before an
    experiment directory is made or anything trains; ``force`` skips the memory guard of each
    agent's training (:mod:`plasticrl.rollouts.memory`)."""
    from plasticrl.eval.evaluate import suite_conditions
    from plasticrl.config import resolve_wandb_mode
    from plasticrl.rollouts.env_setup import check_config
    from plasticrl.rollouts.saved_agent import LEARNS_WITHIN_EPISODE, has_plasticity
    from plasticrl.trainers.sb3.hyperparams import hyperparams
    from plasticrl.trainers.sb3.trainer import check_settings

    resolve_wandb_mode(spec.wandb_mode)
    try:
        suite_conditions(spec.env.id, spec.eval.suite, spec.eval.only)
    except PlasticRLError as exc:
        raise PlasticRLError(f"eval: {exc}") from None
    learners = []
    for label, agent in spec.agents.items():
        try:
            config = _es_config(agent, spec, "disabled")
            check_config(config, force=force)
        except PlasticRLError as exc:
            raise PlasticRLError(f"agents.{label}: {exc}") from None
        # a symmetric policy whose base comes from its init agent (base: null) may learn: not refused here
        may_learn = has_plasticity(config.policy) or (config.policy.kind == "symmetric" and config.policy.base is None)
        if agent.evaluate and may_learn:
            learners.append(label)
    if spec.eval.frozen_twins and not learners:
        # evaluation would refuse this after every agent had trained
        evaluated = [label for label, agent in spec.agents.items() if agent.evaluate]
        raise PlasticRLError(f"eval.frozen_twins is true, but none of the evaluated agents "
                             f"({', '.join(evaluated) or 'none'}) learns within the episode; give one that "
                             f"does ({LEARNS_WITHIN_EPISODE}) or set eval.frozen_twins=false")
    for label, b in spec.baselines.items():
        try:
            check_settings(b.algo, spec.env.id, spec.env.kwargs, _baseline_perturbation(b, spec))
            hyperparams(b.algo, spec.env.id, b.hp)
        except PlasticRLError as exc:
            raise PlasticRLError(f"baselines.{label}: {exc}") from None


def _es_config(agent: ESAgent, spec: ExperimentSpec, wandb_mode: str, init_agent: Path | None = None):
    """The trainer config of an ES agent: its YAML with the experiment's env, seed and W&B mode (and the
    agent it starts from, for ``init_from``), then its own overrides."""
    from plasticrl.config import load_config

    overrides = [f"env.id={spec.env.id}", f"seed={spec.seed}", f"logging.wandb.mode={wandb_mode}",
                 "logging.progress=false"]
    for key, value in spec.env.kwargs.items():
        overrides.append(f"env.kwargs.{key}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    if spec.env.train_perturbation:
        overrides.append(f"env.train_perturbation={spec.env.train_perturbation}")
        overrides.append(f"env.train_perturbation_draw={spec.env.train_perturbation_draw}")
    if init_agent is not None:
        overrides.append(f"train.init_agent={init_agent}")
    overrides += agent.overrides  # last, so an agent may set its own seed or training distribution
    return load_config(agent.config, overrides)


def _baseline_perturbation(b: Baseline, spec: ExperimentSpec) -> Any:
    return b.train_perturbation if "train_perturbation" in b.model_fields_set else spec.env.train_perturbation


def _train_es(label: str, agent: ESAgent, spec: ExperimentSpec, run_dir: Path, wandb_mode: str,
              log: Callable[[str], None], init_agent: Path | None = None) -> Path:
    from plasticrl.trainers.es import ESTrainer

    target = run_dir / agent.agent_file
    if (run_dir / "final_agent.pt").is_file() and target.is_file():
        log(f"{label}: already trained ({run_dir}), skipped")
        return target
    cfg = _es_config(agent, spec, wandb_mode, init_agent)
    resume = (run_dir / "checkpoint.pt").is_file()
    log(f"{label}: training {cfg.policy.kind} with {cfg.es.algorithm} for {cfg.train.generations} generations "
        f"({'resumed' if resume else 'new'}) in {run_dir}")
    ESTrainer(cfg, run_dir).train(resume=resume)
    return target


def _train_sb3(label: str, b: Baseline, spec: ExperimentSpec, run_dir: Path, wandb_mode: str,
               log: Callable[[str], None]) -> Path:
    from plasticrl.trainers.sb3 import train_baseline

    from plasticrl.trainers.sb3.trainer import CHECKPOINT, FINAL_MODEL, LEGACY_CHECKPOINT

    target = run_dir / b.model_file
    if (run_dir / FINAL_MODEL).is_file():
        log(f"{label}: already trained ({run_dir}), skipped")
    else:
        # a legacy checkpoint resumes too, so that it is refused rather than silently trained over
        resume = (run_dir / CHECKPOINT).is_file() or (run_dir / LEGACY_CHECKPOINT).is_file()
        log(f"{label}: training SB3 {b.algo} for {b.steps} steps ({'resumed' if resume else 'new'}) in {run_dir}")
        train_baseline(b.algo, spec.env.id, b.steps, run_dir, seed=spec.seed, env_kwargs=spec.env.kwargs,
                       train_perturbation=_baseline_perturbation(b, spec), overrides=b.hp,
                       eval_every=b.eval_every, eval_episodes=b.eval_episodes, wandb_mode=wandb_mode, resume=resume)
    if not target.is_file():
        raise PlasticRLError(f"{label}: {str(target)!r} does not exist (model_file: {b.model_file}; a run from "
                             f"before best models were saved has only model.zip)")
    return target


def run_experiment(spec: ExperimentSpec, out: Path | None = None, log: Callable[[str], None] = print,
                   progress: "ProgressFactory | None" = None, force: bool = False) -> dict[str, Any]:
    """Train every agent and baseline (skipping finished ones), evaluate them together, write reports;
    ``force`` skips the memory guards (:mod:`plasticrl.rollouts.memory`).

    Returns what ``experiment.json`` holds plus ``result`` (the :class:`~plasticrl.eval.result.EvaluationResult`,
    whose ``to_json()`` is ``eval.json``)."""
    from plasticrl.report.rebuild import rebuild
    from plasticrl.experiments.evaluation import evaluate_agents
    from plasticrl.config import resolve_wandb_mode

    mode = resolve_wandb_mode(spec.wandb_mode)
    check_spec(spec, force)  # every setting, before the directory exists or anything trains
    exp_dir = Path(out) if out is not None else Path("runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlasticRLError(f"cannot create the experiment directory {str(exp_dir)!r}: "
                             f"{exc.strerror or exc}") from None
    atomic_write_json(exp_dir / "experiment_config.json", spec.model_dump(mode="json"))
    files: dict[str, Path] = {}
    trained: dict[str, Path] = {}
    for label, agent in spec.agents.items():
        init = trained[agent.init_from] if agent.init_from is not None else None
        trained[label] = _train_es(label, agent, spec, exp_dir / label, mode, log, init_agent=init)
    for label, b in spec.baselines.items():
        trained[label] = _train_sb3(label, b, spec, exp_dir / label, mode, log)
    e = spec.eval
    files = {label: path for label, path in trained.items()
             if label != e.oracle and (label not in spec.agents or spec.agents[label].evaluate)}
    log(f"evaluating {', '.join(files)} on {spec.env.id} / {spec.eval.suite}"
        + (f" against the oracle {e.oracle}" if e.oracle else ""))
    result, paths = evaluate_agents(
        list(files.values()), exp_dir / "eval", e, names=list(files), env=spec.env.id, env_kwargs=spec.env.kwargs,
        wandb_mode=mode, run_name=f"experiment-{spec.name}", progress=progress,
        oracle=trained[e.oracle] if e.oracle else None, oracle_name=e.oracle, force=force)
    rebuild([exp_dir / label for label in trained], exp_dir)
    summary = {"name": spec.name, "env_id": spec.env.id, "dir": str(exp_dir),
               "agents": {label: str(p) for label, p in trained.items()}, "evaluated": list(files),
               "oracle": e.oracle, "report": str(paths["markdown"])}
    atomic_write_json(exp_dir / "experiment.json", summary)
    return {**summary, "result": result}
