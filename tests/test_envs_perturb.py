"""Perturbations change what they claim and nothing else, at the requested step, for exactly
the targeted instances; nominal leaves everything bit-identical."""
from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

from plasticrl.envs import EnvError, catalog, make_vec, sample_train, suite, supported_ids
from plasticrl.envs.perturb import TYPES
from plasticrl.envs.perturb.morphology import REMOVED_MASS, segments

#: MuJoCo constants recomputed by mj_setConst after a mass change (derived, not edited).
DERIVED = {"body_subtreemass", "body_invweight0", "dof_invweight0", "tendon_invweight0",
           "actuator_acc0", "dof_M0", "cam_poscom0", "light_poscom0"}


def _arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        try:
            value = getattr(model, name)
        except Exception:  # some attributes are not readable on every model
            continue
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
    for name in dir(model.opt):  # physics options (gravity, timestep, solver settings, ...)
        value = getattr(model.opt, name)
        if not name.startswith("_") and isinstance(value, (int, float, np.ndarray)):
            out[f"opt.{name}"] = np.array(value, copy=True)
    return out


def _changed(a: mujoco.MjModel, b: mujoco.MjModel) -> set[str]:
    x, y = _arrays(a), _arrays(b)
    return {k for k in x if x[k].shape != y[k].shape or not np.array_equal(x[k], y[k])}


def _env_with(env_id: str, perturbations: list, seed: int = 0, **kw):
    env = make_vec(env_id, len(perturbations), **kw)
    obs, info = env.reset(seed=seed, options={"perturbations": perturbations})
    return env, obs, info


# --- nominal -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["Ant-v5", "Hopper-v5", "Humanoid-v5"])
def test_nominal_model_is_bit_identical(env_id: str) -> None:
    env = make_vec(env_id, 2)
    reference = env.config.load_model()
    env.reset(seed=0)
    assert all(not _changed(reference, m) for m in env.models)
    # A perturbed episode followed by a nominal reset restores the exact model.
    env.reset(seed=0, options={"perturbation": [{"name": "mass_scale", "scale": 1.7},
                                                {"name": "gravity", "tilt_deg": 10.0}]})
    assert all(_changed(reference, m) for m in env.models)
    env.reset(seed=0)
    assert all(not _changed(reference, m) for m in env.models)


# --- dynamics ----------------------------------------------------------------------------------
def test_mass_scale_changes_only_masses_of_targeted_bodies() -> None:
    env, _, _ = _env_with("Ant-v5", [None, {"name": "mass_scale", "scale": 1.5, "body": "torso"},
                                     {"name": "mass_scale", "scale": 0.5}])
    base = env.base_model
    assert not _changed(base, env.models[0])
    torso = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, "torso")
    m1 = env.models[1]
    assert _changed(base, m1) <= {"body_mass", "body_inertia"} | DERIVED
    expected = base.body_mass.copy()
    expected[torso] *= 1.5
    np.testing.assert_array_equal(m1.body_mass, expected)
    np.testing.assert_array_equal(env.models[2].body_mass[1:], base.body_mass[1:] * 0.5)
    np.testing.assert_array_equal(env.models[2].body_inertia[1:], base.body_inertia[1:] * 0.5)


