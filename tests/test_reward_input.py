"""policy.reward_input: the previous step's reward as one more input, for every policy kind."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import plasticrl
from plasticrl.agents import LinearPolicy, PlasticSpikingPolicy, make_policy, parse_policy_config
from plasticrl.agents.state import EpisodeState
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.loop import rollout
from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer
from plasticrl.rollouts.saved_agent import save_agent
from plasticrl.trainers.ppo.state_tree import restore, snapshot

OBS, ACT = 5, 2


def _spaces(obs_dim=OBS, low=(-1.0, -2.0), high=(3.0, 2.0)):
    return (gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64),
            gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32)))


def _reward_reader(scale, w, rows):
    """A linear policy whose only non-zero weight reads the reward column (output 0)."""
    low, high = [-1.0, -2.0], [3.0, 2.0]
    policy = LinearPolicy(OBS, ACT, low, high, {"kind": "linear", "reward_input": True,
                                                "reward_input_scale": scale}, dtype="float64")
    flat = torch.zeros(1, policy.genome.dim, dtype=torch.float64)
    weights = policy.genome.unflatten(flat)["layers.0.w"]  # a view of flat: [1, ACT, OBS + 1]
    weights[0, 0, OBS] = w
    policy.load_genome(flat, episodes_per_member=rows)
    return policy, flat


def _expected(w, scale, reward):
    # output 0 squashed into [-1, 3]: mid 1, half-range 2; output 1 stays at its mid 0
    first = 1.0 + 2.0 * np.tanh(w * scale * np.asarray(reward, dtype=np.float64))
    return np.stack([first, np.zeros_like(first)], axis=1)


def test_linear_policy_sees_the_scaled_previous_reward_zero_at_episode_start():
    w, scale = 0.8, 0.5
    policy, flat = _reward_reader(scale, w, rows=3)
    g = torch.Generator().manual_seed(0)
    obs = lambda: 10.0 * torch.randn(3, OBS, generator=g, dtype=torch.float64)  # noqa: E731 - read by no weight
    np.testing.assert_array_equal(policy.act(obs()).numpy(), _expected(w, scale, [0.0, 0.0, 0.0]))
    rewards = [1.5, -2.0, 0.25]
    policy.learn(torch.tensor(rewards, dtype=torch.float64))
    np.testing.assert_allclose(policy.act(obs()).numpy(), _expected(w, scale, rewards), rtol=0, atol=1e-15)
    # acting again without learning keeps the stored reward
    np.testing.assert_allclose(policy.act(obs()).numpy(), _expected(w, scale, rewards), rtol=0, atol=1e-15)
    policy.reset(torch.tensor([False, True, False]))  # only row 1 starts a new episode
    np.testing.assert_allclose(policy.act(obs()).numpy(), _expected(w, scale, [1.5, 0.0, 0.25]), rtol=0, atol=1e-15)
    policy.learn(torch.tensor([-1.0, 4.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(policy.act(obs()).numpy(), _expected(w, scale, [-1.0, 4.0, 0.0]), rtol=0, atol=1e-15)
    policy.load_genome(flat, episodes_per_member=3)  # a fresh start for every row
    np.testing.assert_array_equal(policy.act(obs()).numpy(), _expected(w, scale, [0.0, 0.0, 0.0]))


def test_reward_input_off_reads_no_reward_and_the_genome_is_unchanged():
    plain = LinearPolicy(OBS, ACT, [-1.0, -1.0], [1.0, 1.0])
    assert plain.input_dim == OBS and plain.genome.dim == (OBS + 1) * ACT
    plain.load_genome(torch.ones(1, plain.genome.dim))
    x = torch.ones(1, OBS)
    before = plain.act(x)
    plain.learn(torch.tensor([100.0]))
    assert torch.equal(plain.act(x), before)
    assert plain.episode_state() == EpisodeState(network=None, previous_reward=None)


@pytest.mark.parametrize("config, extra", [
    ({"kind": "linear"}, ACT),                                          # one more column of W
    ({"kind": "mlp", "hidden": [7, 5]}, 7),                              # one more column of W_0
    # encoder gain and bias, a column of W_0 (12) and of its per-synapse learning rates (12)
    ({"kind": "plastic_spiking", "hidden": [12], "plasticity": {"rule": "bcm", "modulation": "reward"}}, 26),
    # ... and of A, B, C, D: 2 + 12 + 5 * 12
    ({"kind": "plastic_spiking", "hidden": [12], "plasticity": {"rule": "hebbian_abcd"}}, 74),
    # the layer's modulatory neuron reads one more input: 26 + 1
    ({"kind": "plastic_spiking", "hidden": [12], "plasticity": {"rule": "oja", "modulation": "neurons"}}, 27),
    # population coding: 3 centres per input, so 3 x (gain + bias + 12 weights + 12 learning rates)
    ({"kind": "plastic_spiking", "hidden": [12], "encoder": {"kind": "population", "centres": 3}}, 78),
    # static recurrent twin: gain, bias and a column of W_0; the recurrent weights keep their size
    ({"kind": "static_spiking", "hidden": [12], "recurrent": True}, 14),
])
def test_genome_grows_by_one_input_column(config, extra):
    obs_space, act_space = _spaces()
    plain = make_policy(config, obs_space, act_space)
    with_reward = make_policy({**config, "reward_input": True}, obs_space, act_space)
    assert with_reward.input_dim == plain.input_dim + 1 == OBS + 1
    assert with_reward.obs_dim == OBS  # what the env gives and the normaliser sees
    assert with_reward.genome.dim - plain.genome.dim == extra
    shapes = {g.name: g.shape for g in with_reward.genome.groups}
    fan_in = shapes["layers.0.w"][1]
    assert fan_in == plain.genome.groups[[g.name for g in plain.genome.groups].index("layers.0.w")].shape[1] + \
        (3 if config.get("encoder") else 1)


def test_config_rejects_a_non_finite_scale_and_unknown_keys():
    with pytest.raises(PlasticRLError, match="reward_input_scale"):
        parse_policy_config({"kind": "linear", "reward_input": True, "reward_input_scale": float("inf")})
    with pytest.raises(PlasticRLError, match="reward_inputs"):
        parse_policy_config({"kind": "mlp", "reward_inputs": True})


def test_episode_state_round_trip_keeps_the_stored_reward():
    # the recurrent static spiking network with reward input: the memory-based baseline
    cfg = {"kind": "static_spiking", "hidden": [10], "recurrent": True, "reward_input": True,
           "reward_input_scale": 2.0, "zero_output_init": False}
    policy = PlasticSpikingPolicy(OBS, ACT, [-1.0, -1.0], [1.0, 1.0], cfg, dtype="float64")
    g = torch.Generator().manual_seed(1)
    flat = policy.initial_genome(3) + 0.3 * torch.randn(3, policy.genome.dim, generator=g, dtype=torch.float64)
    policy.load_genome(flat)
    stream = [(torch.randn(3, OBS, generator=g, dtype=torch.float64), 5.0 * torch.randn(3, generator=g,
                                                                                         dtype=torch.float64))
              for _ in range(12)]
    for obs, reward in stream[:6]:
        policy.act(obs)
        policy.learn(reward)
    saved = snapshot(policy.episode_state())  # as recurrent PPO stores it at a sequence start
    assert torch.equal(saved.previous_reward, stream[5][1])
    first = []
    for obs, reward in stream[6:]:
        first.append(policy.act(obs))
        policy.learn(reward)
    policy.reset()  # wipes everything, the stored reward included
    assert torch.equal(policy.episode_state().previous_reward, torch.zeros(3, dtype=torch.float64))
    policy.set_episode_state(restore(saved, None))
    again = []
    for obs, reward in stream[6:]:
        again.append(policy.act(obs))
        policy.learn(reward)
    assert torch.equal(torch.stack(first), torch.stack(again))
    # the stored reward matters: replaying with it zeroed gives other actions
    policy.set_episode_state(saved._replace(previous_reward=torch.zeros(3, dtype=torch.float64)))
    assert not torch.equal(policy.act(stream[6][0]), first[0])
    with pytest.raises(PlasticRLError, match="previous_reward"):
        policy.set_episode_state(saved._replace(previous_reward=None))


def test_detach_state_cuts_the_graph_of_the_stored_reward():
    policy = LinearPolicy(OBS, ACT, [-1.0, -1.0], [1.0, 1.0], {"kind": "linear", "reward_input": True})
    policy.load_genome(torch.ones(1, policy.genome.dim))
    signal = torch.tensor([2.0], requires_grad=True)
    policy.learn(signal * 1.0)
    policy.detach_state()
    assert not policy.episode_state().previous_reward.requires_grad
    assert policy.episode_state().previous_reward.item() == 2.0


def test_reward_shape_is_checked_for_every_kind():
    policy = LinearPolicy(OBS, ACT, [-1.0, -1.0], [1.0, 1.0])
    with pytest.raises(PlasticRLError, match="no genome loaded"):
        policy.learn(torch.zeros(1))
    policy.load_genome(policy.initial_genome(2))
    with pytest.raises(PlasticRLError, match=r"reward has 3 entries; expected one per row \(N=2\)"):
        policy.learn(torch.zeros(3))


# -- deployed agents ---------------------------------------------------------------------------

def _agent_file(path, config, obs_norm=None, seed=0, genome=None, obs_dim=OBS):
    obs_space, act_space = _spaces(obs_dim)
    policy = make_policy(config, obs_space, act_space)
    if genome is None:
        g = torch.Generator().manual_seed(seed)
        genome = policy.initial_genome(1)[0] + 0.5 * torch.randn(policy.genome.dim, generator=g)
    return save_agent(path, policy, config, genome, obs_norm, {"env_id": "test"})


USES_REWARD = {
    "reward_modulated": {"kind": "plastic_spiking", "hidden": [6], "plasticity": {"rule": "bcm", "modulation": "reward"}},
    "rpe": {"kind": "plastic_spiking", "hidden": [6], "plasticity": {"rule": "oja", "modulation": "rpe"}},
    # the modulatory neurons read [activity, reward]
    "neurons": {"kind": "plastic_spiking", "hidden": [6], "plasticity": {"rule": "oja", "modulation": "neurons"}},
    "linear_reward_input": {"kind": "linear", "reward_input": True},
    "static_reward_input": {"kind": "static_spiking", "hidden": [6], "reward_input": True},
}
IGNORES_REWARD = {
    "linear": {"kind": "linear"},
    "mlp": {"kind": "mlp", "hidden": [4]},
    "static_spiking": {"kind": "static_spiking", "hidden": [6], "zero_output_init": False},
    "unmodulated": {"kind": "plastic_spiking", "hidden": [6], "zero_output_init": False,
                    "plasticity": {"rule": "hebbian_abcd", "modulation": "none"}},
    "csdp_only": {"kind": "plastic_spiking", "hidden": [6], "zero_output_init": False, "plasticity": {"rule": "none"},
                  "input_plasticity": {"rule": "csdp"}},
}


@pytest.mark.parametrize("name", sorted(USES_REWARD))
def test_agent_without_reward_after_the_first_step_raises_when_it_uses_the_reward(tmp_path, name):
    agent = plasticrl.load(_agent_file(tmp_path / "a.pt", USES_REWARD[name]))
    assert agent.uses_reward
    obs = np.linspace(-1.0, 1.0, OBS)
    agent.act(obs)  # the first step has no reward yet
    agent.act(obs, 0.5)
    with pytest.raises(PlasticRLError, match=r"pass the previous step's reward, agent\.act\(obs, reward\)"):
        agent.act(obs)
    agent.reset()
    agent.act(obs)  # a new episode: no reward yet again
    agent.reset(batch_size=2)
    agent.act(np.stack([obs, obs]))
    with pytest.raises(PlasticRLError, match="reward_input|modulation"):
        agent.act(np.stack([obs, obs]))


@pytest.mark.parametrize("name", sorted(IGNORES_REWARD))
def test_agent_that_ignores_the_reward_accepts_none_and_still_learns(tmp_path, name):
    path = _agent_file(tmp_path / "a.pt", IGNORES_REWARD[name])
    without, with_zero = plasticrl.load(path), plasticrl.load(path)
    assert not without.uses_reward
    g = np.random.default_rng(0)
    for t in range(8):
        obs = g.normal(size=OBS)
        a = without.act(obs)
        b = with_zero.act(obs, None if t == 0 else 0.0)
        np.testing.assert_array_equal(a, b)
    if name in ("unmodulated", "csdp_only"):  # the plastic ones did learn on the steps without a reward
        moved = [not torch.equal(w, w0) for w, w0 in zip(without.policy.fast_weights,
                                                          without.policy.initial_weights)]
        assert any(moved)


def test_agent_reward_column_is_not_normalised(tmp_path):
    # weights read only the reward column; the normaliser's statistics would move it if it were normalised
    config = {"kind": "linear", "reward_input": True, "reward_input_scale": 0.5}
    obs_space, act_space = _spaces()
    probe = make_policy(config, obs_space, act_space)
    genome = torch.zeros(probe.genome.dim)
    genome[OBS] = 0.8  # layers.0.w[0, OBS]: output 0 reads the reward
    norm = ObsNormalizer(OBS)
    rows = torch.tensor([[3.0] * OBS, [7.0] * OBS], dtype=torch.float64)
    norm.update(ObsBatchMoments(2.0, rows.sum(0), (rows * rows).sum(0)))  # mean 5, std 2
    agent = plasticrl.load(_agent_file(tmp_path / "a.pt", config, obs_norm=norm, genome=genome))
    obs = np.full(OBS, 9.0)
    np.testing.assert_allclose(agent.act(obs), _expected(0.8, 0.5, [0.0])[0], atol=1e-6)
    np.testing.assert_allclose(agent.act(obs, 1.7), _expected(0.8, 0.5, [1.7])[0], atol=1e-6)


@pytest.mark.parametrize("config", [
    {"kind": "linear", "reward_input": True, "reward_input_scale": 0.1},
    {"kind": "static_spiking", "hidden": [8], "recurrent": True, "reward_input": True, "reward_input_scale": 0.1,
     "zero_output_init": False},
])
def test_saved_agent_with_reward_input_reproduces_its_rollout_returns(tmp_path, config):
    env_id, rows, seed = "Hopper-v5", 3, 11
    env = make_vec(env_id, rows, max_episode_steps=40)
    policy = make_policy(config, env.single_observation_space, env.single_action_space)
    g = torch.Generator().manual_seed(0)
    genome = policy.initial_genome(rows) + 0.5 * torch.randn(rows, policy.genome.dim, generator=g)
    norm = ObsNormalizer(policy.obs_dim)
    sample = torch.randn(16, policy.obs_dim, generator=g, dtype=torch.float64)
    norm.update(ObsBatchMoments(16.0, sample.sum(0), (sample * sample).sum(0)))
    original = rollout(policy, env, genome, 1, seed=seed, obs_norm=norm)
    for p in range(rows):
        path = save_agent(tmp_path / f"a{p}.pt", policy, config, genome[p], norm, {"env_id": env_id})
        agent = plasticrl.load(path)
        assert agent.policy.reward_input and agent.policy.reward_input_scale == config["reward_input_scale"]
        reloaded = rollout(agent.policy, make_vec(env_id, 1, max_episode_steps=40), agent.genome.unsqueeze(0), 1,
                           seed=seed + p, obs_norm=agent.obs_norm)
        assert torch.equal(reloaded.returns[0], original.returns[p])
        # and driven step by step through Agent.act in a plain Gymnasium env
        single = gym.make(env_id, max_episode_steps=40)
        obs, _ = single.reset(seed=seed + p)
        agent.reset()
        total, reward, done = 0.0, None, False
        while not done:
            obs, reward, terminated, truncated, _ = single.step(agent.act(obs, reward))
            total += reward
            done = terminated or truncated
        assert total == pytest.approx(float(original.returns[p, 0]), abs=1e-6)
