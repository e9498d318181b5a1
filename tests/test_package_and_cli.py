"""Install layout (one namespace) and the CLI's demo, errors and listings."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plasticrl.cli import app

runner = CliRunner()


def test_one_import_namespace_no_bare_envs_or_agents(tmp_path):
    code = (
        "import importlib.util, json, plasticrl.envs, plasticrl.agents;"
        "print(json.dumps([importlib.util.find_spec('envs') is None, importlib.util.find_spec('agents') is None,"
        " plasticrl.envs.__name__, plasticrl.agents.__name__]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [True, True, "plasticrl.envs", "plasticrl.agents"]


def test_demo_trains_both_stages_then_compares_with_the_frozen_twin(tmp_path):
    result = runner.invoke(app, [
        "demo", "train.generations=2", "es.params={population_size: 4, stdev_init: 0.1}",
        "env.max_episode_steps=30", "env.kwargs.switch_step=[10, 20]", "train.eval_episodes=2",
        "logging.progress=false", "--episodes", "3", "--out", str(tmp_path), "--wandb-mode", "disabled",
    ])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    for stage in ("1-run", "2-adapt"):
        for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "best_agent.pt", "final_agent.pt"):
            assert (run_dir / stage / name).is_file(), (stage, name)
        rows = [json.loads(line) for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]
        assert [r["generation"] for r in rows] == [1, 2]
    # stage 2 starts from stage 1's best agent
    assert str(run_dir / "1-run" / "best_agent.pt") in (run_dir / "2-adapt" / "config.yaml").read_text()
    evaluation = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert evaluation["agents"] == ["plastic", "plastic/frozen"]
    rows = {r["agent"]: r for r in evaluation["rows"]}
    # the paired difference is the mean of the per-episode differences, on the same held-out seeds
    diffs = [a - b for a, b in zip(rows["plastic"]["returns"], rows["plastic/frozen"]["returns"])]
    (effect,) = [e for e in evaluation["plasticity_effect"] if e["condition"] == "nominal"]
    assert effect["difference"] == pytest.approx(sum(diffs) / len(diffs))
    assert evaluation["seed"] == 10_000
    # every episode switches its goal at its drawn step in [10, 20], echoed per episode
    for row in rows.values():
        assert all(10 <= s <= 20 for s in row["goal_switch_steps"]) and len(row["goal_switch_steps"]) == 3
    assert {g["agent"] for g in evaluation["goal_adaptation"]} == {"plastic", "plastic/frozen"}
    assert "within-episode plasticity adds" in result.output
    report = json.loads((run_dir / "robustness.json").read_text())
    by_name = {r["condition"]: r for r in report["results"]}
    assert set(by_name) == {"nominal", "mass x1.5", "friction x0.5", "obs noise 0.1", "dead back-thigh motor",
                            "front shin x0.5"}
    # HalfCheetah never terminates: every paired episode runs to the 30-step cap
    assert all(r["lengths"] == [30, 30, 30] for r in report["results"])
    nominal = by_name["nominal"]["returns"]
    assert by_name["front shin x0.5"]["returns"] != nominal and by_name["mass x1.5"]["returns"] != nominal
    assert by_name["nominal"]["returns"] == rows["plastic"]["returns"]  # the same episodes, the same agent
    # it ends with its report (both stages' curves, the robustness table), its plots and the next commands
    lines = result.output.splitlines()
    assert f"report: {run_dir / 'report.md'}" in lines and (run_dir / "report.md").is_file()
    assert f"plots: {run_dir / 'training.png'}, {run_dir / 'robustness.png'}" in lines
    assert lines[lines.index("next:") + 1].startswith(f"  plasticrl eval {run_dir / '2-adapt' / 'best_agent.pt'}")
    text = (run_dir / "report.md").read_text()
    assert "stage `run`: 2 generations" in text and "stage `adapt`: 2 generations" in text
    assert "[eval/report.md](eval/report.md)" in text


def test_demo_refuses_zero_episodes_before_training(tmp_path):
    result = runner.invoke(app, ["demo", "--episodes", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--episodes must be >= 1; got 0" in result.output
    assert not any(tmp_path.iterdir())


def test_demo_config_errors_name_key_and_choices(tmp_path):
    result = runner.invoke(app, ["demo", "train.generatons=3", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "train.generatons" in result.output and "generations" in result.output
    result = runner.invoke(app, ["demo", "policy.plasticity.rule=hebb", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'hebb'" in result.output and "hebbian_abcd" in result.output
    result = runner.invoke(app, ["demo", "env.id=Pong-v99", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'Pong-v99'" in result.output and "HalfCheetah-v5" in result.output


def test_genome_command_lists_groups():
    result = runner.invoke(app, ["genome", "--env", "InvertedPendulum-v5"])
    assert result.exit_code == 0, result.output
    assert "layers.0.eta" in result.output and "layers.0.tau_mem" in result.output


def test_genome_command_names_the_context_unit_and_its_input_column(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("env: {id: HalfCheetahDir-v5}\npolicy: {kind: static_spiking, hidden: [64], "
                      "context_unit: {enabled: true, eta: 0.1}}\n")
    result = runner.invoke(app, ["genome", str(config)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the caption wraps
    # 17 observations and the context unit: 18 input columns, the unit's rule outside the genome
    assert "[64, 18]" in text and "reward-latched context unit (eta 0.1, reward, crossing jump" in text
    config.write_text("env: {id: HalfCheetahDir-v5}\npolicy: {kind: static_spiking, hidden: [64]}\n")
    plain = runner.invoke(app, ["genome", str(config)])
    assert plain.exit_code == 0 and "[64, 17]" in plain.output and "context unit" not in plain.output


def test_genome_command_takes_overrides_like_train():
    """`plasticrl genome CONFIG key=value...` sizes the policy as `plasticrl train` with the same overrides
    would: the Ant random-weight Hebbian MLP (27 -> 128 -> 64 -> 8) searches 5 coefficients per synapse,
    5 x (27x128 + 128x64 + 64x8) = 60,800, or with one rule per post-synaptic neuron 5 x (128 + 64 + 8) = 1,000."""
    from tests.cli_checks import assert_one_line_error

    config = str(Path(__file__).resolve().parents[1] / "configs" / "ant" / "hebbian_random_mlp.yaml")
    per_synapse = runner.invoke(app, ["genome", config], terminal_width=300)
    per_neuron = runner.invoke(app, ["genome", config, "policy.plasticity.sharing=post"], terminal_width=300)
    assert per_synapse.exit_code == 0 and per_neuron.exit_code == 0, per_synapse.output + per_neuron.output
    synapse_text, neuron_text = (" ".join(r.output.split()) for r in (per_synapse, per_neuron))  # lines wrap
    assert "D = 60,800 searched" in synapse_text and "D = 1,000 searched" in neuron_text, neuron_text
    assert "layers.0.A" in neuron_text and "[128, 1]" in neuron_text
    assert_one_line_error(runner.invoke(app, ["genome", config, "policy.plasticity"]), "'policy.plasticity'",
                          "key=value")
    assert_one_line_error(runner.invoke(app, ["genome", config, "policy.plasticity.sharing=neuron"]),
                          "'neuron'", "'post'")


def test_bench_command_rejects_unknown_benchmark():
    result = runner.invoke(app, ["bench", "nope"])
    assert result.exit_code == 2
    assert "'nope'" in result.output and "bench_policy" in result.output


def test_envs_command_lists_envs_perturbations_and_suites():
    result = runner.invoke(app, ["envs", "--json"])
    assert result.exit_code == 0, result.output
    catalog = json.loads(result.output)
    names = {p["name"] for p in catalog["perturbations"]}
    assert {"mass_scale", "shorten_limb", "dead_actuator", "obs_noise", "action_delay"} <= names
    assert list(catalog["suites"]) == ["nominal", "train", "novel", "morphology", "motor_failure"]
    human = runner.invoke(app, ["envs"], terminal_width=200)
    assert human.exit_code == 0 and "Ant-v5" in human.output and "shorten_limb" in human.output