@pytest.mark.parametrize("pert, fields", [
    ({"name": "friction_scale", "scale": 0.3}, {"geom_friction"}),
    ({"name": "gravity", "scale": 0.5, "tilt_deg": 30.0, "azimuth_deg": 90.0}, {"opt.gravity"}),
    ({"name": "joint_damping_scale", "scale": 3.0, "joint": "bthigh"}, {"dof_damping"}),
    ({"name": "actuator_strength", "scale": 0.4, "actuator": ["bshin", 5]}, {"actuator_gainprm"}),
    ({"name": "dead_actuator", "actuator": "fthigh"}, {"actuator_gainprm"}),
])
def test_model_edits_touch_only_their_fields(pert: dict, fields: set) -> None:
    env, _, _ = _env_with("HalfCheetah-v5", [pert, None])
    base, m = env.base_model, env.models[0]
    assert _changed(base, m) == fields
    assert not _changed(base, env.models[1])
    if pert["name"] == "friction_scale":
        np.testing.assert_array_equal(m.geom_friction[:, 0], base.geom_friction[:, 0] * 0.3)
        np.testing.assert_array_equal(m.geom_friction[:, 1:], base.geom_friction[:, 1:])
    if pert["name"] == "gravity":
        g = m.opt.gravity
        assert np.linalg.norm(g) == pytest.approx(0.5 * 9.81)
        assert np.degrees(np.arccos(-g[2] / np.linalg.norm(g))) == pytest.approx(30.0)
        assert g[0] == pytest.approx(0.0, abs=1e-12) and g[1] > 0
    if pert["name"] == "joint_damping_scale":
        dof = base.jnt_dofadr[mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_JOINT, "bthigh")]
        diff = np.flatnonzero(m.dof_damping != base.dof_damping)
        assert diff.tolist() == [dof] and m.dof_damping[dof] == base.dof_damping[dof] * 3.0
    if pert["name"] == "actuator_strength":
        assert np.flatnonzero(m.actuator_gainprm[:, 0] != base.actuator_gainprm[:, 0]).tolist() == [1, 5]


def test_dead_actuator_gives_zero_force_and_others_still_work() -> None:
    env, _, _ = _env_with("Hopper-v5", [{"name": "dead_actuator", "actuator": "leg_joint"}])
    for _ in range(5):
        env.step(np.full((1, 3), 0.8, dtype=np.float32))
        force = env.datas[0].actuator_force
        assert force[1] == 0.0 and force[0] != 0.0 and force[2] != 0.0


def test_stuck_actuator_holds_value_from_start_step() -> None:
    env, _, _ = _env_with("HalfCheetah-v5", [{"name": "stuck_actuator", "actuator": 2,
                                              "value": 0.3, "start_step": 4}])
    rng = np.random.default_rng(0)
    for t in range(10):
        a = rng.uniform(-1, 1, (1, 6)).astype(np.float32)
        env.step(a)
        ctrl = env.datas[0].ctrl
        np.testing.assert_array_equal(np.delete(ctrl, 2), np.delete(a[0], 2).astype(np.float64))
        assert ctrl[2] == (0.3 if t >= 4 else np.float64(a[0, 2]))


def test_push_applies_force_on_torso_only_during_window() -> None:
    env, _, _ = _env_with("Walker2d-v5", [{"name": "push", "force": 80.0, "direction_deg": 180.0,
                                           "duration": 2, "period": 5, "start_step": 3}, None])
    torso = mujoco.mj_name2id(env.base_model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    zero = np.zeros((2, 6), dtype=np.float32)
    for t in range(12):
        env.step(zero)
        pushing = t >= 3 and (t - 3) % 5 < 2
        xfrc = env.datas[0].xfrc_applied
        if pushing:
            np.testing.assert_allclose(xfrc[torso], [-80.0, 0, 0, 0, 0, 0], atol=1e-12)
            assert np.count_nonzero(xfrc) == 1
        else:
            assert not xfrc.any()
        assert not env.datas[1].xfrc_applied.any()


# --- morphology --------------------------------------------------------------------------------
def _geoms_of(model: mujoco.MjModel, root: int) -> set[int]:
    bodies = {b for b in range(model.nbody)
              if b == root or any(a == root for a in _ancestors(model, b))}
    return {g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies}


def _ancestors(model: mujoco.MjModel, b: int) -> list[int]:
    out = []
    while b > 0:
        b = model.body_parentid[b]
        out.append(b)
    return out


@pytest.mark.parametrize("env_id, segment, body", [
    ("Hopper-v5", "shin", "leg"), ("HalfCheetah-v5", "fthigh", "fthigh"),
    ("Walker2d-v5", "thigh_left", "thigh_left"), ("Ant-v5", "leg_2", "aux_2"),
])
def test_shorten_limb_changes_that_segment_and_its_children_only(env_id, segment, body) -> None:
    env, obs, _ = _env_with(env_id, [{"name": "shorten_limb", "segment": segment, "scale": 0.5}])
    base, m = env.base_model, env.models[0]
    assert obs.shape == (1, env.single_observation_space.shape[0])
    b = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, body)
    d0, d1 = mujoco.MjData(base), mujoco.MjData(m)
    mujoco.mj_forward(base, d0)
    mujoco.mj_forward(m, d1)
    moved = set(np.flatnonzero(np.abs(d0.geom_xpos - d1.geom_xpos).max(axis=1) > 1e-9))
    resized = set(np.flatnonzero(np.abs(base.geom_size - m.geom_size).max(axis=1) > 1e-12))
    subtree = _geoms_of(base, b)
    assert moved | resized, "nothing changed"
    assert moved | resized <= subtree
    own = {g for g in subtree if base.geom_bodyid[g] == b}
    # Capsule half-length (or fromto length) halves for the segment's own limb geoms.
    long_own = [g for g in own if base.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE]
    for g in long_own:
        assert m.geom_size[g, 1] == pytest.approx(0.5 * base.geom_size[g, 1])
    assert (m.nq, m.nv, m.nu, m.nbody) == (base.nq, base.nv, base.nu, base.nbody)


