"""The batched rollout equals one plain Gymnasium episode per row, member by member."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from plasticrl.agents import make_policy
from plasticrl.envs import make_vec
from plasticrl.rollouts.loop import rollout


def reference_episode(policy_cfg, genome_row, env_id, seed, max_steps):
    env = gym.make(env_id)
    policy = make_policy(policy_cfg, env.observation_space, env.action_space)
    policy.load_genome(genome_row.unsqueeze(0))
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    with torch.inference_mode():
        while steps < max_steps:
            action = policy.act(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
            obs, reward, terminated, truncated, _ = env.step(action[0].numpy().astype(np.float64))
            policy.learn(torch.tensor([reward], dtype=torch.float32))
            total += reward
            steps += 1
            if terminated or truncated:
                break
    return total, steps


@pytest.mark.parametrize("policy_cfg", [
    {"kind": "linear"},
    {"kind": "plastic_spiking", "hidden": [16], "plasticity": {"rule": "bcm", "modulation": "reward"}},
    {"kind": "linear", "reward_input": True, "reward_input_scale": 0.3},
    {"kind": "static_spiking", "hidden": [16], "recurrent": True, "reward_input": True},
])
def test_batched_rollout_matches_per_row_reference(policy_cfg):
    env_id, population, episodes, seed, max_steps = "Hopper-v5", 3, 2, 7, 120
    env = make_vec(env_id, population * episodes)
    policy = make_policy(policy_cfg, env.single_observation_space, env.single_action_space)
    g = torch.Generator().manual_seed(0)
    genome = policy.initial_genome(population) + 0.5 * torch.randn(population, policy.genome.dim, generator=g)
    result = rollout(policy, env, genome, episodes, max_steps=max_steps, seed=seed)
    assert result.returns.shape == (population, episodes)
    for p in range(population):
        for e in range(episodes):
            row = p * episodes + e
            ret, length = reference_episode(policy_cfg, genome[p], env_id, seed + row, max_steps)
            assert result.lengths[p, e].item() == length
            assert result.returns[p, e].item() == pytest.approx(ret, abs=1e-4)
    # Hopper with random linear weights falls early: the masking of finished rows is exercised
    assert result.lengths.min() < max_steps
    assert torch.equal(result.fitness, result.returns.mean(1))
