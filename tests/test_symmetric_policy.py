"""kind: symmetric: a base policy steered by Ant's quarter turns, its heading observed or learned from the reward."""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import plasticrl
import plasticrl.envs  # noqa: F401  (registers plasticrl/AntDir-v5)
from plasticrl.agents import make_policy, parse_policy_config
from plasticrl.agents.symmetric import choose_heading, goal_synapse_step
from plasticrl.envs.symmetry import ant_quarter_turns
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.saved_agent import frozen_policy_config, has_plasticity
from plasticrl.rollouts.symmetric_agent import write_symmetric_agent

OBS, ACT = 105, 8


def _spaces(obs_dim):
    return (gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64),
            gym.spaces.Box(-np.ones(ACT, np.float32), np.ones(ACT, np.float32)))


def _symmetric(goal, base=None, norm=None):
    config = {"kind": "symmetric", "goal": goal, "base": base or {"kind": "linear"}, "base_obs_norm": norm}
    obs_dim = OBS + (2 if goal.get("source") == "observed" else 0)
    return make_policy(config, *_spaces(obs_dim), dtype="float64"), obs_dim


def test_goal_synapses_and_heading_choice_against_hand_values():
    # x = (1, 0, 1), |x|^2 = 2, error 2 - 0 = 2: w + 0.5 * 2 / 2 * x = (0.5, 0, 0.5)
    w = goal_synapse_step(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[1.0, 0.0]], dtype=torch.float64),
                          torch.tensor([2.0], dtype=torch.float64), 0.5)
    assert w.tolist() == [[0.5, 0.0, 0.5]]
    # then r = 0.5 with v = (0, 2): x = (0, 2, 1), prediction 0.5, error 0: no change
    same = goal_synapse_step(w, torch.tensor([[0.0, 2.0]], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                             0.5)
    assert same.tolist() == w.tolist()
    weights = torch.tensor([[-1.0, 0.2, 0.0], [0.0, 0.05, 0.0], [0.0, 0.3, 0.0]], dtype=torch.float64)
    # scores (g . u_k) row 0: -1, 0.2, 1, -0.2 -> heading 2; row 1: best 1 by 0.05 < margin 0.1 -> stays 0;
    # row 2: best 1 by 0.3 -> 1
    assert choose_heading(weights, torch.zeros(3, dtype=torch.int64), 0.1).tolist() == [2, 0, 1]


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_observed_heading_runs_the_base_on_the_turned_observation_and_turns_its_action(k):
    norm = {"mean": np.linspace(-1, 1, OBS).tolist(), "std": np.linspace(0.5, 2, OBS).tolist(), "clip": 3.0}
    policy, obs_dim = _symmetric({"source": "observed"}, norm=norm)
    base = make_policy({"kind": "linear"}, *_spaces(OBS), dtype="float64")
    genome = torch.randn(2, base.genome.dim, generator=torch.Generator().manual_seed(k), dtype=torch.float64) * 0.1
    policy.load_genome(genome)
    base.load_genome(genome)
    rng = np.random.default_rng(k)
    raw = torch.as_tensor(rng.normal(size=(2, OBS)))
    angle = k * math.pi / 2 + np.array([0.2, -0.3])  # the nearest quarter turn is k
    obs = torch.cat([raw, torch.as_tensor(np.stack([np.cos(angle), np.sin(angle)], axis=1))], dim=1)
    group = ant_quarter_turns()
    turned = raw @ torch.as_tensor(group.obs_turn(-k)).T
    mean, std = torch.tensor(norm["mean"], dtype=torch.float64), torch.tensor(norm["std"], dtype=torch.float64)
    expected = base.act(((turned - mean) / std).clamp(-3, 3))
    expected = expected @ torch.as_tensor(group.action_turn(k)).T
    np.testing.assert_allclose(policy.act(obs).numpy(), expected.numpy(), atol=1e-12)
    assert policy.episode_state().network.heading.tolist() == [k, k]


def test_inferred_heading_learns_the_goal_from_the_reward_and_reset_restores_only_masked_rows():
    policy, _ = _symmetric({"source": "inferred", "eta": 1.0, "margin": 0.1})
    policy.load_genome(policy.initial_genome(1), episodes_per_member=2)
    obs = torch.zeros(2, OBS, dtype=torch.float64)
    obs[:, 13:15] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both walk +x
    policy.act(obs)
    # row 0 is paid for -x (reward -1 per unit of x velocity), row 1 for +x
    policy.learn(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    policy.act(obs)
    state = policy.episode_state().network
    # eta 1: w = error / |x|^2 * x = r / 2 * (1, 0, 1)
    np.testing.assert_allclose(state.goal_weights.numpy(), [[-0.5, 0, -0.5], [0.5, 0, 0.5]])
    assert state.heading.tolist() == [2, 0]
    policy.reset(torch.tensor([True, False]))
    state = policy.episode_state().network
    assert state.heading.tolist() == [0, 0] and state.goal_weights[0].abs().sum() == 0
    assert state.goal_weights[1].tolist() == [0.5, 0, 0.5]
    # the first act after a reset has no reward to learn from
    policy.act(obs)
    assert policy.episode_state().network.goal_weights[0].abs().sum() == 0


def test_shipped_zero_shot_oracle_at_heading_zero_acts_as_the_walker_it_wraps():
    walker, oracle = plasticrl.load("pretrained:ant-plastic"), plasticrl.load("pretrained:ant-dir-oracle-zero-shot")
    env = gym.make("plasticrl/AntDir-v5", directions=4, direction=0, goal_observed=True)
    obs, _ = env.reset(seed=7)
    walker.reset(seed=7)
    oracle.reset(seed=7)
    reward = None
    for _ in range(50):
        expected = walker.act(obs[:-2], reward)  # the walker's own normaliser, outside the policy
        action = oracle.act(obs, reward)  # the same statistics, inside, after the (identity) turn
        np.testing.assert_allclose(action, expected, atol=1e-4)
        obs, reward, *_ = env.step(action)


@pytest.mark.parametrize("direction", [1, 2, 3])
def test_shipped_plastic_agent_finds_the_goal_its_frozen_twin_does_not(direction):
    env = gym.make("plasticrl/AntDir-v5", directions=4, direction=direction)
    for frozen, expected in ((False, direction), (True, 0)):
        agent = plasticrl.load("pretrained:ant-dir-plastic", frozen=frozen)
        obs, _ = env.reset(seed=11)
        agent.reset(seed=11)
        reward = None
        for _ in range(150):
            obs, reward, *_ = env.step(agent.act(obs, reward))
        assert agent.policy.episode_state().network.heading.tolist() == [expected]


def test_frozen_twin_freezes_the_goal_synapses_and_the_base_and_the_agent_needs_the_reward(tmp_path):
    config = parse_policy_config({"kind": "symmetric", "goal": {"source": "inferred", "eta": 0.3},
                                  "base": {"kind": "plastic_spiking", "hidden": [4]}})
    assert has_plasticity(config)
    frozen = frozen_policy_config(config)
    assert frozen.goal.eta == 0 and frozen.base.plasticity.eta_scale == 0
    oracle = parse_policy_config({"kind": "symmetric", "goal": {"source": "observed"}, "base": {"kind": "linear"}})
    with pytest.raises(PlasticRLError, match="no learning rate"):
        frozen_policy_config(oracle)
    agent = plasticrl.load("pretrained:ant-dir-plastic")
    agent.reset()
    agent.act(np.zeros(OBS))
    with pytest.raises(PlasticRLError, match="goal.source: inferred"):
        agent.act(np.zeros(OBS))


def test_bad_symmetric_setups_get_one_line_naming_the_value(tmp_path):
    with pytest.raises(PlasticRLError, match="goal.initial_heading=5"):
        parse_policy_config({"kind": "symmetric", "goal": {"initial_heading": 5}})
    with pytest.raises(PlasticRLError, match="unknown symmetry 'hexapod'"):
        parse_policy_config({"kind": "symmetric", "symmetry": "hexapod"})
    with pytest.raises(PlasticRLError, match="has 103 \\(the task's 105 less the goal's two columns"):
        make_policy({"kind": "symmetric", "goal": {"source": "observed"}, "base": {"kind": "linear"}}, *_spaces(OBS))
    with pytest.raises(PlasticRLError, match="base_obs_norm has 3 entries"):
        _symmetric({"source": "inferred"}, norm={"mean": [0, 0, 0], "std": [1, 1, 1]})
    with pytest.raises(PlasticRLError, match="observation has 17"):
        make_policy({"kind": "symmetric", "base": {"kind": "linear"}}, *_spaces(17))
    target = tmp_path / "x.pt"
    write_symmetric_agent(target, "pretrained:ant-plastic", {"source": "inferred"})
    with pytest.raises(PlasticRLError, match="already a symmetric agent"):
        write_symmetric_agent(tmp_path / "y.pt", target, {"source": "inferred"})
    with pytest.raises(PlasticRLError, match="goal.eta"):
        write_symmetric_agent(tmp_path / "z.pt", "pretrained:ant-plastic", {"eta": -1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]


def _ant_dir_config(**train):
    from plasticrl.config import config_from_dict

    return config_from_dict({
        "name": "sym", "env": {"id": "AntDir-v5", "kwargs": {"directions": 4, "direction": 0, "switch_step": 10},
                               "max_episode_steps": 20},
        "policy": {"kind": "symmetric", "goal": {"source": "inferred", "eta": 0.1}},
        "es": {"algorithm": "pgpe", "params": {"population_size": 2}},
        "train": {"generations": 1, "eval_every": 1, "eval_episodes": 1, "obs_norm": False,
                  "init_agent": "pretrained:ant-plastic", **train},
        "logging": {"wandb": {"mode": "disabled"}}}, "test config")


def test_training_takes_the_base_and_its_statistics_from_the_init_agent(tmp_path):
    from plasticrl.rollouts.env_setup import with_policy_base

    walker = plasticrl.load("pretrained:ant-plastic")
    config = with_policy_base(_ant_dir_config())
    assert config.policy.base == walker.policy_config
    np.testing.assert_array_equal(config.policy.base_obs_norm.mean, walker.obs_norm.mean.numpy())
    np.testing.assert_array_equal(config.policy.base_obs_norm.std, walker.obs_norm.std.numpy())
    # a symmetric agent to start from gives its own base; a filled config comes back as it is
    again = with_policy_base(_ant_dir_config(init_agent="pretrained:ant-dir-plastic"))
    assert again.policy.base == config.policy.base and with_policy_base(config) is config
    result = plasticrl.train(_ant_dir_config(), out=tmp_path)
    saved = plasticrl.load(result.run_dir / "final_agent.pt")
    assert saved.policy_config.kind == "symmetric" and saved.obs_norm is None
    assert saved.policy_config.base_obs_norm == config.policy.base_obs_norm


@pytest.mark.parametrize("train, message", [
    ({"obs_norm": True}, "set train.obs_norm: false"),
    ({"init_agent": None}, "give one of them"),
])
def test_symmetric_training_configs_refused_in_one_line(train, message):
    with pytest.raises(PlasticRLError, match=message):
        _ant_dir_config(**train)


def test_recurrent_heading_network_against_hand_weights_and_its_genome_follows_the_base():
    policy, _ = _symmetric({"source": "recurrent", "hidden": 1, "margin": 0.1})
    base_dim = policy.base.genome.dim
    assert policy.genome.dim == base_dim + 3 + 1 + 1 + 4  # w_in [1, 3], w_rec [1, 1], b [1], w_out [4, 1]
    assert policy.genome.names[-4:] == ["goal.w_in", "goal.w_rec", "goal.b", "goal.w_out"]
    # h = tanh(-10 r); heading 2 scores h, the others 0: a negative reward turns the row round
    goal = {"goal.w_in": torch.tensor([[[0.0, 0.0, -10.0]]]), "goal.w_rec": torch.zeros(1, 1, 1),
            "goal.b": torch.zeros(1, 1), "goal.w_out": torch.tensor([[[0.0], [0.0], [1.0], [0.0]]])}
    named = {**policy.genome.unflatten(policy.initial_genome(1).double()), **goal}
    flat = policy.genome.flatten({k: v.double() for k, v in named.items()})
    policy.load_genome(flat, episodes_per_member=2)
    obs = torch.zeros(2, OBS, dtype=torch.float64)
    policy.act(obs)
    assert policy.episode_state().network.heading.tolist() == [0, 0]  # no reward yet: h = 0
    policy.learn(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    policy.act(obs)
    state = policy.episode_state().network
    np.testing.assert_allclose(state.memory[:, 0].numpy(), np.tanh([10.0, -10.0]))
    assert state.heading.tolist() == [2, 0] and policy.uses_reward
    # the base acts on the base's columns of the genome: the same actions as the base alone
    base = make_policy({"kind": "linear"}, *_spaces(OBS), dtype="float64")
    base.load_genome(flat[:, :base_dim], episodes_per_member=2)
    np.testing.assert_array_equal(policy.base.act(obs).numpy(), base.act(obs).numpy())


def test_a_recurrent_twin_starts_from_the_walker_with_its_heading_network_at_the_initial_values():
    from plasticrl.agents import make_policy as build
    from plasticrl.envs import make_vec
    from plasticrl.rollouts.env_setup import load_initial_agent, with_policy_base

    config = with_policy_base(_ant_dir_config().model_copy(update={"policy": parse_policy_config(
        {"kind": "symmetric", "goal": {"source": "recurrent", "hidden": 4}})}))
    env = make_vec("AntDir-v5", 1, directions=4)
    policy = build(config.policy, env.single_observation_space, env.single_action_space)
    genome, _ = load_initial_agent(config, policy)
    walker = plasticrl.load("pretrained:ant-plastic")
    base_dim = walker.genome.numel()
    assert genome.numel() == policy.genome.dim == base_dim + 4 * 3 + 16 + 4 + 16
    np.testing.assert_array_equal(genome[:base_dim].numpy(), walker.genome.numpy())
    np.testing.assert_array_equal(genome[base_dim:].numpy(), policy.initial_genome(1)[0, base_dim:].double().numpy())


def test_the_symmetric_experiment_trains_its_three_headings_and_compares_them(tmp_path, monkeypatch):
    """configs/experiments/adaptation_ant_symmetric.yaml, shrunk to a generation of two members on short
    episodes: each agent's base comes from the walker, and the report compares them with the oracle."""
    import json
    from pathlib import Path

    from plasticrl.experiments.comparison import load_spec, run_experiment

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    tiny = ["train.generations=1", "train.eval_every=1", "train.eval_episodes=1", "es.params={population_size: 2}",
            "env.max_episode_steps=60"]
    overrides = [f"agents.plastic.overrides={tiny}", f"agents.recurrent.overrides={tiny}",
                 f"agents.oracle.overrides={['policy.goal.source=observed', 'env.kwargs.goal_observed=true', *tiny]}",
                 "env.kwargs.switch_step=[20, 40]", "eval.episodes=2", "wandb_mode=disabled"]
    run_experiment(load_spec("configs/experiments/adaptation_ant_symmetric.yaml", overrides), out=tmp_path,
                   log=lambda _: None)
    kinds = {}
    for label in ("plastic", "recurrent", "oracle"):
        (agent_file,) = tmp_path.glob(f"{label}/**/best_agent.pt")
        agent = plasticrl.load(agent_file)
        kinds[label] = agent.policy_config.goal.source
        assert agent.policy_config.base.hidden == [64] and agent.obs_norm is None
    assert kinds == {"plastic": "inferred", "recurrent": "recurrent", "oracle": "observed"}
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    entries = {e["agent"]: e for e in result["goal_adaptation"]}
    assert result["oracle"] == "oracle" and entries["oracle"]["is_oracle"]
    assert entries["plastic"]["twin"] == "plastic/frozen" and "goal_term" in entries["recurrent"]
