"""CSDP as the online self-supervised rule of a controller's input layer.

Checked through the policy path: the weight change against values computed by hand from the
layer's traces, the negative stream against a twin policy fed the documented negative,
batched rows against one row at a time, masked resets, zero learning rate / zero modulator,
config errors, and a save / load round trip.
"""
import dataclasses
import math

import pytest
import torch

from plasticrl.rollouts.saved_agent import load, save_agent
from plasticrl.agents import PlasticSpikingPolicy, parse_policy_config
from plasticrl.errors import PlasticRLError
from plasticrl.plasticity.csdp import csdp_update
from plasticrl.plasticity.csdp_online import derangement_bank, negative_observations, online_csdp_delta

OBS, ACT, HID = 5, 2, 4
LOW, HIGH = [-1.0, -1.0], [1.0, 1.0]


def policy(input_plasticity=None, **config):
    cfg = {"hidden": [HID], "substeps": 3,
           "plasticity": {"rule": "bcm", "modulation": "reward", "sharing": "post", "eta_scale": 0.05,
                          "weight_limit": 100.0},
           "input_plasticity": {"rule": "csdp", "eta_scale": 0.05, "threshold": 0.05, **(input_plasticity or {})},
           **config}
    return PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, cfg, dtype="float64")


def genome(pol, population, seed=0, scale=0.5):
    # larger input weights than the default so that the tiny layer fires
    g = torch.Generator().manual_seed(seed)
    base = pol.initial_genome(population)
    noisy = base + scale * torch.randn(base.shape, generator=g, dtype=base.dtype)
    w0 = pol.genome.slice_of("layers.0.w")
    noisy[:, w0] = 4.0 * noisy[:, w0]
    return noisy


def stream(rows, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(steps, rows, OBS, generator=g, dtype=torch.float64),
            torch.randn(steps, rows, generator=g, dtype=torch.float64))


def test_input_layer_belongs_to_csdp_and_genome_groups():
    pol = policy()
    assert pol.csdp and pol.plastic_layers == [1]      # BCM only on the later layer
    names = pol.genome.searched_names
    assert "layers.0.csdp_eta" in names and "layers.0.csdp_theta" not in names
    assert "layers.0.eta" not in pol.genome.names
    searched = policy(genome={"search": ["layers.*.w", "layers.0.csdp_*"]})
    assert {"layers.0.csdp_eta", "layers.0.csdp_theta"} <= set(searched.genome.searched_names)
    off = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, {"hidden": [HID]})
    off.load_genome(off.initial_genome(1))  # a loaded policy has its episode state: no CSDP part
    assert not off.csdp and off.plastic_layers == [0, 1] and off.episode_state().network.csdp is None


def test_derangement_bank_is_seeded_and_has_no_fixed_points():
    bank = derangement_bank(7, 5, seed=3)
    assert torch.equal(bank, derangement_bank(7, 5, seed=3))
    assert not torch.equal(bank, derangement_bank(7, 5, seed=4))
    for perm in bank:
        assert sorted(perm.tolist()) == list(range(7))
        assert (perm != torch.arange(7)).all()


def _hand_delta(pre_pos, pre_neg, z_pos, z_neg, theta, eta):
    """The CSDP change of one row, one synapse at a time."""
    out, inp = len(z_pos), len(pre_pos)
    delta = [[0.0] * inp for _ in range(out)]
    for s, pre, z in ((1.0, pre_pos, z_pos), (0.0, pre_neg, z_neg)):
        g = sum(v * v for v in z)
        p = 1.0 / (1.0 + math.exp(-(g - theta)))
        for j in range(out):
            for i in range(inp):
                delta[j][i] += eta * (s - p) * 2.0 * z[j] * pre[i] / 2.0  # mean over the two samples
    return torch.tensor(delta, dtype=torch.float64)


