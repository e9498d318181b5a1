"""Reliability: nothing lost (atomic rewrites, one process per run, override history, file modes),
non-finite numbers, validation before side effects, one-line errors, resource guards and hangs.

Each test reproduces one failure of the reliability issue and fails without its fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import assert_one_line_error, entries
from plasticrl.cli import app
from plasticrl.config import load_config
from plasticrl.trainers.es import ESTrainer

TINY = ["env.id=HalfCheetah-v5", "env.max_episode_steps=20", "policy.kind=linear",
        "es.params={population_size: 8, sigma: 0.1, learning_rate: 0.05}", "train.eval_every=2",
        "train.eval_episodes=2", "logging.wandb.mode=disabled", "logging.progress=false"]
REPO = Path(__file__).resolve().parents[1]


def tiny(*extra: str):
    return load_config(None, TINY + list(extra))


def python(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the tests' own), from the repository root."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, **kwargs)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def five_generations(tmp_path_factory) -> Path:
    """A finished 5-generation run (checkpoint at generation 5, metrics rows 1..5)."""
    run = tmp_path_factory.mktemp("runs") / "five"
    ESTrainer(tiny("train.generations=5"), run).train()
    return run


# -- nothing lost ----------------------------------------------------------------------------------------
def test_a_crash_during_the_metrics_rewrite_of_a_resume_keeps_the_history(five_generations, tmp_path):
    """The resume rewrites metrics.jsonl without the rows past the checkpoint. A process that dies in the
    middle of that rewrite (here: a file-size limit makes the write fail after 300 kB of 1 MB) must leave
    the old file whole; the next resume then drops the stale row and the temporary file of the killed write."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(five_generations, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4, 5]
    # 200 kB of padding per row: the kept rows are 1 MB, far past the limit below; every other file the
    # resume writes before the rewrite (best agent, pid, override history) stays far below it.
    padded = [json.dumps({**r, "padding": "x" * 200_000}) for r in rows]
    padded.append(json.dumps({**rows[-1], "generation": 6}))  # a row past the checkpoint, to be dropped
    history = "".join(line + "\n" for line in padded)
    (run / "metrics.jsonl").write_text(history)
    crashed = python(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        from plasticrl.cli import app
        app(["train", "--resume", {str(run)!r}, "--quiet"])
    """)
    assert crashed.returncode != 0, crashed.stdout + crashed.stderr
    assert "File too large" in crashed.stdout + crashed.stderr
    assert (run / "metrics.jsonl").read_text() == history  # not one row lost
    # What a SIGKILL (instead of an error) would have left: the temporary file of the interrupted write.
    stale = run / ".metrics.jsonl.k1ll3d.tmp"
    stale.write_text(history[:300_000])
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "metrics.jsonl").read_text() == "".join(line + "\n" for line in padded[:5])
    assert not stale.exists()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_second_process_on_a_run_in_use_is_refused_with_the_holders_pid(five_generations, tmp_path):
    """Two resumes of one run (or a resume of a run still training) wrote every row twice and gave W&B
    two runs with one id. The run directory's lock is held for the run's lifetime by the first process;
    the second one exits with one line naming the holder's PID and writes nothing."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(five_generations, run)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from plasticrl.trainers.runs import hold_run
        with hold_run({str(run)!r}):
            print("held", flush=True)
            time.sleep(120)
    """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run)
        result = CliRunner().invoke(app, ["train", "--resume", str(run), "train.generations=7", "--quiet"])
        assert_one_line_error(result, str(run), f"in use by PID {holder.pid}")
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    # The lock goes with the process: once the holder is gone (even killed), the run resumes.
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "train.generations=7", "--quiet"])
    assert result.exit_code == 0, result.output
    generations = [json.loads(line)["generation"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert generations == [1, 2, 3, 4, 5, 6, 7]


def test_two_runs_started_in_the_same_second_get_two_directories(tmp_path, monkeypatch):
    """Two starts in the same second crashed with FileExistsError: the name was checked, then made.
    Here the check always says "free" (as when another process makes the directory in between)."""
    import plasticrl.trainers.runs as runs

    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20250101-000000")
    monkeypatch.setattr(Path, "exists", lambda self: False)
    made = [runs.new_run_dir(tmp_path, "same") for _ in range(3)]
    assert [p.name for p in made] == ["same-20250101-000000", "same-20250101-000000-2", "same-20250101-000000-3"]
    assert all(p.is_dir() for p in made)


def test_a_resume_appends_its_overrides_and_keeps_the_config_it_started_with(tmp_path):
    """``--resume DIR train.generations=N`` rewrote config.yaml to say N. Now config.yaml stays as the run
    started, overrides.jsonl gains one row per resume, and the run's settings replay both; a generation
    count below what the run has done is refused."""
    from plasticrl.trainers.runs import read_run_config

    run = tmp_path / "run"
    ESTrainer(tiny("train.generations=2"), run).train()
    started = (run / "config.yaml").read_bytes()
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--resume", str(run), "train.generations=4", "--quiet"]).exit_code == 0
    assert runner.invoke(app, ["train", "--resume", str(run), "train.eval_every=1", "--quiet"]).exit_code == 0
    assert (run / "config.yaml").read_bytes() == started
    history = [json.loads(line) for line in (run / "overrides.jsonl").read_text().splitlines()]
    assert [h["changes"] for h in history] == [{"train.generations": 4}, {"train.eval_every": 1}]
    assert [h["previous"] for h in history] == [{"train.generations": 2}, {"train.eval_every": 2}]
    config = read_run_config(run)
    assert (config.train.generations, config.train.eval_every) == (4, 1)
    before = snapshot(run)
    line = assert_one_line_error(runner.invoke(app, ["train", "--resume", str(run), "train.generations=3"]),
                                 "has done 4 generations", "train.generations=3")
    assert "at least 4" in line
    assert snapshot(run) == before


def test_atomically_written_files_get_the_umask_mode(tmp_path):
    """mkstemp's private 0600 leaked into every atomically written file (metrics.jsonl, written with open,
    was 0644): atomic writes now get 0666 less the umask, like open."""
    from plasticrl.io import atomic_write_text

    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "a.json", "{}")
        with open(tmp_path / "b.json", "w") as fh:
            fh.write("{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640 == (tmp_path / "b.json").stat().st_mode & 0o777
