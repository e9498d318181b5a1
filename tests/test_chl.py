"""Contrastive Hebbian learning: both plasticity rules against hand values on a tiny network,
the differential rule's insensitivity to long phases, and learning under random phases."""
import math
from dataclasses import replace

import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.contrastive import (
    CHLConfig,
    CHLParams,
    chl_init,
    chl_predict,
    chl_train,
    chl_train_epoch,
)
from plasticrl.studies.contrastive.phases import PhaseSchedule


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# 1 input, 1 hidden, 2 classes; no feedback and eps = 1, so every step sets the state to its
# drive and the hidden rate is sigmoid(W1 x + b1) = sigmoid(0) = 1/2 throughout
TINY = CHLConfig(n_inputs=1, n_hidden=1, n_classes=2, steps=1, eps=1.0, settle=2, feedback=0.0,
                 eta=0.1, eta_decay=1.0, batch_size=1, w_max=10.0)
X, LABEL = torch.tensor([[1.0]]), torch.tensor([0])   # target (1, 0)


def tiny_params() -> CHLParams:
    return CHLParams(torch.zeros(1, 1), torch.zeros(1), torch.tensor([[2.0], [-2.0]]), torch.zeros(2))


def run_tiny(cfg: CHLConfig, schedule: PhaseSchedule) -> CHLParams:
    return chl_train_epoch(tiny_params(), cfg, X, LABEL, schedule, torch.Generator().manual_seed(0))


def test_differential_rule_free_then_clamped_hand_values():
    # settle: h = 1/2, then y* = sigmoid(W2 h + b2) = (sig(1), sig(-1)); the free step leaves
    # the state where it was (no change, no update); the clamped step moves y to the target,
    # so the update is eta * (target - y*) h: the CHL update c(clamped) - c(free)
    p = run_tiny(TINY, PhaseSchedule("periodic", 1, 1, start="negative"))
    dy = (1.0 - sig(1.0), 0.0 - sig(-1.0))
    assert p.W2[:, 0].tolist() == pytest.approx([2.0 + 0.1 * 0.5 * dy[0], -2.0 + 0.1 * 0.5 * dy[1]], abs=1e-6)
    assert p.b2.tolist() == pytest.approx([0.1 * dy[0], 0.1 * dy[1]], abs=1e-6)
    # the hidden rate never changed, so W1 and b1 did not either
    assert torch.equal(p.W1, torch.zeros(1, 1)) and torch.equal(p.b1, torch.zeros(1))


def test_differential_rule_learns_the_rise_from_rest_without_settling():
    # with one settling step the output is still at sigmoid(b2) = 1/2 when learning starts;
    # the free step then learns its rise to y* with the negative sign: a phase-signed bias
    # that the settle steps exist to remove
    p = run_tiny(replace(TINY, settle=1), PhaseSchedule("periodic", 1, 1, start="negative"))
    eta, h = 0.1, 0.5
    y_star, target = (sig(1.0), sig(-1.0)), (1.0, 0.0)
    b2 = [-eta * (y_star[i] - 0.5) + eta * (target[i] - y_star[i]) for i in range(2)]
    w2 = [(2.0, -2.0)[i] - eta * h * (y_star[i] - 0.5) + eta * h * (target[i] - y_star[i]) for i in range(2)]
    assert p.b2.tolist() == pytest.approx(b2, abs=1e-6)
    assert p.W2[:, 0].tolist() == pytest.approx(w2, abs=1e-6)
    settled = run_tiny(TINY, PhaseSchedule("periodic", 1, 1, start="negative"))
    assert p.b2[1] > settled.b2[1]  # the rise pushed the wrong class (1) up


def test_differential_rule_clamped_then_free_keeps_the_chl_sign():
    # positive phase first (weight 1.5), then the free phase (weight 0.75) starting from the
    # clamped state (no reset): the output falls from the target to the new free fixed point,
    # and the negative sign turns that fall into another step toward the target
    sched = PhaseSchedule("periodic", 1, 2, start="positive")
    w_neg, w_pos = sched.weights
    assert (w_neg, w_pos) == pytest.approx((0.75, 1.5))
    p = run_tiny(TINY, sched)
    eta, h = 0.1, 0.5
    target = (1.0, 0.0)
    y_star = (sig(1.0), sig(-1.0))
    w2 = [(2.0, -2.0)[i] + eta * w_pos * h * (target[i] - y_star[i]) for i in range(2)]
    b2 = [eta * w_pos * (target[i] - y_star[i]) for i in range(2)]
    y_free = [sig(w2[i] * h + b2[i]) for i in range(2)]           # free relaxation, new weights
    w2 = [w2[i] - eta * w_neg * h * (y_free[i] - target[i]) for i in range(2)]
    b2 = [b2[i] - eta * w_neg * (y_free[i] - target[i]) for i in range(2)]
    assert p.W2[:, 0].tolist() == pytest.approx(w2, abs=1e-6)
    assert p.b2.tolist() == pytest.approx(b2, abs=1e-6)
    # both steps pushed class 0 up and class 1 down
    assert p.W2[0, 0] > 2.0 + eta * w_pos * h * (target[0] - y_star[0]) > 2.0 and p.W2[1, 0] < -2.0


