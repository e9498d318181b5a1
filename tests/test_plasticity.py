"""Plasticity rules against hand-computed values, invariants and a per-member loop."""
import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.plasticity import (
    bcm_threshold_step,
    bcm_update,
    bound_weights,
    eligibility_step,
    get_rule,
    hebbian_abcd_update,
    modulatory_neurons,
    normalise_by_max,
    oja_update,
    rpe_step,
    rule_delta,
)

PRE = torch.tensor([[1.0, 0.5]])
POST = torch.tensor([[2.0]])


def test_abcd_hand_value():
    # dW = 0.1 * (1*y*x + 2*x + 3*y + 4), x = [1, .5], y = 2 -> 0.1 * [14, 12]
    dw = hebbian_abcd_update(PRE, POST, 1.0, 2.0, 3.0, 4.0, 0.1)
    assert dw.shape == (1, 1, 2)
    assert dw.flatten().tolist() == pytest.approx([1.4, 1.2])


def test_oja_hand_value():
    # y (x - y W) = 2 * ([1, .5] - 2 * [.5, -.5]) = [0, 3]
    w = torch.tensor([[[0.5, -0.5]]])
    assert oja_update(PRE, POST, w, 0.1).flatten().tolist() == pytest.approx([0.0, 0.3])


def test_bcm_hand_value_and_sign_flip_at_threshold():
    theta = torch.tensor([[1.5]])
    assert bcm_update(PRE, POST, theta, 0.1).flatten().tolist() == pytest.approx([0.1, 0.05])
    # above-threshold activity potentiates, below depresses
    assert (bcm_update(PRE, POST, torch.tensor([[3.0]]), 0.1) < 0).all()


@pytest.mark.parametrize("rule", ["hebbian_abcd", "oja", "bcm"])
def test_zero_modulator_changes_nothing(rule):
    g = torch.Generator().manual_seed(0)
    pre, post = torch.rand(4, 3, generator=g), torch.rand(4, 2, generator=g)
    w = torch.randn(4, 2, 3, generator=g)
    coeffs = {c: torch.randn(4, 2, 3, generator=g) for c in ("A", "B", "C", "D", "eta")}
    theta = torch.rand(4, 2, generator=g)
    for m in (torch.zeros(4), torch.zeros(4, 2)):
        assert torch.count_nonzero(rule_delta(rule, pre, post, w, coeffs, theta, m)) == 0
    plain = rule_delta(rule, pre, post, w, coeffs, theta)
    m = torch.tensor([0.5, -1.0, 2.0, 0.0])
    assert torch.allclose(rule_delta(rule, pre, post, w, coeffs, theta, m), plain * m.view(-1, 1, 1))
    m_post = torch.rand(4, 2, generator=g)
    assert torch.allclose(rule_delta(rule, pre, post, w, coeffs, theta, m_post), plain * m_post.unsqueeze(-1))


def test_eligibility_trace_accumulates_then_decays_geometrically():
    lam, term = 0.8, torch.full((1, 1, 1), 2.0)
    e = torch.zeros(1, 1, 1)
    for t in range(1, 11):
        e = eligibility_step(e, term, lam)
        assert e.item() == pytest.approx(2.0 * (1 - lam**t) / (1 - lam))
    peak = e.item()
    for k in range(1, 6):
        e = eligibility_step(e, torch.zeros_like(term), lam)
        assert e.item() == pytest.approx(peak * lam**k)


def test_bcm_threshold_tracks_mean_squared_activity():
    g = torch.Generator().manual_seed(1)
    theta = torch.zeros(1, 3)
    # binary activity with firing probabilities p: E[y^2] = p
    p = torch.tensor([[0.1, 0.4, 0.8]])
    for _ in range(4000):
        y = (torch.rand(1, 3, generator=g) < p).float()
        theta = bcm_threshold_step(theta, y, 0.995)
    assert theta.flatten().tolist() == pytest.approx(p.flatten().tolist(), abs=0.06)
    # and for constant activity it converges to y^2 exactly
    theta = torch.zeros(1, 1)
    for _ in range(3000):
        theta = bcm_threshold_step(theta, torch.full((1, 1), 0.7), 0.99)
    assert theta.item() == pytest.approx(0.49, rel=1e-6)


@pytest.mark.parametrize("rule", ["hebbian_abcd", "oja", "bcm"])
def test_batched_update_equals_loop_over_members(rule):
    g = torch.Generator().manual_seed(2)
    P, out, inp = 6, 4, 5
    pre, post = torch.rand(P, inp, generator=g), torch.rand(P, out, generator=g)
    w = torch.randn(P, out, inp, generator=g)
    shapes = {"A": (P, out, inp), "B": (P, out, 1), "C": (P, 1, 1), "D": (P, out, inp), "eta": (P, out, 1)}
    coeffs = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    theta, m = torch.rand(P, out, generator=g), torch.randn(P, generator=g)
    batched = rule_delta(rule, pre, post, w, coeffs, theta, m)
    for p in range(P):
        single = rule_delta(rule, pre[p:p + 1], post[p:p + 1], w[p:p + 1],
                            {k: v[p:p + 1] for k, v in coeffs.items()}, theta[p:p + 1], m[p:p + 1])
        assert torch.allclose(batched[p:p + 1], single, atol=1e-6)


def test_rpe_uses_baseline_before_update():
    baseline = torch.tensor([1.0, 0.0])
    error, new = rpe_step(torch.tensor([3.0, -1.0]), baseline, 0.25)
    assert error.tolist() == [2.0, -1.0]
    assert new.tolist() == [1.5, -0.25]


def test_modulatory_neurons_hand_value_per_layer_and_per_post():
    activity, reward = torch.tensor([[1.0, 2.0]]), torch.tensor([0.5])
    w = torch.tensor([[[0.1, -0.2, 1.0]]])  # one modulatory neuron: 0.1 - 0.4 + 0.5 = 0.2
    m = modulatory_neurons(activity, reward, w, torch.tensor([[0.3]]))
    assert m.shape == (1,) and m.item() == pytest.approx(torch.tanh(torch.tensor(0.5)).item())
    w2 = torch.cat([w, -w], dim=1)
    m2 = modulatory_neurons(activity, reward, w2, torch.zeros(1, 2))
    assert m2.shape == (1, 2) and m2[0, 0].item() == pytest.approx(-m2[0, 1].item())


def test_bounds_clip_and_normalise():
    w = torch.tensor([[[3.0, -6.0], [1.0, 0.5]], [[0.1, 0.2], [0.0, -0.4]]])
    assert bound_weights(w, "clip", 2.0).abs().max() == 2.0
    n = normalise_by_max(w, 1.0)
    assert torch.allclose(n[0], w[0] / 6.0)
    assert torch.allclose(n[1], w[1] / 0.4)
    with pytest.raises(ValueError, match=r"'squash'.*clip.*none.*normalise"):
        bound_weights(w, "squash", 1.0)


def test_unknown_rule_names_valid_choices():
    with pytest.raises(PlasticRLError, match=r"'stdp'.*bcm, hebbian_abcd, oja"):
        get_rule("stdp")
    with pytest.raises(PlasticRLError, match="'stdp'"):
        rule_delta("stdp", PRE, POST, torch.zeros(1, 1, 2), {"eta": 1.0})
