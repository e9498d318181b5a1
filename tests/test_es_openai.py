"""OpenAI-ES: antithetic pairing, the gradient estimate on a hand case, L2, schedules, invalid members."""
import dataclasses

import pytest
import torch

from plasticrl.es import OpenAIES, OpenAIESState

F64 = torch.float64


def _state(algo, center):
    return algo.init(torch.as_tensor(center, dtype=F64), seed=0)


def test_antithetic_pairs_mirror_the_center():
    algo = OpenAIES(5, {"population_size": 8, "sigma": 0.3})
    center = torch.arange(5, dtype=F64)
    samples, _ = algo.ask(algo.init(center, seed=3))
    assert samples.shape == (8, 5)
    assert torch.allclose(samples[:4] + samples[4:], 2 * center.expand(4, 5))
    assert not torch.allclose(samples[0], samples[1])  # distinct directions


def test_non_antithetic_allows_odd_population():
    algo = OpenAIES(3, {"population_size": 5, "antithetic": False})
    samples, _ = algo.ask(algo.init(torch.zeros(3), seed=0))
    assert samples.shape == (5, 3)
    sums = samples.unsqueeze(0) + samples.unsqueeze(1)  # [i, j] = samples[i] + samples[j]
    off_diagonal = ~torch.eye(5, dtype=torch.bool)
    assert (sums.abs().amax(-1)[off_diagonal] > 1e-6).all()  # no member mirrors another about the centre


def test_non_antithetic_samples_are_independent_gaussians_around_the_center():
    """P independent N(center, sigma^2) draws: empirical mean and std per dim, and no mirrored half."""
    center = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    algo = OpenAIES(3, {"population_size": 4000, "sigma": 0.3, "antithetic": False})
    samples, _ = algo.ask(algo.init(center, seed=1))
    noise = (samples - center) / 0.3
    # mean of 4000 standard normals: std 1/sqrt(4000) = 0.016; std: its own std is about 0.011
    assert torch.allclose(noise.mean(0), torch.zeros(3, dtype=F64), atol=0.07)
    assert torch.allclose(noise.std(0), torch.ones(3, dtype=F64), atol=0.05)
    assert not torch.allclose(samples[:2000] + samples[2000:], 2 * center.expand(2000, 3), atol=0.1)
    assert abs(float((noise[:2000] * noise[2000:]).mean())) < 0.07  # halves uncorrelated (mirrored: -1)


def test_gradient_hand_case():
    # center [1, 2], sigma 0.5; eps = [1,0], [0,2], [-1,0], [0,-2]; fitness [4, 1, 2, 3]
    # utilities [0.5, -0.5, -1/6, 1/6]; sum u*eps = [2/3, -4/3]; g = that / (P * sigma) = [1/3, -2/3]
    center = torch.tensor([1.0, 2.0], dtype=F64)
    samples = torch.tensor([[1.5, 2.0], [1.0, 3.0], [0.5, 2.0], [1.0, 1.0]], dtype=F64)
    utilities = torch.tensor([0.5, -0.5, -1 / 6, 1 / 6], dtype=F64)
    g = OpenAIES.gradient(center, samples, utilities, 0.5)
    assert torch.allclose(g, torch.tensor([1 / 3, -2 / 3], dtype=F64))


def test_tell_applies_adam_with_weight_decay_hand_case():
    center = torch.tensor([1.0, 2.0], dtype=F64)
    samples = torch.tensor([[1.5, 2.0], [1.0, 3.0], [0.5, 2.0], [1.0, 1.0]], dtype=F64)
    fitness = torch.tensor([4.0, 1.0, 2.0, 3.0], dtype=F64)
    algo = OpenAIES(2, {"population_size": 4, "sigma": 0.5, "learning_rate": 0.1, "weight_decay": 0.5})
    new, info = algo.tell(algo.init(center, seed=0), samples, fitness)
    # ascent = g - wd * center = [1/3 - 0.5, -2/3 - 1.0]; first Adam step = lr * a / (|a| + eps)
    a = torch.tensor([1 / 3 - 0.5, -2 / 3 - 1.0], dtype=F64)
    assert torch.allclose(new.center, center + 0.1 * a / (a.abs() + 1e-8))
    assert new.generation == 1 and new.adam_step == 1
    assert info["num_invalid"] == 0 and info["fitness_max"] == 4.0 and info["sigma"] == 0.5


