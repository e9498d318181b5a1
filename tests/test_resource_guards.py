"""Resource guards and hangs (issue 22): the memory guard and --force, evaluation that streams its
episodes in --max-rows batches, W&B online without a network, render naming the cause of a failure."""
import json
import os
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from plasticrl.agents import make_policy
from plasticrl.cli import app
from plasticrl.envs import make_vec
from plasticrl.rollouts.saved_agent import save_agent

LINEAR = "configs/halfcheetah/linear.yaml"
QUICK = ["train.generations=1", "train.eval_every=1", "train.eval_episodes=1", "env.max_episode_steps=5",
         "es.params.population_size=4", "logging.wandb.mode=disabled", "logging.progress=false"]


def _linear_agent(path, env_id="HalfCheetah-v5", seed=0, **env_kwargs):
    env = make_vec(env_id, 1, **env_kwargs)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    genome = policy.initial_genome(1)[0] + 0.5 * torch.randn(
        policy.genome.dim, generator=torch.Generator().manual_seed(seed), dtype=policy.dtype)
    return save_agent(path, policy, {"kind": "linear"}, genome, None, {"env_id": env_id, "env_kwargs": env_kwargs})


# -- memory guard --------------------------------------------------------------------------------------
def test_a_population_of_ten_million_is_refused_at_once_with_nothing_on_disk(tmp_path, monkeypatch):
    """10^7 members x (one MuJoCo model and data, ~0.5 MB, per row) cannot fit any machine this runs on:
    refused by the guard in well under a second, naming the estimate, the limit and --force."""
    from plasticrl.config import load_config
    from plasticrl.rollouts.env_setup import check_config

    cfg = load_config(LINEAR, ["es.params.population_size=10000000"])
    check_config(load_config(LINEAR, []))  # imports and first-use costs paid outside the timing
    started = time.perf_counter()
    with pytest.raises(Exception, match=r"training would need about .*TiB.* over the limit of .*--force") as info:
        check_config(cfg)
    assert time.perf_counter() - started < 0.5
    assert "\n" not in str(info.value)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", LINEAR, "es.params.population_size=10000000", "--out", str(runs)])
    assert result.exit_code == 2 and "--force" in result.output and "Traceback" not in result.output
    assert not runs.exists()


def test_the_estimate_counts_rows_times_the_per_row_state(monkeypatch):
    """Training rows = population x episodes_per_member, each holding one env row and one policy row:
    doubling the episodes per member doubles that part exactly; the ES state is 3 x P x D float64."""
    from plasticrl.config import load_config
    from plasticrl.rollouts.env_setup import make_env
    from plasticrl.rollouts.memory import env_row_bytes, policy_row_bytes, training_estimate

    cfg1, cfg2 = (load_config(LINEAR, [f"train.episodes_per_member={e}"]) for e in (1, 2))
    env = make_env(cfg1, 1)
    policy = make_policy(cfg1.policy, env.single_observation_space, env.single_action_space)
    one, two = training_estimate(cfg1, policy, env, 100), training_estimate(cfg2, policy, env, 100)
    per_row = policy_row_bytes(policy) + env_row_bytes(env) + (4 * policy.obs_dim + 3) * 8
    env.close()
    assert one.parts["training rows"] == 100 * per_row and two.parts["training rows"] == 200 * per_row
    assert one.parts["ES state"] == 3 * 100 * policy.genome.dim * 8
    # a linear policy's per-row parameters: its genome, once per row, in the policy's dtype
    assert policy_row_bytes(policy) >= policy.genome.dim * policy.dtype.itemsize