def test_remove_limb_makes_subtree_inert_and_keeps_sizes() -> None:
    env, obs, _ = _env_with("Ant-v5", [{"name": "remove_limb", "segment": "leg_3"}, None])
    base, m = env.base_model, env.models[0]
    b = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, "aux_3")
    subtree = _geoms_of(base, b)
    others = sorted(set(range(base.ngeom)) - subtree)
    assert (m.geom_contype[sorted(subtree)] == 0).all() and (m.geom_conaffinity[sorted(subtree)] == 0).all()
    np.testing.assert_array_equal(m.geom_contype[others], base.geom_contype[others])
    np.testing.assert_array_equal(m.geom_size[others], base.geom_size[others])
    bodies = sorted({int(base.geom_bodyid[g]) for g in subtree})
    np.testing.assert_allclose(m.body_mass[bodies], REMOVED_MASS)
    hips = [mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_JOINT, j) for j in ("hip_3", "ankle_3")]
    dead = [a for a in range(base.nu) if base.actuator_trnid[a, 0] in hips]
    assert len(dead) == 2 and (m.actuator_gainprm[dead, 0] == 0).all()
    assert (m.actuator_gainprm[np.setdiff1d(np.arange(m.nu), dead), 0] != 0).all()
    rng = np.random.default_rng(1)
    for _ in range(200):
        obs, *_ = env.step(rng.uniform(-1, 1, (2, 8)).astype(np.float32))
        assert np.isfinite(obs).all() and obs.shape == (2, 105)


@pytest.mark.parametrize("bad, match", [
    ({"name": "mass_scale", "scale": -1.0}, "mass_scale.scale"),
    ({"name": "mass_scale", "scale": 0.0}, "mass_scale.scale"),
    ({"name": "shorten_limb", "segment": "shin", "scale": 0.0}, "shorten_limb.scale"),
    ({"name": "shorten_limb", "segment": "shin", "scale": 1.5}, "shorten_limb.scale"),
    ({"name": "shorten_limb", "segment": "arm"}, "foot, shin, thigh"),
    ({"name": "obs_dropout", "p": 1.2}, "obs_dropout.p"),
    ({"name": "obs_noise", "std": float("nan")}, "obs_noise.std"),
    ({"name": "obs_noise", "sigma": 0.1}, "valid choices: std, start_step"),
    ({"name": "wobble"}, "valid choices: action_delay"),
    ({"name": "dead_actuator", "actuator": "elbow"}, "thigh_joint, leg_joint, foot_joint"),
    ({"name": "action_delay", "steps": 1.5}, "action_delay.steps"),
    ({"name": "push", "force": 10.0, "body": "head"}, "valid choices: torso"),
    ({"name": "stuck_sensor", "index": 99}, "indices 0..10"),
])
def test_invalid_perturbations_are_rejected_with_valid_choices(bad: dict, match: str) -> None:
    env = make_vec("Hopper-v5", 2)
    with pytest.raises(EnvError, match=match.replace(".", r"\.")):
        env.reset(seed=0, options={"perturbation": bad})
    with pytest.raises(EnvError):
        make_vec("Hopper-v5", 2, perturbation=bad)


