"""Every ES behind the shared ask/tell contract: convergence, resume identity, search masks, errors."""
import io
import math

import pytest
import torch

from plasticrl.es import ALGORITHMS, ESAlgorithm, es_names, make_es

F64 = torch.float64

# Per-algorithm settings for a D=10 quadratic started at x = 1 (seeded, so deterministic).
QUADRATIC = {
    "openai_es": ({"population_size": 32,
                   "sigma": {"init": 0.2, "kind": "exponential", "rate": 0.98, "floor": 0.01},
                   "learning_rate": {"init": 0.1, "kind": "exponential", "rate": 0.98, "floor": 0.002}}, 200),
    "pgpe": ({"population_size": 32, "center_learning_rate": 0.02, "momentum": 0.5, "stdev_init": 0.3}, 200),
    "cma_es": ({"sigma": 0.5}, 100),
    "sep_cma_es": ({"sigma": 0.5}, 100),
}
RASTRIGIN = {
    "openai_es": ({"population_size": 64,
                   "sigma": {"init": 1.0, "kind": "exponential", "rate": 0.98, "floor": 0.02},
                   "learning_rate": 0.1}, 200),
    "pgpe": ({"population_size": 64, "center_learning_rate": 0.05, "momentum": 0.5, "stdev_init": 1.0}, 300),
    "cma_es": ({"sigma": 1.5, "population_size": 32}, 200),
    "sep_cma_es": ({"sigma": 1.5, "population_size": 32}, 200),
}
SMALL = {
    "openai_es": {"population_size": 6, "weight_decay": 0.01,
                  "sigma": {"init": 0.3, "kind": "linear", "steps": 5, "floor": 0.05}},
    "pgpe": {"population_size": 6, "stdev_init": 0.3},
    "cma_es": {"sigma": 0.3, "population_size": 6},
    "sep_cma_es": {"sigma": 0.3, "population_size": 6},
}
NAMES = sorted(ALGORITHMS)


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x**2).sum(-1)


def rastrigin(x: torch.Tensor) -> torch.Tensor:
    return 10 * x.shape[-1] + (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1)


def run(algo: ESAlgorithm, state, generations: int, loss=sphere):
    for _ in range(generations):
        samples, state = algo.ask(state)
        state, _ = algo.tell(state, samples, -loss(samples))  # fitness is maximised
    return state


def test_registry_lists_all_algorithms():
    assert es_names() == ["cma_es", "openai_es", "pgpe", "sep_cma_es"]
    with pytest.raises(ValueError) as exc:
        make_es("open_ai_es", 4)
    assert "'open_ai_es'" in str(exc.value) and "openai_es, pgpe" in str(exc.value)


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_quadratic(name):
    config, generations = QUADRATIC[name]
    algo = make_es(name, 10, **config)
    state = run(algo, algo.init(torch.ones(10, dtype=F64), seed=0), generations)
    assert float(sphere(algo.center(state))) < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_improves_rastrigin(name):
    config, generations = RASTRIGIN[name]
    algo = make_es(name, 10, **config)
    start = torch.full((10,), 2.5, dtype=F64)  # f = 262.5, far from the global basin
    state = run(algo, algo.init(start, seed=0), generations, rastrigin)
    assert float(rastrigin(algo.center(state))) < 0.3 * float(rastrigin(start))


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_resume_identity(name, dtype):
    n, k, dim = 8, 3, 7
    start = torch.linspace(-1, 1, dim, dtype=dtype)
    algo = make_es(name, dim, **SMALL[name])
    straight = run(algo, algo.init(start, seed=11), n)

    half = run(algo, algo.init(start, seed=11), k)
    buffer = io.BytesIO()
    torch.save(algo.state_dict(half), buffer)
    buffer.seek(0)
    fresh = make_es(name, dim, **SMALL[name])  # as a new process would build it
    resumed = fresh.load_state(torch.load(buffer, weights_only=True))
    resumed = run(fresh, resumed, n - k)

    assert resumed.generation == straight.generation == n
    assert torch.equal(fresh.center(resumed), algo.center(straight))
    assert fresh.center(resumed).dtype == dtype
    _assert_same(fresh.state_dict(resumed), algo.state_dict(straight))


@pytest.mark.parametrize("name", NAMES)
def test_ask_is_a_pure_function_of_state(name):
    algo = make_es(name, 5, **SMALL[name])
    state = algo.init(torch.zeros(5), seed=4)
    a, state_after = algo.ask(state)
    b, _ = algo.ask(state)
    assert torch.equal(a, b) and a.shape == (algo.population_size, 5) and a.dtype == torch.float32
    other, _ = algo.ask(algo.init(torch.zeros(5), seed=5))
    assert not torch.equal(a, other)
    nxt, _ = algo.tell(state_after, a, -sphere(a))
    assert not torch.equal(algo.ask(nxt)[0], a)


@pytest.mark.parametrize("name", NAMES)
def test_search_mask_keeps_other_dims_fixed(name):
    dim = 8
    mask = torch.zeros(dim, dtype=torch.bool)
    mask[[1, 4, 6]] = True
    start = torch.arange(dim, dtype=F64) / 4
    algo = make_es(name, dim, search=mask, **SMALL[name])
    state = algo.init(start, seed=0)
    for _ in range(5):
        samples, state = algo.ask(state)
        assert torch.equal(samples[:, ~mask], start[~mask].expand(samples.shape[0], -1))
        state, _ = algo.tell(state, samples, -sphere(samples))
    center = algo.center(state)
    assert torch.equal(center[~mask], start[~mask])
    assert not torch.equal(center[mask], start[mask])
    # the same selection given as indices (any order) is the same search
    algo_idx = make_es(name, dim, search=torch.tensor([6, 1, 4]), **SMALL[name])
    assert torch.equal(algo_idx.center(run(algo_idx, algo_idx.init(start, seed=0), 5)), center)


