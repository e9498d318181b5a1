"""User paths that the other tests do not reach: resume guards, step budgets, initial noise, runs
without observation normalisation, device 'auto', after-switch returns on tasks that terminate,
eval CLI errors, and a PPO agent reproducing its logged evaluation return."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gym_episodes import gym_returns
import plasticrl
from plasticrl.rollouts.saved_agent import save_agent
from plasticrl.agents import make_policy
from plasticrl.cli import app
from plasticrl.config import load_config
from plasticrl.device import resolve_device
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.io import torch_load
from plasticrl.trainers.es import ESTrainer

P, T = 8, 20
TINY = ["env.id=HalfCheetah-v5", f"env.max_episode_steps={T}", "policy.kind=linear",
        f"es.params={{population_size: {P}, sigma: 0.1, learning_rate: 0.05}}", "train.eval_every=2",
        "train.eval_episodes=2", "logging.wandb.mode=disabled", "logging.progress=false"]


def tiny(*extra):
    return load_config(None, TINY + list(extra))


def error_line(result):
    """The CLI's error: exit code 2 and one line (rich may wrap it; joined back here)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


# -- train --resume guards ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    ESTrainer(tiny("train.generations=2"), run).train()
    return run


def _snapshot(directory):
    return {p.name: p.stat().st_mtime_ns for p in Path(directory).iterdir()}


def test_resume_refuses_a_config_file_and_overrides_that_change_the_run(finished_run, tmp_path):
    before = _snapshot(finished_run)
    runner = CliRunner()
    config = tmp_path / "other.yaml"
    config.write_text("seed: 3\n")
    line = error_line(runner.invoke(app, ["train", str(config), "--resume", str(finished_run)]))
    assert "other.yaml" in line and "not both" in line
    for override in ("seed=3", "es.params.sigma=0.5", "policy.kind=mlp", "env.max_episode_steps=30"):
        line = error_line(runner.invoke(app, ["train", "--resume", str(finished_run), override]))
        key = override.split("=")[0]
        assert f"override {key!r} would change the run" in line and "train.generations" in line
    assert _snapshot(finished_run) == before  # refused before anything was written


def test_resume_refuses_a_directory_that_is_not_a_run_and_restarts_a_run_without_checkpoint(finished_run, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    line = error_line(runner.invoke(app, ["train", "--resume", str(empty)]))
    assert str(empty) in line and "not a plasticrl run directory" in line and "config.yaml" in line
    assert list(empty.iterdir()) == []
    line = error_line(runner.invoke(app, ["train", "--resume", str(tmp_path / "missing")]))
    assert "missing" in line and not (tmp_path / "missing").exists()
    # A run killed before its first checkpoint (config.yaml and a torn row only) restarts from generation 0
    # and ends as the uninterrupted run did.
    no_checkpoint = tmp_path / "no-checkpoint"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.yaml").write_text((finished_run / "config.yaml").read_text())
    (no_checkpoint / "metrics.jsonl").write_text('{"generation": 1, "fitness_mean": 12')
    result = runner.invoke(app, ["train", "--resume", str(no_checkpoint), "--quiet"])
    assert result.exit_code == 0, result.output
    timing = ("generation_seconds", "wall_seconds", "env_steps_per_s")

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k not in timing}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert [r["generation"] for r in rows(no_checkpoint)] == [1, 2]
    assert rows(no_checkpoint) == rows(finished_run)