def test_a_normal_config_passes_and_force_passes_a_refused_one(tmp_path, monkeypatch):
    """With the available memory made tiny, a small run is refused before its directory exists; the same
    run with --force trains."""
    import plasticrl.rollouts.memory as memory
    from plasticrl.config import load_config
    from plasticrl.rollouts.env_setup import check_config

    check_config(load_config(LINEAR, QUICK))  # the real limit: passes
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)  # 1 MiB
    runs = tmp_path / "runs"
    refused = CliRunner().invoke(app, ["train", LINEAR, *QUICK, "--out", str(runs)])
    assert refused.exit_code == 2, refused.output
    assert "80% of the 1 MiB available" in refused.output and "--force" in refused.output
    assert not runs.exists()
    forced = CliRunner().invoke(app, ["train", LINEAR, *QUICK, "--out", str(runs), "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(list(runs.glob("*/best_agent.pt"))) == 1
    monkeypatch.setenv(memory.LIMIT_ENV, "1T")  # the override wins over the available memory
    assert memory.memory_limit() == (1 << 40, f"${memory.LIMIT_ENV}")


def test_eval_is_guarded_by_its_largest_batch(tmp_path, monkeypatch):
    import plasticrl.rollouts.memory as memory

    agent = _linear_agent(tmp_path / "a.pt")
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)
    args = ["eval", str(agent), "--suite", "nominal", "--episodes", "4", "--max-episode-steps", "3",
            "--wandb-mode", "disabled", "--no-plots", "--quiet", "--out", str(tmp_path / "ev")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "evaluation would need" in refused.output and "--max-rows" in refused.output
    assert not (tmp_path / "ev").exists()
    assert CliRunner().invoke(app, args + ["--force"]).exit_code == 0


# -- streaming evaluation ------------------------------------------------------------------------------
def test_plan_chunks_never_exceeds_max_rows_and_covers_every_episode_once():
    from plasticrl.rollouts.batch import plan_chunks

    for conditions, episodes, max_rows in [(3, 10, 512), (3, 10, 25), (2, 1000, 64), (1, 7, 3), (4, 1, 1)]:
        chunks = plan_chunks(conditions, episodes, max_rows)
        assert all(sum(e1 - e0 for _, e0, e1 in c) <= max_rows for c in chunks)
        covered = sorted((c, e) for chunk in chunks for c, e0, e1 in chunk for e in range(e0, e1))
        assert covered == [(c, e) for c in range(conditions) for e in range(episodes)]


def test_streamed_evaluation_equals_one_batch(tmp_path, monkeypatch):
    """Episodes split over many small batches give the same result as one batch: lengths exactly, returns,
    after-switch returns and the adaptation curve to rounding (the policy's matrix products round by batch
    size; the curve's per-step sum is accumulated batch by batch). No engine batch exceeds --max-rows."""
    import plasticrl.envs as envs
    from plasticrl.eval.evaluate import evaluate
    from plasticrl.rollouts.controllers import load_controller

    agent = _linear_agent(tmp_path / "a.pt")
    kwargs = {"max_episode_steps": 40}
    only = ["dead_actuator_mid@mild"]
    sizes = []
    real = envs.make_vec
    monkeypatch.setattr(envs, "make_vec", lambda env_id, n, **kw: sizes.append(n) or real(env_id, n, **kw))

    def run(max_rows):
        with pytest.MonkeyPatch.context() as m:  # a switch inside the 40 steps
            from plasticrl.eval import evaluate as ev
            m.setattr(ev, "suite_conditions", lambda *a, **k: [
                {"name": "nominal", "severity": None, "perturbation": None},
                {"name": only[0], "severity": "mild",
                 "perturbation": [{"name": "dead_actuator", "actuator": [0], "start_step": 15}]}])
            return evaluate([load_controller(agent)], "HalfCheetah-v5", episodes=7, seed=3, env_kwargs=kwargs,
                            max_rows=max_rows, window=5)

    whole = run(512)
    sizes.clear()
    streamed = run(3)
    assert max(sizes[1:]) <= 3  # sizes[0]: the guard's one-row env
    for a, b in zip(whole.rows, streamed.rows):
        assert np.allclose(a.returns, b.returns, rtol=1e-9) and a.mean_length == b.mean_length
        after = [r.after_switch.returns_after_switch if r.after_switch else [] for r in (a, b)]
        assert np.allclose(after[0], after[1], rtol=1e-5)
        assert a.mean_return == pytest.approx(b.mean_return, rel=1e-9)
    (c1,), (c2,) = whole.curves, streamed.curves
    assert c1.offsets == c2.offsets and c1.episodes_used == c2.episodes_used == 7
    assert np.allclose(c1.reward, c2.reward, rtol=1e-9, atol=1e-12)
    assert c1.time_to_recover == c2.time_to_recover


def test_goal_adaptation_with_an_oracle_is_the_same_streamed(tmp_path):
    """Rates around the goal switch and time to adapt (measured against the oracle's mean after-switch
    rate) do not depend on how episodes are batched."""
    from plasticrl.eval.evaluate import evaluate
    from plasticrl.rollouts.controllers import load_controller

    kw = {"switch_step": 10}
    agent = load_controller(_linear_agent(tmp_path / "a.pt", "HalfCheetahDir-v5", 0, **kw), "agent")
    oracle = load_controller(_linear_agent(tmp_path / "o.pt", "HalfCheetahDir-v5", 1, goal_observed=True, **kw),
                             "oracle")

    def run(max_rows):
        return evaluate([agent], "HalfCheetahDir-v5", suite="nominal", episodes=5, seed=0,
                        env_kwargs={**kw, "max_episode_steps": 40}, max_rows=max_rows, window=5, oracle=oracle)

    whole, streamed = run(512), run(2)
    for a, b in zip(whole.rows, streamed.rows):
        ga, gb = a.goal_switch, b.goal_switch
        assert ga.goal_switch_steps == gb.goal_switch_steps
        # None: not finite (NaN), as the result holds it
        assert np.array_equal(np.asarray(ga.time_to_adapt, dtype=float), np.asarray(gb.time_to_adapt, dtype=float),
                              equal_nan=True)
        for x, y in ((a.returns, b.returns), (ga.reward_rates_before, gb.reward_rates_before),
                     (ga.reward_rates_after, gb.reward_rates_after)):
            assert np.allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=1e-5, equal_nan=True)
        assert ga.oracle_reward_rate_after == pytest.approx(gb.oracle_reward_rate_after, rel=1e-5)


# -- W&B online without a network ----------------------------------------------------------------------
def test_wandb_online_without_network_falls_back_to_offline_within_30_s(tmp_path, monkeypatch):
    """The real path: a (dummy) key, mode online, and no route to the W&B server. Bounded by the TCP
    probe (5 s) and wandb.init's timeout (15 s): the run finishes, logs offline and says so once."""
    from plasticrl.trainers.logger import RunLogger, wandb_unreachable

    import wandb

    if wandb_unreachable(wandb.Settings().base_url, timeout=3.0) is None:
        pytest.skip("the W&B server is reachable from here; this test needs no network")
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["train", LINEAR, *QUICK[:-2], "logging.progress=false",
                                      "--wandb-mode", "online", "--out", str(tmp_path / "runs")])
    assert time.monotonic() - started < 30
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "W&B online unavailable" in line]
    assert len(lines) == 1 and "logging offline" in lines[0]
    (run,) = (tmp_path / "runs").iterdir()
    assert list((run / "wandb").glob("offline-run-*"))
    logger = RunLogger(tmp_path / "again", {}, wandb_mode="online")
    assert logger.wandb_mode == "offline" and logger.wandb_run is not None
    logger.finish()


