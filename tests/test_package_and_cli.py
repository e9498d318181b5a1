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


def test_demo_runs_a_real_rollout_and_writes_summary(tmp_path):
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(
        "env: InvertedPendulum-v5\npopulation: 3\nmax_steps: 40\npolicies:\n"
        "  plastic: {kind: plastic_spiking, hidden: [8], plasticity: {rule: oja, modulation: rpe}}\n"
        "  linear: {kind: linear}\n"
    )
    result = runner.invoke(app, ["demo", str(cfg), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (summary_path,) = (tmp_path / "runs").glob("demo-*/summary.json")
    summary = json.loads(summary_path.read_text())
    plastic, linear = summary["results"]["plastic"], summary["results"]["linear"]
    # one episode per member, capped at 40 steps; InvertedPendulum-v5 pays +1 per step and 0
    # on the step that terminates, so each return is its length or its length minus one
    length, ret = plastic["mean_episode_length"], plastic["mean_return"]
    assert 1 <= length <= 40
    assert length - 1 <= ret <= length and (3 * ret) == pytest.approx(round(3 * ret))
    assert plastic["env_steps"] >= 3 * plastic["mean_episode_length"]
    assert plastic["fast_weight_relative_change"] > 0
    assert linear["fast_weight_relative_change"] is None


def test_demo_config_errors_name_key_and_choices(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("env: InvertedPendulum-v5\npopulaton: 3\n")
    result = runner.invoke(app, ["demo", str(cfg)])
    assert result.exit_code == 2
    assert "'populaton'" in result.output and "population" in result.output
    cfg.write_text("policies:\n  p: {kind: plastic_spiking, plasticity: {rule: hebb}}\n")
    result = runner.invoke(app, ["demo", str(cfg), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'hebb'" in result.output and "hebbian_abcd" in result.output
    result = runner.invoke(app, ["demo", "--env", "Pong-v99", "--max-steps", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'Pong-v99'" in result.output and "HalfCheetah-v5" in result.output


def test_genome_command_lists_groups():
    result = runner.invoke(app, ["genome", "--env", "InvertedPendulum-v5"])
    assert result.exit_code == 0, result.output
    assert "layers.0.eta" in result.output and "layers.0.tau_mem" in result.output


def test_bench_command_rejects_unknown_benchmark():
    result = runner.invoke(app, ["bench", "nope"])
    assert result.exit_code == 2
    assert "'nope'" in result.output and "bench_policy" in result.output
