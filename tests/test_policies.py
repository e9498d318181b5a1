"""Batched policies: per-member equivalence, masked reset, gradients, bounds and errors."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from plasticrl.agents import (
    LinearPolicy,
    MLPPolicy,
    PlasticSpikingPolicy,
    StaticSpikingPolicy,
    make_policy,
    parse_policy_config,
)
from plasticrl.errors import PlasticRLError

OBS, ACT = 6, 3
LOW, HIGH = [-1.0, -2.0, 0.0], [1.0, 2.0, 0.5]


def spiking(config=None, dtype="float64"):
    return PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {"hidden": [12], **(config or {})}, dtype=dtype)


def perturbed_genome(policy, population, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    base = policy.initial_genome(population)
    return base + scale * torch.randn(base.shape, generator=g, dtype=base.dtype)


def rollout(policy, genome, steps, episodes=1, seed=0):
    """Drive the policy with a fixed pseudo-random observation/reward stream."""
    policy.load_genome(genome, episodes_per_member=episodes)
    g = torch.Generator().manual_seed(seed)
    rows = policy.num_rows
    actions = []
    for _ in range(steps):
        obs = torch.randn(rows, OBS, generator=g, dtype=torch.float64)
        reward = torch.randn(rows, generator=g, dtype=torch.float64)
        actions.append(policy.act(obs))
        policy.learn(reward)
    return torch.stack(actions, 1)


CONFIGS = [
    {"plasticity": {"rule": "bcm", "modulation": "reward"}},
    {"plasticity": {"rule": "oja", "modulation": "rpe", "eligibility_tau": 0.05}},
    {"plasticity": {"rule": "hebbian_abcd", "modulation": "neurons", "modulator_scope": "post", "sharing": "post"}},
    {"neuron": {"model": "alif", "refractory": 0.01}, "recurrent": True, "encoder": {"spiking": True},
     "plasticity": {"rule": "hebbian_abcd", "sharing": "global",
                                                                      "bounds": "normalise"}},
    {"encoder": {"kind": "population", "centres": 3, "spiking": True, "bias": 1.0}, "decoder": {"kind": "rate"},
     "plasticity": {"rule": "bcm", "modulation": "none", "layers": "hidden"}},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_batched_policy_equals_loop_over_members(config):
    policy = spiking(config)
    genome = perturbed_genome(policy, 4)
    batched = rollout(policy, genome, 25)
    # the same stream per row, replayed member by member
    g = torch.Generator().manual_seed(0)
    stream = [(torch.randn(4, OBS, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64))
              for _ in range(25)]
    for p in range(4):
        single = spiking(config)
        single.load_genome(genome[p:p + 1])
        acts = []
        for obs, reward in stream:
            acts.append(single.act(obs[p:p + 1]))
            single.learn(reward[p:p + 1])
        assert torch.allclose(batched[p], torch.cat(acts), atol=1e-9), f"member {p} differs"


@pytest.mark.parametrize("config", CONFIGS)
def test_plasticity_changes_weights_and_static_twin_does_not(config):
    policy = spiking(config)
    rollout(policy, perturbed_genome(policy, 2), 20)
    changed = [not torch.allclose(w, w0) for w, w0 in zip(policy.fast_weights, policy.initial_weights)]
    assert any(changed)
    static = StaticSpikingPolicy(OBS, ACT, LOW, HIGH, {"hidden": [12], **config}, dtype="float64")
    assert static.plastic_layers == [] and not any("eta" in n for n in static.genome.names)
    rollout(static, perturbed_genome(static, 2), 20)
    assert all(torch.equal(w, w0) for w, w0 in zip(static.fast_weights, static.initial_weights))


def test_actions_stay_inside_bounds():
    for decoder in ("membrane", "rate"):
        policy = spiking({"decoder": {"kind": decoder}, "weight_init_gain": 50.0})
        acts = rollout(policy, perturbed_genome(policy, 8, scale=3.0), 30)
        low, high = torch.tensor(LOW, dtype=torch.float64), torch.tensor(HIGH, dtype=torch.float64)
        assert (acts >= low).all() and (acts <= high).all()
        assert acts.std() > 0


def test_reset_mask_restores_only_masked_rows():
    policy = spiking({"plasticity": {"rule": "bcm", "modulation": "rpe", "eligibility_tau": 0.1}})
    rollout(policy, perturbed_genome(policy, 3), 15, episodes=2)
    before = {k: v.clone() for k, v in enumerate(policy.fast_weights)}
    v_before = policy.live_state.hidden[0].v.clone()
    mask = torch.tensor([True, False, False, True, False, True])
    policy.reset(mask)
    for l, w in enumerate(policy.fast_weights):
        assert torch.equal(w[mask], policy.initial_weights[l][mask])
        assert torch.equal(w[~mask], before[l][~mask])
    assert (policy.live_state.hidden[0].v[mask] == 0).all()
    assert torch.equal(policy.live_state.hidden[0].v[~mask], v_before[~mask])
    assert (policy.live_state.baseline[mask] == 0).all()
    assert (policy.live_state.elig[0][mask] == 0).all()
    assert not torch.equal(before[0][0], policy.initial_weights[0][0])  # the reset rows had learned
    # a reset episode then behaves exactly like a fresh one of the same member; the others do not
    after_reset = drive(policy, 10, seed=1)
    fresh = spiking({"plasticity": {"rule": "bcm", "modulation": "rpe", "eligibility_tau": 0.1}})
    fresh.load_genome(perturbed_genome(fresh, 3), episodes_per_member=2)
    from_scratch = drive(fresh, 10, seed=1)
    assert torch.equal(after_reset[mask], from_scratch[mask])
    for row in torch.nonzero(~mask).flatten():
        assert not torch.equal(after_reset[row], from_scratch[row])


def drive(policy, steps, seed):
    """Continue a loaded policy on a fixed pseudo-random observation/reward stream."""
    g = torch.Generator().manual_seed(seed)
    actions = []
    for _ in range(steps):
        obs = torch.randn(policy.num_rows, OBS, generator=g, dtype=torch.float64)
        actions.append(policy.act(obs))
        policy.learn(torch.randn(policy.num_rows, generator=g, dtype=torch.float64))
    return torch.stack(actions, 1)


def test_episodes_per_member_share_parameters_not_state():
    policy = spiking()
    genome = perturbed_genome(policy, 2)
    acts = rollout(policy, genome, 10, episodes=3)
    assert acts.shape == (6, 10, ACT)
    # parameters: the 3 episodes of member 0 (rows 0-2) share member 0's, member 1 (rows 3-5) has its own
    for l in range(len(policy.initial_weights)):
        assert torch.equal(policy.initial_weights[l][0], policy.initial_weights[l][2])
    assert not torch.equal(policy.initial_weights[0][2], policy.initial_weights[0][3])
    # state: each episode saw its own observations and learned its own fast weights ...
    assert not torch.equal(policy.fast_weights[0][0], policy.fast_weights[0][1])
    assert not torch.equal(acts[0], acts[1])
    # ... and an episode of member 0 equals member 0 run alone on the same stream (row 1's stream)
    alone = spiking()
    alone.load_genome(genome[:1], episodes_per_member=1)
    g = torch.Generator().manual_seed(0)
    solo = []
    for _ in range(10):
        obs = torch.randn(6, OBS, generator=g, dtype=torch.float64)
        reward = torch.randn(6, generator=g, dtype=torch.float64)
        solo.append(alone.act(obs[1:2]))
        alone.learn(reward[1:2])
    assert torch.allclose(torch.cat(solo), acts[1], atol=1e-12)
    assert policy.member_invalid().shape == (2,)


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_gradients_reach_rule_coefficients_and_initial_weights_through_substeps(neuron):
    policy = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {
        "hidden": [12], "substeps": 4, "neuron": {"model": neuron},
        "plasticity": {"rule": "hebbian_abcd", "sharing": "layer", "modulation": "reward"},
    }, autograd=True)
    flat = (policy.initial_genome(2) + 0.1 * torch.randn(2, policy.genome.dim,
                                                         generator=torch.Generator().manual_seed(0)))
    flat.requires_grad_(True)
    policy.load_genome(flat)
    g = torch.Generator().manual_seed(1)
    loss = 0.0
    for _ in range(6):  # hidden traces need a few control steps before y*x is non-zero
        loss = loss + policy.act(torch.randn(2, OBS, generator=g)).pow(2).sum()
        policy.learn(torch.ones(2))
    loss.backward()
    grad = flat.grad
    assert torch.isfinite(grad).all()
    for name in ("layers.0.w", "layers.1.w", "layers.0.eta", "layers.0.A", "layers.1.D", "encoder.gain"):
        assert grad[:, policy.genome.slice_of(name)].abs().sum() > 0, name


def test_nonfinite_member_is_marked_invalid_and_does_not_touch_others():
    config = {"plasticity": {"rule": "hebbian_abcd", "sharing": "layer", "bounds": "none", "modulation": "none"}}
    policy = spiking(config)
    genome = perturbed_genome(policy, 3)
    clean = rollout(policy, genome, 10)
    bad = genome.clone()
    bad[1, policy.genome.slice_of("layers.0.eta")] = float("nan")
    dirty = rollout(policy, bad, 10)
    assert policy.member_invalid().tolist() == [False, True, False]
    assert torch.equal(clean[0], dirty[0]) and torch.equal(clean[2], dirty[2])
    assert torch.isfinite(dirty).all()


def test_linear_policy_hand_value_and_mlp_shapes():
    lin = LinearPolicy(2, 1, [-2.0], [2.0])
    assert lin.genome.dim == 3
    lin.load_genome(torch.tensor([[0.5, -1.0, 0.25]]))  # W = [.5, -1], b = .25
    a = lin.act(torch.tensor([[1.0, 0.5]]))
    assert a.item() == pytest.approx(2.0 * np.tanh(0.5 - 0.5 + 0.25))
    mlp = MLPPolicy(OBS, ACT, LOW, HIGH, {"hidden": [7, 5]})
    assert mlp.genome.dim == OBS * 7 + 7 + 7 * 5 + 5 + 5 * ACT + ACT
    mlp.load_genome(mlp.initial_genome(4), episodes_per_member=2)
    assert mlp.act(torch.randn(8, OBS)).shape == (8, ACT)


def test_make_policy_from_gym_spaces_and_genome_selection():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float64)
    act_space = gym.spaces.Box(np.array(LOW, np.float32), np.array(HIGH, np.float32))
    policy = make_policy({"kind": "plastic_spiking", "hidden": [8],
                          "genome": {"search": ["layers.*.eta"]}}, obs_space, act_space)
    assert policy.genome.searched_names == ["layers.0.eta", "layers.1.eta"]
    assert isinstance(make_policy({"kind": "linear"}, obs_space, act_space), LinearPolicy)


def test_errors_name_bad_values_and_valid_choices():
    with pytest.raises(PlasticRLError, match=r"rule.*'stdp'.*bcm, hebbian_abcd, oja, none"):
        parse_policy_config({"plasticity": {"rule": "stdp"}})
    with pytest.raises(PlasticRLError, match=r"policy kind 'snn'.*linear, mlp, plastic_spiking, static_spiking"):
        parse_policy_config({"kind": "snn"})
    with pytest.raises(PlasticRLError, match=r"policy.neuron.model.*'lif' or 'alif'.*'izh'"):
        parse_policy_config({"neuron": {"model": "izh"}})
    with pytest.raises(PlasticRLError, match=r"policy.hiddn.*Extra inputs"):
        parse_policy_config({"hiddn": [3]})
    policy = spiking()
    with pytest.raises(PlasticRLError, match="no genome loaded"):
        policy.act(torch.zeros(1, OBS))
    policy.load_genome(policy.initial_genome(2))
    with pytest.raises(PlasticRLError, match=r"observation batch has shape \[2, 5\]; expected \[2, 6\]"):
        policy.act(torch.zeros(2, 5))
    with pytest.raises(PlasticRLError, match=r"reset mask has shape \[3\]; expected \[2\]"):
        policy.reset(torch.ones(3, dtype=torch.bool))
    with pytest.raises(PlasticRLError, match=r"flat genome has shape \[2, 4\]"):
        policy.load_genome(torch.zeros(2, 4))
    with pytest.raises(PlasticRLError, match="high > low"):
        PlasticSpikingPolicy(OBS, 1, [1.0], [-1.0])


def test_truncated_bptt_state_api_keeps_values_and_cuts_the_graph():
    policy = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {"hidden": [12], "plasticity": {"rule": "oja"}},
                                  autograd=True)
    flat = perturbed_genome(policy, 2, scale=0.1).float().requires_grad_(True)
    policy.load_genome(flat)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        policy.act(torch.randn(2, OBS, generator=g))
        policy.learn(torch.ones(2))
    weights = [w.detach().clone() for w in policy.fast_weights]
    assert policy.fast_weights[0].requires_grad
    policy.detach_state()
    policy.reload_parameters(flat.detach() * 1.0)
    assert not policy.fast_weights[0].requires_grad
    assert all(torch.equal(w, w0) for w, w0 in zip(policy.fast_weights, weights))  # episodes carry on
    saved = policy.episode_state()
    policy.reset()
    assert not torch.equal(policy.fast_weights[0], weights[0])
    policy.set_episode_state(saved)
    assert torch.equal(policy.fast_weights[0], weights[0])
    with pytest.raises(PlasticRLError, match="3 members; the loaded population has 2"):
        policy.reload_parameters(policy.initial_genome(3))