# -- render names the cause ----------------------------------------------------------------------------
def test_render_failure_messages_name_their_cause():
    from plasticrl.report.render import FAILURE, failure_message

    gl = failure_message("osmesa", ["Traceback ...", "RuntimeError: invalid value for environment variable MUJOCO_GL"], 1)
    assert gl.startswith("rendering could not open OpenGL with MUJOCO_GL=osmesa") and "libosmesa6" in gl
    write = failure_message("osmesa", [f"{FAILURE} write '/x/v.mp4': No space left on device"], 2)
    assert write == "rendering could not write the video: '/x/v.mp4': No space left on device"
    enc = failure_message("egl", [f"{FAILURE} encoder No module named 'imageio_ffmpeg' (MP4 needs imageio-ffmpeg)"], 2)
    assert "encode" in enc and "imageio_ffmpeg" in enc and "OpenGL" not in enc and "libosmesa6" not in enc
    other = failure_message("osmesa", ["Traceback ...", "ZeroDivisionError: division by zero"], 1)
    assert other == "rendering failed: ZeroDivisionError: division by zero"


def test_render_reports_an_opengl_failure_and_an_unwritable_out(tmp_path, monkeypatch):
    """Two real causes: PyOpenGL cannot load the backend (a GL failure, with the backend's hint), and an
    --out under a file (a write failure, before any episode runs, no OpenGL hint)."""
    agent = _linear_agent(tmp_path / "a.pt")
    (tmp_path / "afile").write_text("x")
    args = ["render", str(agent), "--steps", "2", "--width", "32", "--height", "24"]
    bad_out = CliRunner().invoke(app, args + ["--out", str(tmp_path / "afile" / "v.gif")])
    assert bad_out.exit_code == 2 and "is not a directory" in bad_out.output
    assert "OpenGL" not in bad_out.output and "osmesa" not in bad_out.output.lower()
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "not-a-platform")  # PyOpenGL refuses to load the backend
    no_gl = CliRunner().invoke(app, args + ["--out", str(tmp_path / "v.gif")])
    assert no_gl.exit_code == 2, no_gl.output
    (line,) = [x for x in no_gl.output.splitlines() if x.startswith("error:")]
    assert "could not open OpenGL with MUJOCO_GL=osmesa" in line and "libosmesa6" in line
    assert not (tmp_path / "v.gif").exists()
