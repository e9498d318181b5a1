"""PGPE + ClipUp: symmetric sampling, gradients and the stdev update against hand values."""
import math

import pytest
import torch

from plasticrl.es import PGPE

F64 = torch.float64

# theta = [0, 0], stdev = [1, 2]; directions z0 = [1, 2], z1 = [2, -2]; fitness [3, 0, 1, 2]
# utilities u+ = [0.5, -0.5], u- = [-1/6, 1/6]
# grad_center = mean_i (u+ - u-)/2 * z_i = ([1/3, 2/3] + [-2/3, 2/3]) / 2 = [-1/6, 2/3]
# grad_stdev  = mean_i ((u+ + u-)/2 - 0) * (z^2 - s^2)/s = (1/6*[0, 0] - 1/6*[3, 0]) / 2 = [-0.25, 0]
SAMPLES = torch.tensor([[1.0, 2.0], [2.0, -2.0], [-1.0, -2.0], [-2.0, 2.0]], dtype=F64)
FITNESS = torch.tensor([3.0, 0.0, 1.0, 2.0], dtype=F64)
GRAD_C = torch.tensor([-1 / 6, 2 / 3], dtype=F64)
GRAD_S = torch.tensor([-0.25, 0.0], dtype=F64)


def test_symmetric_samples_mirror_the_center_with_per_dim_stdev():
    algo = PGPE(3, {"population_size": 2000, "stdev_init": [0.1, 1.0, 3.0]})
    center = torch.tensor([1.0, -1.0, 0.5], dtype=F64)
    samples, _ = algo.ask(algo.init(center, seed=0))
    assert torch.allclose(samples[:1000] + samples[1000:], 2 * center.expand(1000, 3))
    spread = (samples - center).std(0)
    assert torch.allclose(spread, torch.tensor([0.1, 1.0, 3.0], dtype=F64), rtol=0.08)


def test_gradients_hand_case():
    utilities = torch.tensor([0.5, -0.5, -1 / 6, 1 / 6], dtype=F64)
    gc, gs = PGPE.gradients(torch.zeros(2, dtype=F64), torch.tensor([1.0, 2.0], dtype=F64), SAMPLES, utilities)
    assert torch.allclose(gc, GRAD_C) and torch.allclose(gs, GRAD_S)


def test_tell_hand_case_clipup_and_stdev():
    algo = PGPE(2, {"population_size": 4, "center_learning_rate": 0.1, "max_speed": 1.0,
                    "stdev_init": [1.0, 2.0], "stdev_learning_rate": 0.1})
    new, info = algo.tell(algo.init(torch.zeros(2, dtype=F64), seed=0), SAMPLES, FITNESS)
    assert torch.allclose(new.center, 0.1 * GRAD_C / GRAD_C.norm())
    assert torch.allclose(new.velocity, new.center)
    assert torch.allclose(new.stdev, torch.tensor([1.0 - 0.025, 2.0], dtype=F64))
    assert info["num_invalid"] == 0 and info["sigma"] == 1.5 and info["sigma_min"] == 1.0


def test_speed_limit_and_stdev_bounds():
    algo = PGPE(2, {"population_size": 4, "center_learning_rate": 0.1, "max_speed": 0.05,
                    "stdev_init": [1.0, 2.0], "stdev_learning_rate": 10.0, "stdev_max_change": 0.2,
                    "stdev_min": 0.9})
    new, _ = algo.tell(algo.init(torch.zeros(2, dtype=F64), seed=0), SAMPLES, FITNESS)
    assert math.isclose(float(new.center.norm()), 0.05, rel_tol=1e-12)
    # raw stdev step [1 - 2.5, 2] is limited to -20 % ([0.8, 2]) and then floored at stdev_min 0.9
    assert torch.allclose(new.stdev, torch.tensor([0.9, 2.0], dtype=F64))
    capped = PGPE(2, {"population_size": 4, "stdev_init": 1.0, "stdev_max": 1.0, "stdev_learning_rate": 10.0})
    s = capped.init(torch.zeros(2, dtype=F64), seed=0)
    s, _ = capped.tell(s, SAMPLES, -FITNESS)  # reversed ranks push stdev up
    assert float(s.stdev.max()) <= 1.0


def test_radius_init_sets_stdev_norm():
    algo = PGPE(16, {"population_size": 4, "radius_init": 2.0})
    state = algo.init(torch.zeros(16), seed=0)
    assert math.isclose(float(state.stdev.norm()), 2.0, rel_tol=1e-6) and state.stdev.dtype == torch.float32


def test_nan_member_is_ranked_worst_without_poisoning():
    algo = PGPE(4, {"population_size": 6})
    state = algo.init(torch.zeros(4, dtype=F64), seed=1)
    samples, _ = algo.ask(state)
    fitness = -(samples**2).sum(1)
    with_nan, worst = fitness.clone(), fitness.clone()
    with_nan[4], worst[4] = float("nan"), -1e9
    a, info = algo.tell(state, samples, with_nan)
    b, _ = algo.tell(state, samples, worst)
    assert info["num_invalid"] == 1
    assert torch.equal(a.center, b.center) and torch.equal(a.stdev, b.stdev)


def test_config_errors_name_bad_value():
    with pytest.raises(ValueError, match="stdev_init.*-0.5"):
        PGPE(2, {"stdev_init": -0.5})
    with pytest.raises(ValueError, match="not both"):
        PGPE(2, {"stdev_init": 0.1, "radius_init": 1.0})
    with pytest.raises(ValueError, match="length 3.*2 searched"):
        PGPE(2, {"stdev_init": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="momentum.*1.5"):
        PGPE(2, {"momentum": 1.5})