def test_morphology_on_env_without_segments_lists_valid_envs() -> None:
    with pytest.raises(EnvError, match="Ant-v5, HalfCheetah-v5, Hopper-v5, Walker2d-v5"):
        make_vec("Swimmer-v5", 1, perturbation={"name": "remove_limb", "segment": "mid"})


# --- sensing and action --------------------------------------------------------------------------
def _paired(env_id: str, perturbations: list, steps: int, seed: int = 0, actions_seed: int = 1):
    """Run a perturbed env and a nominal twin with the same seeds and actions."""
    n = len(perturbations)
    pert = make_vec(env_id, n)
    nom = make_vec(env_id, n)
    o1, _ = pert.reset(seed=seed, options={"perturbations": perturbations})
    o2, _ = nom.reset(seed=seed)
    obs_p, obs_n, acts = [o1], [o2], []
    rng = np.random.default_rng(actions_seed)
    space = pert.single_action_space
    for _ in range(steps):
        a = rng.uniform(space.low, space.high, (n, *space.shape)).astype(np.float32)
        acts.append(a)
        obs_p.append(pert.step(a)[0])
        obs_n.append(nom.step(a)[0])
    return np.array(obs_p), np.array(obs_n), np.array(acts), pert


def test_obs_noise_has_requested_std_and_zero_mean() -> None:
    p, n, _, _ = _paired("HalfCheetah-v5", [{"name": "obs_noise", "std": 0.2}, None], 150)
    noise = p[:, 0] - n[:, 0]
    assert noise.std() == pytest.approx(0.2, rel=0.05)
    assert abs(noise.mean()) < 0.02
    np.testing.assert_array_equal(p[:, 1], n[:, 1])  # untargeted instance untouched


def test_obs_noise_is_reproducible_from_the_seed() -> None:
    a, _, _, _ = _paired("Hopper-v5", [{"name": "obs_noise", "std": 0.1}], 20, seed=4)
    b, _, _, _ = _paired("Hopper-v5", [{"name": "obs_noise", "std": 0.1}], 20, seed=4)
    c, _, _, _ = _paired("Hopper-v5", [{"name": "obs_noise", "std": 0.1}], 20, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_obs_dropout_zeroes_the_requested_fraction() -> None:
    p, n, _, _ = _paired("HalfCheetah-v5", [{"name": "obs_dropout", "p": 0.3}], 200)
    dropped = (p == 0) & (n != 0)
    assert dropped.mean() == pytest.approx(0.3, abs=0.02)
    np.testing.assert_array_equal(p[~dropped], n[~dropped])


def test_obs_delay_returns_older_observations() -> None:
    p, n, _, _ = _paired("HalfCheetah-v5", [{"name": "obs_delay", "steps": 3}], 30)
    for j in range(len(p)):
        np.testing.assert_array_equal(p[j, 0], n[max(j - 3, 0), 0])


def test_stuck_sensor_freezes_entries_at_onset() -> None:
    p, n, _, _ = _paired("HalfCheetah-v5", [{"name": "stuck_sensor", "index": [2, 9],
                                             "start_step": 5}], 20)
    # Observation j is affected iff j > start_step: frozen at observation 6.
    for j in range(len(p)):
        expected = n[j, 0].copy()
        if j > 5:
            expected[[2, 9]] = n[6, 0, [2, 9]]
        np.testing.assert_array_equal(p[j, 0], expected)


def test_action_delay_equals_shifted_actions() -> None:
    env, _, _ = _env_with("Hopper-v5", [{"name": "action_delay", "steps": 2}], seed=3)
    ref = make_vec("Hopper-v5", 1)
    ref.reset(seed=3)
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (25, 1, 3)).astype(np.float32)
    shifted = np.concatenate([np.zeros((2, 1, 3), np.float32), acts[:-2]])
    for t in range(25):
        o1 = env.step(acts[t])[0]
        o2 = ref.step(shifted[t])[0]
        np.testing.assert_array_equal(o1, o2)


