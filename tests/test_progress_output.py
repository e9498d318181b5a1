"""Honest progress: plain lines when the output is not a terminal, an 80-column bar with the best so far."""
import io
import re

from rich.console import Console
from typer.testing import CliRunner

from plasticrl.cli import app
from plasticrl.cli.evaluate import EvalProgress
from plasticrl.cli.train import _TrainProgress


def test_training_prints_one_line_per_generation_when_not_a_terminal(tmp_path):
    # CliRunner's output is not a terminal, as under nohup or SLURM
    res = CliRunner().invoke(app, [
        "train", "halfcheetah/linear", "train.generations=3", "es.params.population_size=4",
        "env.max_episode_steps=10", "train.eval_episodes=1", "train.eval_every=2",
        "logging.wandb.mode=disabled", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("gen ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    # best so far: '-' before the first centre evaluation (generation 2), then the best evaluation
    (run_dir,) = tmp_path.iterdir()
    import json

    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = [re.search(r"best (\S+)", line).group(1) for line in lines]
    assert best == ["-", f"{rows[1]['best_eval_return']:.1f}", f"{rows[1]['best_eval_return']:.1f}"]
    means = [re.search(r"mean (\S+)", line).group(1) for line in lines]
    assert means == [f"{r['fitness_mean']:.1f}" for r in rows]


def test_lines_every_n_generations_and_the_last():
    buf = io.StringIO()
    progress = _TrainProgress(10, out=Console(file=buf, width=200), every=4)
    progress.start()
    for g in range(1, 11):
        progress.update({"generation": g, "fitness_mean": float(g), "env_steps_per_s": 100.0,
                         **({"best_eval_return": 10.0 * g} if g % 5 == 0 else {})})
    progress.stop()
    shown = [line.split()[1] for line in buf.getvalue().splitlines()]
    assert shown == ["1/10", "4/10", "8/10", "10/10"]  # the first, every 4th, the last
    assert "best 100.0" in buf.getvalue().splitlines()[-1]


def test_bar_fits_80_columns_and_shows_the_best_so_far():
    buf = io.StringIO()
    out = Console(file=buf, force_terminal=True, width=80, color_system=None)
    progress = _TrainProgress(1000, out=out)
    progress.start()
    progress.update({"generation": 5, "fitness_mean": -12345.6, "env_steps_per_s": 123456.0,
                     "best_eval_return": 2345.6})
    progress.update({"generation": 6, "fitness_mean": -1.0, "env_steps_per_s": 123456.0,
                     "best_eval_return": float("nan")})  # a NaN row never replaces the best so far
    progress.stop()
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", f) for f in re.split(r"[\r\n]", buf.getvalue())]
    last = [f for f in frames if f.strip()][-1]
    assert len(last) <= 80 and "6/1000" in last and "best   2345.6" in last and "mean     -1.0" in last


def test_eval_progress_prints_tenths_when_not_a_terminal():
    buf = io.StringIO()
    with EvalProgress(["plastic", "static"], out=Console(file=buf, width=200)) as bar:
        for done in range(0, 1001, 50):
            bar("plastic", 2, done, 1000)
        bar("static", 2, 1000, 1000)
    lines = buf.getvalue().splitlines()
    assert [line.split()[2] for line in lines if line.startswith("eval plastic")] == [
        f"{k * 100}/1000" for k in range(1, 11)]
    assert [line.split()[2] for line in lines if line.startswith("eval static")] == ["1000/1000"]
