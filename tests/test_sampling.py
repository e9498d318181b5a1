"""LIF sampling (first cut): Boltzmann helpers by hand, and a 4-neuron LIF network against its target (KL)."""
import math

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.sampling import (
    LIFSamplerParameters,
    all_states,
    boltzmann_distribution,
    boltzmann_to_lif,
    calibrate_activation,
    empirical_distribution,
    kl_divergence,
    sample_lif,
)

PARAMS = LIFSamplerParameters()


def test_boltzmann_distribution_hand_value_and_codes():
    W = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0], dtype=torch.float64)
    p = boltzmann_distribution(W, b)
    # states 00, 01, 10, 11 -> energies 0, -1, 0.5, 0.5 - 1 + 1
    expected = torch.tensor([1.0, math.exp(-1), math.exp(0.5), math.exp(0.5)], dtype=torch.float64)
    torch.testing.assert_close(p, expected / expected.sum())
    assert all_states(2).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    z = torch.tensor([[1, 1], [0, 1], [1, 1], [0, 0]])
    assert empirical_distribution(z).tolist() == [0.25, 0.25, 0.0, 0.5]
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(PlasticRLError, match="symmetric"):
        boltzmann_distribution(torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.zeros(2))
    with pytest.raises(PlasticRLError, match=r"tau_ref=0\.0.*> 0"):
        sample_lif(torch.zeros(2), torch.zeros(2, 2), PARAMS._replace(tau_ref=0.0), 1, 10, 0, 1, seed=0)


@pytest.fixture(scope="module")
def activation():
    return calibrate_activation(PARAMS, torch.linspace(-1.5, 3.5, 21), seed=0)


def test_activation_is_close_to_logistic(activation):
    assert activation.alpha > 0
    assert activation.max_residual < 0.03


def test_four_lif_neurons_sample_their_boltzmann_target(activation):
    n = 4
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    W = (a + a.T) / 2
    W.fill_diagonal_(0)
    b = 0.5 * torch.randn(n, generator=g, dtype=torch.float64) - 0.25 * W.sum(1)
    target = boltzmann_distribution(W, b)
    mu, w = boltzmann_to_lif(W, b, activation, PARAMS)
    run = dict(chains=64, steps=40000, burn_in=1000, every=10, seed=2)  # 4 s of network time per chain
    coupled = kl_divergence(empirical_distribution(sample_lif(mu, w, PARAMS, **run)), target)
    # the same biases without synapses: only the marginals' product, so the couplings must matter
    uncoupled = kl_divergence(empirical_distribution(sample_lif(mu, torch.zeros_like(w), PARAMS, **run)), target)
    assert coupled < 0.03
    assert uncoupled > 5 * coupled
