"""SB3 baselines: tiny training runs, the saved files, and the batched evaluation path."""
import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

from plasticrl.cli import app

ENV = "HalfCheetah-v5"
KW = {"max_episode_steps": 30}


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo") / "run"
    res = CliRunner().invoke(app, ["baseline", "--algo", "ppo", "--env", ENV, "--steps", "128", "--out", str(out),
                                   "--hp", "n_steps=64", "--hp", "batch_size=32", "--hp", "n_epochs=1",
                                   "--eval-every", "64", "--eval-episodes", "2", "--max-episode-steps", "30",
                                   "--wandb-mode", "disabled"])
    assert res.exit_code == 0, res.output
    return out


def test_baseline_run_directory(ppo_run):
    meta = json.loads((ppo_run / "model.json").read_text())
    assert meta["algo"] == "ppo" and meta["env_id"] == ENV and meta["env_kwargs"] == KW
    assert len(meta["obs_norm"]["mean"]) == 17  # PPO trains under VecNormalize (rl-zoo setting)
    rows = [json.loads(line) for line in (ppo_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [64, 128]
    assert all(np.isfinite(r["eval_return_mean"]) for r in rows)
    assert "learning_rate: 2.0633e-05" in (ppo_run / "config.yaml").read_text()  # the tuned zoo value


def test_sb3_batched_eval_matches_single_env_loop(ppo_run):
    """Rows of the batched evaluator = SB3's own VecNormalize + predict on single envs with the same seeds."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import plasticrl.envs  # noqa: F401
    from plasticrl.agents.sb3 import SB3Controller
    from plasticrl.rollouts.batch import run_batch

    ctrl = SB3Controller.load(ppo_run / "model.zip")
    got = run_batch(ctrl, ENV, [("nominal", None), ("heavy", [{"name": "mass_scale", "scale": 2.0}])], 2, 11, KW)
    meta = json.loads((ppo_run / "model.json").read_text())
    for name, pert in (("nominal", None), ("heavy", [{"name": "mass_scale", "scale": 2.0}])):
        for e in range(2):
            venv = VecNormalize(DummyVecEnv([lambda: gym.make(f"plasticrl/{ENV}", max_episode_steps=30,
                                                              perturbation=pert)]), training=False,
                                norm_reward=False)
            venv.obs_rms.mean = np.asarray(meta["obs_norm"]["mean"])
            venv.obs_rms.var = np.asarray(meta["obs_norm"]["var"])
            env = venv.envs[0]
            obs, _ = env.reset(seed=11 + e)
            total, done = 0.0, False
            while not done:
                action, _ = ctrl.model.predict(venv.normalize_obs(obs[None]).astype(np.float32), deterministic=True)
                obs, r, term, trunc, _ = env.step(np.clip(action[0], -1, 1))
                total += r
                done = term or trunc
            assert got[name].returns[e] == pytest.approx(total, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_off_policy_baselines_and_zip_without_sidecar(algo, tmp_path):
    from plasticrl.trainers.sb3 import train_baseline

    path = train_baseline(algo, ENV, 60, tmp_path / algo, env_kwargs=KW, train_perturbation="train",
                          overrides={"learning_starts": 20, "batch_size": 16, "buffer_size": 500}, eval_every=60,
                          eval_episodes=1, wandb_mode="disabled")
    assert json.loads(path.with_suffix(".json").read_text())["obs_norm"] is None
    bare = tmp_path / "elsewhere" / "bare.zip"  # a zip from elsewhere: the algorithm is read from the zip
    bare.parent.mkdir()
    shutil.copy(path, bare)
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", str(path), str(bare), "--env", ENV, "--only", "obs_noise@severe",
                                   "--episodes", "2", "--max-episode-steps", "30", "--out", str(out),
                                   "--wandb-mode", "disabled", "--quiet", "--no-plots"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "eval.json").read_text())
    rows = {(r["agent"], r["condition"]): r for r in data["rows"]}
    # the same model with and without its sidecar (no obs statistics for off-policy algorithms)
    assert rows[(data["agents"][0], "nominal")]["returns"] == rows[("elsewhere/bare", "nominal")]["returns"]


@pytest.mark.parametrize("args, named, valid", [
    (["--algo", "dqn", "--env", ENV], "'dqn'", "ppo, sac, td3"),
    (["--algo", "ppo", "--env", "Reacher-v5"], "'Reacher-v5'", "Ant-v5, AntDir-v5, HalfCheetah-v5"),
    (["--algo", "ppo", "--env", ENV, "--train-perturbation", "bogus"], "'bogus'", "train, damage"),
    (["--algo", "ppo", "--env", "Hopper-v5", "--train-perturbation", "damage"], "'Hopper-v5'", "Ant-v5"),
])
def test_baseline_refuses_bad_settings_before_making_a_run_directory(tmp_path, monkeypatch, args, named, valid):
    """A bad algorithm, env id or training condition fails with the valid choices, and neither the
    given --out nor a default runs/<algo>-<env>-<stamp> directory is created."""
    monkeypatch.chdir(tmp_path)
    for out in (["--out", str(tmp_path / "x")], []):
        res = CliRunner().invoke(app, ["baseline", *args, "--steps", "10", "--wandb-mode", "disabled", *out])
        output = " ".join(res.output.split())  # the console folds long lines
        assert res.exit_code == 2 and named in output and valid in output, output
        assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_baseline_checkpoint_resume_after_crash_and_best_model(tmp_path, monkeypatch):
    """A crash after two evaluations loses nothing: resume continues from the checkpoint to the budget,
    metrics keep one row per evaluation, and best_model.zip is the model of the best evaluation. Neither
    the fresh nor the resumed model leaves SB3's default log folders in the system temp dir."""
    import tempfile

    import plasticrl.trainers.sb3.trainer as bt
    from plasticrl.trainers.sb3 import train_baseline
    from plasticrl.trainers.sb3.trainer import read_checkpoint

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    run = tmp_path / "sac"
    kw = dict(env_kwargs=KW, overrides={"learning_starts": 20, "batch_size": 16, "buffer_size": 500},
              eval_every=40, eval_episodes=1, wandb_mode="disabled")
    real = bt._evaluate_now
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(bt, "_evaluate_now", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_baseline("sac", ENV, 160, run, **kw)
    saved = read_checkpoint(run / "checkpoint.pt")
    assert saved["progress"]["env_steps"] == 80 and saved["progress"]["evaluations"] == 2
    assert saved["replay_buffer"] is not None and not (run / "model.zip").exists()

    monkeypatch.setattr(bt, "_evaluate_now", real)
    with pytest.raises(bt.PlasticRLError, match="hyperparams"):  # a resume must keep the run's settings
        train_baseline("sac", ENV, 160, run, **{**kw, "overrides": {"learning_starts": 21}}, resume=True)
    path = train_baseline("sac", ENV, 160, run, **kw, resume=True)
    rows = _rows(run)
    assert [(r["generation"], r["env_steps"]) for r in rows] == [(0, 40), (1, 80), (2, 120), (3, 160)]
    assert path == run / "model.zip"
    best = json.loads((run / "best_model.json").read_text())
    best_row = max(rows, key=lambda r: r["eval_return_mean"])
    assert best["env_steps"] == best_row["env_steps"]
    progress = read_checkpoint(run / "checkpoint.pt")["progress"]
    assert progress["best_eval_return"] == pytest.approx(best_row["eval_return_mean"])
    assert [p.name for p in system_tmp.iterdir() if p.name.startswith("SB3-")] == []  # fresh and resumed runs


def test_baseline_resume_needs_a_checkpoint(tmp_path):
    res = CliRunner().invoke(app, ["baseline", "--resume", str(tmp_path), "--wandb-mode", "disabled"])
    assert res.exit_code == 2 and "config.yaml" in res.output
    res = CliRunner().invoke(app, ["baseline", "--env", ENV, "--wandb-mode", "disabled"])
    assert res.exit_code == 2 and "--algo" in res.output


class _RecordingEnv(gym.Env):
    """Records the reset options a wrapper passes down."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self):
        self.options = []

    def reset(self, *, seed=None, options=None):
        self.options.append(options)
        return np.zeros(2, np.float32), {}


def test_training_conditions_draw_like_the_es_trainer_or_fix_one():
    from plasticrl.trainers.sb3.trainer import TrainingConditions
    from plasticrl.envs import sample_damage, sample_train

    for name, sampler in (("damage", sample_damage), ("train", sample_train)):
        inner = _RecordingEnv()
        env = TrainingConditions(inner, "Ant-v5", name, seed=3)
        for _ in range(5):
            env.reset()
        # the same seeded generator drawn once per episode: the distribution the ES trainer samples
        rng = np.random.default_rng(3)
        assert [o["perturbation"] for o in inner.options] == [sampler("Ant-v5", 1, rng)[0] for _ in range(5)]
    fixed = {"name": "mass_scale", "scale": 1.5}
    inner = _RecordingEnv()
    env = TrainingConditions(inner, "Ant-v5", fixed, seed=0)
    env.reset()
    env.reset(options={"other": 1})
    assert [o["perturbation"] for o in inner.options] == [fixed, fixed] and inner.options[1]["other"] == 1


def test_training_conditions_reject_bad_values_before_training(tmp_path):
    from plasticrl.trainers.sb3.trainer import TrainingConditions
    from plasticrl.errors import PlasticRLError

    with pytest.raises(PlasticRLError, match=r"'damag'; valid choices: train, damage, front_legs_short, motor_failure or one perturbation"):
        TrainingConditions(_RecordingEnv(), "Ant-v5", "damag", seed=0)
    with pytest.raises(PlasticRLError, match=r"'InvertedPendulum-v5'.*Ant-v5"):
        TrainingConditions(_RecordingEnv(), "InvertedPendulum-v5", "damage", seed=0)
    res = CliRunner().invoke(app, ["baseline", "--algo", "sac", "--env", ENV, "--steps", "10", "--out",
                                   str(tmp_path / "x"), "--train-perturbation", "damage", "--train-perturbations",
                                   "--wandb-mode", "disabled"])
    assert res.exit_code == 2 and "--train-perturbation 'damage'" in res.output


def test_baseline_under_damage_records_it_and_old_runs_resume_with_their_setting(tmp_path):
    import yaml

    from plasticrl.trainers.sb3.trainer import saved_settings

    out = tmp_path / "sac"
    res = CliRunner().invoke(app, ["baseline", "--algo", "sac", "--env", ENV, "--steps", "40", "--out", str(out),
                                   "--train-perturbation", "damage", "--hp", "learning_starts=20", "--hp",
                                   "batch_size=16", "--eval-every", "40", "--eval-episodes", "1",
                                   "--max-episode-steps", "30", "--wandb-mode", "disabled"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train_perturbation"] == "damage"
    assert json.loads((out / "model.json").read_text())["train_perturbation"] == "damage"
    # a run directory written before the setting took a distribution name
    saved = yaml.safe_load((out / "config.yaml").read_text())
    for old, new in ((True, "train"), (False, None)):
        cfg = {k: v for k, v in saved.items() if k != "train_perturbation"}
        cfg["train_perturbations"] = old
        (out / "config.yaml").write_text(yaml.safe_dump(cfg))
        assert saved_settings(out)["train_perturbation"] == new


# -- the baselines on the shared run loop (plasticrl.trainers.lifecycle.RunLoop) -------------------------
# small networks: the run loop's behaviour, not SB3's speed, is under test
PPO_HP = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": {"pi": [16], "vf": [16]}}}
SAC_HP = {"learning_starts": 10, "batch_size": 8, "buffer_size": 200, "policy_kwargs": {"net_arch": [16]}}
TIMING = ("generation_seconds", "wall_seconds", "env_steps_per_s")


def _plain_sb3_model(algo, hp, steps):
    """The model SB3's own single ``learn(steps)`` call trains with a baseline's settings (reference)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from plasticrl.agents.sb3 import algo_class
    from plasticrl.trainers.sb3.hyperparams import hyperparams, sb3_kwargs
    from plasticrl.trainers.sb3.trainer import _silence_logger, make_env

    params = hyperparams(algo, ENV, hp)
    venv = DummyVecEnv([lambda: make_env(ENV, KW, 0)])
    venv.seed(0)
    env = VecNormalize(venv, norm_obs=True, norm_reward=True) if params.get("normalize") else venv
    model = algo_class(algo)("MlpPolicy", env, seed=0, device="cpu", verbose=0, **sb3_kwargs(algo, params, 6))
    _silence_logger(model)  # no SB3-<time> folder in /tmp; the logger does not change what is trained
    model.learn(total_timesteps=steps)
    return model


@pytest.mark.parametrize("algo, hp, eval_every, steps", [
    ("ppo", PPO_HP, 64, 192),
    ("sac", SAC_HP, 20, 60),
])
def test_chunked_learn_trains_the_model_one_learn_call_trains(algo, hp, eval_every, steps, tmp_path):
    """Chunks at rollout (PPO) or train_freq (SAC) boundaries, with evaluations between them, leave
    SB3's semantics unchanged: the final weights equal those of one plain ``learn(steps)``."""
    from plasticrl.agents.sb3 import SB3Controller
    from plasticrl.trainers.sb3 import train_baseline

    path = train_baseline(algo, ENV, steps, tmp_path / algo, env_kwargs=KW, overrides=hp, eval_every=eval_every,
                          eval_episodes=1, wandb_mode="disabled")
    assert len(_rows(tmp_path / algo)) == steps // eval_every  # one chunk per evaluation
    chunked = SB3Controller.load(path).model.policy.state_dict()
    plain = _plain_sb3_model(algo, hp, steps).policy.state_dict()
    assert chunked.keys() == plain.keys()
    assert all(torch_equal(chunked[k], plain[k]) for k in plain)


def torch_equal(a, b):
    import torch

    return torch.equal(a.cpu(), b.cpu())


def test_chunk_size_rounds_eval_every_up_to_whole_collection_units():
    from plasticrl.trainers.sb3.hyperparams import hyperparams
    from plasticrl.trainers.sb3.trainer import chunk_size

    assert chunk_size("ppo", hyperparams("ppo", ENV, {"n_steps": 64}), 100) == 128
    assert chunk_size("ppo", hyperparams("ppo", ENV, {"n_steps": 64}), 128) == 128
    assert chunk_size("ppo", hyperparams("ppo", "Ant-v5"), 10_000) == 10_240  # SB3's default n_steps=2048
    assert chunk_size("sac", hyperparams("sac", ENV), 1_000) == 1_000  # train_freq 1 step
    assert chunk_size("td3", hyperparams("td3", ENV, {"train_freq": [4, "step"]}), 10) == 12
    assert chunk_size("td3", hyperparams("td3", ENV, {"train_freq": [2, "episode"]}), 10) == 10


def test_ppo_evaluates_at_rollout_boundaries_and_ends_where_one_learn_call_ends(tmp_path):
    """eval_every=100 with 64-step rollouts: chunks of 128; a budget of 160 ends after the third rollout
    (192 steps), as SB3's learn(160) does."""
    from plasticrl.trainers.sb3 import train_baseline

    run = tmp_path / "ppo"
    train_baseline("ppo", ENV, 160, run, env_kwargs=KW, overrides=PPO_HP, eval_every=100, eval_episodes=1,
                   wandb_mode="disabled")
    assert [(r["generation"], r["env_steps"]) for r in _rows(run)] == [(0, 128), (1, 192)]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 192 and summary["generations"] == 2 and summary["chunk_env_steps"] == 128
    assert json.loads((run / "model.json").read_text())["env_steps"] == 192


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_ppo_baseline_killed_after_a_chunk_resumes_to_the_straight_runs_steps_and_rows(tmp_path):
    """A real SIGKILL after chunk 2's metrics row and before its checkpoint (the run loop's test hook):
    the resume drops that row, trains chunks 2 and 3 again and ends with the straight run's step count
    and rows (same generations, env steps and keys; the rows before the kill are the straight run's)."""
    import os
    import signal
    import subprocess
    import sys

    from plasticrl.io import torch_load
    from plasticrl.trainers.lifecycle import KILL_HOOK_ENV
    from plasticrl.trainers.sb3 import train_baseline

    kw = dict(env_kwargs=KW, overrides=PPO_HP, eval_every=64, eval_episodes=1, wandb_mode="disabled")
    train_baseline("ppo", ENV, 192, tmp_path / "straight", **kw)
    run = tmp_path / "killed"
    code = (f"from plasticrl.trainers.sb3 import train_baseline; "
            f"train_baseline('ppo', {ENV!r}, 192, {str(run)!r}, **{kw!r})")
    killed = subprocess.run([sys.executable, "-c", code], env={**os.environ, KILL_HOOK_ENV: "2"},
                            capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert [r["env_steps"] for r in _rows(run)] == [64, 128]  # the row of chunk 2 is ahead of the checkpoint
    assert torch_load(run / "checkpoint.pt")["progress"]["env_steps"] == 64

    train_baseline("ppo", ENV, 192, run, **kw, resume=True)
    straight, resumed = _rows(tmp_path / "straight"), _rows(run)
    assert [(r["generation"], r["env_steps"]) for r in resumed] == [(0, 64), (1, 128), (2, 192)]
    assert [(r["generation"], r["env_steps"]) for r in resumed] == [(r["generation"], r["env_steps"]) for r in straight]
    assert [r.keys() for r in resumed] == [r.keys() for r in straight]
    strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}  # noqa: E731
    assert strip(resumed[0]) == pytest.approx(strip(straight[0]))
    for name in ("straight", "killed"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert (summary["env_steps"], summary["generations"]) == (192, 3)
        assert json.loads((tmp_path / name / "model.json").read_text())["env_steps"] == 192
    assert torch_load(run / "checkpoint.pt")["progress"]["evaluations"] == 3


@pytest.mark.parametrize("algo, hp", [("ppo", PPO_HP), ("sac", SAC_HP)])
def test_sb3_state_round_trips_through_the_checkpoint(algo, hp, tmp_path):
    """After one chunk: counters, best, W&B id, weights, VecNormalize statistics and the replay buffer come
    back from checkpoint.pt as they were."""
    import numpy as np
    import torch

    from plasticrl.trainers.lifecycle import BestEvaluation
    from plasticrl.trainers.sb3.hyperparams import hyperparams
    from plasticrl.trainers.sb3.trainer import SB3State, SB3Trainer

    settings = {"kind": "sb3-baseline", "algo": algo, "env_id": ENV, "env_kwargs": KW, "steps": 128, "seed": 0,
                "train_perturbation": None, "hyperparams": hyperparams(algo, ENV, hp), "eval_every": 64,
                "eval_episodes": 1}
    trainer = SB3Trainer(settings, tmp_path / "run", wandb_mode="disabled")
    state = trainer._fresh_state()
    trainer._step(state)
    state.best = BestEvaluation(eval_return=-12.5, generation=1)
    state.elapsed = 2.5
    trainer._save_checkpoint(state)
    back = SB3Trainer(settings, tmp_path / "run", wandb_mode="disabled")._load_checkpoint()
    assert isinstance(back, SB3State) and (back.generation, back.env_steps) == (1, 64) == (state.generation,
                                                                                       state.env_steps)
    assert back.best == BestEvaluation(eval_return=-12.5, generation=1) and back.elapsed == 2.5
    assert back.wandb_id == state.wandb_id == "run" and back.model.num_timesteps == 64
    saved, loaded = state.model.policy.state_dict(), back.model.policy.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    if algo == "ppo":
        assert np.array_equal(back.vec_normalize.obs_rms.mean, state.vec_normalize.obs_rms.mean)
        assert back.vec_normalize.obs_rms.count == state.vec_normalize.obs_rms.count > 1
    else:
        assert back.vec_normalize is None and back.model.replay_buffer.pos == state.model.replay_buffer.pos == 64
        assert np.array_equal(back.model.replay_buffer.observations, state.model.replay_buffer.observations)
    # a checkpoint from before the run loop (progress: env_steps, evaluations, best return only; the W&B id
    # in wandb_id.txt) resumes with those counters
    from plasticrl.io import atomic_torch_save, torch_load

    old = torch_load(tmp_path / "run" / "checkpoint.pt")
    old["progress"] = {"env_steps": 64, "evaluations": 1, "best_eval_return": -12.5}
    atomic_torch_save(tmp_path / "run" / "checkpoint.pt", old)
    (tmp_path / "run" / "wandb_id.txt").write_text("a1b2c3\n")
    back = SB3Trainer(settings, tmp_path / "run", wandb_mode="disabled")._load_checkpoint()
    assert (back.generation, back.env_steps, back.wandb_id, back.elapsed) == (1, 64, "a1b2c3", 0.0)
    assert back.best == BestEvaluation(eval_return=-12.5, generation=-1)
    trainer.close()


def test_a_raised_budget_continues_a_finished_baseline_on_the_chunk_grid(tmp_path):
    """A SAC run of 50 steps in chunks of 32 ends at 32 and 50; raised to 96 it goes on to 64 (the
    next multiple) and 96; resumed at a budget it has done, it trains nothing more."""
    from plasticrl.trainers.sb3 import train_baseline

    run = tmp_path / "sac"
    kw = dict(env_kwargs=KW, overrides=SAC_HP, eval_every=32, eval_episodes=1, wandb_mode="disabled")
    train_baseline("sac", ENV, 50, run, **kw)
    assert [(r["generation"], r["env_steps"]) for r in _rows(run)] == [(0, 32), (1, 50)]
    train_baseline("sac", ENV, 96, run, **kw, resume=True)
    steps = [(0, 32), (1, 50), (2, 64), (3, 96)]
    assert [(r["generation"], r["env_steps"]) for r in _rows(run)] == steps
    train_baseline("sac", ENV, 70, run, **kw, resume=True)
    assert [(r["generation"], r["env_steps"]) for r in _rows(run)] == steps
    assert json.loads((run / "model.json").read_text())["env_steps"] == 96