def test_action_noise_has_requested_std() -> None:
    env, _, _ = _env_with("HalfCheetah-v5", [{"name": "action_noise", "std": 0.05}])
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(200):
        a = rng.uniform(-0.5, 0.5, (1, 6)).astype(np.float32)
        env.step(a)
        diffs.append(env.datas[0].ctrl - a[0])
    assert np.std(diffs) == pytest.approx(0.05, rel=0.06)


# --- timing and targeting ----------------------------------------------------------------------
@pytest.mark.parametrize("pert", [
    {"name": "mass_scale", "scale": 2.0, "start_step": 7},
    {"name": "obs_noise", "std": 0.1, "start_step": 7},
    {"name": "action_noise", "std": 0.3, "start_step": 7},
    {"name": "shorten_limb", "segment": "bfoot", "scale": 0.3, "start_step": 7},
    {"name": "push", "force": 200.0, "start_step": 7},
    {"name": "remove_limb", "segment": "fthigh", "start_step": 7},
    {"name": "dead_actuator", "actuator": [0, 1, 2], "start_step": 7},
    {"name": "obs_delay", "steps": 2, "start_step": 7},
    {"name": "action_delay", "steps": 1, "start_step": 7},
])
def test_mid_episode_switch_at_requested_step_for_targeted_instances_only(pert: dict) -> None:
    p, n, _, env = _paired("HalfCheetah-v5", [None, pert, None, pert], 15)
    # Observation j comes from step j-1: steps 0..6 untouched (j <= 7), step 7 (j = 8) changed.
    np.testing.assert_array_equal(p[:8], n[:8])
    for i in (1, 3):
        assert not np.allclose(p[8, i], n[8, i])
    np.testing.assert_array_equal(p[:, [0, 2]], n[:, [0, 2]])


def test_switch_rearms_each_episode_and_infos_echo_the_condition() -> None:
    pert = {"name": "mass_scale", "scale": 2.0, "start_step": 3}
    env = make_vec("HalfCheetah-v5", 2, max_episode_steps=5)
    _, info = env.reset(seed=0, options={"perturbations": [pert, None]})
    assert info["perturbation"][0] == [{**pert, "body": "all"}] and info["perturbation"][1] == []
    base_mass = env.base_model.body_mass
    zero = np.zeros((2, 6), dtype=np.float32)
    masses, active = [], []
    for _ in range(13):
        _, _, _, trunc, info = env.step(zero)
        masses.append(env.models[0].body_mass[1] / base_mass[1])
        active.append(bool(info["perturbation_active"][0]))
        assert env.models[1].body_mass[1] == base_mass[1]
    # Episode: steps t=0..4, then an autoreset step, then t=0..4 again, ...
    assert masses == [1, 1, 1, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1]
    assert active == [False, False, False, True, True, False, False, False, False, True, True,
                      False, False]
    # A reset without options returns to the default (nominal) condition.
    _, info = env.reset(seed=0)
    assert info["perturbation"][0] == [] and env.models[0].body_mass[1] == base_mass[1]


def test_default_condition_from_make_vec_persists_across_resets() -> None:
    pert = {"name": "friction_scale", "scale": 0.5}
    env = make_vec("Hopper-v5", 2, perturbation=pert)
    for seed in (0, 1):
        _, info = env.reset(seed=seed)
        assert all(c == [{**pert, "start_step": 0}] for c in info["perturbation"])
        assert (env.models[1].geom_friction[:, 0] == env.base_model.geom_friction[:, 0] * 0.5).all()


