"""Recurrent PPO loss terms against hand-computed values: GAE (episode boundaries and
truncation bootstrapping included), the clipped surrogate, the value loss, the Gaussian head."""
import math

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.trainers.ppo.gae import gae
from plasticrl.trainers.ppo.loss import (
    clipped_surrogate,
    gaussian_entropy,
    gaussian_log_prob,
    masked_mean,
    value_loss,
)

D = torch.float64


def test_gae_matches_hand_values_across_terminal_and_truncated_boundaries():
    # Column 0: one episode running through. Column 1: terminal at t=0 (no bootstrap, recursion
    # cut), a new episode at t=1, truncated at t=2 (bootstraps from next_values, recursion cut).
    rewards = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 2.0]], dtype=D)
    values = torch.tensor([[0.5, 1.0], [0.4, 2.0], [0.3, 0.5]], dtype=D)
    next_values = torch.tensor([[0.4, 2.0], [0.3, 0.5], [0.2, 1.0]], dtype=D)
    terminated = torch.tensor([[False, True], [False, False], [False, False]])
    done = torch.tensor([[False, True], [False, False], [False, True]])
    adv, ret = gae(rewards, values, next_values, terminated, done, gamma=0.9, lam=0.8)
    # column 0: deltas 0.86, 1.87, 2.88; A2 = 2.88, A1 = 1.87 + 0.72 * 2.88, A0 = 0.86 + 0.72 * A1
    a1 = 1.87 + 0.72 * 2.88
    # column 1: delta0 = 1 - 1 = 0 (terminal); delta1 = 0.9 * 0.5 - 2 = -1.55; delta2 = 2 + 0.9 - 0.5 = 2.4
    expected = torch.tensor([[0.86 + 0.72 * a1, 0.0], [a1, -1.55 + 0.72 * 2.4], [2.88, 2.4]], dtype=D)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ret, expected + values, rtol=0, atol=1e-12)


def test_gae_with_lambda_one_is_the_discounted_return_minus_value():
    torch.manual_seed(0)
    r = torch.rand(5, 1, dtype=D)
    v = torch.rand(5, 1, dtype=D)
    nv = torch.cat([v[1:], torch.zeros(1, 1, dtype=D)])
    flags = torch.zeros(5, 1, dtype=torch.bool)
    flags[-1] = True
    adv, _ = gae(r, v, nv, flags, flags, gamma=0.5, lam=1.0)
    mc = torch.tensor([sum(0.5 ** (k - t) * float(r[k]) for k in range(t, 5)) for t in range(5)], dtype=D)
    torch.testing.assert_close(adv[:, 0], mc - v[:, 0], rtol=0, atol=1e-12)


def test_gae_rejects_bad_discount_and_shapes():
    z = torch.zeros(2, 2)
    with pytest.raises(PlasticRLError, match="gamma"):
        gae(z, z, z, z.bool(), z.bool(), gamma=1.5, lam=0.9)
    with pytest.raises(PlasticRLError, match="next_values"):
        gae(z, z, torch.zeros(3, 2), z.bool(), z.bool(), gamma=0.9, lam=0.9)


def _log_probs_for(ratios):
    old = torch.zeros(len(ratios), dtype=D)
    return torch.log(torch.tensor(ratios, dtype=D)).requires_grad_(True), old


def test_clipped_surrogate_matches_hand_values_and_gradients():
    new, old = _log_probs_for([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0], dtype=D)
    loss, info = clipped_surrogate(new, old, adv, clip=0.2)
    # min(rA, clip(r)A): min(1.5, 1.2)=1.2; min(0.5, 0.8)=0.5; min(-2.2, -2.2)=-2.2; min(-0.7, -0.8)=-0.8
    assert float(loss.detach()) == pytest.approx(-(1.2 + 0.5 - 2.2 - 0.8) / 4, abs=1e-12)
    assert float(info["clip_fraction"]) == pytest.approx(0.75)
    r = torch.tensor([1.5, 0.5, 1.1, 0.7], dtype=D)
    assert float(info["approx_kl"]) == pytest.approx(float(((r - 1) - torch.log(r)).mean()), abs=1e-12)
    loss.backward()
    # d loss / d log r = -r A / n where the unclipped term is the minimum, 0 where the clip binds.
    torch.testing.assert_close(new.grad, torch.tensor([0.0, -0.5 / 4, 2.2 / 4, 0.0], dtype=D))


def test_clipped_surrogate_and_value_loss_respect_the_mask():
    new, old = _log_probs_for([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0], dtype=D)
    mask = torch.tensor([True, True, True, False])
    loss, _ = clipped_surrogate(new, old, adv, clip=0.2, mask=mask)
    assert float(loss.detach()) == pytest.approx(-(1.2 + 0.5 - 2.2) / 3, abs=1e-12)
    v = torch.tensor([1.0, 2.0, 3.0, 100.0], dtype=D)
    ret = torch.tensor([2.0, 2.0, 1.0, 0.0], dtype=D)
    assert float(value_loss(v, ret, mask)) == pytest.approx(0.5 * (1 + 0 + 4) / 3, abs=1e-12)
    assert float(value_loss(v[:3], ret[:3])) == pytest.approx(0.5 * 5 / 3, abs=1e-12)
    assert float(masked_mean(v, torch.zeros(4, dtype=torch.bool))) == 0.0


def test_gaussian_head_matches_torch_distributions():
    torch.manual_seed(1)
    mean, actions = torch.randn(7, 3, dtype=D), torch.randn(7, 3, dtype=D)
    log_std = torch.tensor([-0.5, 0.0, 0.3], dtype=D)
    ref = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(gaussian_log_prob(actions, mean, log_std), ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(gaussian_entropy(log_std), ref.entropy()[0].sum())
    assert float(gaussian_entropy(torch.zeros(1, dtype=D))) == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi))
