"""Adaptation tasks (HalfCheetahDir-v5, AntDir-v5, HalfCheetahVel-v5): rewards and observations
against hand computations from the simulator state, exact equality with Gymnasium's parent task
when the goal is fixed forward, the documented seed -> goal derivation, the switch step, the
goal oracle, composition with perturbations, and one-line errors for bad keywords."""
from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from plasticrl.envs import EnvError, make_vec, suite
from plasticrl.envs.perturb.morphology import REMOVED_MASS

CHEETAH_DT = 0.01 * 5  # half_cheetah.xml timestep x frame_skip
ANT_DT = 0.01 * 5  # ant.xml timestep x frame_skip
#: Hand values are computed in float64; Gymnasium (and so the engine) sums the control cost in the
#: float32 of the actions, which differs by ~1e-8.
TOL = 1e-6


def _goal_rng(seed: int) -> np.random.Generator:
    """The goal generator of an instance reset with ``seed``, as envs/README.md defines it."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def _actions(space: gym.spaces.Box, n: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, (steps, n, *space.shape)).astype(np.float32)


def _torso_xy(env, i: int) -> np.ndarray:
    data = env.datas[i]
    return np.array(data.xpos[1, :2])


# --- exactness with Gymnasium's parent task ----------------------------------------------------------
def _assert_equal_to_gymnasium(ours, ref_id: str, n: int, steps: int, seed: int, **ref_kwargs) -> None:
    ref = gym.make_vec(ref_id, n, vectorization_mode="sync", **ref_kwargs)
    o1, _ = ours.reset(seed=seed)
    o2, _ = ref.reset(seed=seed)
    np.testing.assert_array_equal(o1, o2)
    truncations = 0
    for t, a in enumerate(_actions(ref.single_action_space, n, steps, seed)):
        r1, r2 = ours.step(a), ref.step(a)
        for x, y, what in zip(r1[:4], r2[:4], ("obs", "reward", "terminated", "truncated")):
            np.testing.assert_array_equal(x, y, err_msg=f"{what} at step {t}")
        truncations += int(r1[3].sum())
    assert truncations > 0, "the time limit was not reached: autoreset not exercised"
    ref.close()


def test_halfcheetahdir_forward_equals_gymnasium_halfcheetah() -> None:
    ours = make_vec("HalfCheetahDir-v5", 3, direction=1, max_episode_steps=50)
    _assert_equal_to_gymnasium(ours, "HalfCheetah-v5", 3, 110, seed=4, max_episode_steps=50)


@pytest.mark.parametrize("kwargs", [{"direction": 0}, {"directions": 4, "direction": 0},
                                    {"directions": "continuous", "direction": 0.0}])
def test_antdir_direction_zero_equals_gymnasium_ant(kwargs: dict) -> None:
    ours = make_vec("AntDir-v5", 2, max_episode_steps=30, **kwargs)
    _assert_equal_to_gymnasium(ours, "Ant-v5", 2, 70, seed=7, max_episode_steps=30)


def test_single_env_registration_equals_gymnasium() -> None:
    ours = gym.make("plasticrl/HalfCheetahDir-v5", direction=1)
    ref = gym.make("HalfCheetah-v5")
    assert ours.spec.max_episode_steps == ref.spec.max_episode_steps == 1000
    o1, info = ours.reset(seed=11)
    o2, _ = ref.reset(seed=11)
    np.testing.assert_array_equal(o1, o2)
    assert info["goal"] == 1.0 and info["goal_switch_step"] == -1
    for a in _actions(ref.action_space, 1, 20, 11)[:, 0]:
        s1, s2 = ours.step(a), ref.step(a)
        np.testing.assert_array_equal(s1[0], s2[0])
        assert s1[1] == s2[1]


# --- rewards and observations against hand values ------------------------------------------------------
def test_halfcheetahdir_reward_and_obs_by_hand() -> None:
    n = 3
    env = make_vec("HalfCheetahDir-v5", n, direction=-1, goal_observed=True)
    parent = make_vec("HalfCheetah-v5", n)
    obs, info = env.reset(seed=2)
    pobs, _ = parent.reset(seed=2)
    assert env.single_observation_space.shape == (18,)
    np.testing.assert_array_equal(obs, np.concatenate((pobs, np.full((n, 1), -1.0)), axis=1))
    np.testing.assert_array_equal(info["goal"], [-1.0] * n)
    for a in _actions(env.single_action_space, n, 15, 2):
        x_before = np.array([env.datas[i].qpos[0] for i in range(n)])
        obs, reward, *_ = env.step(a)
        pobs, *_ = parent.step(a)
        x_after = np.array([env.datas[i].qpos[0] for i in range(n)])
        expected = -1.0 * (x_after - x_before) / CHEETAH_DT - 0.1 * np.sum(a.astype(np.float64) ** 2, axis=1)
        np.testing.assert_allclose(reward, expected, rtol=0, atol=TOL)
        np.testing.assert_array_equal(obs, np.concatenate((pobs, np.full((n, 1), -1.0)), axis=1))


def test_halfcheetahvel_reward_and_obs_by_hand() -> None:
    n = 2
    env = make_vec("HalfCheetahVel-v5", n, target_velocity=1.5, goal_observed=True)
    parent = make_vec("HalfCheetah-v5", n)
    obs, info = env.reset(seed=5)
    pobs, _ = parent.reset(seed=5)
    np.testing.assert_array_equal(obs, np.concatenate((pobs, np.full((n, 1), 1.5)), axis=1))
    for a in _actions(env.single_action_space, n, 15, 5):
        x_before = np.array([env.datas[i].qpos[0] for i in range(n)])
        obs, reward, *_ = env.step(a)
        pobs, *_ = parent.step(a)
        velocity = (np.array([env.datas[i].qpos[0] for i in range(n)]) - x_before) / CHEETAH_DT
        expected = -np.abs(velocity - 1.5) - 0.1 * np.sum(a.astype(np.float64) ** 2, axis=1)
        np.testing.assert_allclose(reward, expected, rtol=0, atol=TOL)
        np.testing.assert_array_equal(obs[:, :-1], pobs)
        np.testing.assert_array_equal(obs[:, -1], [1.5, 1.5])


def test_halfcheetahvel_drawn_targets_lie_in_range_and_follow_the_seed() -> None:
    env = make_vec("HalfCheetahVel-v5", 6)
    _, info = env.reset(seed=30)
    expected = [_goal_rng(30 + i).uniform(0.5, 3.0) for i in range(6)]
    np.testing.assert_array_equal(info["goal"], expected)
    assert np.all((info["goal"] >= 0.5) & (info["goal"] <= 3.0))


@pytest.mark.parametrize("kwargs, angle", [({"directions": 4, "direction": 1}, math.pi / 2),
                                           ({"directions": 2, "direction": 1}, math.pi),
                                           ({"directions": "continuous", "direction": 0.7}, 0.7)])
def test_antdir_reward_and_obs_by_hand(kwargs: dict, angle: float) -> None:
    n = 2
    env = make_vec("AntDir-v5", n, goal_observed=True, **kwargs)
    parent = make_vec("Ant-v5", n)
    obs, info = env.reset(seed=8)
    pobs, _ = parent.reset(seed=8)
    unit = np.array([math.cos(angle), math.sin(angle)])
    unit[np.abs(unit) < 1e-12] = 0.0  # the axis directions are exact
    assert env.single_observation_space.shape == (107,)
    np.testing.assert_array_equal(obs, np.concatenate((pobs, np.tile(unit, (n, 1))), axis=1))
    np.testing.assert_allclose(info["goal"], [angle] * n, rtol=0, atol=1e-15)
    for a in _actions(env.single_action_space, n, 15, 8):
        xy_before = np.stack([_torso_xy(env, i) for i in range(n)])
        obs, reward, terminated, _, _ = env.step(a)
        pobs, *_ = parent.step(a)
        xy_after = np.stack([_torso_xy(env, i) for i in range(n)])
        velocity = (xy_after - xy_before) / ANT_DT
        z = np.array([env.datas[i].qpos[2] for i in range(n)])
        healthy = (z >= 0.2) & (z <= 1.0)
        contact = np.stack([np.clip(env.datas[i].cfrc_ext, -1.0, 1.0) for i in range(n)])
        expected = (velocity @ unit + healthy * 1.0 - 0.5 * np.sum(a.astype(np.float64) ** 2, axis=1)
                    - 5e-4 * np.sum(contact.reshape(n, -1) ** 2, axis=1))
        np.testing.assert_allclose(reward, expected, rtol=0, atol=TOL)
        np.testing.assert_array_equal(terminated, ~healthy)
        np.testing.assert_array_equal(obs[:, :-2], pobs)
        np.testing.assert_array_equal(obs[:, -2:], np.tile(unit, (n, 1)))


# --- the goal draw --------------------------------------------------------------------------------------
def test_goal_is_a_pure_function_of_the_seed_and_redrawn_after_autoreset() -> None:
    """Episode e of an instance seeded with s gets the e-th draw of s's goal generator; the reset
    noise (so the parent's trajectory) is untouched."""
    n, length, episodes = 3, 5, 4
    runs = []
    for _ in range(2):
        env = make_vec("HalfCheetahDir-v5", n, max_episode_steps=length)
        _, info = env.reset(seed=20)
        goals = [info["goal"].copy()]
        zero = np.zeros((n, 6), dtype=np.float32)
        for _ in range(episodes - 1):
            for _ in range(length + 1):  # length steps, then the autoreset step
                _, _, _, _, info = env.step(zero)
            goals.append(info["goal"].copy())
        runs.append(np.stack(goals))
    np.testing.assert_array_equal(runs[0], runs[1])
    for i in range(n):
        rng = _goal_rng(20 + i)
        expected = [1.0 if rng.integers(2) == 0 else -1.0 for _ in range(episodes)]
        np.testing.assert_array_equal(runs[0][:, i], expected)


def test_different_seeds_give_every_direction() -> None:
    cheetah = make_vec("HalfCheetahDir-v5", 12).reset(seed=0)[1]["goal"]
    assert set(cheetah) == {1.0, -1.0}
    ant = make_vec("AntDir-v5", 32, directions=4).reset(seed=0)[1]["goal"]
    np.testing.assert_allclose(sorted(set(ant)), [0.0, math.pi / 2, math.pi, 3 * math.pi / 2])
    expected = [2 * math.pi * _goal_rng(i).integers(4) / 4 for i in range(32)]
    np.testing.assert_array_equal(ant, expected)


def test_reset_noise_is_the_parents_whatever_the_goal() -> None:
    goal_obs, _ = make_vec("HalfCheetahDir-v5", 5, switch_step=[3, 9]).reset(seed=40)
    parent_obs, _ = make_vec("HalfCheetah-v5", 5).reset(seed=40)
    np.testing.assert_array_equal(goal_obs, parent_obs)


# --- the switch -----------------------------------------------------------------------------------------
def test_halfcheetahdir_switches_at_the_drawn_step() -> None:
    n, steps = 4, 20
    env = make_vec("HalfCheetahDir-v5", n, switch_step=[5, 15], goal_observed=True)
    obs, info = env.reset(seed=50)
    first, switch = [], []
    for i in range(n):  # the documented draw order: direction, then switch step
        rng = _goal_rng(50 + i)
        first.append(1.0 if rng.integers(2) == 0 else -1.0)
        switch.append(int(rng.integers(5, 16)))
    np.testing.assert_array_equal(info["goal"], first)
    np.testing.assert_array_equal(info["goal_switch_step"], switch)
    np.testing.assert_array_equal(obs[:, -1], first)
    first, switch = np.array(first), np.array(switch)
    for t, a in enumerate(_actions(env.single_action_space, n, steps, 50)):
        x_before = np.array([env.datas[i].qpos[0] for i in range(n)])
        obs, reward, _, _, info = env.step(a)
        velocity = (np.array([env.datas[i].qpos[0] for i in range(n)]) - x_before) / CHEETAH_DT
        goal = np.where(t >= switch, -first, first)  # step index t >= k uses the new goal
        expected = goal * velocity - 0.1 * np.sum(a.astype(np.float64) ** 2, axis=1)
        np.testing.assert_allclose(reward, expected, rtol=0, atol=TOL, err_msg=f"step {t}")
        np.testing.assert_array_equal(info["goal"], goal)
        np.testing.assert_array_equal(obs[:, -1], goal)  # observed at the same step
        np.testing.assert_array_equal(info["goal_switch_step"], switch)


def test_antdir_switch_goes_to_a_different_direction() -> None:
    n = 8
    env = make_vec("AntDir-v5", n, directions=4, switch_step=3, goal_observed=True)
    _, info = env.reset(seed=60)
    before = info["goal"].copy()
    np.testing.assert_array_equal(info["goal_switch_step"], [3] * n)
    zero = np.zeros((n, 8), dtype=np.float32)
    for t in range(4):
        obs, _, _, _, info = env.step(zero)
        if t < 3:
            np.testing.assert_array_equal(info["goal"], before)
    after = info["goal"]
    assert np.all(after != before)
    for i in range(n):
        rng = _goal_rng(60 + i)
        k = int(rng.integers(4))
        k_new = (k + int(rng.integers(1, 4))) % 4
        assert before[i] == 2 * math.pi * k / 4 and after[i] == 2 * math.pi * k_new / 4
    np.testing.assert_allclose(obs[:, -2:], np.stack((np.cos(after), np.sin(after)), axis=1), atol=1e-12)


def test_antdir_continuous_switch_turns_at_least_a_right_angle() -> None:
    env = make_vec("AntDir-v5", 10, directions="continuous", switch_step=1)
    _, info = env.reset(seed=70)
    before = info["goal"].copy()
    zero = np.zeros((10, 8), dtype=np.float32)
    _, _, _, _, info = env.step(zero)  # step index 0: still the first goal
    np.testing.assert_array_equal(info["goal"], before)
    _, _, _, _, info = env.step(zero)  # step index 1: the switch
    turn = np.abs((info["goal"] - before + math.pi) % (2 * math.pi) - math.pi)
    assert np.all((turn >= math.pi / 2 - 1e-12) & (turn <= math.pi + 1e-12))
    assert np.all((before >= 0) & (before < 2 * math.pi))


def test_halfcheetahvel_switch_draws_a_new_target() -> None:
    env = make_vec("HalfCheetahVel-v5", 3, switch_step=2, goal_observed=True)
    _, info = env.reset(seed=80)
    zero = np.zeros((3, 6), dtype=np.float32)
    goals, observed = [info["goal"].copy()], []
    for _ in range(3):  # step indices 0, 1 (first target), 2 (the switch)
        obs, _, _, _, info = env.step(zero)
        goals.append(info["goal"].copy())
        observed.append(obs[:, -1].copy())
    for i in range(3):
        rng = _goal_rng(80 + i)
        old, new = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0)  # target, then (fixed step) new target
        assert old != new
        assert [g[i] for g in goals] == [old, old, old, new]
        assert [o[i] for o in observed] == [old, old, new]


