"""Phase schedules: exact periodic sequences, statistics of the random one, unbiased weights."""
import pytest
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.studies.contrastive.phases import PhaseSchedule, periodic_phases, segment_lengths

N = 200_000  # long enough that the sampling error of the means below is well under 2 %


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_periodic_sequence_and_weights():
    phase, weight = PhaseSchedule("periodic", 2, 3).sample(12)
    assert phase.tolist() == [1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1]
    # positive 2/5 of the time: weights 0.5/0.4 and 0.5/0.6
    assert weight[0].item() == pytest.approx(1.25) and weight[2].item() == pytest.approx(5 / 6)
    assert periodic_phases(5, 1, 2, start="negative").tolist() == [0, 0, 1, 0, 0]
    assert PhaseSchedule("periodic", 4, 4).sample(8)[1].tolist() == [1.0] * 8


def test_random_schedule_frequencies_and_mean_run_lengths():
    sched = PhaseSchedule("random", len_positive=6, len_negative=2, p_positive=0.5)
    phase, _ = sched.sample(N, _gen())
    assert sched.positive_fraction == pytest.approx(0.75)
    assert phase.float().mean().item() == pytest.approx(0.75, abs=0.01)
    values, lengths = segment_lengths(phase)
    # random order: consecutive segments of the same phase merge into one run, whose number of
    # segments is geometric with mean 1/(1-p); so a run lasts mean_len/(1-p) on average
    pos_runs = lengths[values == 1].float().mean().item()
    neg_runs = lengths[values == 0].float().mean().item()
    assert pos_runs == pytest.approx(6 / 0.5, rel=0.05)
    assert neg_runs == pytest.approx(2 / 0.5, rel=0.05)


def test_random_order_with_biased_phase_choice():
    sched = PhaseSchedule("random", 3, 3, p_positive=0.8)
    phase, _ = sched.sample(N, _gen(1))
    assert sched.positive_fraction == pytest.approx(0.8)
    assert phase.float().mean().item() == pytest.approx(0.8, abs=0.01)
    # both phases still occur in runs: not all positives, and runs of negatives ~ 3/(1-0.2)
    values, lengths = segment_lengths(phase)
    assert lengths[values == 0].float().mean().item() == pytest.approx(3 / 0.8, rel=0.05)


def test_unit_mean_lengths_give_single_steps():
    phase, _ = PhaseSchedule("random", 1, 1).sample(N, _gen(2))
    # every segment has length 1, so a step repeats the previous phase with probability 1/2
    same = (phase[1:] == phase[:-1]).float().mean().item()
    assert same == pytest.approx(0.5, abs=0.01)


def test_importance_weights_make_expected_update_unbiased():
    sched = PhaseSchedule("random", len_positive=8, len_negative=2)
    w_neg, w_pos = sched.weights
    f = sched.positive_fraction
    assert f * w_pos == pytest.approx(0.5) and (1 - f) * w_neg == pytest.approx(0.5)
    phase, weight = sched.sample(N, _gen(3))
    d_pos, d_neg = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([-3.0, 1.0, 4.0])
    updates = torch.where(phase.unsqueeze(-1) == 1, d_pos, d_neg) * weight.unsqueeze(-1)
    balanced = 0.5 * (d_pos + d_neg)
    assert torch.allclose(updates.mean(0), balanced, atol=0.05)
    # without the weights the positive phase dominates: the bias is f - 1/2 = 0.3 per unit
    plain = torch.where(phase.unsqueeze(-1) == 1, d_pos, d_neg).mean(0)
    assert (plain - balanced).abs().max().item() > 0.5


def test_importance_off_and_custom_target_fraction():
    phase, weight = PhaseSchedule("random", 8, 2, importance=False).sample(100, _gen())
    assert torch.equal(weight, torch.ones(100))
    sched = PhaseSchedule("random", 2, 2, target_fraction=0.25)
    assert sched.weights == pytest.approx((1.5, 0.5))


def test_same_seed_same_sequence_and_length():
    a, _ = PhaseSchedule("random", 3, 5).sample(1000, _gen(7))
    b, _ = PhaseSchedule("random", 3, 5).sample(1000, _gen(7))
    assert torch.equal(a, b) and a.shape == (1000,)
    assert PhaseSchedule("random", 3, 5).sample(0, _gen())[0].numel() == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "strict"}, "valid choices: periodic, random"),
    ({"start": "middle"}, "valid choices: negative, positive"),
    ({"len_positive": 0}, "len_positive=0"),
    ({"kind": "periodic", "len_positive": 1.5}, "whole phase lengths"),
    ({"p_positive": 1.0}, "p_positive"),
])
def test_invalid_schedules_name_the_bad_value(kwargs, message):
    with pytest.raises(PlasticRLError, match=message):
        PhaseSchedule(**kwargs)


def test_random_schedule_needs_a_generator():
    with pytest.raises(PlasticRLError, match="Generator"):
        PhaseSchedule("random", 2, 2).sample(10)
