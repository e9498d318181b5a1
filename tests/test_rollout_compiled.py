"""The rollout's compiled per-step bookkeeping gives the numpy path's results bit for bit: every task,
with terminations, truncations, autoresets, training perturbations and observation normalisation."""
import numpy as np
import pytest
import torch

from plasticrl.agents import make_policy
from plasticrl.envs import TRAINING_DISTRIBUTIONS, make_vec, supported_ids
from plasticrl.errors import PlasticRLError
from plasticrl.rollouts import compiled
from plasticrl.rollouts.loop import rollout
from plasticrl.rollouts.obs_norm import ObsBatchMoments, ObsNormalizer

pytest.importorskip("numba")

POPULATION, EPISODES = 2, 2
ROWS = POPULATION * EPISODES


def _normaliser(obs_dim, seed):
    # statistics with a real mean and spread per entry, and a tight clip so that clipping happens
    g = torch.Generator().manual_seed(seed)
    norm = ObsNormalizer(obs_dim, clip=1.5)
    total = torch.randn(obs_dim, generator=g, dtype=torch.float64) * 10
    norm.update(ObsBatchMoments(10.0, total, total * total / 10 + 5.0))
    return norm


def _run(env_id, policy_cfg, compiled_on, monkeypatch, dtype="float32", with_norm=True):
    monkeypatch.setattr(compiled, "available", lambda: compiled_on)
    env = make_vec(env_id, ROWS, max_episode_steps=25)
    policy = make_policy(policy_cfg, env.single_observation_space, env.single_action_space, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    genome = policy.initial_genome(POPULATION)
    genome = genome + 0.5 * torch.randn(genome.shape, generator=g, dtype=genome.dtype)
    try:
        options = {"perturbations": TRAINING_DISTRIBUTIONS["train"](env_id, ROWS, np.random.default_rng(0))}
    except (PlasticRLError, KeyError, ValueError):
        options = None  # no training distribution for this task
    norm = _normaliser(policy.obs_dim, 1) if with_norm else None
    result = rollout(policy, env, genome, EPISODES, seed=11, obs_norm=norm, collect_obs_moments=True,
                     reset_options=options)
    env.close()
    return result, [w.clone() for w in getattr(policy, "fast_weights", [])]


def _assert_same(a, b):
    (ra, wa), (rb, wb) = a, b
    assert torch.equal(ra.returns, rb.returns) and torch.equal(ra.lengths, rb.lengths)
    assert torch.equal(ra.invalid, rb.invalid) and ra.env_steps == rb.env_steps
    for x, y in zip(ra.obs_rows, rb.obs_rows):
        assert torch.equal(x, y)
    assert len(wa) == len(wb) and all(torch.equal(x, y) for x, y in zip(wa, wb))


PLASTIC = {"kind": "plastic_spiking", "hidden": [8], "plasticity": {"rule": "bcm", "modulation": "reward",
                                                                     "eta_scale": 0.05}}


@pytest.mark.parametrize("env_id", supported_ids())
def test_compiled_bookkeeping_is_bit_identical_on_every_task(env_id, monkeypatch):
    fast = _run(env_id, PLASTIC, True, monkeypatch)
    slow = _run(env_id, PLASTIC, False, monkeypatch)
    _assert_same(fast, slow)
    assert fast[0].lengths.min() < 25 or fast[0].lengths.max() == 25  # ran whole episodes


@pytest.mark.parametrize("policy_cfg, dtype, with_norm", [
    ({"kind": "linear"}, "float64", True),
    ({**PLASTIC, "kernel": "torch", "reward_input": True}, "float64", False),
    ({"kind": "mlp", "hidden": [6]}, "float32", True),
])
def test_compiled_bookkeeping_is_bit_identical_for_other_policies(policy_cfg, dtype, with_norm, monkeypatch):
    fast = _run("Hopper-v5", policy_cfg, True, monkeypatch, dtype, with_norm)
    slow = _run("Hopper-v5", policy_cfg, False, monkeypatch, dtype, with_norm)
    _assert_same(fast, slow)
    assert fast[0].lengths.min() < 25  # Hopper with random weights falls: masked rows are exercised


def test_kernels_reproduce_numpy_edge_values():
    # NaN passes the clip, -0.0 keeps its sign, values round to float32 as torch's conversion does
    obs = np.array([[np.nan, -0.0, 1e-40, 3.0, -7.0, 0.1]])
    mean, std = np.zeros(6), np.ones(6)
    for normalise in (False, True):
        raw, out = np.zeros_like(obs), np.zeros(obs.shape, dtype=np.float32)
        bad = np.zeros(1, dtype=bool)
        compiled.prepare_obs(obs, mean, std, 2.5, normalise, np.ones(1, dtype=bool), bad, raw, out)
        assert bad[0]  # the NaN marks its (active) row's episode invalid, as the numpy path does
        expected = np.clip((obs - mean) / std, -2.5, 2.5) if normalise else obs
        torch_expected = torch.from_numpy(expected).to(torch.float32).numpy()
        assert np.array_equal(raw, obs, equal_nan=True)
        assert np.array_equal(out.view(np.uint32), torch_expected.view(np.uint32))


def test_non_finite_rows_are_marked_and_left_out_of_the_statistics():
    """Row 0 has an infinite observation, row 1 a NaN reward, row 2 is finite, row 3 is inactive with a NaN:
    rows 0 and 1 become invalid, row 0's observation is not summed, the inactive row is neither."""
    obs = np.array([[np.inf, 1.0], [2.0, 3.0], [4.0, 5.0], [np.nan, 0.0]])
    active = np.array([True, True, True, False])
    bad = np.zeros(4, dtype=bool)
    raw, out = np.zeros_like(obs), np.zeros(obs.shape, dtype=np.float32)
    compiled.prepare_obs(obs, np.zeros(2), np.ones(2), 5.0, False, active, bad, raw, out)
    count, total, squares = np.zeros(4), np.zeros((4, 2)), np.zeros((4, 2))
    compiled.accumulate_moments(raw, active, bad, count, total, squares)
    assert bad.tolist() == [True, False, False, False]
    assert count.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert total.tolist() == [[0.0, 0.0], [2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]
    returns, lengths, reward_out = np.zeros(4), np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.float32)
    no = np.zeros(4, dtype=bool)
    compiled.after_step(np.array([1.0, np.nan, 2.0, 7.0]), no, no, active, bad, returns, lengths, reward_out)
    assert bad.tolist() == [True, True, False, False]
    assert lengths.tolist() == [1, 1, 1, 0] and returns[2] == 2.0 and returns[3] == 0.0
