"""`import plasticrl` registers the Gymnasium ids (cheaply); suite condition names work as perturbations."""
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import plasticrl
from plasticrl.envs import EnvError, make_vec, suite, supported_ids
from plasticrl.envs.registry import registered_max_episode_steps


def test_import_plasticrl_registers_ids_without_loading_the_engine(tmp_path):
    code = (
        "import sys, json, plasticrl, gymnasium as gym\n"
        "heavy = [m for m in ('torch', 'mujoco', 'plasticrl.envs') if m in sys.modules]\n"
        "env = gym.make('plasticrl/HalfCheetah-v5', perturbation='dead_actuator_mid@mild')\n"
        "obs, info = env.reset(seed=3)\n"
        "print(json.dumps({'heavy': heavy, 'limit': env.spec.max_episode_steps, 'obs': len(obs),\n"
        "                  'perturbation': info['perturbation']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []  # the engine loads when an env is made, not on import
    assert got["limit"] == gym.spec("HalfCheetah-v5").max_episode_steps and got["obs"] == 17
    novel = {c["name"]: c["perturbation"] for c in suite("HalfCheetah-v5", "novel")}
    assert got["perturbation"] == [{**p, "start_step": 200} for p in novel["dead_actuator_mid@mild"]]


def test_registered_ids_are_the_engines_ids():
    assert sorted(plasticrl.GYM_IDS) == supported_ids()
    for env_id in supported_ids():
        spec = gym.spec(f"plasticrl/{env_id}")
        assert spec.max_episode_steps == registered_max_episode_steps(env_id)
        assert spec.entry_point == "plasticrl.envs.gym_env:PerturbedMujocoEnv"
        assert spec.vector_entry_point == "plasticrl.envs.gym_env:_make_vector"
        assert spec.kwargs == {"env_id": env_id}


def _rollout(perturbation, steps=230):
    env = make_vec("HalfCheetah-v5", 1, perturbation=perturbation)
    env.reset(seed=[7])
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 1, 6))
    obs = [env.step(a)[0][0] for a in actions]
    env.close()
    return np.array(obs)


def test_suite_names_run_the_same_condition_as_its_perturbation():
    novel = {c["name"]: c["perturbation"] for c in suite("HalfCheetah-v5", "novel")}
    by_name = _rollout("dead_actuator_mid@mild")
    explicit = _rollout(novel["dead_actuator_mid@mild"])
    nominal = _rollout(None)
    np.testing.assert_array_equal(by_name, explicit)
    # the motor dies at step 200 (MID_EPISODE): identical to nominal until then, different after
    np.testing.assert_array_equal(by_name[:200], nominal[:200])
    assert not np.allclose(by_name[205:], nominal[205:])


def test_suite_names_in_lists_and_reset_options():
    novel = {c["name"]: c["perturbation"] for c in suite("HalfCheetah-v5", "novel")}
    env = make_vec("HalfCheetah-v5", 2)
    _, info = env.reset(seed=[0, 1], options={"perturbations": [
        "shorten_limb@severe", ["obs_noise@mild", "friction_scale@moderate"]]})
    env.close()
    strip = lambda ps: [{k: v for k, v in p.items() if k != "start_step"} for p in ps]  # noqa: E731
    assert strip(info["perturbation"][0]) == strip(novel["shorten_limb@severe"])
    assert strip(info["perturbation"][1]) == strip(novel["obs_noise@mild"] + novel["friction_scale@moderate"])


def test_unknown_suite_name_lists_the_conditions():
    with pytest.raises(EnvError, match=r"'dead_actuator_mid@medium'.*dead_actuator_mid@mild"):
        make_vec("HalfCheetah-v5", 1, perturbation="dead_actuator_mid@medium")


def test_suite_names_in_a_config_and_for_baselines():
    from plasticrl.config import load_config
    from plasticrl.rollouts.env_setup import make_env, training_reset_options
    from plasticrl.trainers.sb3.trainer import check_training_condition

    cfg = load_config(None, ["env.train_perturbation=shorten_limb@moderate", "env.max_episode_steps=5"])
    env = make_env(cfg, 2)
    _, info = env.reset(seed=[0, 1], options=training_reset_options(cfg, 2, 0))
    env.close()
    segment = {"HalfCheetah-v5": "bshin"}[cfg.env.id]
    assert [p[0]["segment"] for p in info["perturbation"]] == [segment, segment]
    assert [p[0]["scale"] for p in info["perturbation"]] == [0.5, 0.5]  # moderate shortening: half length
    check_training_condition("HalfCheetah-v5", "shorten_limb@moderate")
    with pytest.raises(plasticrl.errors.PlasticRLError, match="shorten_limb@moderat'"):
        check_training_condition("HalfCheetah-v5", "shorten_limb@moderat")
