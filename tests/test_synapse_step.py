"""The plastic synapse layer as a pure step (plasticrl.plasticity.synapse) against hand-computed values."""
import pytest
import torch

from plasticrl.plasticity import SynapseSettings, SynapseState, global_modulator, synapse_step


def _state(theta=None, eligibility=None):
    # one row, 1 post neuron, 2 pre neurons
    w = torch.tensor([[[0.5, -0.25]]], dtype=torch.float64)
    pre = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    post = torch.tensor([[0.8]], dtype=torch.float64)
    return SynapseState(w, pre, post, theta, eligibility)


def test_bcm_step_gated_clipped_and_threshold_moves_after_the_change():
    """BCM: dw = eta * m * post * (post - theta) * pre = 2 * 0.5 * 0.8 * (0.8 - 0.3) * [1, 0.5] = [0.4, 0.2];
    w = [0.9, -0.05], clipped at 0.75 -> [0.75, -0.05]; theta' = 0.9 * 0.3 + 0.1 * 0.64 = 0.334."""
    state = _state(theta=torch.tensor([[0.3]], dtype=torch.float64))
    settings = SynapseSettings("bcm", "clip", 0.75, theta_keep=0.9)
    out = synapse_step(state, settings, {"eta": 2.0}, torch.tensor([0.5], dtype=torch.float64))
    assert out.weights.flatten().tolist() == pytest.approx([0.75, -0.05])
    assert out.theta.item() == pytest.approx(0.334)
    assert out.eligibility is None and out.pre is state.pre


def test_eligibility_trace_accumulates_the_ungated_change_and_the_modulator_gates_it():
    """Oja: term = eta * post * (pre - post * w) = 1 * 0.8 * ([1, 0.5] - 0.8 * [0.5, -0.25]) = [0.48, 0.56];
    e' = 0.5 * [0.2, 0.2] + term = [0.58, 0.66]; dw = m * e' = -1 * e'; no bound."""
    state = _state(eligibility=torch.tensor([[[0.2, 0.2]]], dtype=torch.float64))
    settings = SynapseSettings("oja", "none", 1.0, eligibility_keep=0.5)
    out = synapse_step(state, settings, {"eta": 1.0}, torch.tensor([-1.0], dtype=torch.float64))
    assert out.eligibility.flatten().tolist() == pytest.approx([0.58, 0.66])
    assert out.weights.flatten().tolist() == pytest.approx([0.5 - 0.58, -0.25 - 0.66])
    assert out.theta is None


def test_normalise_bound_rescales_by_the_largest_weight():
    """Ungated Hebbian ABCD with A = 1 only: dw = eta * A * pre * post = 1 * [0.8, 0.4]; w = [1.3, 0.15]; normalise
    to max |w| = 1 -> [1, 0.15 / 1.3]."""
    state = _state()
    coeffs = {"eta": 1.0, "A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0}
    out = synapse_step(state, SynapseSettings("hebbian_abcd", "normalise", 1.0), coeffs, None)
    assert out.weights.flatten().tolist() == pytest.approx([1.0, 0.15 / 1.3])


def test_global_modulator_reward_rpe_and_none():
    r, gain, base = torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor([1.0])
    m, b = global_modulator("reward", r, gain, None, 0.1)
    assert m.item() == pytest.approx(1.0) and b is None
    m, b = global_modulator("rpe", r, gain, base, 0.1)
    assert m.item() == pytest.approx(0.5 * (2.0 - 1.0)) and b.item() == pytest.approx(1.0 + 0.1 * 1.0)
    m, b = global_modulator("none", r, gain, base, 0.1)
    assert m is None and b is base
