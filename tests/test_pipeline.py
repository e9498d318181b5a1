"""The pipelined rollout equals the plain rollout on all rows, bit for bit."""
import pytest
import torch

from plasticrl.agents import make_policy
from plasticrl.envs import make_vec, sample_train
from plasticrl.train.obs_norm import ObsBatchMoments, ObsNormalizer
from plasticrl.train.pipeline import pipelined_rollout
from plasticrl.train.rollout import rollout

POLICY = {"kind": "plastic_spiking", "hidden": [16], "plasticity": {"rule": "bcm", "modulation": "rpe"}}


def _norm(obs_dim, seed):
    g = torch.Generator().manual_seed(seed)
    norm = ObsNormalizer(obs_dim)
    x = torch.randn(50, obs_dim, generator=g, dtype=torch.float64) * 2
    norm.update(ObsBatchMoments(50.0, x.sum(0), (x * x).sum(0)))
    return norm


@pytest.mark.parametrize("env_id,population,episodes,max_steps,randomised", [
    ("Hopper-v5", 5, 1, None, False),      # terminations; odd split 2 + 3 members
    ("HalfCheetah-v5", 4, 2, 40, True),     # step cap; per-row domain randomisation
])
def test_pipelined_rollout_equals_plain_rollout(env_id, population, episodes, max_steps, randomised):
    rows = population * episodes
    members_a = population // 2
    env = make_vec(env_id, rows, max_episode_steps=150)
    env_a = make_vec(env_id, members_a * episodes, max_episode_steps=150)
    env_b = make_vec(env_id, rows - members_a * episodes, max_episode_steps=150)
    spaces = (env.single_observation_space, env.single_action_space)
    policy, policy_a, policy_b = (make_policy(POLICY, *spaces) for _ in range(3))
    g = torch.Generator().manual_seed(0)
    genome = policy.initial_genome(population) + 0.3 * torch.randn(population, policy.genome.dim, generator=g)
    options = None
    if randomised:
        import numpy as np

        options = {"perturbations": sample_train(env_id, rows, np.random.default_rng(1))}
    norm = _norm(policy.obs_dim, 2)
    plain = rollout(policy, env, genome, episodes, max_steps, seed=7, obs_norm=norm, collect_obs_moments=True,
                    reset_options=options)
    piped = pipelined_rollout(((policy_a, env_a), (policy_b, env_b)), genome, episodes, max_steps, seed=7,
                              obs_norm=norm, collect_obs_moments=True, reset_options=options)
    assert torch.equal(plain.returns, piped.returns)
    assert torch.equal(plain.lengths, piped.lengths)
    assert torch.equal(plain.invalid, piped.invalid)
    assert plain.env_steps == piped.env_steps
    for x, y in zip(plain.obs_rows, piped.obs_rows):
        assert torch.equal(x, y)
    if env_id == "Hopper-v5":
        assert plain.lengths.min() < plain.lengths.max()  # rows finished at different steps


def test_step_async_then_reset_is_refused():
    from plasticrl.envs import EnvError

    env = make_vec("HalfCheetah-v5", 2)
    env.reset(seed=0)
    env.step_async(env.action_space.sample() * 0)
    with pytest.raises(EnvError, match="step_async"):
        env.reset(seed=1)
    env.step_wait()
    with pytest.raises(EnvError, match="without a pending step_async"):
        env.step_wait()


def test_training_with_the_pipeline_gives_the_same_run(tmp_path):
    from plasticrl.config import load_config
    from plasticrl.train.trainer import ESTrainer

    base = ["env.id=HalfCheetah-v5", "env.max_episode_steps=25", "policy.hidden=[8]",
            "es.params={population_size: 6, sigma: 0.1}", "train.generations=2", "train.eval_every=2",
            "train.eval_episodes=1", "logging.wandb.mode=disabled", "logging.progress=false"]
    plain = ESTrainer(load_config(None, base), tmp_path / "plain").train()
    piped = ESTrainer(load_config(None, base + ["train.pipeline=true"]), tmp_path / "piped").train()
    assert torch.equal(plain.center, piped.center)
    assert plain.best_eval_return == piped.best_eval_return
