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


# -- non-finite numbers ----------------------------------------------------------------------------------
class _PoisonedEvaluator:
    """A LocalEvaluator whose env returns +inf in row 0's observation at step 3 of generation 2 only."""

    def __init__(self, config, rows):
        from plasticrl.trainers.evaluator import LocalEvaluator

        self.inner = LocalEvaluator(config, rows)
        self.calls = 0
        self.steps = 0
        env = self.inner.env

        def poisoned(step_wait):
            def poisoned_step_wait():
                obs, reward, terminated, truncated, info = step_wait()
                self.steps += 1
                if self.calls == 2 and self.steps == 3:
                    obs = obs.copy()
                    obs[0, 0] = float("inf")
                return obs, reward, terminated, truncated, info
            return poisoned_step_wait

        # the rollout loop takes the lean step (no infos); other callers the Gymnasium one
        env.step_wait, env.step_wait_lean = poisoned(env.step_wait), poisoned(env.step_wait_lean)

    def evaluate(self, *args, **kwargs):
        self.calls += 1
        self.steps = 0
        return self.inner.evaluate(*args, **kwargs)

    def close(self):
        self.inner.close()


def test_one_generation_of_infinite_observations_does_not_poison_the_normaliser(tmp_path):
    """Generation 2 meets one +inf observation (member 0). Before: the observation sums went inf, m2 NaN,
    and every later member was invalid. Now member 0 of generation 2 is invalid, its rows stay out of the
    statistics, and every other generation has all 8 members valid. With no termination each generation
    simulates 8 members x 20 steps, so the statistics count 4 x 160 observations less member 0's 20."""
    from plasticrl.io import torch_load

    run = tmp_path / "run"
    ESTrainer(tiny("train.generations=4"), run, evaluator_factory=_PoisonedEvaluator).train()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["invalid_members"] for r in rows] == [0, 1, 0, 0]
    norm = torch_load(run / "final_agent.pt")["obs_norm"]
    assert norm["count"] == 4 * 8 * 20 - 20
    assert bool(norm["m2"].isfinite().all()) and bool(norm["mean"].isfinite().all())


def _unstable_cheetah(tmp_path: Path) -> Path:
    """Gymnasium's half_cheetah.xml with gravity 1e30 times Earth's: MuJoCo warns "simulation is unstable"
    and resets the state, after which the episode earned a 'return' of about 1.6e12."""
    import gymnasium

    xml = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "half_cheetah.xml"
    text = xml.read_text().replace('gravity="0 0 -9.81"', 'gravity="0 0 -9.81e30"')
    assert "9.81e30" in text
    out = tmp_path / "unstable_cheetah.xml"
    out.write_text(text)
    return out