# --- suites, catalog, gymnasium registration ---------------------------------------------------
def test_catalog_is_json_and_lists_everything() -> None:
    data = json.loads(json.dumps(catalog(), allow_nan=False))
    assert [e["id"] for e in data["envs"]] == supported_ids()
    assert {p["name"] for p in data["perturbations"]} == set(TYPES)
    for env in data["envs"]:
        # the Hebbian protocol's suites only where they are defined: morphology on the Ant robot,
        # motor_failure on the locomotion robots (not the pendulums)
        expected = {"nominal", "train", "novel"}
        expected |= {"morphology"} if env["id"].startswith("Ant") else set()
        expected |= set() if "Pendulum" in env["id"] else {"motor_failure"}
        assert set(env["suites"]) == expected
        assert env["segments"] == segments(env["id"])
    # unbounded ranges in the one JSON convention: non-finite as null, never a string
    kwargs = {e["id"]: e["kwargs"] for e in data["envs"]}
    assert kwargs["Hopper-v5"]["healthy_z_range"] == [0.7, None]
    assert kwargs["Humanoid-v5"]["contact_cost_range"] == [None, 10.0]


@pytest.mark.parametrize("env_id", ["Ant-v5", "Hopper-v5", "Swimmer-v5", "InvertedPendulum-v5"])
def test_every_suite_condition_is_accepted_and_runs(env_id: str) -> None:
    conds = [c["perturbation"] for c in suite(env_id, "novel")]
    conds += sample_train(env_id, 3, np.random.default_rng(0))
    env = make_vec(env_id, len(conds))
    _, info = env.reset(seed=0, options={"perturbations": conds})
    space = env.single_action_space
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = env.step(rng.uniform(space.low, space.high, (len(conds), *space.shape))
                           .astype(np.float32))
        assert np.isfinite(obs).all()
    with pytest.raises(EnvError, match="nominal, novel, train"):
        suite(env_id, "held_out")


def test_registered_gymnasium_env_matches_gymnasium_and_echoes_perturbation() -> None:
    import gymnasium as gym

    ours = gym.make("plasticrl/Walker2d-v5")
    ref = gym.make("Walker2d-v5")
    o1, _ = ours.reset(seed=2)
    o2, _ = ref.reset(seed=2)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(300):
        a = rng.uniform(-1, 1, 6).astype(np.float32)
        r1, r2 = ours.step(a), ref.step(a)
        np.testing.assert_allclose(r1[0], r2[0], rtol=0, atol=1e-6)
        assert r1[1] == pytest.approx(r2[1], abs=1e-6) and r1[2:4] == r2[2:4]
        if r1[2] or r1[3]:
            episodes += 1
            np.testing.assert_allclose(ours.reset()[0], ref.reset()[0], rtol=0, atol=1e-6)
    assert episodes > 0
    pert = gym.make("plasticrl/Walker2d-v5", perturbation={"name": "gravity", "scale": 0.5})
    _, info = pert.reset(seed=0)
    assert info["perturbation"] == [{"name": "gravity", "scale": 0.5, "tilt_deg": 0.0,
                                     "azimuth_deg": 0.0, "start_step": 0}]


def test_shorter_limb_is_lighter_and_other_masses_keep_nominal_values() -> None:
    # HalfCheetah's MJCF normalises the total mass; editing must not redistribute it.
    env, _, _ = _env_with("HalfCheetah-v5", [{"name": "shorten_limb", "segment": "bshin",
                                              "scale": 0.5}])
    base, m = env.base_model, env.models[0]
    b = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, "bshin")
    others = np.delete(np.arange(base.nbody), b)
    np.testing.assert_allclose(m.body_mass[others], base.body_mass[others], rtol=1e-12)
    assert m.body_mass[b] < 0.75 * base.body_mass[b]


def test_stuck_actuator_without_value_holds_the_last_command() -> None:
    env, _, _ = _env_with("Hopper-v5", [{"name": "stuck_actuator", "actuator": [0, 2],
                                         "start_step": 3}])
    rng = np.random.default_rng(2)
    acts = rng.uniform(-1, 1, (8, 1, 3)).astype(np.float32)
    for t in range(8):
        env.step(acts[t])
        ctrl = env.datas[0].ctrl
        assert ctrl[1] == np.float64(acts[t, 0, 1])
        held = acts[2, 0] if t >= 3 else acts[t, 0]  # the command of step 2, the last before
        assert ctrl[0] == np.float64(held[0]) and ctrl[2] == np.float64(held[2])


