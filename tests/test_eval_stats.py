"""Bootstrap intervals and adaptation curves against cases worked out by hand."""
import math

import numpy as np
import pytest

from plasticrl.eval.adaptation import adaptation_curve, episode_times_to_recover, recover_threshold, switch_step
from plasticrl.eval.result import AfterSwitch
from plasticrl.eval.stats import bootstrap_mean, bootstrap_mean_difference, bootstrap_mean_retained, bootstrap_ratio


def test_bootstrap_mean_hand_case():
    # Resample means of [0, 0, 0, 1] are k/4 with k ~ Binomial(4, 1/4):
    # P(k=0) = 0.316 > 2.5%, so the lower end is 0; P(k<=2) = 0.949 < 97.5% <= P(k<=3) = 0.996,
    # so the upper end is 3/4.
    iv = bootstrap_mean([0.0, 0.0, 0.0, 1.0], seed=1)
    assert iv.estimate == 0.25
    assert iv.low == 0.0
    assert iv.high == 0.75


def test_bootstrap_mean_two_points_and_degenerate():
    # [0, 1]: resample means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> interval [0, 1].
    iv = bootstrap_mean([0.0, 1.0], seed=0)
    assert (iv.low, iv.high) == (0.0, 1.0)
    same = bootstrap_mean([3.0, 3.0, 3.0])
    assert (same.estimate, same.low, same.high) == (3.0, 3.0, 3.0)
    assert math.isnan(bootstrap_mean([]).estimate)


def test_bootstrap_is_seeded():
    """The same seed gives the same interval, another seed another one (the seed reaches the resampling)."""
    x = np.random.default_rng(0).normal(size=12)
    assert bootstrap_mean(x, seed=5) == bootstrap_mean(x, seed=5)
    intervals = {(iv.low, iv.high) for iv in (bootstrap_mean(x, seed=s) for s in range(4))}
    assert len(intervals) == 4
    ratios = {(iv.low, iv.high) for iv in (bootstrap_ratio(x + 5, x + 10, seed=s) for s in range(4))}
    assert len(ratios) == 4


def test_retained_is_undefined_for_a_zero_or_negative_nominal_return():
    """Divided by a negative nominal mean, a worse condition (-200 against -100) would read as 2.0
    retained; with a zero one the ratio is infinite. Both are NaN, as is the mean over conditions."""
    for nominal in ([-100.0, -100.0, -100.0], [-1.0, 0.0, 1.0], [-150.0, -50.0, -100.0]):
        worse = [2 * v - 1 for v in nominal]
        iv = bootstrap_ratio(worse, nominal)
        assert math.isnan(iv.estimate) and math.isnan(iv.low) and math.isnan(iv.high)
        mean_iv = bootstrap_mean_retained([worse, nominal], nominal)
        assert math.isnan(mean_iv.estimate) and math.isnan(mean_iv.low) and math.isnan(mean_iv.high)
    # A positive nominal mean keeps the ratio, even with a negative episode among its pairs.
    iv = bootstrap_ratio([-10.0, 40.0, 80.0], [-5.0, 20.0, 40.0])  # no resample of these has mean 0
    assert iv.estimate == pytest.approx(2.0) and iv.low == pytest.approx(2.0) and iv.high == pytest.approx(2.0)
    assert bootstrap_mean_retained([[1.0, 3.0], [4.0, 4.0]], [2.0, 2.0]).estimate == pytest.approx((2 / 2 + 4 / 2) / 2)


def test_bootstrap_ratio_resamples_pairs():
    # Condition = exactly 0.5 x nominal in every pair: every paired resample has ratio 0.5,
    # whereas resampling the two samples independently would widen the interval.
    nominal = [100.0, 200.0, 300.0, 400.0, 500.0]
    cond = [v / 2 for v in nominal]
    iv = bootstrap_ratio(cond, nominal)
    assert iv.estimate == pytest.approx(0.5)
    assert iv.low == pytest.approx(0.5) and iv.high == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equal sizes"):
        bootstrap_ratio([1.0], [1.0, 2.0])


