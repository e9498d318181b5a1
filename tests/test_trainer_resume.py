"""Resume, kill and extension of ES runs at the default checkpoint interval (every 5 generations),
each against a straight run of the same length."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.config import load_config
from plasticrl.io import torch_load
from plasticrl.trainers.es import KILL_HOOK_ENV, ESTrainer

# A tiny linear HalfCheetah run (no termination, so every generation simulates P x T steps);
# checkpoint_every keeps its default of 5, as in every shipped config.
TINY = ["env.id=HalfCheetah-v5", "env.max_episode_steps=20", "policy.kind=linear",
        "es.params={population_size: 8, sigma: 0.1, learning_rate: 0.05}", "train.eval_every=2",
        "train.eval_episodes=2", "logging.wandb.mode=disabled", "logging.progress=false"]
TIMING = ("generation_seconds", "wall_seconds", "env_steps_per_s")


def tiny(*extra):
    return load_config(None, TINY + list(extra))


def rows(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def agent_file(path):
    """What an agent file holds, less where it was written."""
    payload = torch_load(path)
    payload["metadata"] = {k: v for k, v in payload["metadata"].items() if k != "run_dir"}
    return payload


def assert_same_agent(a, b):
    a, b = agent_file(a), agent_file(b)
    assert torch.equal(a["genome"], b["genome"])
    if a["obs_norm"] is None:
        assert b["obs_norm"] is None
    else:
        assert a["obs_norm"]["count"] == b["obs_norm"]["count"]
        assert torch.equal(a["obs_norm"]["mean"], b["obs_norm"]["mean"])
        assert torch.equal(a["obs_norm"]["m2"], b["obs_norm"]["m2"])
    assert a["metadata"] == b["metadata"]


def assert_same_run(straight, other):
    assert rows(straight) == rows(other)
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in (straight, other)]
    for key in ("generations", "env_steps", "best_eval_return", "best_generation", "final_eval_return"):
        assert summaries[0][key] == summaries[1][key], key
    assert_same_agent(Path(straight) / "best_agent.pt", Path(other) / "best_agent.pt")
    assert_same_agent(Path(straight) / "final_agent.pt", Path(other) / "final_agent.pt")


def test_extending_a_finished_run_equals_a_straight_run(tmp_path):
    """The README's recipe, ``train --resume RUN train.generations=M``: 7 generations (the last off the
    evaluation schedule) extended to 14 give the straight 14-generation run's metrics rows, best
    return, best agent and final agent."""
    ESTrainer(tiny("train.generations=14"), tmp_path / "straight").train()
    ESTrainer(tiny("train.generations=7"), tmp_path / "extended").train()
    first = json.loads((tmp_path / "extended" / "summary.json").read_text())
    assert first["generations"] == 7 and first["final_eval_return"] is not None  # the final centre was evaluated
    assert "eval_return_mean" not in rows(tmp_path / "extended")[-1]  # ... but not logged as a scheduled row
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "extended"), "train.generations=14",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert_same_run(tmp_path / "straight", tmp_path / "extended")
    assert [r["generation"] for r in rows(tmp_path / "extended")] == list(range(1, 15))
    assert [r["generation"] for r in rows(tmp_path / "straight") if "eval_return_mean" in r] == [2, 4, 6, 8, 10, 12, 14]


def test_a_final_centre_that_beat_the_scheduled_ones_is_not_kept_by_the_extension(tmp_path, monkeypatch):
    """Scripted evaluation returns by generation: 1.0 at 2, 5.0 at 3, 0.0 at 4, 0.5 at 5 (eval_every=2).
    A 3-generation run ends with its final centre (5.0) as its best agent; extended to 5 it must
    hold the straight run's best, generation 2, as no scheduled evaluation ever saw generation 3."""
    scripted = {2: 1.0, 3: 5.0, 4: 0.0, 5: 0.5}
    obs_per_generation = 8 * 20  # P members x T steps: HalfCheetah never terminates
    evaluate = ESTrainer._evaluate_center

    def scripted_evaluation(self, center, obs_norm):
        _, std, steps = evaluate(self, center, obs_norm)
        return scripted[round(obs_norm.count / obs_per_generation)], std, steps

    monkeypatch.setattr(ESTrainer, "_evaluate_center", scripted_evaluation)
    straight = ESTrainer(tiny("train.generations=5"), tmp_path / "straight").train()
    assert (straight.best_generation, straight.best_eval_return, straight.final_eval_return) == (2, 1.0, 0.5)
    short = ESTrainer(tiny("train.generations=3"), tmp_path / "extended").train()
    assert (short.best_generation, short.best_eval_return) == (3, 5.0)
    assert torch_load(tmp_path / "extended" / "best_agent.pt")["metadata"]["generation"] == 3
    extended = ESTrainer(tiny("train.generations=5"), tmp_path / "extended").train(resume=True)
    assert (extended.best_generation, extended.best_eval_return) == (2, 1.0)
    assert_same_run(tmp_path / "straight", tmp_path / "extended")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_between_a_metrics_row_and_its_checkpoint_then_resume_equals_the_straight_run(tmp_path):
    """A real SIGKILL at generation 10 after its metrics row and before its checkpoint (the test hook
    of plasticrl.trainers.es): metrics.jsonl holds rows 1-10, checkpoint.pt generation 5. The
    resume drops rows 6-10, trains them again and ends equal to the straight run."""
    args = TINY + ["train.generations=12"]
    ESTrainer(load_config(None, args), tmp_path / "straight").train()
    env = {**os.environ, KILL_HOOK_ENV: "10"}
    killed = subprocess.run([sys.executable, "-m", "plasticrl.cli", "train", *args, "--out", str(tmp_path / "b"),
                             "--quiet"], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    (run,) = (tmp_path / "b").iterdir()
    assert [r["generation"] for r in rows(run)] == list(range(1, 11))
    assert torch_load(run / "checkpoint.pt")["generation"] == 5
    assert not (run / "final_agent.pt").exists()
    resumed = subprocess.run([sys.executable, "-m", "plasticrl.cli", "train", "--resume", str(run), "--quiet"],
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert_same_run(tmp_path / "straight", run)
