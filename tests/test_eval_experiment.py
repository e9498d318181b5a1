"""`plasticrl experiment`: the shipped configs validate; a tiny experiment trains, evaluates and resumes."""
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.experiments.comparison import load_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.generations=2", "es.params.population_size=4", "train.eval_every=1", "train.eval_episodes=1",
        "policy.hidden=[8]"]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs" / "experiments").glob("*.yaml")))
def test_shipped_experiment_configs_validate(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = load_spec(ROOT / "configs" / "experiments" / name)
    # everything `plasticrl experiment` checks before it makes a directory passes, so the study can start
    # from a fresh clone (a stage that points at another stage's output by path, rather than init_from, fails
    # here); the memory guard is skipped, since it depends on the machine
    from plasticrl.experiments.comparison import check_spec

    check_spec(spec, force=True)
    # every experiment compares a plastic agent (a policy with a plasticity rule) with a static twin: trained
    # (static_*, or hebbian_static_*), or its frozen twin (the same weights, learning rates 0)
    from plasticrl.config import load_config
    from plasticrl.rollouts.saved_agent import has_plasticity

    configs = {label: load_config(agent.config, [f"env.id={spec.env.id}", *agent.overrides])
               for label, agent in spec.agents.items()}
    assert any(has_plasticity(cfg.policy) for cfg in configs.values())
    assert any("static" in label.split("_") for label in spec.agents) or spec.eval.frozen_twins
    # Training may randomise (train) or damage other limbs (damage, front_legs_short), never apply an
    # evaluated condition; the exception is Dittrich et al.'s motor-failure protocol, which measures
    # recovery from the failures it trains on (its suite is evaluated in distribution by design).
    allowed = {None, "train", "damage", "front_legs_short"} | ({"motor_failure"} if spec.eval.suite == "motor_failure"
                                                               else set())
    for cfg in configs.values():
        assert (spec.env.train_perturbation or cfg.env.train_perturbation) in allowed
        if cfg.train.init_agent is not None:  # fine-tuning starts from another agent of the same experiment
            # or from an agent shipped with plasticrl (its config, budget and score recorded in the index)
            from plasticrl.rollouts.pretrained import is_pretrained, resolve_pretrained

            shipped = (is_pretrained(cfg.train.init_agent) and resolve_pretrained(cfg.train.init_agent).is_file()
                       or Path(cfg.train.init_agent).parent == Path("plasticrl/pretrained")
                       and (ROOT / cfg.train.init_agent).is_file())
            assert shipped or any(
                cfg.train.init_agent.endswith(f"/{label}/best_agent.pt") for label in spec.agents)
    from plasticrl.eval.evaluate import suite_conditions

    conds = suite_conditions(spec.env.id, spec.eval.suite, spec.eval.only)  # every pattern names real conditions
    assert conds[0]["name"] == "nominal"
    if spec.eval.oracle is None:
        assert len(conds) > 1  # robustness studies evaluate held-out conditions
    else:  # goal-switch studies: the held-out change is the goal switch inside every episode
        assert spec.env.kwargs.get("switch_step") is not None and spec.eval.oracle in spec.agents


def test_experiment_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "env": {"id": "Ant-v5"}, "agents": {}, "evall": {}}))
    res = CliRunner().invoke(app, ["experiment", str(bad)])
    assert res.exit_code == 2 and "evall" in res.output


@pytest.mark.parametrize("plastic_evaluated", [False, True])
def test_frozen_twins_without_a_learning_agent_is_refused_before_training(tmp_path, monkeypatch, plastic_evaluated):
    """Frozen twins need an evaluated agent that learns within the episode: refused in one line before the
    experiment directory exists (it used to fail at evaluation, after every agent had trained). A plastic
    agent that is only a curriculum stage (evaluate: false) gets no twin, so it does not count."""
    from tests.cli_checks import assert_one_line_error, entries

    monkeypatch.chdir(ROOT)
    agents = {"static": {"config": "configs/halfcheetah/static_spiking.yaml", "overrides": TINY}}
    if plastic_evaluated:  # the same spec with a plastic agent passes the check (and trains: stop it there)
        agents["plastic"] = {"config": "configs/halfcheetah/bcm_modulated.yaml", "overrides": TINY}
    else:
        agents["stage"] = {"config": "configs/halfcheetah/bcm_modulated.yaml", "overrides": TINY,
                           "evaluate": False}
    cfg = {"name": "twins", "env": {"id": "HalfCheetah-v5"}, "agents": agents,
           "eval": {"episodes": 1, "frozen_twins": True}, "wandb_mode": "disabled"}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from plasticrl.experiments.comparison import check_spec

    if plastic_evaluated:
        check_spec(load_spec(path))
        return
    res = CliRunner().invoke(app, ["experiment", str(path), "--out", str(tmp_path / "out")])
    assert_one_line_error(res, "eval.frozen_twins", "static", "eval.frozen_twins=false")
    assert "stage" not in res.output and entries(tmp_path) == ["exp.yaml"]