def test_coactivity_rule_hand_values():
    # the earlier rule with no baseline: -eta c(free) at the free step, +eta c(clamped) at the
    # clamped one; it moves W1 and b1 too (by -eta h x, -eta h), so h differs in the next step
    cfg = replace(TINY, rule="coactivity", baseline_rate=0.0)
    p = run_tiny(cfg, PhaseSchedule("periodic", 1, 1, start="negative"))
    eta, h = 0.1, 0.5
    y_star = (sig(1.0), sig(-1.0))
    w1, b1 = -eta * h * 1.0, -eta * h                      # free step
    w2 = [2.0 - eta * h * y_star[0], -2.0 - eta * h * y_star[1]]
    b2 = [-eta * y_star[0], -eta * y_star[1]]
    h_c = sig(w1 * 1.0 + b1)                               # clamped step: new h, y = target
    w1, b1 = w1 + eta * h_c * 1.0, b1 + eta * h_c
    w2 = [w2[0] + eta * h_c * 1.0, w2[1] + eta * h_c * 0.0]
    b2 = [b2[0] + eta * 1.0, b2[1] + eta * 0.0]
    assert p.W2[:, 0].tolist() == pytest.approx(w2, abs=1e-6)
    assert p.b2.tolist() == pytest.approx(b2, abs=1e-6)
    assert p.W1.item() == pytest.approx(w1, abs=1e-6) and p.b1.item() == pytest.approx(b1, abs=1e-6)
    assert w1 < 0  # h fell between the phases, so the two W1 terms do not cancel


def test_a_long_settled_phase_changes_nothing_under_the_differential_rule():
    # a whole window of the free phase after a long settle: the state no longer moves, so the
    # differential rule leaves the weights alone; the co-activity rule keeps pushing
    cfg = CHLConfig(n_inputs=6, n_hidden=5, n_classes=3, steps=4, settle=80, eta=0.5, batch_size=4)
    g = torch.Generator().manual_seed(1)
    p0 = chl_init(cfg, g)
    x, labels = torch.rand(4, 6, generator=g), torch.tensor([0, 1, 2, 1])
    all_free = PhaseSchedule("periodic", 1, 2 * cfg.steps, start="negative")  # first 2T steps free
    p_diff = chl_train_epoch(p0, cfg, x, labels, all_free, torch.Generator().manual_seed(0))
    assert (p_diff.W1 - p0.W1).abs().max() < 1e-6 and (p_diff.W2 - p0.W2).abs().max() < 1e-6
    co = replace(cfg, rule="coactivity", baseline_rate=0.0)
    p_co = chl_train_epoch(p0, co, x, labels, all_free, torch.Generator().manual_seed(0))
    assert (p_co.W2 - p0.W2).abs().max() > 0.1


def test_eta_decays_per_epoch():
    # chl_train = chl_train_epoch with eta, then eta * eta_decay, ... (same generator stream)
    cfg = CHLConfig(n_inputs=4, n_hidden=3, n_classes=2, steps=2, batch_size=2)
    g = torch.Generator().manual_seed(0)
    p0 = chl_init(cfg, g)
    x, labels = torch.rand(2, 4, generator=g), torch.tensor([0, 1])
    sched = PhaseSchedule("periodic", 2, 2, start="negative")
    one = chl_train(p0, cfg, x, labels, sched, torch.Generator().manual_seed(0), epochs=1)
    manual = chl_train_epoch(p0, cfg, x, labels, sched, torch.Generator().manual_seed(0))
    assert torch.equal(one.W2, manual.W2)
    g2 = torch.Generator().manual_seed(0)
    two = chl_train(p0, cfg, x, labels, sched, g2, epochs=2)
    g3 = torch.Generator().manual_seed(0)
    first = chl_train_epoch(p0, cfg, x, labels, sched, g3)
    half = replace(cfg, eta=cfg.eta * cfg.eta_decay)
    assert torch.equal(two.W2, chl_train_epoch(first, half, x, labels, sched, g3).W2)
    assert torch.equal(chl_train(p0, cfg, x, labels, sched, g2, epochs=0).W1, p0.W1)


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "hebbian"}, "valid choices: coactivity, differential"),
    ({"nudge": 0.0}, "nudge"),
    ({"eps": 1.5}, "eps"),
    ({"n_hidden": 0}, "n_hidden"),
    ({"eta_decay": 0.0}, "eta_decay"),
])
def test_bad_config_names_the_value(kwargs, message):
    with pytest.raises(PlasticRLError, match=message):
        CHLConfig(**kwargs)


def test_negative_epochs_are_refused():
    with pytest.raises(PlasticRLError, match="epochs must be >= 0; got -1"):
        chl_train(chl_init(CHLConfig(), torch.Generator()), CHLConfig(), torch.zeros(1, 64), torch.zeros(1).long(),
                  PhaseSchedule(), torch.Generator(), epochs=-1)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from plasticrl.studies.contrastive import load_digits_split
    torch.set_num_threads(1)
    return load_digits_split(0)


@pytest.mark.parametrize("schedule", [
    PhaseSchedule("random", 10, 10),
    PhaseSchedule("random", 10, 10, p_positive=0.75, importance=True),
], ids=["random-mean-T", "random-3to1-weighted"])
def test_differential_chl_learns_under_random_phases(digits, schedule):
    # two epochs (about 3 s on one core) under random phase order and lengths; seeds 0-3
    # score 0.89-0.93 here, against 0.1 for chance
    cfg = CHLConfig()
    g = torch.Generator().manual_seed(0)
    p = chl_train(chl_init(cfg, g), cfg, digits.x_train, digits.y_train, schedule, g, epochs=2)
    acc = (chl_predict(p, cfg, digits.x_test) == digits.y_test).float().mean().item()
    assert acc > 0.75
