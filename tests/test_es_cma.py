"""CMA-ES wrappers: state is the library's internals, immutable, deterministic and float64 inside."""
import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.es import CMAES, SepCMAES, make_es

F64 = torch.float64


@pytest.mark.parametrize("cls", [CMAES, SepCMAES])
def test_state_is_deterministic_and_weights_only_friendly(cls):
    algo = cls(5, {"sigma": 0.2, "population_size": 6})
    a = algo.init(torch.ones(5), seed=3)
    b = algo.init(torch.ones(5), seed=3)
    for key, value in a.internals.items():
        assert isinstance(value, (torch.Tensor, int, float, bool, type(None))), key
        if isinstance(value, torch.Tensor):
            assert value.dtype == F64 and torch.equal(value, b.internals[key]), key
        else:
            assert value == b.internals[key], key
    assert torch.equal(a.internals["_funhist_values"], torch.zeros_like(a.internals["_funhist_values"]))


@pytest.mark.parametrize("name", ["cma_es", "sep_cma_es"])
def test_ask_and_tell_never_mutate_the_state(name):
    algo = make_es(name, 4, sigma=0.3, population_size=6)
    state = algo.init(torch.zeros(4, dtype=F64), seed=0)
    snapshot = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.internals.items()}
    samples, _ = algo.ask(state)
    new, info = algo.tell(state, samples, -(samples**2).sum(1))
    for key, value in snapshot.items():
        now = state.internals[key]
        assert (torch.equal(value, now) if isinstance(value, torch.Tensor) else value == now), key
    assert new.internals["_g"] == 1 and info["sigma"] == 0.3
    # the new centre is the library's mean, and it moved towards the better half
    assert torch.equal(algo.center(new), new.internals["_mean"])


def test_float32_center_keeps_float64_internals():
    algo = make_es("cma_es", 3, sigma=0.5)
    state = algo.init(torch.tensor([1.0, 2.0, 3.0]), seed=0)
    samples, _ = algo.ask(state)
    assert samples.dtype == torch.float32 and state.internals["_mean"].dtype == F64
    new, _ = algo.tell(state, samples, -(samples**2).sum(1))
    assert algo.center(new).dtype == torch.float32


def test_default_population_follows_searched_dims():
    assert make_es("cma_es", 100).population_size == 4 + 13  # 4 + floor(3 ln 100)
    assert make_es("cma_es", 100, search=torch.arange(10)).population_size == 4 + 6  # d = 10


def test_lr_adapt_adapts_the_learning_rates_and_changes_the_search():
    """With lr_adapt the library's learning rates for the mean and covariance (eta, 1 without it)
    adapt over the run, so the same seed searches differently; both still solve the sphere."""
    runs = {}
    for lr_adapt in (False, True):
        algo = make_es("cma_es", 4, sigma=0.5, lr_adapt=lr_adapt)
        state = algo.init(torch.ones(4, dtype=F64), seed=0)
        for _ in range(30):
            samples, state = algo.ask(state)
            state, _ = algo.tell(state, samples, -(samples**2).sum(1))
        assert float((algo.center(state) ** 2).sum()) < 0.1
        runs[lr_adapt] = state
    assert runs[False].internals["_eta_mean"] == 1.0 and runs[False].internals["_eta_Sigma"] == 1.0
    assert runs[True].internals["_eta_mean"] < 1.0 and runs[True].internals["_eta_Sigma"] < 1.0
    assert not torch.equal(runs[True].center, runs[False].center)


def test_errors_are_plasticrl_errors():
    with pytest.raises(PlasticRLError, match="sigma.*0"):
        make_es("cma_es", 4, sigma=0)
    with pytest.raises(PlasticRLError, match="1e\\+32"):
        make_es("cma_es", 2).init(torch.tensor([1e33, 0.0], dtype=F64), seed=0)


def test_batched_sampling_matches_the_library_ask():
    import numpy as np

    from plasticrl.es.cma import _restore

    algo = make_es("cma_es", 6, sigma=0.4, population_size=8)
    state = algo.init(torch.linspace(-1, 1, 6, dtype=F64), seed=2)
    for _ in range(3):  # a non-trivial covariance
        samples, state = algo.ask(state)
        state, _ = algo.tell(state, samples, -(samples**2).sum(1) - 3 * samples[:, 0] ** 2)
    ours, _ = algo.ask(state)
    reference = _restore(algo._cls, state.internals)
    reference.reseed_rng(np.random.SeedSequence([state.seed, state.generation, 2]).generate_state(4, dtype=np.uint32))
    library = np.stack([reference.ask() for _ in range(8)])
    assert np.allclose(ours.numpy(), library, rtol=0, atol=1e-12)
