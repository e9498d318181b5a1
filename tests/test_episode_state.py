"""The typed episode state: saved with episode_state() and set back, a policy replays exactly the same
actions (torch path and fused kernel); a state moves between the two kernels; the one tree walker
(agents/state.py) on the typed containers; one-line errors for a wrong state."""
import dataclasses

import pytest
import torch

from plasticrl.agents import HebbianMLPPolicy, MLPPolicy, PlasticSpikingPolicy
from plasticrl.agents.hebbian_mlp import HebbianEpisodeState
from plasticrl.agents.plastic_spiking import SpikingEpisodeState
from plasticrl.agents.state import EpisodeState, detach_tree, map_tree, merge_rows
from plasticrl.errors import PlasticRLError
from plasticrl.trainers.ppo.state_tree import restore, snapshot

OBS, ACT, P, E = 5, 3, 3, 2
ROWS = P * E

SPIKING_BCM_ALIF = {"hidden": [12, 8], "zero_output_init": False, "neuron": {"model": "alif"},
                    "encoder": {"spiking": True},
                    "plasticity": {"rule": "bcm", "modulation": "reward", "eta_scale": 0.05}}
# every optional part of the spiking state: STP, online CSDP (lagged history), eligibility, recurrence, reward input
SPIKING_ALL_PARTS = {"hidden": [10], "zero_output_init": False, "weight_init_gain": 16.0, "neuron": {"model": "alif"},
                     "encoder": {"spiking": True, "gain": 3.0}, "synapse": "stp",
                     "recurrent": True, "reward_input": True,
                     "input_plasticity": {"rule": "csdp", "negatives": "lagged", "lag": 2},
                     "plasticity": {"rule": "bcm", "modulation": "rpe", "eta_scale": 0.05, "eligibility_tau": 0.05}}
STATIC_RECURRENT_REWARD = {"kind": "static_spiking", "hidden": [10], "recurrent": True, "reward_input": True,
                           "zero_output_init": False, "plasticity": {"rule": "none"}}
HEBBIAN_RANDOM_RPE = {"hidden": [8, 6], "initial_weights": {"kind": "random"}, "reward_input": True,
                      "plasticity": {"rule": "hebbian_abcd", "modulation": "rpe", "eta_scale": 0.05}}

CASES = [
    (PlasticSpikingPolicy, SPIKING_BCM_ALIF, "torch"),
    (PlasticSpikingPolicy, SPIKING_BCM_ALIF, "fused"),
    (PlasticSpikingPolicy, SPIKING_ALL_PARTS, "torch"),
    (PlasticSpikingPolicy, STATIC_RECURRENT_REWARD, "torch"),
    (HebbianMLPPolicy, HEBBIAN_RANDOM_RPE, "torch"),
    (HebbianMLPPolicy, HEBBIAN_RANDOM_RPE, "fused"),
    (MLPPolicy, {"hidden": [6], "reward_input": True}, None),
]


def _policy(cls, cfg, kernel):
    if kernel is not None:
        if kernel == "fused":
            pytest.importorskip("numba")
        cfg = {**cfg, "kernel": kernel}
    return cls(OBS, ACT, [-1.0] * ACT, [2.0] * ACT, cfg, dtype="float64")


def _loaded(cls, cfg, kernel):
    policy = _policy(cls, cfg, kernel)
    g = torch.Generator().manual_seed(0)
    flat = policy.initial_genome(P)
    policy.load_genome(flat + 0.5 * torch.randn(flat.shape, generator=g, dtype=flat.dtype), episodes_per_member=E,
                       seeds=100)
    return policy


def _stream(steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(2.0 * torch.randn(ROWS, OBS, generator=g, dtype=torch.float64),
             torch.randn(ROWS, generator=g, dtype=torch.float64)) for _ in range(steps)]


def _play(policy, stream, reset_at=None):
    """Actions and fast weights of ``stream``; rows ``::3`` reset after step ``reset_at``."""
    actions, weights = [], []
    with torch.no_grad():
        for t, (obs, reward) in enumerate(stream):
            actions.append(policy.act(obs).clone())
            policy.learn(reward)
            weights.append([w.clone() for w in getattr(policy, "fast_weights", [])])
            if t == reset_at:
                mask = torch.zeros(ROWS, dtype=torch.bool)
                mask[::3] = True
                policy.reset(mask)
    return actions, weights


@pytest.mark.parametrize("cls, cfg, kernel", CASES,
                         ids=[f"{c.__name__}-{i}-{k}" for i, (c, _, k) in enumerate(CASES)])
def test_a_saved_state_set_back_replays_exactly_the_same_actions(cls, cfg, kernel):
    policy = _loaded(cls, cfg, kernel)
    stream = _stream(14)
    _play(policy, stream[:6], reset_at=2)
    state = policy.episode_state()
    assert isinstance(state, EpisodeState) and type(state.network) is (policy.episode_state_type or type(None))
    assert (state.previous_reward is not None) == policy.reward_input
    saved = snapshot(state)  # as recurrent PPO stores it at a sequence start
    first = _play(policy, stream[6:], reset_at=9)
    policy.reset()  # fresh episodes: every row's state is gone
    policy.set_episode_state(restore(saved, None))
    again = _play(policy, stream[6:], reset_at=9)
    for a, b in zip(first[0], again[0]):
        assert torch.equal(a, b)
    for wa, wb in zip(first[1], again[1]):
        assert all(torch.equal(x, y) for x, y in zip(wa, wb))
    # the restored state carried information: fresh episodes act otherwise
    policy.reset()
    fresh = _play(policy, stream[6:7])
    assert not torch.equal(fresh[0][0], first[0][0])


