"""Configs ship inside the package: listed, printed, trained by name from any directory, also installed."""
import json
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.config import load_config, resolve_config
from plasticrl.config.bundled import configs_dir, list_configs
from cli_checks import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _repo_config_names() -> list[str]:
    root = REPO / "configs"
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def test_bundled_configs_are_the_repository_folder():
    assert configs_dir().resolve() == (REPO / "configs").resolve()  # one source: no second copy
    assert list_configs() == _repo_config_names()
    assert "halfcheetah/bcm_modulated" in list_configs() and "experiments/halfcheetah" in list_configs()


def test_configs_command_lists_and_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listed = runner.invoke(app, ["configs"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    shown_names = [line.strip() for line in listed.output.splitlines() if line.startswith("  ")]
    assert shown_names == _repo_config_names()
    shown = runner.invoke(app, ["configs", "show", "halfcheetah/bcm_modulated"])
    assert shown.exit_code == 0, shown.output
    assert shown.output == (REPO / "configs/halfcheetah/bcm_modulated.yaml").read_text()
    bad = runner.invoke(app, ["configs", "show", "halfcheetah/bcm_modulatd"])
    assert_one_line_error(bad, "'halfcheetah/bcm_modulatd'", "halfcheetah/bcm_modulated")


@pytest.mark.parametrize("name", ["halfcheetah/bcm_modulated", "configs/halfcheetah/bcm_modulated.yaml",
                                  "halfcheetah/bcm_modulated.yaml"])
def test_a_name_resolves_from_any_directory(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    expected = yaml.safe_load((REPO / "configs/halfcheetah/bcm_modulated.yaml").read_text())
    cfg = load_config(name, ["train.generations=3"])
    assert cfg.name == expected["name"] and cfg.policy.plasticity.rule == expected["policy"]["plasticity"]["rule"]
    assert cfg.train.generations == 3


def test_a_path_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "halfcheetah" / "bcm_modulated.yaml"
    own.parent.mkdir()
    own.write_text("name: my-own\nenv: {id: HalfCheetah-v5}\n")
    assert resolve_config("halfcheetah/bcm_modulated.yaml") == Path("halfcheetah/bcm_modulated.yaml")
    assert load_config("halfcheetah/bcm_modulated.yaml").name == "my-own"
    assert load_config("halfcheetah/bcm_modulated").name == "halfcheetah-bcm-modulated"  # no .yaml: bundled


def test_experiment_specs_resolve_agent_configs_from_anywhere(tmp_path, monkeypatch):
    from plasticrl.experiments.comparison import load_spec

    monkeypatch.chdir(tmp_path)
    spec = load_spec("experiments/halfcheetah")
    assert {k: a.config.resolve() for k, a in spec.agents.items()} == {
        "plastic": (REPO / "configs/halfcheetah/bcm_modulated.yaml").resolve(),
        "static": (REPO / "configs/halfcheetah/static_spiking.yaml").resolve()}
    # a spec of one's own names its agent configs relative to itself
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "agent.yaml").write_text("name: mine\nenv: {id: HalfCheetah-v5}\n")
    (tmp_path / "exp" / "spec.yaml").write_text(
        "name: x\nenv: {id: HalfCheetah-v5}\nagents:\n  a: {config: agent.yaml}\n  b: {config: hopper/linear}\n")
    spec = load_spec(tmp_path / "exp" / "spec.yaml")
    assert spec.agents["a"].config == tmp_path / "exp" / "agent.yaml"
    assert spec.agents["b"].config.resolve() == (REPO / "configs/hopper/linear.yaml").resolve()


def test_unknown_config_name_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "halfcheetah/bcm_modulatd", "--out", str(tmp_path / "runs")])
    assert_one_line_error(res, "'halfcheetah/bcm_modulatd'", "halfcheetah/bcm_modulated")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_non_editable_install_trains_a_bundled_config_from_a_temporary_directory(tmp_path):
    """pip install --no-deps . into a fresh venv (the test venv's packages reached through a .pth file,
    so nothing is downloaded), then `plasticrl train NAME` from a directory with no configs/ in it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("plasticrl", "envs", "agents", "configs"):
        shutil.copytree(REPO / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    venv_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    # the test venv's site-packages as a plain path: its editable-install hook (.pth) is not run there
    Path(venv_site, "_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "."],
                   cwd=src, check=True, capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(py), "-c", "import plasticrl; print(plasticrl.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv_site)  # the installed copy, not the checkout
    listed = subprocess.run([str(venv / "bin" / "plasticrl"), "configs"], cwd=work, capture_output=True, text=True,
                            check=True).stdout
    assert [line.strip() for line in listed.splitlines() if line.startswith("  ")] == _repo_config_names()
    subprocess.run([str(venv / "bin" / "plasticrl"), "train", "halfcheetah/bcm_modulated", "train.generations=1",
                    "es.params.population_size=4", "env.max_episode_steps=20", "train.eval_episodes=1",
                    "logging.wandb.mode=disabled", "--out", "runs", "--quiet"],
                   cwd=work, check=True, capture_output=True, text=True)
    (run_dir,) = (work / "runs").iterdir()
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    bundled = yaml.safe_load((REPO / "configs/halfcheetah/bcm_modulated.yaml").read_text())
    assert resolved["name"] == bundled["name"] and resolved["policy"]["plasticity"] == {
        **resolved["policy"]["plasticity"], **bundled["policy"]["plasticity"]}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # one generation of 4 members x 1 episode x 20 steps (HalfCheetah never terminates early)
    assert [r["generation"] for r in rows] == [1] and rows[0]["env_steps"] == 4 * 20
