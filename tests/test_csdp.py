"""CSDP rule against hand-computed values, negatives, and above-chance learning on digits."""
import math

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.contrastive.negatives import corrupt_inputs, make_negatives, mix_inputs, wrong_labels
from plasticrl.plasticity.csdp import (
    contrastive_signal,
    csdp_update,
    goodness,
    goodness_probability,
    readout_update,
)

# a tiny layer: 3 presynaptic inputs, 2 postsynaptic neurons, one sample
PRE = torch.tensor([[1.0, 0.0, 0.5]])
Z = torch.tensor([[0.5, 1.0]])
THETA = 1.0
P = 1.0 / (1.0 + math.exp(-0.25))  # sigmoid(0.5^2 + 1^2 - 1)


def test_goodness_and_probability_hand_values():
    assert goodness(Z).tolist() == pytest.approx([1.25])
    assert goodness_probability(Z, THETA).tolist() == pytest.approx([P])
    # goodness sums over the last dimension only: [P, B, n] -> [P, B]
    assert goodness(torch.ones(2, 3, 4)).shape == (2, 3)


def test_contrastive_signal_hand_values():
    pos = contrastive_signal(Z, torch.tensor([1.0]), THETA)
    neg = contrastive_signal(Z, torch.tensor([0.0]), THETA)
    assert pos.flatten().tolist() == pytest.approx([(1 - P) * 1.0, (1 - P) * 2.0])
    assert neg.flatten().tolist() == pytest.approx([-P * 1.0, -P * 2.0])


def test_csdp_update_hand_values_positive_and_negative():
    # dW_ji = eta * (s - p) * 2 z_j * x_i with eta = 0.1
    dw_pos = csdp_update(PRE, Z, torch.tensor([1.0]), THETA, 0.1)
    d = [(1 - P) * 1.0, (1 - P) * 2.0]
    expected = [[0.1 * dj * xi for xi in (1.0, 0.0, 0.5)] for dj in d]
    assert dw_pos.shape == (2, 3)
    assert dw_pos.tolist() == [pytest.approx(row) for row in expected]
    dw_neg = csdp_update(PRE, Z, torch.tensor([0.0]), THETA, 0.1)
    assert dw_neg.tolist() == [pytest.approx([-0.1 * P * dj / (1 - P) * xi for xi in (1.0, 0.0, 0.5)]) for dj in d]


def test_csdp_update_batch_mean_weights_decay_and_population():
    pre = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]])
    z = torch.tensor([[0.5, 1.0], [1.0, 0.0]])
    s = torch.tensor([1.0, 0.0])
    w = torch.tensor([0.5, 2.0])
    per_sample = [csdp_update(pre[i:i + 1], z[i:i + 1], s[i:i + 1], THETA, 0.1) for i in range(2)]
    weighted = csdp_update(pre, z, s, THETA, 0.1, sample_weight=w)
    assert torch.allclose(weighted, (0.5 * per_sample[0] + 2.0 * per_sample[1]) / 2)
    weights = torch.ones(2, 3)
    decayed = csdp_update(pre, z, s, THETA, 0.1, weights=weights, decay=0.5)
    assert torch.allclose(decayed, csdp_update(pre, z, s, THETA, 0.1) - 0.1 * 0.5 * weights)
    # population first: [P, B, in] x [P, B, out] -> [P, out, in], equal to a loop over members
    g = torch.Generator().manual_seed(0)
    pre_p, z_p = torch.rand(4, 5, 3, generator=g), torch.rand(4, 5, 2, generator=g)
    s_p = (torch.rand(4, 5, generator=g) > 0.5).float()
    batched = csdp_update(pre_p, z_p, s_p, THETA, 0.1)
    looped = torch.stack([csdp_update(pre_p[i], z_p[i], s_p[i], THETA, 0.1) for i in range(4)])
    assert batched.shape == (4, 2, 3) and torch.allclose(batched, looped, atol=1e-6)


def test_update_moves_goodness_the_right_way():
    # a linear layer z = W x: a positive update raises the goodness, a negative one lowers it
    g = torch.Generator().manual_seed(1)
    W = torch.rand(4, 6, generator=g) * 0.3
    x = torch.rand(1, 6, generator=g)
    before = goodness(x @ W.T).item()
    for flag, sign in ((1.0, 1), (0.0, -1)):
        dw = csdp_update(x, x @ W.T, torch.tensor([flag]), 0.5, 0.05)
        after = goodness(x @ (W + dw).T).item()
        assert sign * (after - before) > 0


def test_readout_update_hand_value():
    dU, dc = readout_update(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.zeros(2, 2),
                            torch.zeros(2), 0.1)
    assert dU.tolist() == [pytest.approx([0.05, 0.0]), pytest.approx([-0.05, 0.0])]
    assert dc.tolist() == pytest.approx([0.05, -0.05])


def test_csdp_update_rejects_mismatched_shapes_and_decay_without_weights():
    with pytest.raises(PlasticRLError, match=r"\[1, 3\]"):
        csdp_update(PRE, torch.ones(2, 2), torch.ones(2), THETA, 0.1)
    with pytest.raises(PlasticRLError, match="decay"):
        csdp_update(PRE, Z, torch.ones(1), THETA, 0.1, decay=0.1)


def test_negatives():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (500,), generator=g)
    assert (wrong_labels(y, 10, g) != y).all()
    x = torch.rand(32, 64, generator=g)
    mixed = mix_inputs(x, g)
    assert mixed.shape == x.shape and not torch.equal(mixed, x)
    assert (mixed >= 0).all() and (mixed <= 1).all()
    shuffled = corrupt_inputs(x, g, fraction=0.5)
    # a shuffle within each image keeps its pixel values, only moves some of them
    assert torch.equal(shuffled.sort(dim=1).values, x.sort(dim=1).values)
    moved = (shuffled != x).float().mean().item()
    assert 0.2 < moved < 0.6
    with pytest.raises(PlasticRLError, match="valid choices: corrupt, mix, wrong_label"):
        make_negatives("noise", x, y[:32], 10, g)