@pytest.mark.parametrize("negatives", ["permute", "lagged"])
def test_online_update_matches_hand_values(negatives):
    pol = policy({"negatives": negatives, "lag": 2})
    flat = genome(pol, 2)
    pol.load_genome(flat)
    obs, reward = stream(2, 6)
    named = pol.genome.unflatten(flat)
    gain, bias = named["encoder.gain"], named["encoder.bias"]
    eta = 0.05 * named["layers.0.csdp_eta"].reshape(-1)
    theta = 0.05 * HID
    moved = 0.0
    for t in range(6):
        pol.act(obs[t])
        c = pol.episode_state().network.csdp
        # presynaptic activity of both streams: the encoded real and the encoded negative observation
        assert torch.allclose(c.pre, gain * obs[t] + bias)
        if negatives == "permute":
            negative = obs[t].gather(1, pol._csdp_bank[t % len(pol._csdp_bank)].expand(2, OBS))
            assert c.valid.all()
        else:
            negative = obs[t - 2] if t >= 2 else torch.zeros_like(obs[t])
            assert c.valid.tolist() == [t >= 2] * 2
        assert torch.allclose(c.pre_neg, gain * negative + bias)
        w_before = pol.fast_weights[0].clone()
        pol.learn(reward[t])
        change = pol.fast_weights[0] - w_before
        for r in range(2):
            if not bool(c.valid[r]):
                assert torch.equal(change[r], torch.zeros_like(change[r]))
                continue
            hand = _hand_delta(c.pre[r].tolist(), c.pre_neg[r].tolist(), c.z[r].tolist(),
                               c.z_neg[r].tolist(), theta, float(eta[r]))
            assert torch.allclose(change[r], hand, atol=1e-12)
            moved = max(moved, float(hand.abs().max()))
    assert moved > 1e-4  # the layer fired and learned: the comparison above was not 0 == 0


def test_online_delta_is_the_reference_update():
    g = torch.Generator().manual_seed(0)
    n, i, o = 3, 4, 5
    pp, pn = torch.randn(n, i, generator=g), torch.randn(n, i, generator=g)
    zp, zn = torch.rand(n, o, generator=g), torch.rand(n, o, generator=g)
    w, w0 = torch.randn(n, o, i, generator=g), torch.randn(n, o, i, generator=g)
    eta, theta = torch.tensor([0.1, 0.2, 0.0]), 1.5
    valid = torch.tensor([True, False, True])
    got = online_csdp_delta(pp, pn, zp, zn, valid, theta, eta, w, w0, decay=0.3)
    for r in range(n):
        ref = csdp_update(torch.stack([pp[r], pn[r]]), torch.stack([zp[r], zn[r]]), torch.tensor([1.0, 0.0]),
                          theta, float(eta[r]), w[r] - w0[r], 0.3, sample_weight=float(valid[r]) * torch.ones(2))
        assert torch.allclose(got[r], ref, atol=1e-6)
    # an invalid row only decays toward its anchor
    assert torch.allclose(got[1], -0.2 * 0.3 * (w[1] - w0[1]), atol=1e-6)
    assert torch.equal(got[2], torch.zeros_like(got[2]))  # eta = 0


@pytest.mark.parametrize("negatives", ["permute", "lagged"])
def test_negative_stream_is_the_layer_fed_the_negative_from_the_same_state(negatives):
    """The negative stream equals a twin that saw the same past and then the negative observation."""
    lag, t_check = 2, 4
    pol, twin = policy({"negatives": negatives, "lag": lag}), policy({"negatives": negatives, "lag": lag})
    flat = genome(pol, 1)
    pol.load_genome(flat)
    twin.load_genome(flat)
    obs, reward = stream(1, t_check + 1)
    for t in range(t_check):
        pol.act(obs[t]), twin.act(obs[t])
        pol.learn(reward[t]), twin.learn(reward[t])
    if negatives == "permute":
        negative = obs[t_check].gather(1, pol._csdp_bank[t_check % len(pol._csdp_bank)].unsqueeze(0))
    else:
        negative = obs[t_check - lag]
    pol.act(obs[t_check])
    twin.act(negative)
    z_neg = pol.episode_state().network.csdp.z_neg
    assert float(z_neg.abs().sum()) > 0
    assert torch.allclose(z_neg, twin.episode_state().network.csdp.z, atol=1e-12)
    # and the positive stream is the real forward pass, untouched by the negative one
    assert not torch.allclose(pol.episode_state().network.csdp.z, z_neg)


