"""Centred-rank fitness shaping, schedules and the functional optimisers against hand values."""
import pytest
import torch

from plasticrl.es import Schedule, adam_step, as_schedule, centered_ranks, clipup_step

NAN, INF = float("nan"), float("inf")


def test_centered_ranks_distinct_values():
    # ranks (0 = worst): 4 -> 3, 1 -> 0, 2 -> 1, 3 -> 2; utility = rank / (P-1) - 0.5
    u, invalid = centered_ranks(torch.tensor([4.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(u, torch.tensor([0.5, -0.5, -1 / 6, 1 / 6], dtype=torch.float64))
    assert not invalid.any()


def test_centered_ranks_ties_and_nan():
    # NaN -> rank 0; 0 -> 1; 1 -> 2; the tied 3s share ranks 3 and 4 -> 3.5 each. P - 1 = 4.
    u, invalid = centered_ranks(torch.tensor([1.0, 3.0, 3.0, NAN, 0.0]))
    assert torch.allclose(u, torch.tensor([0.0, 0.375, 0.375, -0.5, -0.25], dtype=torch.float64))
    assert invalid.tolist() == [False, False, False, True, False]
    assert abs(float(u.sum())) < 1e-12


def test_centered_ranks_all_nonfinite_kinds_tie_at_worst():
    # +inf is invalid too (a rollout returning +inf is a bug); the three invalid share ranks 0..2 -> 1.
    u, invalid = centered_ranks(torch.tensor([INF, 5.0, NAN, -INF]))
    assert invalid.tolist() == [True, False, True, True]
    assert torch.allclose(u, torch.tensor([1 / 3 - 0.5, 0.5, 1 / 3 - 0.5, 1 / 3 - 0.5], dtype=torch.float64))


def test_centered_ranks_degenerate_cases():
    assert torch.equal(centered_ranks(torch.tensor([NAN, NAN]))[0], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(centered_ranks(torch.tensor([7.0]))[0], torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        centered_ranks(torch.zeros(2, 2))


def test_centered_ranks_invariant_to_monotone_transform():
    f = torch.randn(33, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(centered_ranks(f)[0], centered_ranks(torch.exp(3 * f) - 2)[0])


def test_schedules_hand_values():
    assert Schedule(0.5).value(100) == 0.5
    lin = Schedule(1.0, kind="linear", floor=0.2, steps=4)
    assert [lin.value(t) for t in (0, 1, 4, 10)] == pytest.approx([1.0, 0.8, 0.2, 0.2])
    exp = Schedule(1.0, kind="exponential", rate=0.5, floor=0.2)
    assert [exp.value(t) for t in (0, 1, 2, 3)] == pytest.approx([1.0, 0.5, 0.25, 0.2])
    assert as_schedule(0.3, "sigma") == Schedule(0.3)
    assert as_schedule({"init": 1.0, "kind": "exponential", "rate": 0.9}, "sigma").value(2) == pytest.approx(0.81)


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"init": 1.0, "kind": "cosine"}, "'cosine'"),
        ({"init": 1.0, "kind": "linear"}, "steps=None"),
        ({"init": 1.0, "kind": "exponential", "rate": 1.5}, "rate=1.5"),
        ({"init": 1.0, "floor": 2.0}, "2.0"),
        ({"init": 1.0, "decay": 0.1}, "'decay'"),
        (-0.5, "-0.5"),
    ],
)
def test_schedule_errors_name_bad_value(spec, needle):
    with pytest.raises(ValueError) as exc:
        as_schedule(spec, "sigma")
    assert needle in str(exc.value)


def test_adam_first_step_is_lr_times_sign():
    p, g = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.3, -4.0], dtype=torch.float64)
    new, m, v = adam_step(p, g, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 1, lr=0.1)
    # bias-corrected m_hat = g, v_hat = g^2 -> step = lr * g / (|g| + eps)
    assert torch.allclose(new, p + 0.1 * g / (g.abs() + 1e-8))
    assert torch.allclose(m, 0.1 * g) and torch.allclose(v, 0.001 * g * g)


def test_clipup_normalises_and_clips():
    g = torch.tensor([3.0, 4.0], dtype=torch.float64)
    p = torch.zeros(2, dtype=torch.float64)
    new, vel = clipup_step(p, g, torch.zeros(2, dtype=torch.float64), lr=0.1, momentum=0.9, max_speed=1.0)
    assert torch.allclose(vel, torch.tensor([0.06, 0.08], dtype=torch.float64)) and torch.equal(new, vel)
    # momentum accumulates 0.9*v + 0.1*g/|g| until the speed limit rescales it
    _, vel2 = clipup_step(p, g, torch.tensor([0.0, 1.0], dtype=torch.float64), lr=0.1, momentum=0.9, max_speed=0.5)
    raw = torch.tensor([0.06, 0.9 + 0.08], dtype=torch.float64)
    assert torch.allclose(vel2, raw * 0.5 / raw.norm())
    # zero gradient: no 0/0, only momentum
    zero, v0 = torch.zeros(2, dtype=torch.float64), torch.tensor([0.1, 0.0], dtype=torch.float64)
    new3, vel3 = clipup_step(p, zero, v0, 0.1, 0.5, 1.0)
    assert torch.allclose(vel3, torch.tensor([0.05, 0.0], dtype=torch.float64)) and torch.isfinite(new3).all()
