"""policy.context_unit: a reward-latched context input that learns c <- clip(c + eta * r * sign(c), -1, 1)."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import plasticrl
from plasticrl.agents import LinearPolicy, make_policy, parse_policy_config
from plasticrl.agents.base import context_update
from plasticrl.agents.state import EpisodeState, map_tree
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts.loop import rollout
from plasticrl.rollouts.saved_agent import frozen_policy_config, has_plasticity, save_agent

OBS, ACT = 4, 2
CONTEXT = {"enabled": True, "eta": 0.5, "initial": 1.0}


def test_update_against_hand_values_crosses_zero_and_saturates():
    c = torch.tensor([1.0], dtype=torch.float64)
    seen = []
    for r in [2.0, -1.0, -3.0, 0.5, -1.0]:
        c = context_update(c, torch.tensor([r], dtype=torch.float64), 0.5)
        seen.append(float(c))
    # 1 + 1 -> 1 (clip); 1 - 0.5; 0.5 - 1.5 = -1; sign -1: -1 - 0.25 -> -1 (clip); -1 + 0.5 = -0.5
    assert seen == [1.0, 0.5, -1.0, -1.0, -0.5]
    # sign(0) = +1: a belief at exactly 0 moves up with positive reward, down with negative
    zero = torch.zeros(2, dtype=torch.float64)
    np.testing.assert_array_equal(context_update(zero, torch.tensor([1.0, -1.0], dtype=torch.float64), 0.25).numpy(),
                                  [0.25, -0.25])


def test_jump_crossing_sets_the_full_value_of_the_new_sign():
    c = torch.tensor([0.2], dtype=torch.float64)
    seen = []
    for r in [-1.0, -1.0, -2.0, 1.0, -0.5]:
        c = context_update(c, torch.tensor([r], dtype=torch.float64), 0.5, jump=True)
        seen.append(float(c))
    # 0.2 - 0.5 crosses: -1; -1 + 0.5 = -0.5; -0.5 + 1 crosses: +1; 1 (clip); 1 - 0.25
    assert seen == [-1.0, -0.5, 1.0, 1.0, 0.75]
    # landing exactly on 0 from above is no crossing (sign(0) = +1); from below it is
    np.testing.assert_array_equal(
        context_update(torch.tensor([0.5, -0.5], dtype=torch.float64), torch.tensor([-1.0, -1.0], dtype=torch.float64),
                       0.5, jump=True).numpy(), [0.0, 1.0])


def test_rpe_modulation_against_hand_values_and_the_baseline_restarts_at_each_episode():
    policy = LinearPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"kind": "linear", "context_unit": {
        "enabled": True, "eta": 0.5, "modulation": "rpe", "rpe_rate": 0.5, "crossing": "pass"}}, dtype="float64")
    policy.load_genome(policy.initial_genome(1), episodes_per_member=2)
    # row 0 by hand: error = r - b, c <- clip(c + 0.5 * error * sign(c)), b <- b + 0.5 * error
    # r 2: error 2, c 1 (clip), b 1; r -1: error -2, c 0, b 0; r -1: error -1, c -0.5 (sign(0) = +1), b -0.5;
    # r 1: error 1.5, c -0.5 - 0.75 -> -1 (clip), b 0.25
    expected = [(1.0, 1.0), (0.0, 0.0), (-0.5, -0.5), (-1.0, 0.25)]
    for r, (c, b) in zip([2.0, -1.0, -1.0, 1.0], expected):
        policy.act(torch.zeros(2, OBS))
        policy.learn(torch.tensor([r, 0.0], dtype=torch.float64))
        state = policy.episode_state().context
        assert (float(state.value[0]), float(state.baseline[0])) == (c, b)
        assert (float(state.value[1]), float(state.baseline[1])) == (1.0, 0.0)  # no error, no change
    policy.reset(torch.tensor([True, False]))
    state = policy.episode_state().context
    assert (float(state.value[0]), float(state.baseline[0])) == (1.0, 0.0)


def _pair(eta=0.5, initial=1.0, rows=3):
    """A linear policy with a context unit and its reference: the same network without one, reading the
    context as an explicit last observation column."""
    low, high = [-1.0] * ACT, [1.0] * ACT
    with_unit = LinearPolicy(OBS, ACT, low, high, {"kind": "linear", "context_unit": {
        "enabled": True, "eta": eta, "initial": initial}}, dtype="float64")
    reference = LinearPolicy(OBS + 1, ACT, low, high, {"kind": "linear"}, dtype="float64")
    assert with_unit.input_dim == OBS + 1 and with_unit.genome.dim == reference.genome.dim
    flat = torch.randn(1, with_unit.genome.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with_unit.load_genome(flat, episodes_per_member=rows)
    reference.load_genome(flat, episodes_per_member=rows)
    return with_unit, reference


def test_the_network_sees_the_context_as_its_last_input_and_a_reset_restores_it():
    policy, reference = _pair()
    assert policy.context_unit.crossing == "jump"
    g = np.random.default_rng(1)
    jumps = 0
    c = np.ones(3)
    for t in range(12):
        obs = torch.from_numpy(g.normal(size=(3, OBS)))
        expected = reference.act(torch.cat([obs, torch.from_numpy(c).unsqueeze(1)], dim=1))
        np.testing.assert_array_equal(policy.act(obs).numpy(), expected.numpy())
        reward = g.normal(size=3) * 2.0
        policy.learn(torch.from_numpy(reward))
        sign = np.where(c >= 0, 1.0, -1.0)
        c = np.clip(c + 0.5 * reward * sign, -1.0, 1.0)
        jumps += int((np.where(c >= 0, 1.0, -1.0) != sign).sum())
        c = np.where(np.where(c >= 0, 1.0, -1.0) != sign, -sign, c)  # the default crossing: jump
        np.testing.assert_allclose(policy.episode_state().context.value.numpy(), c, rtol=0, atol=1e-15)
        if t == 6:
            policy.reset(torch.tensor([False, True, False]))
            c[1] = 1.0
            np.testing.assert_array_equal(policy.episode_state().context.value.numpy(), c)
    assert jumps > 0  # the sequence exercised a crossing


def test_frozen_twin_keeps_the_initial_value_and_does_not_read_the_reward():
    config = parse_policy_config({"kind": "static_spiking", "hidden": [5], "context_unit": CONTEXT})
    assert has_plasticity(config)  # a static network with a learning context unit is plastic
    frozen = frozen_policy_config(config)
    assert frozen.context_unit.eta == 0.0 and frozen.context_unit.enabled
    policy = make_policy(frozen, *_spaces())
    assert not policy.uses_reward
    policy.load_genome(policy.initial_genome(2))
    for r in [-5.0, -5.0, 3.0]:
        policy.act(torch.zeros(2, OBS))
        policy.learn(torch.full((2,), r))
    np.testing.assert_array_equal(policy.episode_state().context.value.numpy(), [1.0, 1.0])
    with pytest.raises(PlasticRLError, match="no learning rate"):  # without the unit: nothing to freeze
        frozen_policy_config(parse_policy_config({"kind": "static_spiking", "hidden": [5]}))


def _spaces():
    return (gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float64),
            gym.spaces.Box(np.full(ACT, -1.0, np.float32), np.full(ACT, 1.0, np.float32)))


def test_agent_without_reward_raises_and_names_the_context_unit(tmp_path):
    config = {"kind": "static_spiking", "hidden": [5], "context_unit": CONTEXT}
    policy = make_policy(config, *_spaces())
    path = save_agent(tmp_path / "a.pt", policy, config, policy.initial_genome(1)[0], None, {"env_id": "test"})
    agent = plasticrl.load(path)
    assert agent.uses_reward
    agent.act(np.zeros(OBS))
    agent.act(np.zeros(OBS), -1.0)
    with pytest.raises(PlasticRLError, match="context_unit.enabled"):
        agent.act(np.zeros(OBS))
    assert not plasticrl.load(path, frozen=True).uses_reward


def test_episode_state_round_trip_and_mismatch():
    policy, _ = _pair()
    policy.act(torch.zeros(3, OBS))
    policy.learn(torch.tensor([-1.0, -3.0, 0.0], dtype=torch.float64))
    saved = map_tree(torch.clone, policy.episode_state().context)
    policy.learn(torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64))
    policy.set_episode_state(EpisodeState(None, None, saved))
    np.testing.assert_array_equal(policy.episode_state().context.value.numpy(), saved.value.numpy())
    with pytest.raises(PlasticRLError, match="needs the unit's value 'context'"):
        policy.set_episode_state(EpisodeState(None, None))
    plain = LinearPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, {"kind": "linear"})
    with pytest.raises(PlasticRLError, match="has no context unit"):
        plain.set_episode_state(EpisodeState(None, None, saved))


@pytest.mark.parametrize("bad, field", [({"enabled": True, "initial": 1.5}, "initial"),
                                         ({"enabled": True, "eta": -0.1}, "eta"),
                                         ({"enabled": True, "rate": 0.1}, "rate")])
def test_config_rejects_bad_values_naming_the_field(bad, field):
    with pytest.raises(PlasticRLError, match=field):
        parse_policy_config({"kind": "linear", "context_unit": bad})


@pytest.mark.parametrize("kernel", ["torch", "fused"])
def test_rollout_equals_a_python_loop_on_a_flip_task(kernel):
    """The rollout loop (compiled bookkeeping; a fused policy with a context unit takes act/learn from
    Python) against act/learn called by hand, on HalfCheetahDir with an early flip."""
    if kernel == "fused":
        pytest.importorskip("numba")
    config = parse_policy_config({"kind": "plastic_spiking", "hidden": [6], "kernel": kernel,
                                  "plasticity": {"rule": "bcm", "modulation": "rpe"},
                                  "context_unit": {"enabled": True, "eta": 0.2}})
    kwargs = {"direction": 1, "switch_step": 5}
    env = make_vec("HalfCheetahDir-v5", 4, num_threads=1, **kwargs)
    policy = make_policy(config, env.single_observation_space, env.single_action_space, dtype="float64")
    assert policy.kernel_step(np.zeros((4, policy.input_dim)), np.zeros((4, ACT * 3)), np.zeros(4)) is None
    genome = policy.initial_genome(2) + 0.3 * torch.randn(2, policy.genome.dim, generator=torch.Generator().manual_seed(3),
                                                          dtype=torch.float64)
    result = rollout(policy, env, genome, episodes_per_member=2, max_steps=30, seed=7)
    contexts = policy.episode_state().context.value.clone()

    env2 = make_vec("HalfCheetahDir-v5", 4, num_threads=1, **kwargs)
    policy.load_genome(genome, 2, seeds=7)
    obs, _ = env2.reset(seed=7)
    returns = np.zeros(4)
    for _ in range(30):
        actions = policy.act(torch.from_numpy(obs)).numpy()
        obs, reward, *_ = env2.step(actions)
        returns += reward
        policy.learn(torch.from_numpy(np.asarray(reward, dtype=np.float64)))
    np.testing.assert_array_equal(result.returns.reshape(-1).numpy(), returns)
    np.testing.assert_array_equal(policy.episode_state().context.value.numpy(), contexts.numpy())
    assert (contexts < 1.0).any()  # the flip's negative reward moved some beliefs


def test_recurrent_ppo_snapshots_replay_the_same_actions_with_an_rpe_context_unit():
    """Recurrent PPO stores the episode state at a sequence start (snapshot) and replays from it (restore):
    the context unit's value and baseline travel with it."""
    from plasticrl.agents import PlasticSpikingPolicy
    from plasticrl.trainers.ppo.state_tree import restore, snapshot, stack

    cfg = {"kind": "plastic_spiking", "hidden": [8], "zero_output_init": False, "kernel": "torch",
           "plasticity": {"rule": "oja", "modulation": "reward"},
           "context_unit": {"enabled": True, "eta": 0.3, "modulation": "rpe", "rpe_rate": 0.1}}
    policy = PlasticSpikingPolicy(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, dtype="float64")
    g = torch.Generator().manual_seed(2)
    policy.load_genome(policy.initial_genome(3) + 0.3 * torch.randn(3, policy.genome.dim, generator=g,
                                                                     dtype=torch.float64))
    def run(steps: int) -> torch.Tensor:
        """Act and learn for ``steps`` control steps of a seeded stream; the actions."""
        inputs = torch.Generator().manual_seed(steps)
        actions = []
        for _ in range(steps):
            actions.append(policy.act(torch.randn(3, OBS, generator=inputs, dtype=torch.float64)))
            policy.learn(3.0 * torch.randn(3, generator=inputs, dtype=torch.float64))
        return torch.stack(actions)

    run(5)
    saved = snapshot(policy.episode_state())
    assert saved.context.baseline is not None and not torch.equal(saved.context.value, torch.ones(3, dtype=torch.float64))
    first = run(6)
    policy.reset()
    policy.set_episode_state(restore(saved, None))
    assert torch.equal(run(6), first)
    assert stack([saved, saved]).context.value.shape == (2, 3)  # the PPO buffer stacks it like any leaf