def test_switch_step():
    assert switch_step(None) is None
    assert switch_step([{"name": "mass_scale", "scale": 2.0}]) is None
    assert switch_step([{"name": "dead_actuator", "actuator": [0], "start_step": 200},
                        {"name": "obs_noise", "std": 0.1}]) == 200


def test_adaptation_curve_hand_case():
    # 2 episodes, 100 steps; reward 1/step, dropping to 0.2 at the switch (step 40) and back to
    # 0.9 from step 70. Windows of 10: the first window at or after the switch reaching 0.8 is the one
    # starting at step 70, i.e. 30 steps after the switch. A third episode fell at step 30 (before the
    # switch) and must not count.
    r = np.ones((100, 3))
    r[40:70, :2] = 0.2
    r[70:, :2] = 0.9
    r[30:, 2] = 0.0
    lengths = np.array([100, 100, 30])
    c = adaptation_curve(r, lengths, start=40, window=10, baseline=20)
    assert c.episodes_used == 2
    assert c.pre_switch_reward == pytest.approx(1.0)
    assert c.offsets[:6] == [-40, -30, -20, -10, 0, 10]
    assert c.reward[4] == pytest.approx(0.2)
    assert c.time_to_recover == 30
    # never recovers
    r2 = np.ones((100, 1))
    r2[40:] = 0.1
    assert adaptation_curve(r2, np.array([100]), 40, 10).time_to_recover is None
    assert adaptation_curve(r2, np.array([30]), 40, 10) is None  # ended before the switch
    # drops only after the first post-switch window and never recovers: the first window still shows
    # the old level, which must not be read as recovery at 0
    r3 = np.ones((100, 1))
    r3[50:] = 0.1
    assert adaptation_curve(r3, np.array([100]), 40, 10).time_to_recover is None
    # dips, recovers at 70, dips again at 90: recovery is the point from which it stays (none here)
    r4 = np.ones((100, 1))
    r4[40:70] = 0.2
    r4[90:] = 0.2
    assert adaptation_curve(r4, np.array([100]), 40, 10).time_to_recover is None
    # never drops: recovered at once
    assert adaptation_curve(np.ones((100, 1)), np.array([100]), 40, 10).time_to_recover == 0


def test_episode_times_to_recover_hand_cases():
    # the hand cases above, one episode each, side by side: recovers 30 steps after the switch; never
    # (drops for good); the first window still at the old level, then drops (never, not 0); dips, recovers,
    # dips again (never); never drops (0); fell before the switch (None); a negative level (-1/step) that
    # worsens to -1.1 (within 20% of its magnitude: recovered at once) and then to -1.5 from step 60 (not)
    r = np.ones((100, 8))
    r[40:70, 0], r[70:, 0] = 0.2, 0.9
    r[40:, 1] = 0.1
    r[50:, 2] = 0.1
    r[40:70, 3], r[90:, 3] = 0.2, 0.2
    r[30:, 5] = 0.0
    r[:, 6], r[40:, 6] = -1.0, -1.1
    r[:, 7], r[40:, 7], r[60:, 7] = -1.0, -1.1, -1.5
    lengths = np.array([100, 100, 100, 100, 100, 30, 100, 100])
    assert episode_times_to_recover(r, lengths, start=40, window=10, baseline=20) == [30, None, None, None, 0,
                                                                                      None, 0, None]