# --- perturbations compose ------------------------------------------------------------------------------
def test_mass_scale_composes_with_the_goal() -> None:
    pert = {"name": "mass_scale", "scale": 1.5}
    n = 2
    env = make_vec("HalfCheetahDir-v5", n, direction=-1, goal_observed=True, perturbation=pert)
    parent = make_vec("HalfCheetah-v5", n, perturbation=pert)
    obs, info = env.reset(seed=90)
    pobs, _ = parent.reset(seed=90)
    np.testing.assert_array_equal(env.models[0].body_mass[1:], env.base_model.body_mass[1:] * 1.5)
    assert info["perturbation"][0] == [{"name": "mass_scale", "scale": 1.5, "body": "all", "start_step": 0}]
    for a in _actions(env.single_action_space, n, 10, 90):
        x_before = np.array([env.datas[i].qpos[0] for i in range(n)])
        obs, reward, *_ = env.step(a)
        pobs, *_ = parent.step(a)
        velocity = (np.array([env.datas[i].qpos[0] for i in range(n)]) - x_before) / CHEETAH_DT
        np.testing.assert_allclose(reward, -velocity - 0.1 * np.sum(a.astype(np.float64) ** 2, axis=1),
                                   rtol=0, atol=TOL)
        np.testing.assert_array_equal(obs[:, :-1], pobs)  # same heavier robot as the parent's


