"""W&B (offline only): the demo's robustness table and plots are logged, and W&B's staged copies of agents
and tables stay in the run directory, not in the user's home."""
import json
import math
import os
from pathlib import Path

import pytest

from plasticrl.report.demo_report import ROBUSTNESS_COLUMNS, write_demo_report
from plasticrl.trainers.es import ESTrainer
from test_trainer import tiny


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("XDG_DATA_HOME", "WANDB_DATA_DIR", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    return home


def _staged_in_home(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and "staging" in p.parts]


def test_agent_artifacts_are_staged_in_the_run_directory(tmp_path, fake_home):
    run = tmp_path / "run"
    ESTrainer(tiny("train.generations=1", "logging.wandb.mode=offline"), run).train()
    staged = [p for p in (run / "wandb" / "artifact-staging").rglob("*") if p.is_file() and "staging" in p.parts]
    contents = sorted(p.read_bytes() for p in staged)
    assert contents == sorted([(run / "best_agent.pt").read_bytes(), (run / "final_agent.pt").read_bytes()])
    assert _staged_in_home(fake_home) == []
    assert "WANDB_DATA_DIR" not in os.environ  # set only while W&B stages


def test_demo_robustness_table_and_plots_are_logged(tmp_path, fake_home):
    run = tmp_path / "demo"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"generation": 1, "env_steps": 10, "fitness_mean": 1.0,
                                                   "fitness_max": 2.0, "eval_return_mean": 1.5}) + "\n")
    write_demo_report(run, [{"condition": "nominal", "returns": [1.0, 2.0]},
                            {"condition": "mass x1.5", "returns": [0.5, -math.inf]}], "HalfCheetah-v5", 2,
                      wandb_mode="offline")
    (files,) = list((run / "wandb").glob("offline-run-*/files"))
    (table_file,) = list(files.glob("media/table/demo/robustness_table_*.table.json"))
    table = json.loads(table_file.read_text())
    assert table["columns"] == list(ROBUSTNESS_COLUMNS)
    # hand values: nominal mean 1.5, std 0.5; mass x1.5: the one finite return 0.5, one invalid episode
    assert table["data"] == [["nominal", 1.5, 0.5, 0.0, 0], ["mass x1.5", 0.5, 0.0, -1.0, 1]]
    plots = sorted(p.name.split("_plot_")[0] for p in files.glob("media/images/demo/*.png"))
    assert plots == ["robustness", "training"]
    assert _staged_in_home(fake_home) == []
