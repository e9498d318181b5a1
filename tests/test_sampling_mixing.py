"""Issue 7: RBM training (exact references), classical samplers, LIF short-term depression and mixing."""
import math

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.sampling import (
    LIFSamplerParameters,
    boltzmann_distribution,
    boltzmann_to_lif,
    calibrate_activation,
    empirical_distribution,
    kl_divergence,
    sample_lif,
)
from plasticrl.studies.sampling.data import bars_and_stripes, binarized_digits
from plasticrl.studies.sampling.lif_sampler import lif_sampler_initial_state, lif_sampler_step
from plasticrl.studies.sampling.mixing import class_prototypes, classify, switches_per_1000
from plasticrl.studies.sampling.rbm import (
    RBM,
    CDConfig,
    cd_gradient,
    exact_gradient,
    free_energy,
    hidden_marginal,
    log_likelihood,
    log_partition,
    rbm_to_boltzmann,
    train_cd,
)
from plasticrl.studies.sampling.tempering import (
    geometric_betas,
    gibbs_sample,
    parallel_tempering,
)
from plasticrl.studies.sampling.wake_sleep import WakeSleepConfig, wake_sleep_finetune
from plasticrl.snn.stp import STPParameters, stp_train_efficacies

torch.set_num_threads(1)
FAST = LIFSamplerParameters(dt=1.0)  # 1 ms steps keep the LIF tests fast; calibrated like the default


def random_rbm(n_v: int, n_h: int, scale: float, seed: int) -> RBM:
    g = torch.Generator().manual_seed(seed)
    return RBM(scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64),
               0.5 * torch.randn(n_v, generator=g, dtype=torch.float64),
               0.5 * torch.randn(n_h, generator=g, dtype=torch.float64))


def test_exact_quantities_agree_with_the_full_boltzmann_machine():
    rbm = random_rbm(4, 3, 1.0, seed=0)
    p = boltzmann_distribution(*rbm_to_boltzmann(rbm))  # over [v, h], v most significant
    joint = p.view(16, 8)
    torch.testing.assert_close(hidden_marginal(rbm), joint.sum(0))
    v = torch.tensor([[1.0, 0, 1, 1], [0, 0, 0, 1]], dtype=torch.float64)
    codes = (v * torch.tensor([8.0, 4, 2, 1], dtype=torch.float64)).sum(1).long()
    assert log_likelihood(rbm, v) == pytest.approx(float(joint.sum(1)[codes].log().mean()), abs=1e-12)
    # log Z by brute force over all 128 joint states
    z = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * 7)
    vv, hh = z[:, :4], z[:, 4:]
    brute = torch.logsumexp(((vv @ rbm.W) * hh).sum(1) + vv @ rbm.b + hh @ rbm.c, 0)
    assert float(log_partition(rbm)) == pytest.approx(float(brute), abs=1e-12)


def test_exact_gradient_matches_finite_differences_of_the_exact_likelihood():
    rbm = random_rbm(5, 3, 0.7, seed=1)
    data = bars_and_stripes(3)[:, :5]  # any fixed binary rows
    assert len(bars_and_stripes(3)) == 14  # 2 * 2^3 images minus the 2 counted twice (all on, all off)
    grad = exact_gradient(rbm, data)
    eps = 1e-6
    for field in range(3):
        for i in range(rbm[field].numel()):
            plus = [t.clone() for t in rbm]
            minus = [t.clone() for t in rbm]
            plus[field].view(-1)[i] += eps
            minus[field].view(-1)[i] -= eps
            numeric = (log_likelihood(RBM(*plus), data) - log_likelihood(RBM(*minus), data)) / (2 * eps)
            assert grad[field].view(-1)[i].item() == pytest.approx(numeric, abs=1e-6)


def test_long_cd_chains_estimate_the_exact_gradient():
    rbm = random_rbm(6, 3, 0.8, seed=2)
    data = bars_and_stripes(2).repeat(1, 2)[:, :6].repeat(500, 1)  # 2000 rows: little sampling noise
    exact = torch.cat([t.flatten() for t in exact_gradient(rbm, data)])
    g = torch.Generator().manual_seed(0)
    cd1 = torch.cat([t.flatten() for t in cd_gradient(rbm, data, 1, g)[0]])
    cd30 = torch.cat([t.flatten() for t in cd_gradient(rbm, data, 30, g)[0]])
    err30, err1 = (cd30 - exact).norm() / exact.norm(), (cd1 - exact).norm() / exact.norm()
    assert err30 < 0.15  # k -> infinity is the exact gradient
    assert err30 < err1  # CD-1 is biased towards the data