def test_morphology_and_suites_use_the_parent_robot() -> None:
    env = make_vec("AntDir-v5", 1, perturbation={"name": "remove_limb", "segment": "leg_1"})
    env.reset(seed=0)
    model = env.models[0]
    aux = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "aux_1")
    assert model.body_mass[aux] == pytest.approx(REMOVED_MASS)
    assert suite("AntDir-v5", "novel") == suite("Ant-v5", "novel")
    assert suite("HalfCheetahVel-v5", "novel") == suite("HalfCheetah-v5", "novel")


# --- bad keywords -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, kwargs, bad, valid", [
    ("AntDir-v5", {"directions": 3}, "directions=3", "2, 4, 'continuous'"),
    ("AntDir-v5", {"direction": 2}, "direction=2", "0, 1"),
    ("AntDir-v5", {"directions": "continuous", "direction": "north"}, "direction='north'", "radians"),
    ("HalfCheetahDir-v5", {"switch_step": [700, 300]}, "switch_step=[700, 300]", "1 <= low <= high"),
    ("HalfCheetahDir-v5", {"switch_step": -1}, "switch_step=-1", "an int >= 1"),
    ("HalfCheetahDir-v5", {"switch_step": 2.5}, "switch_step=2.5", "an int >= 1"),
    ("HalfCheetahDir-v5", {"switch_step": 60, "max_episode_steps": 60}, "switch_step=60", "1..59"),
    ("HalfCheetahDir-v5", {"direction": 0}, "direction=0", "1, -1"),
    ("HalfCheetahDir-v5", {"goal_observed": "yes"}, "goal_observed='yes'", "True, False"),
    ("HalfCheetahVel-v5", {"target_velocity": float("nan")}, "target_velocity=nan", "finite number"),
])
def test_bad_keywords_raise_one_line(env_id: str, kwargs: dict, bad: str, valid: str) -> None:
    with pytest.raises(EnvError) as err:
        make_vec(env_id, 1, **kwargs)
    message = str(err.value)
    assert "\n" not in message and bad in message and valid in message
    if "max_episode_steps" not in kwargs:  # the single-instance registration refuses it too
        with pytest.raises(EnvError, match="valid choices"):
            gym.make("plasticrl/" + env_id, **kwargs)