def test_episode_times_to_recover_against_a_loop_over_each_episode():
    # reference: for each episode, the first window start after the switch from which its mean reward over
    # the rest of the episode reaches 80% of its mean over the baseline steps before the switch; on noisy
    # rewards with temporary drops, episodes that end after the switch, and a horizon that is no multiple
    # of the window
    rng = np.random.default_rng(3)
    for start in (37, 40, 55):
        r = 1.0 + 0.3 * rng.standard_normal((133, 40))
        for e, (drop, lasts) in enumerate(zip(rng.uniform(0.0, 1.0, 40), rng.integers(0, 100, 40))):
            r[start:start + lasts, e] -= drop  # some never recover, some within a window, some later
        lengths = np.where(rng.random(40) < 0.7, 133, rng.integers(start - 5, 133, 40))
        for e, length in enumerate(lengths):
            r[length:, e] = 0.0
        want = []
        for e, length in enumerate(lengths):
            pre = r[start - 30:start, e].mean()
            hits = [t for t in range(0, 133 - start, 20) if r[start + t:, e].mean() >= 0.8 * pre]
            want.append(hits[0] if hits and length > start else None)
        assert episode_times_to_recover(r, lengths, start, window=20, baseline=30) == want
        assert None in want and any(t is not None and t > 0 for t in want)


def test_recovered_within_counts_valid_episodes():
    a = AfterSwitch(returns_after_switch=(1.0, None, 2.0, 3.0, 0.5), steps_after_switch=10,
                    episode_times_to_recover=(0, None, 120, None, 100))
    assert a.recovered_within(100) == (2, 4)  # 0 and 100; the invalid second episode in neither count
    assert AfterSwitch((1.0,), 10).recovered_within(100) is None  # not recorded (older results)


def test_recover_threshold_negative_level():
    assert recover_threshold(10.0) == pytest.approx(8.0)
    assert recover_threshold(-10.0) == pytest.approx(-12.0)


def test_bootstrap_mean_retained_resamples_episodes_jointly():
    # Two episodes, nominal [1, 1]; condition A keeps [0, 1], condition B keeps [1, 1].
    # Estimate: (0.5 + 1) / 2 = 0.75. Resampled episode pairs: (0,0) -> (0 + 1)/2 = 0.5,
    # (0,1)/(1,0) -> 0.75, (1,1) -> 1.0 with probabilities 1/4, 1/2, 1/4 -> interval [0.5, 1.0].
    iv = bootstrap_mean_retained([[0.0, 1.0], [1.0, 1.0]], [1.0, 1.0], seed=0)
    assert iv.estimate == 0.75
    assert (iv.low, iv.high) == (0.5, 1.0)
    # a condition that is exactly half of nominal in every episode: every resample gives 0.5
    nominal = [100.0, 200.0, 300.0, 400.0]
    half = bootstrap_mean_retained([[v / 2 for v in nominal]], nominal)
    assert half.low == pytest.approx(0.5) and half.high == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[C, 4\]"):
        bootstrap_mean_retained([[1.0, 2.0]], nominal)


def test_bootstrap_mean_difference_pairs_episodes_across_conditions():
    # Differences [[1, 3], [5, 7]]: estimate 4; per-episode means over conditions 3 and 5, so the
    # resamples give 3, 4, 4, 5 with probabilities 1/4, 1/4, 1/4, 1/4 -> interval [3, 5].
    iv = bootstrap_mean_difference([[2.0, 4.0], [6.0, 8.0]], [[1.0, 1.0], [1.0, 1.0]], seed=0)
    assert iv.estimate == 4.0 and (iv.low, iv.high) == (3.0, 5.0)
    # one condition: the paired difference of means, its interval that of the per-episode differences
    a, b = [10.0, 12.0, 9.0, 15.0, 11.0], [9.0, 12.5, 7.0, 11.0, 11.0]
    one = bootstrap_mean_difference([a], [b], seed=3)
    ref = bootstrap_mean(np.subtract(a, b), seed=3)
    assert one.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert (one.low, one.high) == (ref.low, ref.high)
    # a shift common to every episode cancels exactly: no spread, interval is the point
    const = bootstrap_mean_difference([[v + 2.5 for v in b]], [b])
    assert (const.estimate, const.low, const.high) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError, match="one shape"):
        bootstrap_mean_difference([[1.0, 2.0]], [[1.0, 2.0, 3.0]])