def test_resume_accepts_the_overrides_it_lists(finished_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "train.generations=3",
                                      "logging.wandb.mode=disabled", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["generation"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# -- budgets, initial noise, no normalisation, device ------------------------------------------------
def test_max_env_steps_stops_at_the_first_generation_that_reaches_it(tmp_path):
    # P x T = 160 steps per generation (HalfCheetah never terminates): 160, 320 < 400 <= 480.
    result = ESTrainer(tiny("train.generations=50", "train.max_env_steps=400"), tmp_path / "run").train()
    assert (result.generations, result.env_steps) == (3, 3 * P * T)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [160, 320, 480]
    assert np.isfinite(result.final_eval_return)  # generation 3 is off the schedule: evaluated at the end
    assert torch_load(tmp_path / "run" / "final_agent.pt")["metadata"]["generation"] == 3


def test_init_noise_perturbs_the_initial_centre_by_its_std_reproducibly(tmp_path):
    plain = ESTrainer(tiny("train.generations=1"), tmp_path / "a")
    start = plain.algo.center(plain._fresh_state().es)
    assert torch.equal(start, plain.policy.initial_genome(1)[0].cpu())
    centres = {}
    for name, extra in (("noisy", ["train.init_noise=0.5"]), ("again", ["train.init_noise=0.5"]),
                        ("seed1", ["train.init_noise=0.5", "seed=1"])):
        trainer = ESTrainer(tiny("train.generations=1", *extra), tmp_path / name)
        centres[name] = trainer.algo.center(trainer._fresh_state().es)
    noise = centres["noisy"] - start
    assert noise.numel() == 17 * 6 + 6  # linear HalfCheetah: W [6, 17] and b [6]
    assert 0.4 < float(noise.std()) < 0.6 and abs(float(noise.mean())) < 0.15
    assert torch.equal(centres["noisy"], centres["again"]) and not torch.equal(centres["noisy"], centres["seed1"])


def test_a_run_without_observation_normalisation_saves_and_resumes_without_statistics(tmp_path):
    straight = ESTrainer(tiny("train.generations=3", "train.obs_norm=false"), tmp_path / "straight").train()
    ESTrainer(tiny("train.generations=2", "train.obs_norm=false"), tmp_path / "split").train()
    assert torch_load(tmp_path / "split" / "checkpoint.pt")["obs_norm"] is None
    resumed = ESTrainer(tiny("train.generations=3", "train.obs_norm=false"), tmp_path / "split").train(resume=True)
    assert torch.equal(straight.center, resumed.center)
    for name in ("best_agent.pt", "final_agent.pt"):
        assert torch_load(tmp_path / "split" / name)["obs_norm"] is None
    agent = plasticrl.load(tmp_path / "split" / "final_agent.pt")
    assert agent.obs_norm is None
    # The agent sees raw observations: it acts like its policy on the unnormalised observation.
    obs = np.linspace(-3, 3, 17)
    policy = agent.policy
    policy.load_genome(agent.genome.to(policy.dtype).unsqueeze(0), episodes_per_member=1)
    policy.reset(torch.ones(1, dtype=torch.bool))
    expected = policy.act(torch.as_tensor(obs, dtype=policy.dtype).unsqueeze(0))[0].detach().numpy()
    np.testing.assert_allclose(agent.act(obs), expected, rtol=1e-6, atol=1e-6)
    # ... and with normalisation on, the statistics exist and are used.
    ESTrainer(tiny("train.generations=1"), tmp_path / "normed").train()
    assert torch_load(tmp_path / "normed" / "final_agent.pt")["obs_norm"]["count"] == P * T


def test_device_auto_picks_cuda_only_when_available(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    trainer = ESTrainer(tiny("train.generations=1", "device=auto"), tmp_path / "run")
    assert trainer.policy.device == torch.device("cpu") and trainer.config.device == "auto"
    with pytest.raises(PlasticRLError, match="'cuda' requested but CUDA is not available; use 'cpu' or 'auto'"):
        resolve_device("cuda")
    with pytest.raises(PlasticRLError, match="unknown device 'gpu'; valid choices: auto, cpu, cuda, cuda:N"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


# -- after-switch returns on tasks that terminate -------------------------------------------------
def _linear_agent(path, env_id, scale, seed=0):
    env = make_vec(env_id, 1)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    gen = torch.Generator().manual_seed(seed)
    genome = policy.initial_genome(1)[0] + scale * torch.randn(policy.genome.dim, generator=gen, dtype=policy.dtype)
    return save_agent(path, policy, {"kind": "linear"}, genome, None, {"env_id": env_id, "env_kwargs": {}})


@pytest.mark.parametrize("env_id,scale,cap", [("Hopper-v5", 0.3, 40), ("Ant-v5", 3.0, 60)])
def test_after_switch_returns_on_tasks_that_terminate(tmp_path, env_id, scale, cap):
    """Per episode, the return from the switch on plus the return before it is the return; an
    episode that ended before the switch earns nothing after it; no reward is counted past an
    episode's end. Hopper's agent falls at steps 15-18, so switches at 10 and 25 fall on either side."""
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import load_controller
    from plasticrl.eval.evaluate import _after_switch
    from plasticrl.eval.plasticity_effect import _before
    from plasticrl.eval.result import ConditionSummary

    path = _linear_agent(tmp_path / "agent.pt", env_id, scale)
    ended_before, ended_after = 0, 0
    for start in (10, 25):
        dead = [{"name": "dead_actuator", "actuator": [0], "start_step": start}]
        got = run_batch(load_controller(path), env_id, [("nominal", None), ("dead", dead)], episodes=4, seed=0,
                        env_kwargs={"max_episode_steps": cap})
        batch = got["dead"]
        stats = _after_switch(batch, start, cap)
        assert stats["steps_after_switch"] == cap - start
        for e in range(4):
            length = int(batch.lengths[e])
            assert not batch.rewards[length:, e].any()  # nothing after the episode's end
            after = float(batch.rewards[start:length, e].sum()) if length > start else 0.0
            assert stats["returns_after_switch"][e] == pytest.approx(after, abs=1e-4)
            row = ConditionSummary.from_json({"agent": "a", "condition": "dead", "returns": [float(batch.returns[e])],
                                              "returns_after_switch": [after]})
            before = _before(row)[0]
            assert before == pytest.approx(float(batch.rewards[:min(start, length), e].sum()), abs=1e-3)
            ended_before += length <= start
            ended_after += start < length < cap
        assert np.all(batch.lengths <= cap)
    if env_id == "Hopper-v5":
        assert ended_before == 4 and ended_after == 4  # both sides of the switch were exercised


# -- eval CLI errors ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cheetah_agents(tmp_path_factory):
    base = tmp_path_factory.mktemp("agents")
    a = _linear_agent(base / "a.pt", "HalfCheetah-v5", 0.5)
    b = _linear_agent(base / "b.pt", "HalfCheetah-v5", 0.5, seed=1)
    weighted = base / "weighted.pt"
    payload = torch_load(b)
    payload["metadata"]["env_kwargs"] = {"forward_reward_weight": 2.0}
    torch.save(payload, weighted)
    hopper = _linear_agent(base / "hop.pt", "Hopper-v5", 0.3)
    return {"a": a, "b": b, "weighted": weighted, "hopper": hopper}


@pytest.mark.parametrize("case", ["duplicate", "name_count", "mixed_kwargs", "mixed_envs"])
def test_eval_cli_errors_name_the_problem_before_writing_anything(cheetah_agents, tmp_path, case):
    agents = cheetah_agents
    args, wanted = {
        "duplicate": ([agents["a"], agents["b"], "--name", "same", "--name", "same"],
                      ["agent names must be unique", "['same', 'same']"]),
        "name_count": ([agents["a"], agents["b"], "--name", "only-one"],
                       ["--name given 1 times for 2 agents"]),
        "mixed_kwargs": ([agents["a"], agents["weighted"]],
                         ["different env keyword arguments", "forward_reward_weight", "[]"]),
        "mixed_envs": ([agents["a"], agents["hopper"]], ["give --env", "HalfCheetah-v5", "Hopper-v5"]),
    }[case]
    out = tmp_path / "ev"
    result = CliRunner().invoke(app, ["eval", *map(str, args), "--episodes", "2", "--max-episode-steps", "5",
                                      "--out", str(out), "--wandb-mode", "disabled", "--quiet"])
    line = error_line(result)
    for text in wanted:
        assert text in line, (text, line)
    assert not out.exists()


# -- PPO agent ---------------------------------------------------------------------------------------
def test_loaded_ppo_agent_reproduces_its_logged_evaluation_return(tmp_path):
    """The best PPO agent, loaded and driving Gymnasium's own HalfCheetah on the trainer's held-out
    seeds, earns the evaluation return logged at its generation (continuous rewards: any difference
    in the policy, its genome or its statistics shows)."""
    from plasticrl.seeding import Stream
    from plasticrl.trainers.ppo.trainer import PPOTrainer
    from plasticrl.seeding import derive_env_seed

    cfg = load_config(None, ["trainer=ppo", "env.id=HalfCheetah-v5", "env.max_episode_steps=25",
                             "policy.hidden=[8]", "policy.plasticity.modulation=rpe", "train.generations=2",
                             "train.eval_every=1", "train.eval_episodes=2", "logging.wandb.mode=disabled",
                             "logging.progress=false",
                             "ppo={num_envs: 2, rollout_steps: 20, seq_len: 10, epochs: 1, minibatch_sequences: 2}"])
    result = PPOTrainer(cfg, tmp_path / "run").train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = next(r["eval_return_mean"] for r in rows if r["generation"] == result.best_generation)
    agent = plasticrl.load(tmp_path / "run")
    assert agent.metadata["trainer"] == "ppo" and agent.metadata["generation"] == result.best_generation
    assert agent.obs_norm is not None and agent.obs_norm.count > 0
    seed = derive_env_seed(cfg.seed, 0, Stream.PPO_EVAL_ENV)
    returns = gym_returns(agent, "HalfCheetah-v5", 25, seed, cfg.train.eval_episodes, seed_agent=False)
    assert returns[0] != returns[1]
    assert np.mean(returns) == pytest.approx(logged, rel=1e-4, abs=1e-4)


# -- eval with an oracle ------------------------------------------------------------------------------
def test_eval_cli_with_an_oracle_shows_every_agent_and_pairs_the_ratio(tmp_path):
    """The oracle (trained with goal_observed) is evaluated first on the same episodes; its progress line
    and the agents' both show (the progress bar once indexed the agents list with the oracle's index).
    The ratio is the after-switch reward rate over the oracle's when the oracle's is positive, and
    undefined (null) otherwise: these random linear agents lose reward after the switch, so it is null."""
    kwargs = {"switch_step": 10}
    paths = {}
    for name, extra, seed in (("agent", {}, 0), ("oracle", {"goal_observed": True}, 1)):
        env = make_vec("HalfCheetahDir-v5", 1, **kwargs, **extra)
        policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
        env.close()
        genome = policy.initial_genome(1)[0] + 0.5 * torch.randn(
            policy.genome.dim, generator=torch.Generator().manual_seed(seed), dtype=policy.dtype)
        paths[name] = save_agent(tmp_path / f"{name}.pt", policy, {"kind": "linear"}, genome, None,
                                 {"env_id": "HalfCheetahDir-v5", "env_kwargs": {**kwargs, **extra}})
    out = tmp_path / "ev"
    result = CliRunner().invoke(app, ["eval", str(paths["agent"]), "--name", "agent", "--oracle", str(paths["oracle"]),
                                      "--suite", "nominal", "--episodes", "3", "--max-episode-steps", "30",
                                      "--out", str(out), "--wandb-mode", "disabled"])
    assert result.exit_code == 0, result.output
    assert "eval agent" in result.output and "eval oracle" in result.output
    data = json.loads((out / "eval.json").read_text())
    assert data["oracle"] == "oracle"
    rows = {r["agent"]: r for r in data["rows"]}
    summary = {s["agent"]: s for s in data["goal_adaptation"]}
    mine, oracle = (np.mean(rows[k]["reward_rates_after"]) for k in ("agent", "oracle"))
    assert summary["agent"]["reward_rate_after"] == pytest.approx(mine, rel=1e-6)
    assert oracle < 0 and summary["agent"]["adaptation_ratio"] is None
    assert summary["oracle"]["is_oracle"] and not summary["agent"]["is_oracle"]
    assert len(rows["agent"]["reward_rates_after"]) == len(rows["oracle"]["reward_rates_after"]) == 3


def test_eval_cli_env_kwarg_changes_one_trained_setting_and_refuses_a_bad_key_before_writing(tmp_path):
    """--env-kwarg KEY=VALUE updates the env keyword arguments the agents were trained with: an agent trained
    with direction -1 and a switch at step 10, evaluated with direction=1, keeps the switch and meets the
    opposite goals. It acts 0 whatever it sees (zero weights), so its trajectories do not depend on the goal
    and every return is the trained setting's, negated."""
    trained = {"direction": -1, "switch_step": 10}
    env = make_vec("HalfCheetahDir-v5", 1, **trained)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    path = save_agent(tmp_path / "a.pt", policy, {"kind": "linear"}, torch.zeros(policy.genome.dim), None,
                      {"env_id": "HalfCheetahDir-v5", "env_kwargs": trained})
    args = ["eval", str(path), "--suite", "nominal", "--episodes", "2", "--max-episode-steps", "20",
            "--wandb-mode", "disabled", "--no-plots"]
    runs = {}
    for name, extra in (("trained", []), ("changed", ["--env-kwarg", "direction=1"])):
        result = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / name / "eval.json").read_text())
    assert runs["changed"]["env_kwargs"] == {"direction": 1, "switch_step": 10, "max_episode_steps": 20}
    trained_returns, changed_returns = (np.array(runs[k]["rows"][0]["returns"]) for k in ("trained", "changed"))
    assert np.all(trained_returns != 0) and np.array_equal(changed_returns, -trained_returns)
    assert runs["changed"]["rows"][0]["goal_switch_steps"] == [10, 10]
    for bad, message in ((["--env-kwarg", "dirction=1"], "unknown keyword argument(s) ['dirction']"),
                         (["--env-kwarg", "direction"], "is not KEY=VALUE"),
                         (["--env-kwarg", "direction=1", "--env-kwarg", "direction=-1"], "given twice")):
        refused = tmp_path / "refused"
        result = CliRunner().invoke(app, [*args, *bad, "--out", str(refused)])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
        assert not refused.exists()


def test_eval_takes_a_recorded_default_for_the_default(cheetah_agents, tmp_path):
    """One agent recorded with forward_reward_weight 1.0 (HalfCheetah-v5's default), one with nothing: the same
    setting, so they evaluate together; the weighted agent (2.0) still does not."""
    from plasticrl.rollouts.controllers import common_env_kwargs, load_controller

    explicit = tmp_path / "explicit.pt"
    payload = torch_load(cheetah_agents["b"])
    payload["metadata"]["env_kwargs"] = {"forward_reward_weight": 1.0}
    torch.save(payload, explicit)
    plain, default = load_controller(cheetah_agents["a"], "a"), load_controller(explicit, "x")
    assert common_env_kwargs([plain, default]) == {"forward_reward_weight": 1.0}
    with pytest.raises(PlasticRLError, match="different env keyword arguments"):
        common_env_kwargs([plain, load_controller(cheetah_agents["weighted"], "w")])
