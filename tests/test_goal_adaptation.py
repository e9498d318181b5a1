"""Adaptation metrics of goal-switching tasks against hand-built trajectories."""
import math

import numpy as np
import pytest

from plasticrl.eval.goal_adaptation import (
    after_switch_difference,
    rates_around_switch,
    summarise_adaptation,
    time_to_adapt,
)


def _trajectories():
    # 3 episodes of 100 steps. Episode 0: 2/step before its switch at 40, -1 for 30 steps, then 2 again
    # (adapted about 30 steps after the switch). Episode 1: switch at 60, 1/step before, 0.5 after, forever
    # (never reaches 80% of an oracle rate of 2). Episode 2: ends at step 50 before its switch at 70.
    r = np.zeros((100, 3))
    r[:40, 0] = 2.0
    r[40:70, 0] = -1.0
    r[70:, 0] = 2.0
    r[:60, 1] = 1.0
    r[60:, 1] = 0.5
    r[:50, 2] = 3.0
    return r, np.array([100, 100, 50]), np.array([40, 60, 70])


def test_rates_around_switch_hand_values():
    r, lengths, switch = _trajectories()
    rates = rates_around_switch(r, lengths, switch)
    assert rates.before[0] == pytest.approx(2.0)
    assert rates.after[0] == pytest.approx((30 * -1.0 + 30 * 2.0) / 60)
    assert rates.before[1] == pytest.approx(1.0)
    assert rates.after[1] == pytest.approx(0.5)
    assert rates.before[2] == pytest.approx(3.0)  # over the 50 steps it lived
    assert math.isnan(rates.after[2])  # ended before its switch: no after-switch part


def test_time_to_adapt_stays_and_never():
    r, lengths, switch = _trajectories()
    steps = time_to_adapt(r, lengths, switch, target_rate=2.0, window=10, fraction=0.8)
    # threshold 0.8 * 2 = 1.6. The window at offset 28 (steps 68..77) holds two -1s: mean 1.4 < 1.6;
    # at offset 29 one -1 and nine 2s: mean 1.7, and every later window is 2.0
    assert steps[0] == 29
    assert math.isnan(steps[1])  # 0.5 forever: never adapts
    assert math.isnan(steps[2])  # no after-switch part
    # a drop that shows only after the first window must not count as adapted at 0
    late_drop = np.full((100, 1), 2.0)
    late_drop[55:, 0] = 0.0
    assert math.isnan(time_to_adapt(late_drop, np.array([100]), np.array([40]), 2.0, window=10)[0])
    # no switch at all
    assert math.isnan(time_to_adapt(late_drop, np.array([100]), np.array([-1]), 2.0, window=10)[0])


def test_summary_ratio_against_oracle_is_paired():
    r, lengths, switch = _trajectories()
    rates = rates_around_switch(r, lengths, switch)
    oracle = np.zeros((100, 3))
    oracle[:, :2] = 2.0
    oracle[:50, 2] = 2.0
    oracle_rates = rates_around_switch(oracle, lengths, switch)
    steps = time_to_adapt(r, lengths, switch, 2.0, window=10)
    s = summarise_adaptation("plastic", rates, steps, oracle_rates)
    assert s.episodes_with_switch == 2
    assert s.reward_rate_after == pytest.approx((0.5 + 0.5) / 2)
    assert s.reward_rate_before == pytest.approx(1.5)
    assert s.adaptation_ratio == pytest.approx(0.5 / 2.0)
    assert s.adaptation_ratio_low <= s.adaptation_ratio <= s.adaptation_ratio_high
    assert s.adapted_fraction == pytest.approx(0.5)
    assert s.time_to_adapt_median == 29
    assert s.after_over_before == pytest.approx(0.5 / 1.5)
    # without an oracle there is no ratio, but the rates stand
    alone = summarise_adaptation("plastic", rates, steps, None)
    assert math.isnan(alone.adaptation_ratio) and alone.reward_rate_after == pytest.approx(0.5)


def test_after_switch_difference_is_paired_over_common_episodes():
    r, lengths, switch = _trajectories()
    mine = rates_around_switch(r, lengths, switch)
    theirs = rates_around_switch(np.zeros_like(r), lengths, switch)
    est, low, high = after_switch_difference(mine, theirs)
    assert est == pytest.approx(0.5)  # (0.5 - 0 + 0.5 - 0) / 2 over the two episodes with an after part
    assert low <= est <= high