def test_reset_mask_applies_a_perturbation_only_to_masked_instances() -> None:
    env = make_vec("Hopper-v5", 3)
    env.reset(seed=0)
    mask = np.array([False, True, False])
    _, info = env.reset(options={"reset_mask": mask,
                                 "perturbation": {"name": "friction_scale", "scale": 0.2}})
    assert [bool(c) for c in info["perturbation"]] == [False, True, False]
    assert not _changed(env.base_model, env.models[0]) and _changed(env.base_model, env.models[1])
    with pytest.raises(EnvError, match="reset_mask, perturbation, perturbations"):
        env.reset(options={"perturbaton": "obs_noise"})
    with pytest.raises(EnvError, match="expected num_envs=3"):
        env.reset(options={"perturbations": [None, None]})


@pytest.mark.parametrize("env_id", ["Ant-v5", "HalfCheetah-v5", "Hopper-v5"])
def test_novel_suite_lists_each_condition_once(env_id):
    conds = suite(env_id, "novel")
    names = [c["name"] for c in conds]
    assert len(names) == len(set(names))
    perturbations = [json.dumps(c["perturbation"], sort_keys=True) for c in conds]
    assert len(perturbations) == len(set(perturbations))  # no condition repeated under another label
    removals = [c["perturbation"][0]["segment"] for c in conds if c["name"].startswith("remove_limb_mid@")]
    assert len(removals) == 3 and all(c["perturbation"][0]["start_step"] > 0 for c in conds
                                      if c["name"].startswith("remove_limb_mid@"))


def test_graded_removal_loses_more_mass_with_severity():
    """Mild, moderate and severe mid-episode removals take away strictly more of the Ant's body."""
    conds = {c["severity"]: c for c in suite("Ant-v5", "novel") if c["name"].startswith("remove_limb_mid@")}
    env = make_vec("Ant-v5", 3, num_threads=1)
    try:
        specs = [[{**conds[s]["perturbation"][0], "start_step": 0}] for s in ("mild", "moderate", "severe")]
        env.reset(seed=0, options={"perturbations": specs})
        masses = [float(m.body_mass.sum()) for m in env.models]
        nominal = float(env.base_model.body_mass.sum())
    finally:
        env.close()
    assert nominal > masses[0] > masses[1] > masses[2]


@pytest.mark.parametrize("env_id", ["Ant-v5", "HalfCheetah-v5"])
def test_damage_training_never_touches_the_novel_suites_damaged_limbs(env_id):
    from plasticrl.envs.perturb.suites import sample_damage

    held_segments, held_actuators = set(), set()
    for c in suite(env_id, "novel"):
        for p in c["perturbation"]:
            if p["name"] in ("shorten_limb", "remove_limb"):
                seg = p["segment"]
                held_segments.update(seg if isinstance(seg, list) else [seg])
            if p["name"] == "dead_actuator":
                held_actuators.update(p["actuator"])
    drawn = sample_damage(env_id, 400, np.random.default_rng(0))
    kinds = {c[0]["name"] if c else "nominal" for c in drawn}
    assert kinds == {"nominal", "shorten_limb", "remove_limb", "dead_actuator"}
    for cond in drawn:
        for p in cond:
            if "segment" in p:
                touched = {p["segment"]} | ({"leg_" + p["segment"][-1]} if p["segment"].startswith("lower_leg_") else set())
                assert not touched & held_segments, (p, held_segments)
            if "actuator" in p:
                assert not set(p["actuator"]) & held_actuators, (p, held_actuators)
                assert p["start_step"] > 0
    assert drawn == sample_damage(env_id, 400, np.random.default_rng(0))  # deterministic per generator


def test_damage_training_rejects_envs_without_a_held_out_split():
    from plasticrl.envs.perturb.suites import sample_damage

    with pytest.raises(EnvError, match="Hopper-v5.*valid choices: Ant-v5, HalfCheetah-v5"):
        sample_damage("Hopper-v5", 2, np.random.default_rng(0))