@pytest.mark.parametrize("backend", ["batch", "threads"])
def test_unstable_simulation_marks_its_rows_invalid(tmp_path, backend):
    """The engine reports MuJoCo's instability per instance (info['unstable']) and a rollout marks the
    members whose episodes met it invalid, instead of ranking them by a return of 1.6e12."""
    import warnings

    import numpy as np
    import torch

    from plasticrl.agents import make_policy
    from plasticrl.config import config_to_dict
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.loop import rollout

    env = make_vec("HalfCheetah-v5", 4, num_threads=1, physics_backend=backend, max_episode_steps=10)
    policy = make_policy(tiny().policy, env.single_observation_space, env.single_action_space)
    genome = policy.initial_genome(2)
    # members x episodes = 2 x 2: row 3 (member 1, episode 1) falls under gravity x 1e30
    options = {"perturbations": [None, None, None, {"name": "gravity", "scale": 1e30}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = env.reset(seed=0, options=options)
        _, _, _, _, info = env.step(np.zeros((4, 6)))
        assert info["unstable"].tolist() == [False, False, False, True]
        res = rollout(policy, env, genome, episodes_per_member=2, seed=0, reset_options=options,
                      collect_obs_moments=True)
    assert res.returns[1, 1] > 1e9  # what the unstable physics paid
    assert res.invalid.tolist() == [False, True]
    assert res.member_fitness().tolist()[1] == -float("inf")
    # the statistics hold member 0's two episodes only (10 observations each)
    assert res.obs_moments.count == 20


def test_a_run_without_any_valid_evaluation_says_so_and_fails(tmp_path):
    """Every member and every centre evaluation of this run is invalid (unstable physics). The CLI printed
    "done", exited 0 and pointed to a best_agent.pt that was never written; now it is one error line, a
    non-zero exit, and summary.json is strict JSON (null, not -Infinity)."""
    xml = _unstable_cheetah(tmp_path)
    result = CliRunner().invoke(app, ["train", *TINY, "train.generations=2", f"env.kwargs.xml_file={xml}",
                                      "--out", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code != 0
    line = result.output.splitlines()[-1]
    assert line.startswith("error: ") and "has no valid evaluation" in line, result.output
    assert "done" not in result.output and "best_agent.pt" not in result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert not (run / "best_agent.pt").exists()
    text = (run / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["best_eval_return"] is None
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["invalid_members"] for r in rows] == [8, 8]
    assert all(r["best_eval_return"] is None for r in rows if "best_eval_return" in r)


def _linear_agent(path: Path, fill: float | None = None) -> Path:
    """A linear HalfCheetah agent; ``fill`` sets every weight (NaN: an agent whose actions are all NaN)."""
    import torch

    from plasticrl.agents import make_policy
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.saved_agent import save_agent

    env = make_vec("HalfCheetah-v5", 1)
    policy = make_policy(tiny().policy, env.single_observation_space, env.single_action_space)
    env.close()
    genome = policy.initial_genome(1)[0]
    if fill is not None:
        genome = torch.full_like(genome, fill)
    return save_agent(path, policy, {"kind": "linear"}, genome, None, {"env_id": "HalfCheetah-v5", "env_kwargs": {}})


def test_eval_of_a_nan_agent_reports_no_return_and_warns(tmp_path):
    """An agent whose weights are all NaN was scored 0.1 with retained 1.000 (MuJoCo zeroes NaN controls),
    its invalid episodes visible only inside eval.json. Now its episodes are left out of every statistic
    (mean return and retained: null, shown as '-'), counted in the table and the report, and a warning
    line says so, even with --quiet."""
    agent = _linear_agent(tmp_path / "nan.pt", float("nan"))
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(agent), "--suite", "nominal", "--episodes", "3",
                                      "--max-episode-steps", "20", "--out", str(out), "--no-plots",
                                      "--wandb-mode", "disabled"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((out / "eval.json").read_text())["rows"]
    assert row["invalid_episodes"] == 3 and row["invalid"] == [True, True, True]
    assert row["mean_return"] is None and row["retained"] is None and row["returns"] == [None, None, None]
    assert "3/3" in result.output  # the table's invalid-episodes column
    assert "warning:" in result.output and "3 of 3 episodes invalid" in result.output
    assert "Warning: invalid episodes" in (out / "report.md").read_text()
    quiet = CliRunner().invoke(app, ["eval", str(agent), "--suite", "nominal", "--episodes", "3", "--quiet",
                                     "--max-episode-steps", "20", "--out", str(tmp_path / "q"), "--no-plots",
                                     "--wandb-mode", "disabled"])
    assert "warning:" in quiet.output and "3 of 3 episodes invalid" in quiet.output


def test_every_json_writer_writes_strict_json(tmp_path):
    """summary.json held -Infinity (not JSON) while metrics.jsonl wrote -1e308: one helper now writes
    every non-finite number as null, nested and as numpy or torch scalars too."""
    import numpy as np
    import torch

    from plasticrl.io import atomic_write_json, json_dumps, json_safe

    value = {"a": -float("inf"), "b": [float("nan"), 1.5, np.float32("inf")], "c": torch.tensor(float("inf")),
             "d": np.float64(2.0), "e": (float("inf"),)}
    assert json_safe(value) == {"a": None, "b": [None, 1.5, None], "c": None, "d": 2.0, "e": [None]}
    assert json.loads(json_dumps(value)) == json_safe(value)
    path = atomic_write_json(tmp_path / "x.json", value)
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == \
        json_safe(value)


# -- validate before side effects ------------------------------------------------------------------------
@pytest.mark.parametrize("override,named", [
    ("env.train_perturbation=weird", "unknown training perturbation 'weird'"),
    ("env.id=Nope-v0", "unknown env id 'Nope-v0'"),
    ("env.kwargs.bogus=1", "['bogus']"),
    ("device=gpu", "unknown device 'gpu'"),
])
def test_train_refuses_a_bad_setting_before_making_the_run_directory(tmp_path, override, named):
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", *TINY, override, "--out", str(out), "--quiet"])
    assert_one_line_error(result, named)
    assert entries(out) == []


def test_demo_refuses_zero_episodes_before_training(tmp_path):
    """``demo --episodes 0`` trained for minutes, then raised ZeroDivisionError."""
    out = tmp_path / "runs"
    assert_one_line_error(CliRunner().invoke(app, ["demo", "--episodes", "0", "--out", str(out)]),
                          "--episodes must be >= 1", "0")
    assert entries(out) == []
    from plasticrl.experiments.demo import demo_configs, run_demo

    with pytest.raises(Exception, match="episodes must be an integer >= 1"):
        run_demo(list(demo_configs()), out, episodes=0)
    assert entries(out) == []


def test_shipped_experiment_with_a_bad_suite_fails_at_once_from_any_directory(tmp_path, monkeypatch):
    """``experiment configs/experiments/halfcheetah.yaml eval.suite=weird`` trained for 10 minutes before it
    said the suite is unknown. Now it is refused before the experiment directory exists, also when run from
    another working directory (the agents' configs resolve against the spec file)."""
    spec = REPO / "configs" / "experiments" / "halfcheetah.yaml"
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "exp"
    result = CliRunner().invoke(app, ["experiment", str(spec), "eval.suite=weird", "--out", str(out)])
    assert_one_line_error(result, "unknown suite 'weird'", "nominal, novel")
    assert entries(out) == [] and entries(tmp_path) == []
    result = CliRunner().invoke(app, ["experiment", str(spec), "eval.only=[no_such_condition*]", "--out", str(out)])
    assert_one_line_error(result, "no_such_condition*", "matches no condition")
    assert entries(tmp_path) == []


@pytest.mark.parametrize("override,named", [
    ("eval.episodes=0", "eval.episodes: Input should be greater than 0 (got 0)"),
    ("baselines.sac.algo=sacc", "baselines.sac: unknown algorithm 'sacc'"),
    ("baselines.sac.hp.bogus=1", "baselines.sac"),
    ("agents.plastic.overrides=[device=gpu]", "agents.plastic: unknown device 'gpu'"),
    ("wandb_mode=weird", "unknown wandb mode 'weird'"),
])
def test_experiment_errors_are_one_line_and_come_first(tmp_path, override, named):
    """Pydantic's multi-line dumps and errors found only when a stage ran are now one line, before anything."""
    spec = REPO / "configs" / "experiments" / "halfcheetah.yaml"
    out = tmp_path / "exp"
    result = CliRunner().invoke(app, ["experiment", str(spec), "baselines={sac: {algo: sac, steps: 10}}", override,
                                      "--out", str(out)])
    assert_one_line_error(result, named)
    assert entries(out) == []


# -- no tracebacks ---------------------------------------------------------------------------------------
def test_out_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(app, ["train", *TINY, "train.generations=1", "--out", str(blocker), "--quiet"])
    assert_one_line_error(result, "cannot create the output directory", str(blocker))
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("content,named", [
    (b"", "it is empty"),  # printed only "Aborted." (click's answer to EOFError)
    (b"PK\x03\x04 truncated zip", "truncated, corrupt or not a plasticrl file"),
])
def test_empty_or_corrupt_agent_and_checkpoint_files_are_one_line(five_generations, tmp_path, content, named):
    import shutil

    agent = tmp_path / "agent.pt"
    agent.write_bytes(content)
    result = CliRunner().invoke(app, ["eval", str(agent), "--suite", "nominal", "--episodes", "1",
                                      "--out", str(tmp_path / "eval"), "--wandb-mode", "disabled"])
    assert_one_line_error(result, str(agent), named)
    run = tmp_path / "run"
    shutil.copytree(five_generations, run)
    (run / "checkpoint.pt").write_bytes(content)
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert_one_line_error(result, str(run / "checkpoint.pt"), named)


def test_structurally_wrong_agent_and_checkpoint_files_are_one_line(five_generations, tmp_path):
    import shutil

    import torch

    from plasticrl.io import atomic_torch_save, torch_load

    agent = tmp_path / "agent.pt"
    payload = torch_load(five_generations / "best_agent.pt")
    del payload["policy_config"]
    atomic_torch_save(agent, payload)
    result = CliRunner().invoke(app, ["eval", str(agent), "--suite", "nominal", "--episodes", "1",
                                      "--out", str(tmp_path / "eval"), "--wandb-mode", "disabled"])
    assert_one_line_error(result, str(agent), "not a valid plasticrl agent", "policy_config")
    atomic_torch_save(agent, [torch.zeros(3)])
    result = CliRunner().invoke(app, ["eval", str(agent), "--suite", "nominal", "--episodes", "1",
                                      "--out", str(tmp_path / "eval"), "--wandb-mode", "disabled"])
    assert_one_line_error(result, str(agent), "holds a list, not a plasticrl agent")
    run = tmp_path / "run"
    shutil.copytree(five_generations, run)
    checkpoint = torch_load(run / "checkpoint.pt")
    del checkpoint["es"]
    atomic_torch_save(run / "checkpoint.pt", checkpoint)
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert_one_line_error(result, "is not a checkpoint of this run", "KeyError")


def test_eval_on_an_env_with_another_observation_size_is_one_line(five_generations, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(five_generations / "best_agent.pt"), "--env", "Hopper-v5",
                                      "--suite", "nominal", "--episodes", "1", "--out", str(tmp_path / "eval"),
                                      "--wandb-mode", "disabled"])
    assert_one_line_error(result, "reads 17 observations; Hopper-v5 gives 11")


# -- resource guards and hangs ---------------------------------------------------------------------------
def test_a_ray_address_where_nobody_listens_fails_within_seconds(tmp_path):
    """``--ray-address`` to a port nobody listens on kept retrying past 120 s; now it is one line, well
    within 30 s, before the run directory exists."""
    import socket
    import time

    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "runs"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["train", *TINY, "train.generations=1", "--ray-address", f"127.0.0.1:{port}",
                                      "--out", str(out), "--quiet"])
    assert time.monotonic() - start < 30
    assert_one_line_error(result, f"no Ray cluster at '127.0.0.1:{port}'", "ray start --head")
    assert entries(out) == []