def test_tiny_experiment_end_to_end_and_rerun_skips(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = {"name": "tiny", "env": {"id": "HalfCheetah-v5", "kwargs": {"max_episode_steps": 20},
                                   "train_perturbation": "train"},
           "agents": {"plastic": {"config": "configs/halfcheetah/bcm_modulated.yaml", "overrides": TINY},
                      "static": {"config": "configs/halfcheetah/static_spiking.yaml", "overrides": TINY}},
           "baselines": {"ppo": {"algo": "ppo", "steps": 32, "eval_every": 32, "eval_episodes": 1,
                                 "hp": {"n_steps": 32, "batch_size": 16, "n_epochs": 1}}},
           "eval": {"episodes": 2, "only": ["mass_scale@severe"], "frozen_twins": True, "obs_std_floor": 0.05},
           "wandb_mode": "disabled"}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["experiment", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "eval" / "eval.json").read_text())
    # the same evaluation as `plasticrl eval`: frozen twin of the plastic agent only, the floor recorded
    assert result["agents"] == ["plastic", "static", "ppo", "plastic/frozen"]
    assert result["conditions"] == ["nominal", "mass_scale@severe"]
    assert {r["agent"] for r in result["rows"]} == {"plastic", "static", "ppo", "plastic/frozen"}
    assert result["obs_std_floor"] == 0.05
    md = (out / "eval" / "report.md").read_text()
    assert "## plastic" in md and "## static" in md and "## ppo" in md and "0.05" in md
    assert "paired episodes" in res.output, res.output  # the summary table, as `plasticrl eval` prints it
    training = (out / "training.md").read_text()
    assert "| plastic | 2 |" in training and "| ppo | 1 | 32 |" in training
    for label in ("plastic", "static"):  # the experiment's env replaced the config's, kwargs included
        run_cfg = yaml.safe_load((out / label / "config.yaml").read_text())
        assert run_cfg["env"]["kwargs"] == {"max_episode_steps": 20}
        assert run_cfg["env"]["train_perturbation"] == "train"
    # the baseline trained under the experiment's distribution too
    assert yaml.safe_load((out / "ppo" / "config.yaml").read_text())["train_perturbation"] == "train"
    summary = json.loads((out / "experiment.json").read_text())
    assert summary["agents"]["ppo"].endswith("best_model.zip")  # the best by nominal evaluation, as for ES
    again = CliRunner().invoke(app, ["experiment", str(path), "--out", str(out)])
    assert again.exit_code == 0 and again.output.count("skipped") == 3


def test_a_baseline_may_set_its_own_training_perturbation(tmp_path, monkeypatch):
    import plasticrl.trainers.sb3
    from plasticrl.experiments.comparison import ExperimentSpec, _train_sb3

    seen = {}

    def fake_train(algo, env_id, steps, run_dir, **kwargs):
        seen[Path(run_dir).name] = kwargs["train_perturbation"]
        Path(run_dir).mkdir(parents=True)
        (Path(run_dir) / "best_model.zip").write_bytes(b"")

    monkeypatch.setattr(plasticrl.trainers.sb3, "train_baseline", fake_train)
    spec = ExperimentSpec.model_validate({
        "name": "x", "env": {"id": "Ant-v5", "train_perturbation": "train"}, "agents": {},
        "baselines": {"inherits": {"algo": "sac", "steps": 10}, "damaged": {"algo": "sac", "steps": 10,
                                                                            "train_perturbation": "damage"},
                      "nominal": {"algo": "sac", "steps": 10, "train_perturbation": None}}})
    for label, b in spec.baselines.items():
        _train_sb3(label, b, spec, tmp_path / label, "disabled", lambda msg: None)
    assert seen == {"inherits": "train", "damaged": "damage", "nominal": None}


def test_an_agent_may_set_its_own_seed_and_training_perturbation(tmp_path, monkeypatch):
    import plasticrl.trainers.es
    from plasticrl.experiments.comparison import ExperimentSpec, _train_es

    seen = {}

    class FakeTrainer:
        def __init__(self, cfg, run_dir):
            seen[Path(run_dir).name] = (cfg.seed, cfg.env.train_perturbation, cfg.env.id,
                                        cfg.env.train_perturbation_draw)

        def train(self, resume=False):
            pass

    monkeypatch.setattr(plasticrl.trainers.es, "ESTrainer", FakeTrainer)
    config = str(ROOT / "configs" / "halfcheetah" / "bcm_modulated.yaml")
    spec = ExperimentSpec.model_validate({
        "name": "x", "seed": 3, "env": {"id": "Hopper-v5", "train_perturbation": "train",
                                        "train_perturbation_draw": "shared"},
        "agents": {"inherits": {"config": config}, "own": {"config": config, "overrides": [
            "seed=7", "env.train_perturbation=null", "env.train_perturbation_draw=per_row"]}}})
    for label, agent in spec.agents.items():
        _train_es(label, agent, spec, tmp_path / label, "disabled", lambda msg: None)
    assert seen == {"inherits": (3, "train", "Hopper-v5", "shared"), "own": (7, None, "Hopper-v5", "per_row")}
