"""Recurrent PPO trainer: state replay, learning on a cheap task, resume identity, agents, config."""
import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from typer.testing import CliRunner

import plasticrl
from plasticrl.cli import app
from plasticrl.config import load_config
from plasticrl.errors import PlasticRLError
from plasticrl.trainers.ppo.trainer import PPOTrainer
from plasticrl.trainers.ppo.loss import gaussian_log_prob

BASE = [
    "trainer=ppo", "env.id=InvertedPendulum-v5", "policy.hidden=[16]", "policy.plasticity.modulation=rpe",
    "policy.plasticity.sharing=post", "train.eval_episodes=4", "logging.wandb.mode=disabled",
    "logging.progress=false",
]
# Short episodes inside short rollouts: sequences cross episode ends and autoreset steps.
SMALL = BASE + ["env.max_episode_steps=15",
                "ppo={num_envs: 4, rollout_steps: 40, seq_len: 10, epochs: 2, minibatch_sequences: 8}",
                "train.eval_every=1", "train.checkpoint_every=1"]
TIMING = ("generation_seconds", "wall_seconds", "env_steps_per_s", "rollout_steps_per_s")


def cfg(*extra):
    return load_config(None, list(extra))


def metrics(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.parametrize("extra", [
    [],
    # the stored previous reward is per-row episode state: snapshots must carry it across sequences
    # (Hopper: rewards that vary from step to step, unlike InvertedPendulum's constant 1)
    ["env.id=Hopper-v5", "policy.reward_input=true", "policy.reward_input_scale=0.5", "policy.recurrent=true",
     "policy.zero_output_init=false"],
])
def test_replaying_a_stored_sequence_reproduces_the_recorded_actions_exactly(tmp_path, extra):
    trainer = PPOTrainer(cfg(*SMALL, *extra), tmp_path)
    ro = trainer.collect(0, None)
    assert bool(ro.reset_after.any()), "the rollout should cross episode boundaries"
    N, L = 4, 10
    for c in (3, 0, 2, 1):
        rows = torch.tensor([2, 0, 3, 1])  # any order of rows: each replays its own sequence
        means = trainer.replay(ro, torch.full((N,), c), rows)
        recorded = ro.means[c * L:(c + 1) * L, rows]
        assert torch.equal(means.detach(), recorded)
        assert torch.equal(gaussian_log_prob(ro.actions[c * L:(c + 1) * L, rows], means.detach(), trainer.log_std.detach()),
                           ro.log_probs[c * L:(c + 1) * L, rows])


def test_replay_gradient_reaches_initial_weights_and_rule_coefficients(tmp_path):
    # HalfCheetah never terminates: a late sequence holds no episode start, so only the
    # straight-through path of the restored fast weights can reach the initial weights.
    config = cfg(*BASE, "env.id=HalfCheetah-v5", "policy.zero_output_init=false",
                 "ppo={num_envs: 2, rollout_steps: 30, seq_len: 10, epochs: 1, minibatch_sequences: 2}")
    trainer = PPOTrainer(config, tmp_path)
    ro = trainer.collect(0, None)
    assert not bool(ro.reset_after.any())
    means = trainer.replay(ro, torch.full((2,), 2), torch.arange(2))
    torch.testing.assert_close(means.detach(), ro.means[20:30], rtol=0, atol=0)
    means.sum().backward()
    grads = trainer.actor.genome.unflatten(trainer.genome.grad)
    for name in ("layers.0.w", "layers.1.w", "layers.0.eta", "layers.1.eta"):
        assert grads[name].abs().sum() > 0, name


def test_ppo_improves_inverted_pendulum_within_a_tiny_budget(tmp_path):
    # 12 generations, not fewer: with 8 (one evaluation at the end) this seed passed on one CPU and
    # reached 78 of the 87 needed on another (float rounding differs); at 12 seeds 0-2 reach
    # 180-200 from a start of 23-29.
    config = cfg(*BASE, "env.max_episode_steps=200", "train.generations=12", "train.eval_every=4",
                 "ppo={num_envs: 8, rollout_steps: 200, seq_len: 20, epochs: 4, minibatch_sequences: 16, lr: 0.01}")
    trainer = PPOTrainer(config, tmp_path)
    before, _ = trainer.evaluate(None)
    result = trainer.train()
    rows = metrics(tmp_path)
    assert result.env_steps == 12 * 8 * 200
    assert result.best_eval_return >= 3 * before and result.best_eval_return >= 100, (before, result.best_eval_return)
    assert rows[-1]["fitness_mean"] > 3 * rows[0]["fitness_mean"]


def test_resume_continues_exactly_where_the_straight_run_would_be(tmp_path):
    straight = PPOTrainer(cfg(*SMALL, "train.generations=3"), tmp_path / "straight").train()
    PPOTrainer(cfg(*SMALL, "train.generations=1"), tmp_path / "split").train()
    resumed = PPOTrainer(cfg(*SMALL, "train.generations=3"), tmp_path / "split").train(resume=True)
    assert torch.equal(straight.center, resumed.center)
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "split")
    assert [r["generation"] for r in metrics(tmp_path / "split")] == [1, 2, 3]


def test_cli_trains_with_ppo_and_the_agent_loads_and_drives_gymnasium(tmp_path):
    args = [f"{o}" for o in SMALL] + ["train.generations=2", "name=ppo-cli"]
    res = CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    run_dir = next(tmp_path.glob("ppo-cli-*"))
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "best_agent.pt", "final_agent.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    agent = plasticrl.load(run_dir)
    assert agent.metadata["trainer"] == "ppo"
    env = gym.make("InvertedPendulum-v5")
    obs, _ = env.reset(seed=0)
    reward = None
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, reward))
        if terminated or truncated:
            break
    env.close()


def test_ppo_config_errors_name_the_key_and_the_valid_choices():
    with pytest.raises(PlasticRLError, match="bogus.*valid keys: .*seq_len"):
        cfg("trainer=ppo", "ppo.bogus=1")
    with pytest.raises(PlasticRLError, match="seq_len=7 must divide rollout_steps=1000"):
        cfg("trainer=ppo", "ppo.seq_len=7")
    with pytest.raises(PlasticRLError, match="trainer"):
        cfg("trainer=sgd")
    assert cfg().trainer == "es" and cfg().ppo is None