MODES = torch.tensor([[1.0] * 5 + [0.0] * 5, [0.0] * 5 + [1.0] * 5], dtype=torch.float64)


def two_mode_data(count: int = 200, flip: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Two complementary 10-pixel patterns with pixel noise: a small, exactly enumerable, bimodal set."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(count) % 2
    flips = (torch.rand(count, 10, generator=g) < flip).to(torch.float64)
    return (MODES[labels] + flips) % 2, labels


def test_cd_training_raises_the_exact_likelihood():
    data, _ = two_mode_data()
    rbm, history = train_cd(data, CDConfig(n_hidden=4, epochs=60, lr=0.1, k=1, lr_final=0.2), seed=0)
    assert history[-1] > history[0] + 2.0  # nats per image; the start is the data's independent-pixel fit
    # the trained model concentrates on the two modes: the clean patterns hold a large share of its mass
    mass = torch.exp(-free_energy(rbm, MODES) - log_partition(rbm)).sum()
    assert mass > 0.3  # 2 / 1024 for the uniform distribution; 2 * 0.5^10 for the initial independent pixels


def test_gibbs_and_parallel_tempering_sample_the_exact_joint():
    rbm = random_rbm(4, 3, 1.5, seed=3)
    target = boltzmann_distribution(*rbm_to_boltzmann(rbm))
    v0 = torch.zeros(64, 4, dtype=torch.float64)
    for s in (gibbs_sample(rbm, v0, 400, seed=0, burn_in=20),
              parallel_tempering(rbm, v0, geometric_betas(4, 0.3), 400, seed=0, burn_in=20)):
        q = empirical_distribution(torch.cat([s.v, s.h], -1))
        assert kl_divergence(q, target) < 0.01
    assert 0 < s.swap_rate < 1
    with pytest.raises(PlasticRLError, match=r"betas=.*decreasing, starting at 1"):
        parallel_tempering(rbm, v0, torch.tensor([0.5, 1.0]), 10, seed=0)
    with pytest.raises(PlasticRLError, match=r"beta_min=1.5"):
        geometric_betas(3, 1.5)


def test_depression_amplitudes_follow_the_event_driven_synapse():
    stp = STPParameters(0.3, 50.0, 0.0)
    g = torch.Generator().manual_seed(0)
    state = lif_sampler_initial_state(1, 1, FAST, g)
    state = state._replace(depression=state.depression._replace(u=state.depression.u * 0 + stp.U))
    mu, w = torch.tensor([2.5], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    times, heights = [], []
    for t in range(400):
        _z, state = lif_sampler_step(mu, w, state, FAST, g, stp)
        if state.refractory_left.item() == round(FAST.tau_ref / FAST.dt):  # spiked at this step
            times.append(t)
            heights.append(state.amplitude.item())
    assert len(times) > 5
    intervals = torch.tensor(times, dtype=torch.float64).diff() * FAST.dt
    expected, _ = stp_train_efficacies(intervals, stp)
    torch.testing.assert_close(torch.tensor(heights, dtype=torch.float64), expected / stp.U)
    assert heights[-1] < 0.6 * heights[0]  # a neuron that keeps firing depresses its own synapses


def test_a_fully_recovering_depression_changes_nothing():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(5, 5, generator=g, dtype=torch.float64)
    w = (a + a.T) / 2
    w.fill_diagonal_(0)
    mu = torch.randn(5, generator=g, dtype=torch.float64)
    run = {"chains": 4, "steps": 500, "burn_in": 0, "every": 1, "seed": 1}
    plain = sample_lif(mu, w, FAST, **run)
    rested = sample_lif(mu, w, FAST, depression=STPParameters(0.3, 1e-6, 0.0), **run)
    assert torch.equal(plain, rested)
    with pytest.raises(PlasticRLError, match=r"depress has shape \[3\]; expected \[5\]"):
        sample_lif(mu, w, FAST, depression=STPParameters(0.3, 10.0, 0.0), depress=torch.ones(3, dtype=torch.bool), **run)
    with pytest.raises(PlasticRLError, match=r"U=1.5.*\(0, 1\]"):
        sample_lif(mu, w, FAST, depression=STPParameters(1.5, 10.0, 0.0), **run)


@pytest.fixture(scope="module")
def fast_fit():
    return calibrate_activation(FAST, torch.linspace(-1.5, 3.5, 21), steps=3000, burn_in=200, seed=0)


@pytest.fixture(scope="module")
def bimodal(fast_fit):
    """A fixed RBM trained on two complementary noisy patterns (two deep modes), and its LIF translation."""
    data, labels = two_mode_data()
    rbm, _ = train_cd(data, CDConfig(n_hidden=4, epochs=150, lr=0.1, k=5, lr_final=0.2), seed=0)
    _, prototypes = class_prototypes(data, labels)
    mu, w = boltzmann_to_lif(*rbm_to_boltzmann(rbm), fast_fit, FAST)
    return rbm, data, prototypes, mu, w


def test_depressing_stp_increases_mode_switches_on_a_fixed_trained_network(bimodal):
    _, _, prototypes, mu, w = bimodal
    every = round(FAST.tau_ref / FAST.dt)
    run = {"chains": 16, "steps": every * 320, "burn_in": every * 20, "every": every, "seed": 5}  # 300 samples of 10 ms per chain

    def switches(depression):
        z = sample_lif(mu, w, FAST, depression=depression, **run)
        return switches_per_1000(classify(z[..., :10], prototypes))

    renewing = switches(None)
    depressing = switches(STPParameters(0.2, 200.0, 0.0))
    # averaged over 16 chains; the margin is many standard errors wide (about 60 against 470 per 1000 when written)
    assert depressing.mean() > 2.0 * renewing.mean() + 5.0
    assert (depressing > renewing.mean()).float().mean() > 0.8  # not driven by a few chains


def test_wake_sleep_moves_the_lif_network_towards_the_data(fast_fit):
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(300, 6, generator=g) < torch.tensor([0.8, 0.8, 0.8, 0.2, 0.2, 0.2])).to(torch.float64)
    start = RBM(torch.zeros(6, 3, dtype=torch.float64), torch.zeros(6, dtype=torch.float64),
                torch.zeros(3, dtype=torch.float64))
    tuned = wake_sleep_finetune(start, data, FAST, fast_fit, WakeSleepConfig(updates=60, lr=0.1), seed=0)
    every = round(FAST.tau_ref / FAST.dt)

    def visible_error(rbm):
        mu, w = boltzmann_to_lif(*rbm_to_boltzmann(rbm), fast_fit, FAST)
        z = sample_lif(mu, w, FAST, chains=16, steps=every * 110, burn_in=every * 10, every=every, seed=2)
        return float((z[..., :6].mean((0, 1)) - data.mean(0)).abs().max())

    before, after = visible_error(start), visible_error(tuned)
    assert before > 0.25
    assert after < 0.1


def test_digits_loader_and_mixing_metrics():
    x, y = binarized_digits([0, 1], [0.9, 0.1])
    counts = torch.bincount(y, minlength=2)[:2].to(torch.float64)
    assert counts[1] / counts.sum() == pytest.approx(0.1, abs=0.01)
    assert x.shape[1] == 64 and set(x.unique().tolist()) == {0.0, 1.0}
    classes, prototypes = class_prototypes(x, y)
    assert (classify(x, prototypes) == torch.searchsorted(classes, y)).float().mean() > 0.95
    labels = torch.tensor([[0, 1], [0, 1], [1, 1], [1, 0], [0, 0]])
    torch.testing.assert_close(switches_per_1000(labels), torch.tensor([500.0, 250.0], dtype=torch.float64))
    with pytest.raises(PlasticRLError, match=r"digit classes \[0, 12\].*0-9"):
        binarized_digits([0, 12])
    with pytest.raises(PlasticRLError, match=r"proportions \[0.5, 0.6\].*summing to 1"):
        binarized_digits([0, 1], [0.5, 0.6])
    with pytest.raises(PlasticRLError, match=r"CD lr=0.0.*> 0"):
        train_cd(x, CDConfig(lr=0.0), seed=0)
    assert math.isfinite(log_likelihood(RBM(torch.zeros(64, 2, dtype=torch.float64),
                                            torch.zeros(64, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)), x))