def test_lagged_negatives_wait_for_enough_history():
    obs = torch.arange(12.0).reshape(4, 3)
    history = torch.zeros(4, 2, 3)
    step = torch.tensor([0, 1, 2, 5])
    history[3] = torch.tensor([[7.0, 7.0, 7.0], [8.0, 8.0, 8.0]])
    neg, valid = negative_observations("lagged", obs, history, step, None)
    assert valid.tolist() == [False, False, True, True]
    assert torch.equal(neg[3], torch.tensor([7.0, 7.0, 7.0]))  # oldest entry: o_{t-lag}
    with pytest.raises(PlasticRLError, match="lagged, permute"):
        negative_observations("shuffle", obs, history, step, None)


CONFIGS = [
    {"input_plasticity": {"negatives": "permute"}},
    {"input_plasticity": {"negatives": "lagged", "lag": 3, "decay": 0.5}},
    {"input_plasticity": {"negatives": "permute"}, "encoder": {"spiking": True}, "recurrent": True,
     "neuron": {"model": "alif"}, "synapse": "stp", "plasticity": {"rule": "oja", "modulation": "rpe"}},
    {"input_plasticity": {"negatives": "lagged", "lag": 2}, "encoder": {"kind": "population", "centres": 3},
     "plasticity": {"rule": "none"}},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_batched_rows_equal_one_row_at_a_time(config):
    """One batched step for all P x E rows == each row alone (rows never see each other's data),
    with some rows reset mid-way."""
    config = dict(config)
    ip = {"eta_scale": 0.05, "threshold": 0.05, **config.pop("input_plasticity")}
    pol = policy(ip, **config)
    P, E, steps = 3, 2, 8
    flat = genome(pol, P)
    obs, reward = stream(P * E, steps)
    reset_at = {3: torch.tensor([True, False, False, True, False, False])}
    pol.load_genome(flat, episodes_per_member=E)
    batched = []
    for t in range(steps):
        batched.append(pol.act(obs[t]))
        pol.learn(reward[t])
        if t in reset_at:
            pol.reset(reset_at[t])
    batched = torch.stack(batched, 1)
    w_batched = pol.fast_weights[0]
    single = policy(ip, **config)
    for row in range(P * E):
        single.load_genome(flat[row // E: row // E + 1])
        actions = []
        for t in range(steps):
            actions.append(single.act(obs[t, row: row + 1]))
            single.learn(reward[t, row: row + 1])
            if t in reset_at and bool(reset_at[t][row]):
                single.reset()
        assert torch.allclose(torch.cat(actions), batched[row], atol=1e-10)
        assert torch.allclose(single.fast_weights[0][0], w_batched[row], atol=1e-10)
    assert not torch.allclose(w_batched, pol.initial_weights[0])


def test_reset_mask_restores_only_those_rows():
    pol = policy({"negatives": "lagged", "lag": 2})
    pol.load_genome(genome(pol, 4))
    obs, reward = stream(4, 5)
    for t in range(5):
        pol.act(obs[t])
        pol.learn(reward[t])
    before = pol.episode_state().network.csdp
    before = {f.name: getattr(before, f.name).clone() for f in dataclasses.fields(before)}
    w_before = pol.fast_weights[0].clone()
    mask = torch.tensor([True, False, True, False])
    pol.reset(mask)
    after = pol.episode_state().network.csdp
    for key, value in ((f.name, getattr(after, f.name)) for f in dataclasses.fields(after)):
        assert (value[mask] == 0).all(), key
        assert torch.equal(value[~mask], before[key][~mask]), key
    assert torch.equal(pol.fast_weights[0][mask], pol.initial_weights[0][mask])
    assert torch.equal(pol.fast_weights[0][~mask], w_before[~mask])
    assert not torch.equal(w_before[mask], pol.initial_weights[0][mask])  # the reset undid real changes


def test_zero_eta_freezes_input_layer_and_zero_modulator_freezes_the_rest():
    pol = policy()
    flat = genome(pol, 2)
    obs, reward = stream(2, 5)

    def run(flat, rewards):
        pol.load_genome(flat)
        for t in range(5):
            pol.act(obs[t])
            pol.learn(rewards[t])
        return [w - w0 for w, w0 in zip(pol.fast_weights, pol.initial_weights)]

    moved = run(flat, reward)
    assert all(float(d.abs().max()) > 0 for d in moved)
    frozen = flat.clone()
    frozen[:, pol.genome.slice_of("layers.0.csdp_eta")] = 0.0
    d0, d1 = run(frozen, reward)
    assert torch.equal(d0, torch.zeros_like(d0)) and float(d1.abs().max()) > 0
    negative = flat.clone()
    negative[:, pol.genome.slice_of("layers.0.csdp_eta")] = -3.0  # clamped: no anti-CSDP
    d0, _ = run(negative, reward)
    assert torch.equal(d0, torch.zeros_like(d0))
    # reward 0 with reward modulation: m = 0, the BCM layer stays, CSDP (reward-free) still learns
    d0, d1 = run(flat, torch.zeros_like(reward))
    assert torch.equal(d1, torch.zeros_like(d1)) and float(d0.abs().max()) > 0
    assert torch.allclose(d0, moved[0])  # CSDP does not read the reward at all


@pytest.mark.parametrize("bad, match", [
    ({"input_plasticity": {"rule": "forward_forward"}}, r"input_plasticity\.rule.*'forward_forward'.*none, csdp"),
    ({"input_plasticity": {"rule": "csdp", "negatives": "shuffle"}}, r"input_plasticity\.negatives.*'lagged'.*'permute'.*'shuffle'"),
    ({"input_plasticity": {"rule": "csdp", "treshold": 1.0}}, r"input_plasticity\.treshold"),
    ({"input_plasticity": {"rule": "csdp", "threshold": -1.0}}, r"input_plasticity\.threshold"),
    ({"input_plasticity": {"rule": "csdp", "lag": 0}}, r"input_plasticity\.lag"),
    ({"input_plasticity": {"rule": "csdp"}, "hidden": []}, r"hidden"),
])
def test_config_errors_name_key_value_and_choices(bad, match):
    with pytest.raises(PlasticRLError, match=match):
        parse_policy_config({"kind": "plastic_spiking", **bad})


def test_static_twin_has_no_csdp():
    cfg = parse_policy_config({"kind": "static_spiking", "input_plasticity": {"rule": "csdp"}})
    assert cfg.input_plasticity.rule == "none" and cfg.plasticity.rule == "none"


def test_save_and_load_round_trip(tmp_path):
    config = {"kind": "plastic_spiking", "hidden": [HID], "substeps": 3,
              "input_plasticity": {"rule": "csdp", "eta_scale": 0.05, "threshold": 0.05}}
    pol = PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, config)
    flat = genome(pol, 1)[0]
    path = save_agent(tmp_path / "agent.pt", pol, config, flat, None)
    agent = load(path)
    assert agent.policy.csdp and torch.allclose(agent.genome, flat)
    obs, reward = stream(1, 4)
    pol.load_genome(flat.unsqueeze(0))
    agent.reset()
    for t in range(4):
        expected = pol.act(obs[t].float())
        got = agent.act(obs[t][0].numpy(), None if t == 0 else float(reward[t - 1, 0]))
        assert torch.allclose(torch.as_tensor(got, dtype=torch.float32), expected[0], atol=1e-5)
        pol.learn(reward[t].float())
    assert not torch.equal(agent.policy.fast_weights[0], agent.policy.initial_weights[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu, gpu = policy(), PlasticSpikingPolicy(OBS, ACT, LOW, HIGH, policy().config, device="cuda", dtype="float64")
    flat = genome(cpu, 2)
    cpu.load_genome(flat)
    gpu.load_genome(flat.cuda())
    obs, reward = stream(2, 5)
    for t in range(5):
        a, b = cpu.act(obs[t]), gpu.act(obs[t].cuda())
        cpu.learn(reward[t]), gpu.learn(reward[t].cuda())
        assert torch.allclose(a, b.cpu(), atol=1e-9)
    assert torch.allclose(cpu.fast_weights[0], gpu.fast_weights[0].cpu(), atol=1e-9)