@pytest.mark.parametrize("cls, cfg", [(PlasticSpikingPolicy, SPIKING_BCM_ALIF), (HebbianMLPPolicy, HEBBIAN_RANDOM_RPE)])
def test_a_state_saved_by_the_torch_path_runs_on_the_fused_kernel(cls, cfg):
    """One state type for both kernels: the fused policy, given the torch policy's state midway, goes on
    with the torch policy's actions (to rounding: the kernels agree to ~1e-12 in float64)."""
    torch_policy, fused = _loaded(cls, cfg, "torch"), _loaded(cls, cfg, "fused")
    stream = _stream(12)
    _play(torch_policy, stream[:5])
    _play(fused, _stream(3, seed=9))  # somewhere else entirely, so that the set state is what counts
    fused.set_episode_state(restore(snapshot(torch_policy.episode_state()), None))
    expected, got = _play(torch_policy, stream[5:], reset_at=7), _play(fused, stream[5:], reset_at=7)
    for a, b in zip(expected[0], got[0]):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
    for wa, wb in zip(expected[1], got[1]):
        for x, y in zip(wa, wb):
            torch.testing.assert_close(y, x, rtol=0, atol=1e-10)


def test_the_spiking_state_has_every_optional_part_and_merge_rows_takes_fresh_rows():
    policy = _loaded(PlasticSpikingPolicy, SPIKING_ALL_PARTS, "torch")
    _play(policy, _stream(4))
    s = policy.live_state
    assert isinstance(s, SpikingEpisodeState)
    assert sorted(s.stp) == [0, 1] and sorted(s.theta) == [1] and sorted(s.elig) == [1]
    assert s.csdp is not None and s.csdp.history.shape == (ROWS, 2, OBS + 1) and s.baseline.shape == (ROWS,)
    fresh = map_tree(torch.zeros_like, s)
    assert type(fresh) is SpikingEpisodeState and type(fresh.csdp) is type(s.csdp)
    mask = torch.tensor([True, False, False, True, False, True])
    merged = merge_rows(mask, fresh, s)
    leaves_old, leaves_new = [], []
    map_tree(leaves_old.append, s)
    map_tree(leaves_new.append, merged)
    # input (v, refractory) 2, hidden ALIF (v, a, refractory) 3, hidden spikes 1, output 1, weights 2,
    # pre/post/theta/elig of layer 1: 4, baseline 1, STP (u, x, fresh) of layers 0 and 1: 6, CSDP 8
    assert len(leaves_old) == len(leaves_new) == 28
    moved = 0
    for old, new in zip(leaves_old, leaves_new):
        assert (new[mask] == 0).all() and torch.equal(new[~mask], old[~mask])
        moved += bool((old[mask] != 0).any())
    assert moved > 10  # the merged rows had real values to replace


def test_detach_tree_cuts_every_graph_of_a_typed_state():
    leaf = torch.ones(2, 3, requires_grad=True)
    state = HebbianEpisodeState(weights=[leaf * 2.0], pre={0: leaf[:, :2] * 1.0}, post={}, elig={},
                                baseline=leaf[:, 0] * 3)
    out = detach_tree(EpisodeState(state, leaf[:, 1] * 1.0))
    assert type(out.network) is HebbianEpisodeState
    for t in (out.network.weights[0], out.network.pre[0], out.network.baseline, out.previous_reward):
        assert not t.requires_grad
    assert out.network.baseline.tolist() == [3.0, 3.0] and out.network.post == {}
    assert dataclasses.fields(out.network) == dataclasses.fields(state)


def test_a_wrong_state_is_refused_in_one_line():
    spiking = _loaded(PlasticSpikingPolicy, SPIKING_BCM_ALIF, "torch")
    hebbian = _loaded(HebbianMLPPolicy, HEBBIAN_RANDOM_RPE, "torch")
    with pytest.raises(PlasticRLError, match=r"needs an EpisodeState \(from episode_state\(\)\); got dict") as err:
        spiking.set_episode_state({"weights": []})
    assert "\n" not in str(err.value)
    with pytest.raises(PlasticRLError, match="holds a SpikingEpisodeState; got a HebbianEpisodeState") as err:
        spiking.set_episode_state(hebbian.episode_state())
    assert "\n" not in str(err.value)
    with pytest.raises(PlasticRLError, match="reward_input: true.*'previous_reward'"):
        hebbian.set_episode_state(hebbian.episode_state()._replace(previous_reward=None))
    spiking_with_reward = _loaded(PlasticSpikingPolicy, {**SPIKING_BCM_ALIF, "reward_input": True}, "torch")
    with pytest.raises(PlasticRLError, match="has no reward input .*comes from a policy with reward_input: true"):
        spiking.set_episode_state(spiking_with_reward.episode_state())