def test_goal_adaptation_beyond_survival_hand_values():
    """An oracle that walks (1.0 bonus + 0.5 gait per step) against an agent that stands still after the
    switch (1.0 bonus + 0.0): the plain ratio reads 1.0/1.5 = 0.67, beyond the bonus it is 0/0.5 = 0; an
    oracle that stands still too leaves the ratio beyond survival undefined."""
    from plasticrl.eval.evaluate import goal_adaptation

    def row(agent, before, after, bonus=1.0):
        return {"agent": agent, "condition": "nominal", "reward_rates_before": before, "reward_rates_after": after,
                "time_to_adapt": [math.nan] * len(after), "survival_per_step": [bonus] * len(after)}

    result = {"oracle": "oracle", "seed": 0, "rows": [row("oracle", [1.5, 1.5], [1.5, 1.5]),
                                                     row("agent", [1.5, 1.7], [1.0, 1.0])]}
    entries = {e["agent"]: e for e in goal_adaptation(result)}
    agent = entries["agent"]
    assert agent["adaptation_ratio"] == pytest.approx(1.0 / 1.5)
    beyond = agent["beyond_survival"]
    assert beyond["reward_rate_before"] == pytest.approx(0.6)
    assert beyond["reward_rate_after"] == pytest.approx(0.0)
    assert beyond["adaptation_ratio"] == pytest.approx(0.0)
    still = {"oracle": "oracle", "seed": 0, "rows": [row("oracle", [1.0, 1.0], [1.0, 1.0]),
                                                    row("agent", [1.5, 1.7], [1.0, 1.0])]}
    assert math.isnan({e["agent"]: e for e in goal_adaptation(still)}["agent"]["beyond_survival"]["adaptation_ratio"])
    # a task without a survival bonus has no such part
    plain = {"oracle": None, "seed": 0, "rows": [{k: v for k, v in row("agent", [1.0], [1.0]).items()
                                                  if k != "survival_per_step"}]}
    assert "beyond_survival" not in goal_adaptation(plain)[0]


def test_goal_adaptation_of_the_goal_term_hand_values():
    """The goal term's rates give their own ratio: an oracle at 0.5 per step after the switch, an agent at 0.25."""
    from plasticrl.eval.evaluate import goal_adaptation

    def row(agent, term_after):
        return {"agent": agent, "condition": "nominal", "reward_rates_before": [1.0, 1.0],
                "reward_rates_after": [1.0, 1.0], "time_to_adapt": [math.nan] * 2,
                "goal_term_rates_before": [1.0, 1.0], "goal_term_rates_after": term_after}

    result = {"oracle": "oracle", "seed": 0, "rows": [row("oracle", [0.5, 0.5]), row("agent", [0.2, 0.3])]}
    entries = {e["agent"]: e for e in goal_adaptation(result)}
    term = entries["agent"]["goal_term"]
    assert term["reward_rate_after"] == pytest.approx(0.25)
    assert term["adaptation_ratio"] == pytest.approx(0.5)
    assert entries["agent"]["adaptation_ratio"] == pytest.approx(1.0)  # the plain rates are untouched


def test_evaluation_records_the_goal_term_of_each_step():
    """run_batch's goal term is info['reward_forward'] of the same episodes run through plain Gymnasium."""
    import gymnasium as gym

    import plasticrl
    from plasticrl.rollouts.batch import run_batch
    from plasticrl.rollouts.controllers import load_controller
    from plasticrl.rollouts.pretrained import resolve_pretrained

    kwargs = {"directions": 4, "direction": 0, "switch_step": 15}
    batch = run_batch(load_controller(resolve_pretrained("pretrained:ant-dir-plastic")), "AntDir-v5",
                      [("nominal", None)], 2, 5, env_kwargs=kwargs, max_steps=30)["nominal"]
    assert batch.goal_term.shape == (30, 2) and batch.goal_switch_steps.tolist() == [15, 15]
    agent = plasticrl.load("pretrained:ant-dir-plastic")
    for e, seed in enumerate((5, 6)):
        env = gym.make("plasticrl/AntDir-v5", **kwargs)
        obs, _ = env.reset(seed=seed)
        agent.reset(seed=seed)
        reward, forward = None, []
        for _ in range(30):
            obs, reward, _, _, info = env.step(agent.act(obs, reward))
            forward.append(info["reward_forward"])
        np.testing.assert_allclose(batch.goal_term[:, e], forward, rtol=1e-5, atol=1e-5)
    # a task without goals records none
    plain = run_batch(load_controller(resolve_pretrained("pretrained:ant-plastic")), "Ant-v5", [("nominal", None)],
                      1, 5, max_steps=3)["nominal"]
    assert plain.goal_term is None