@pytest.mark.parametrize("name", NAMES)
def test_all_invalid_generation_keeps_the_center(name):
    algo = make_es(name, 4, **SMALL[name])
    state = algo.init(torch.ones(4), seed=0)
    samples, _ = algo.ask(state)
    new, info = algo.tell(state, samples, torch.full((algo.population_size,), float("nan")))
    assert info["num_invalid"] == algo.population_size
    assert torch.equal(algo.center(new), algo.center(state)) and new.generation == 1


@pytest.mark.parametrize("name", NAMES)
def test_invalid_members_are_counted_and_centre_stays_finite(name):
    algo = make_es(name, 4, **SMALL[name])
    state = algo.init(torch.ones(4, dtype=F64), seed=0)
    for g in range(6):
        samples, state = algo.ask(state)
        fitness = -sphere(samples)
        fitness[0] = float("nan")
        fitness[1] = float("inf") if g % 2 else float("-inf")
        state, info = algo.tell(state, samples, fitness)
        assert info["num_invalid"] == 2
        assert math.isfinite(info["fitness_mean"])
    assert torch.isfinite(algo.center(state)).all()
    assert float(sphere(algo.center(state))) < 4.0
    # Exactly as if those two members had been told a fitness below every valid one (tied):
    # NaN and +-inf alike rank last, whatever their sign.
    ref = make_es(name, 4, **SMALL[name])
    ref_state = ref.init(torch.ones(4, dtype=F64), seed=0)
    for _ in range(6):
        samples, ref_state = ref.ask(ref_state)
        fitness = -sphere(samples)
        fitness[0] = fitness[1] = fitness[2:].min() - 1.0
        ref_state, _ = ref.tell(ref_state, samples, fitness)
    assert torch.equal(algo.center(state), ref.center(ref_state))


@pytest.mark.parametrize(
    "name, config, needles",
    [
        ("openai_es", {"population_size": 7}, ["7", "even"]),
        ("openai_es", {"sigma": -0.1}, ["-0.1"]),
        ("openai_es", {"learning_rate": {"init": 0.1, "kind": "step"}}, ["'step'", "constant, linear, exponential"]),
        ("openai_es", {"sigmaa": 0.1}, ["'sigmaa'", "sigma", "learning_rate"]),
        ("pgpe", {"population_size": 9}, ["9", "even"]),
        ("pgpe", {"center_learning_rate": -1.0}, ["center_learning_rate", "-1.0"]),
        ("cma_es", {"sigma": -0.2}, ["sigma", "-0.2"]),
        ("cma_es", {"population_size": 1}, ["population_size", "1"]),
        ("sep_cma_es", {"lr_adapt": True}, ["lr_adapt", "sep_cma_es"]),
    ],
)
def test_config_errors_name_the_bad_value(name, config, needles):
    with pytest.raises(ValueError) as exc:
        make_es(name, 4, **config)
    for needle in needles:
        assert needle in str(exc.value)


@pytest.mark.parametrize(
    "search, needle",
    [
        (torch.tensor([0, 9]), "[9]"),
        (torch.tensor([1, 1]), "distinct"),
        (torch.zeros(4, dtype=torch.bool), "no dims"),
        (torch.ones(3, dtype=torch.bool), "(4,)"),
    ],
)
def test_search_errors(search, needle):
    with pytest.raises(ValueError) as exc:
        make_es("pgpe", 4, search=search)
    assert needle in str(exc.value)


def test_usage_errors():
    algo = make_es("openai_es", 3, population_size=4)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        algo.init(torch.zeros(4), seed=0)
    with pytest.raises(ValueError, match="-1"):
        algo.init(torch.zeros(3), seed=-1)
    state = algo.init(torch.zeros(3), seed=0)
    samples, _ = algo.ask(state)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        algo.tell(state, samples, torch.zeros(3))
    other = make_es("pgpe", 3, population_size=4)
    with pytest.raises(ValueError, match="'openai_es'.*'pgpe'"):
        other.load_state(algo.state_dict(state))
    masked = make_es("openai_es", 3, population_size=4, search=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="search selection"):
        masked.load_state(algo.state_dict(state))


@pytest.mark.parametrize("name", NAMES)
def test_config_errors_are_plasticrl_errors(name):
    from plasticrl.errors import PlasticRLError

    with pytest.raises(PlasticRLError, match="'bogus'"):
        make_es(name, 4, bogus=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda_without_code_change(name):
    algo = make_es(name, 6, search=torch.tensor([0, 3, 5]), **SMALL[name])
    state = run(algo, algo.init(torch.ones(6, device="cuda"), seed=0), 3)
    center = algo.center(state)
    assert center.device.type == "cuda" and torch.isfinite(center).all()
    assert torch.equal(center[[1, 2, 4]].cpu(), torch.ones(3))


@pytest.mark.parametrize("name", NAMES)
def test_info_has_the_common_keys(name):
    algo = make_es(name, 4, **SMALL[name])
    state = algo.init(torch.ones(4), seed=0)
    samples, _ = algo.ask(state)
    _, info = algo.tell(state, samples, -sphere(samples))
    common = {"generation", "num_invalid", "fitness_mean", "fitness_std", "fitness_max", "fitness_min",
              "sigma", "step_norm"}
    assert common <= info.keys()
    assert all(isinstance(info[k], (int, float)) for k in common)
    assert info["step_norm"] > 0 and info["generation"] == 0
