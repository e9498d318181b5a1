"""train.init_agent_inputs: appended: a saved agent starts a policy whose observation has more entries
(appended), acting exactly as before until the new inputs' weights move."""
import numpy as np
import pytest
import torch

from genomes import random_agent_file, seeded_normalizer
from plasticrl.agents import make_policy
from plasticrl.config import load_config
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.appended_inputs import genome_with_appended_inputs, obs_norm_with_appended_inputs
from plasticrl.rollouts.saved_agent import load
from plasticrl.trainers.es import ESTrainer


def _spaces(env_id, **kwargs):
    env = make_vec(env_id, 1, **kwargs)
    spaces = env.single_observation_space, env.single_action_space
    env.close()
    return spaces


@pytest.mark.parametrize("kind", ["plastic_spiking", "linear"])
def test_widened_policy_acts_and_learns_as_the_saved_one(tmp_path, kind):
    """A fixed-weight policy ignores the new input whatever it holds; a plastic one while it is 0 (its
    Hebbian rule would grow the new input's weights within the episode otherwise), and at the first step."""
    saved = load(random_agent_file(tmp_path / "a.pt", "HalfCheetah-v5", kind=kind, seed=3))
    obs_space, act_space = _spaces("HalfCheetahDir-v5", goal_observed=True)  # 17 + the goal
    new = make_policy(saved.policy_config, obs_space, act_space, dtype="float64")
    old = make_policy(saved.policy_config, saved.observation_space, act_space, dtype="float64")
    genome = genome_with_appended_inputs(old, saved.genome, new)
    named = new.genome.unflatten(genome.reshape(1, -1))
    if kind == "plastic_spiking":  # the new input's weights are 0, the kept ones rescaled to the new fan-in
        assert torch.equal(named["layers.0.w"][0, :, 17:], torch.zeros(8, 1, dtype=torch.float64))
        ratio = old.genome.initial_values()["layers.0.w_scale"] / new.genome.initial_values()["layers.0.w_scale"]
        assert float(ratio) == pytest.approx(np.sqrt(18 / 17))  # fan-in scale 1/sqrt(inputs)
        effective = named["layers.0.w"][0, :, :17] * new.genome.initial_values()["layers.0.w_scale"]
        saved_w = old.genome.unflatten(saved.genome.reshape(1, -1).double())["layers.0.w"][0]
        torch.testing.assert_close(effective, saved_w * old.genome.initial_values()["layers.0.w_scale"].double(),
                                   rtol=1e-6, atol=0)
    for goal_scale in (5.0, 0.0):
        old.load_genome(saved.genome.reshape(1, -1).to(torch.float64))
        new.load_genome(genome.reshape(1, -1))
        g = torch.Generator().manual_seed(0)
        steps = 1 if (kind == "plastic_spiking" and goal_scale) else 30
        with torch.no_grad():
            for _ in range(steps):
                obs = torch.randn(1, 17, generator=g, dtype=torch.float64)
                goal = goal_scale * torch.randn(1, 1, generator=g, dtype=torch.float64)
                torch.testing.assert_close(new.act(torch.cat([obs, goal], 1)), old.act(obs), rtol=0, atol=1e-9)
                reward = torch.randn(1, generator=g, dtype=torch.float64)
                old.learn(reward)
                new.learn(reward)


def test_widened_observation_statistics():
    saved = seeded_normalizer(5, clip=3.0)
    norm = obs_norm_with_appended_inputs(saved, 7)
    assert norm.count == saved.count and norm.clip == 3.0
    torch.testing.assert_close(norm.mean[:5], saved.mean)
    torch.testing.assert_close(norm.var[:5], saved.var)
    assert torch.equal(norm.mean[5:], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(norm.var[5:], torch.ones(2, dtype=torch.float64))


def test_mismatches_name_what_differs(tmp_path):
    saved = load(random_agent_file(tmp_path / "a.pt", "HalfCheetah-v5", kind="plastic_spiking"))
    obs_space, act_space = _spaces("HalfCheetahDir-v5", goal_observed=True)
    old = make_policy(saved.policy_config, saved.observation_space, act_space)
    wider_hidden = make_policy(saved.policy_config.model_copy(update={"hidden": [9]}), obs_space, act_space)
    with pytest.raises(PlasticRLError, match=r"group 'layers.0.w' from shape \[8, 17\] to \[9, 18\]"):
        genome_with_appended_inputs(old, saved.genome, wider_hidden)
    with pytest.raises(PlasticRLError, match="needs more inputs than the saved agent has; it has 17, this task 17"):
        genome_with_appended_inputs(old, saved.genome, old)


def test_training_starts_from_the_widened_agent(tmp_path):
    """ES with a zero learning rate keeps its centre: the centre it started from is the widened genome."""
    agent = random_agent_file(tmp_path / "a.pt", "HalfCheetah-v5", kind="plastic_spiking", seed=1)
    saved = load(agent)
    overrides = [
        "env.id=HalfCheetahDir-v5", "env.kwargs={goal_observed: true}", "env.max_episode_steps=20",
        "policy.hidden=[8]", "policy.plasticity.rule=bcm", "policy.plasticity.modulation=reward",
        "policy.plasticity.sharing=post", "policy.kernel=torch",
        "es.params={population_size: 4, sigma: 0.1, learning_rate: 0.0}", "train.generations=1",
        "train.eval_every=5", "train.eval_episodes=1", "logging.wandb.mode=disabled", "logging.progress=false",
        f"train.init_agent={agent}"]
    trainer = ESTrainer(load_config(None, overrides + ["train.init_agent_inputs=appended"]), tmp_path / "run")
    old = make_policy(saved.policy_config, saved.observation_space, saved.action_space)
    expected = genome_with_appended_inputs(old, saved.genome, trainer.policy)
    result = trainer.train()
    torch.testing.assert_close(result.center.reshape(-1), expected.to(result.center.dtype), rtol=0, atol=0)
    # without the option the genome sizes differ and the one-line error says so
    with pytest.raises(PlasticRLError, match="the same policy config is required"):
        ESTrainer(load_config(None, overrides), tmp_path / "other").train()


def test_cli_refuses_an_agent_that_does_not_widen_before_any_run_directory(tmp_path):
    from typer.testing import CliRunner

    from cli_checks import assert_one_line_error, entries
    from plasticrl.cli import app

    agent = random_agent_file(tmp_path / "a.pt", "HalfCheetah-v5", kind="plastic_spiking")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "train", "env.id=HalfCheetahDir-v5", "env.kwargs={goal_observed: true}", "policy.hidden=[9]",
        f"train.init_agent={agent}", "train.init_agent_inputs=appended", "--out", str(out), "--quiet",
        "--wandb-mode", "disabled"])
    assert_one_line_error(res, "train.init_agent_inputs: appended", "'layers.0.w'", "[8, 17]", "[9, 18]")
    assert entries(out) == []