def test_weight_decay_only_touches_searched_dims():
    # Flat fitness -> zero search gradient; only L2 moves the centre, and only where searched.
    algo = OpenAIES(3, {"population_size": 4, "learning_rate": 0.1, "weight_decay": 1.0}, search=torch.tensor([0, 2]))
    state = algo.init(torch.tensor([1.0, 1.0, -1.0], dtype=F64), seed=0)
    samples, _ = algo.ask(state)
    new, _ = algo.tell(state, samples, torch.zeros(4))
    assert torch.allclose(new.center, torch.tensor([0.9, 1.0, -0.9], dtype=F64))


def test_schedules_drive_sigma_and_learning_rate():
    algo = OpenAIES(
        2,
        {
            "population_size": 4,
            "sigma": {"init": 0.4, "kind": "exponential", "rate": 0.5, "floor": 0.1},
            "learning_rate": {"init": 0.2, "kind": "linear", "steps": 2, "floor": 0.0},
        },
    )
    state = algo.init(torch.zeros(2, dtype=F64), seed=0)
    seen = []
    for _ in range(4):
        samples, state_ = algo.ask(state)
        # the spread of generation g is sigma(g): |x - c| = sigma * |eps|
        eps = algo._noise(state)
        assert torch.allclose(samples - state.center, algo.sigma(state) * eps)
        state, info = algo.tell(state, samples, -(samples**2).sum(1))
        seen.append((info["sigma"], info["learning_rate"]))
    expected = [(0.4, 0.2), (0.2, 0.1), (0.1, 0.0), (0.1, 0.0)]
    assert [x for pair in seen for x in pair] == pytest.approx([x for pair in expected for x in pair])


def test_nan_member_is_ranked_worst_without_poisoning():
    algo = OpenAIES(4, {"population_size": 6, "sigma": 0.1})
    state = algo.init(torch.zeros(4, dtype=F64), seed=1)
    samples, _ = algo.ask(state)
    fitness = -(samples**2).sum(1)
    with_nan = fitness.clone()
    with_nan[2] = float("nan")
    worst = fitness.clone()
    worst[2] = -1e9  # a finite value that is also the unique worst gives the same ranks
    a, info = algo.tell(state, samples, with_nan)
    b, _ = algo.tell(state, samples, worst)
    assert info["num_invalid"] == 1 and torch.isfinite(a.center).all()
    assert torch.equal(a.center, b.center) and torch.equal(a.adam_v, b.adam_v)


def test_all_invalid_generation_changes_only_the_noise_counter():
    algo = OpenAIES(3, {"population_size": 4})
    state = algo.init(torch.ones(3, dtype=F64), seed=0)
    samples, _ = algo.ask(state)
    new, info = algo.tell(state, samples, torch.full((4,), float("inf")))
    assert info["num_invalid"] == 4
    assert torch.equal(new.center, state.center) and torch.equal(new.adam_m, state.adam_m)
    assert new.adam_step == 0 and new.generation == 1
    assert not torch.equal(algo.ask(new)[0], samples)


def test_state_is_not_mutated_by_tell():
    algo = OpenAIES(3, {"population_size": 4})
    state = algo.init(torch.zeros(3, dtype=F64), seed=0)
    before = state.center.clone()
    samples, _ = algo.ask(state)
    algo.tell(state, samples, torch.arange(4.0))
    assert torch.equal(state.center, before) and state.generation == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.generation = 5  # type: ignore[misc]
    assert isinstance(state, OpenAIESState)
