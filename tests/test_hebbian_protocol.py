"""The morphology-damage and motor-failure protocol of issue 21: training distributions
(front_legs_short, motor_failure), evaluation suites (morphology, motor_failure) and the shipped
experiment specs that run it."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import mujoco
import numpy as np
import pytest

from plasticrl.envs import TRAINING_DISTRIBUTIONS, make_vec, suite
from plasticrl.envs.perturb.suites import (
    ANT_LEGS,
    HELD_OUT_LEGS,
    MOTOR_FAILURE_STEP,
    TRAIN_LEGS,
)
from plasticrl.errors import PlasticRLError

ROOT = Path(__file__).resolve().parents[1]


def _segments(conditions: list[list[dict]]) -> list[str | None]:
    """The shortened segment of each drawn body (None: the intact body)."""
    out = []
    for cond in conditions:
        assert len(cond) <= 1
        out.append(cond[0]["segment"] if cond else None)
    return out


def test_leg_names_follow_the_ant_geometry():
    """front = the rewarded +x side, left = +y: checked on the hip positions of the compiled model,
    not on the XML's body names (which call leg 2 'front_right_leg')."""
    env = make_vec("Ant-v5", 1)
    model = env.base_model
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    torso = data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")]
    for leg, k in ANT_LEGS.items():
        hip = data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"aux_{k}")] - torso
        assert (hip[0] > 0) == leg.startswith("front"), leg
        assert (hip[1] > 0) == leg.endswith("left"), leg
    env.close()


@pytest.mark.parametrize("env_id", ["Ant-v5", "AntDir-v5"])
def test_front_legs_short_never_trains_on_a_held_out_leg(env_id):
    drawn = TRAINING_DISTRIBUTIONS["front_legs_short"](env_id, 3000, np.random.default_rng(7))
    counts = Counter(_segments(drawn))
    train = {f"lower_leg_{ANT_LEGS[leg]}" for leg in TRAIN_LEGS}
    held_out = {f"lower_leg_{ANT_LEGS[leg]}" for leg in HELD_OUT_LEGS}
    # exactly the three training bodies, each about a third of the time (3 sigma of a binomial is 0.026)
    assert set(counts) == {None} | train
    for body, n in counts.items():
        assert abs(n / 3000 - 1 / 3) < 0.03, (body, n)
    # the suite's held-out bodies are disjoint from everything trained on
    suite_held_out = {c["perturbation"][0]["segment"] for c in suite(env_id, "morphology") if c.get("held_out")}
    assert suite_held_out == held_out and not (held_out & set(counts))
    for cond in drawn:
        if cond:
            assert cond[0] == {"name": "shorten_limb", "segment": cond[0]["segment"], "scale": 0.25}


def test_training_draws_are_a_pure_function_of_the_rng():
    for name, env_id in (("front_legs_short", "Ant-v5"), ("motor_failure", "HalfCheetah-v5")):
        sample = TRAINING_DISTRIBUTIONS[name]
        a = sample(env_id, 50, np.random.default_rng(3))
        assert a == sample(env_id, 50, np.random.default_rng(3))
        assert a != sample(env_id, 50, np.random.default_rng(4))
        # drawn from the generator given, nothing else: the same state gives the same draws
        g = np.random.default_rng(5)
        g.integers(10)
        state = g.bit_generator.state
        first = sample(env_id, 10, g)
        g.bit_generator.state = state
        assert sample(env_id, 10, g) == first


def test_motor_failure_draws_one_actuator_at_a_step_in_range():
    drawn = TRAINING_DISTRIBUTIONS["motor_failure"]("HalfCheetah-v5", 4000, np.random.default_rng(0))
    actuators = [c[0]["actuator"] for c in drawn]
    steps = [c[0]["start_step"] for c in drawn]
    assert all(len(c) == 1 and c[0]["name"] == "dead_actuator" for c in drawn)
    assert all(len(a) == 1 for a in actuators)
    assert {a[0] for a in actuators} == set(range(6))  # HalfCheetah has 6 motors, each can fail
    assert min(steps) == 450 and max(steps) == 550  # both ends reachable (101 values, 4000 draws)
    assert len(set(steps)) == 101


@pytest.mark.parametrize("name,env_id,valid", [
    ("front_legs_short", "Hopper-v5", "Ant-v5, AntDir-v5"),
    ("motor_failure", "InvertedPendulum-v5", "HalfCheetah-v5"),
])
def test_distributions_refuse_other_envs_naming_the_valid_ones(name, env_id, valid):
    with pytest.raises(PlasticRLError, match=f"{name}.*{env_id}.*valid env ids: .*{valid}") as info:
        TRAINING_DISTRIBUTIONS[name](env_id, 1, np.random.default_rng(0))
    assert "\n" not in str(info.value)
    from plasticrl.rollouts.env_setup import check_training_condition

    with pytest.raises(PlasticRLError, match=env_id):
        check_training_condition(env_id, name)


def test_morphology_suite_shortens_the_named_lower_leg_to_a_quarter():
    conds = [c for c in suite("Ant-v5", "morphology") if c["name"] != "nominal"]
    assert [c["name"] for c in conds] == ["short_front_left", "short_front_right", "short_back_left",
                                          "short_back_right"]
    env = make_vec("Ant-v5", len(conds))
    env.reset(seed=0, options={"perturbations": [c["perturbation"] for c in conds]})
    base = env.base_model
    capsules = [g for g in range(base.ngeom) if base.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE]
    for cond, model in zip(conds, env.models):
        leg = ANT_LEGS[cond["name"].removeprefix("short_")]
        # the lower leg: the only child body of aux_k, its capsule runs from the ankle to the foot
        lower = [b for b in range(base.nbody)
                 if base.body_parentid[b] == mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, f"aux_{leg}")]
        assert len(lower) == 1
        foot = [g for g in capsules if base.geom_bodyid[g] == lower[0]]
        assert len(foot) == 1
        assert model.geom_size[foot[0], 1] == pytest.approx(0.25 * base.geom_size[foot[0], 1])
        others = [g for g in capsules if g != foot[0]]
        np.testing.assert_array_equal(model.geom_size[others], base.geom_size[others])
    env.close()


class _Sway:
    """A fixed open-loop gait (sinusoid per motor): no learning, same actions in every row."""

    def __init__(self, env_id: str, act_dim: int):
        self.name, self.env_id, self.env_kwargs = "sway", env_id, {}
        self.act_dim, self.t = act_dim, 0

    def start(self, rows: int, seeds=None) -> None:
        self.rows, self.t = rows, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.t += 1
        phase = 0.2 * self.t + np.arange(self.act_dim)
        return np.tile(0.8 * np.sin(phase), (obs.shape[0], 1))

    def learn(self, reward: np.ndarray) -> None:
        pass

    def invalid(self) -> np.ndarray:
        return np.zeros(self.rows, dtype=bool)


def test_motor_failure_suite_is_evaluated_as_mid_episode_damage():
    """Every motor_failure_a<k> row is marked mid-episode at step 500 and gets an adaptation curve
    (so a time to recover), and its episodes are the nominal ones until the motor dies (paired
    episodes: the same rewards up to step 500, other ones after it)."""
    from plasticrl.eval.evaluate import evaluate, suite_conditions
    from plasticrl.rollouts.batch import run_batch

    kwargs = {"max_episode_steps": 560}
    conds = suite_conditions("HalfCheetah-v5", "motor_failure")
    names = [c["name"] for c in conds]
    assert names == ["nominal"] + [f"motor_failure_a{k}" for k in range(6)]
    batches = run_batch(_Sway("HalfCheetah-v5", 6), "HalfCheetah-v5", [(c["name"], c["perturbation"]) for c in conds],
                        2, 0, kwargs)
    nominal = batches["nominal"].rewards
    for name in names[1:]:
        rewards = batches[name].rewards
        np.testing.assert_array_equal(rewards[:MOTOR_FAILURE_STEP], nominal[:MOTOR_FAILURE_STEP])
        # the motor is dead from step 500 on, so the rewards part ways within a few steps
        assert not np.allclose(rewards[MOTOR_FAILURE_STEP:MOTOR_FAILURE_STEP + 20],
                               nominal[MOTOR_FAILURE_STEP:MOTOR_FAILURE_STEP + 20])

    result = evaluate([_Sway("HalfCheetah-v5", 6)], "HalfCheetah-v5", suite="motor_failure", episodes=2, seed=0,
                      env_kwargs=kwargs, window=20)
    rows = {r.condition: r for r in result.rows}
    assert not rows["nominal"].mid_episode
    for name in names[1:]:
        r = rows[name]
        assert r.mid_episode and r.switch_step == MOTOR_FAILURE_STEP and r.after_switch.steps_after_switch == 60
        # the return from the switch on is the rewards of steps 500.. of the same episodes
        np.testing.assert_allclose(r.after_switch.returns_after_switch,
                                   batches[name].rewards[MOTOR_FAILURE_STEP:].sum(axis=0))
    assert {c.condition for c in result.curves} == set(names[1:])


@pytest.mark.parametrize("name,env_id,train,suite_name,seeds,episodes", [
    ("hebbian_morphology", "Ant-v5", "front_legs_short", "morphology", 5, 20),
    ("hebbian_motor_failure", "HalfCheetah-v5", "motor_failure", "motor_failure", 5, 20),
    ("hebbian_morphology_pilot", "Ant-v5", "front_legs_short", "morphology", 1, 10),
])
def test_protocol_specs_run_every_agent_kind_at_one_budget(name, env_id, train, suite_name, seeds, episodes, monkeypatch):
    """Five agent kinds x seeds, labelled NAME_s<k> (what the rliable aggregation groups), each trained
    with seed k under the training distribution, at the same env-step budget and population, and
    evaluated on the protocol's suite with frozen twins."""
    from plasticrl.experiments.comparison import _es_config, load_spec
    from plasticrl.report.aggregate import SEED_PATTERN

    monkeypatch.chdir(ROOT)
    spec = load_spec(ROOT / "configs" / "experiments" / f"{name}.yaml")
    assert spec.env.id == env_id and spec.env.train_perturbation == train
    assert (spec.eval.suite, spec.eval.episodes, spec.eval.frozen_twins) == (suite_name, episodes, True)
    assert spec.eval.seed >= 1000  # evaluation episodes are not training episodes (those start at the run's seed)
    kinds = {"hebbian_random_mlp", "hebbian_random_spiking", "hebbian_static_mlp", "hebbian_static_spiking",
             "plastic_bcm"}
    assert set(spec.agents) == {f"{kind}_s{k}" for kind in kinds for k in range(seeds)}
    budgets = set()
    for label, agent in spec.agents.items():
        m = SEED_PATTERN.match(label)
        cfg = _es_config(agent, spec, "disabled")
        assert cfg.seed == int(m["seed"]) and cfg.env.id == env_id and cfg.env.train_perturbation == train
        assert cfg.env.kwargs == spec.env.kwargs
        budgets.add((cfg.train.max_env_steps, cfg.es.params.population_size, cfg.train.episodes_per_member))
        # the generation cap never binds before the step budget (episodes are at most 1000 steps)
        assert cfg.train.generations * cfg.es.params.population_size * 1000 >= cfg.train.max_env_steps
    assert len(budgets) == 1
    if seeds == 5:
        assert budgets.pop()[0] == 10_000_000


def test_reference_conditions_are_left_out_of_held_out_means():
    """The morphology suite evaluates the training bodies for reference: the held-out means of the
    plasticity effect, the rliable aggregation and the report's summary average over the held-out
    bodies only. Hand-built result: agent - twin differs by +10 on the reference body, -2 on the held-out one."""
    from plasticrl.eval.plasticity_effect import HELD_OUT, plasticity_effect
    from plasticrl.eval.result import as_result
    from plasticrl.report.aggregate import score_matrix
    from plasticrl.report.writer import markdown

    def row(agent, cond, returns):
        return {"agent": agent, "condition": cond, "returns": returns, "mean_return": float(np.mean(returns)),
                "retained": float(np.mean(returns)) / 100.0, "mid_episode": False, "severity": None,
                "ci_low": 0.0, "ci_high": 0.0, "retained_low": 0.0, "retained_high": 0.0, "mean_length": 1000.0,
                "time_to_recover": None, "invalid_episodes": 0,
                # the return beyond the survival bonus: defined; its retained fraction is not (it is <= 0)
                "mean_return_beyond_survival": float(np.mean(returns)) - 1000.0, "retained_beyond_survival": None}

    rows = []
    for agent, delta in (("a_s0", 0.0), ("a_s0/frozen", None)):
        frozen = delta is None
        rows += [row(agent, "nominal", [100.0, 100.0]),
                 row(agent, "short_front_left", [90.0, 90.0] if frozen else [100.0, 100.0]),
                 row(agent, "short_back_left", [60.0, 62.0] if frozen else [58.0, 60.0])]
    result = {"env_id": "Ant-v5", "suite": "morphology", "episodes": 2, "seed": 0, "confidence": 0.95,
              "agents": ["a_s0", "a_s0/frozen"], "conditions": ["nominal", "short_front_left", "short_back_left"],
              "reference_conditions": ["short_front_left"], "rows": rows, "curves": []}
    effects = {e["condition"]: e for e in plasticity_effect(as_result(result))}
    assert effects[HELD_OUT]["difference"] == pytest.approx(-2.0)
    assert effects["short_front_left"]["difference"] == pytest.approx(10.0)  # still reported on its own
    scores, kept, removed = score_matrix(result, ["a_s0"], "return")
    assert kept == ["short_back_left"] and removed == [] and scores.tolist() == [[59.0]]
    result["plasticity_effect"] = plasticity_effect(as_result(result))
    result["goal_adaptation"] = []
    summary = next(line for line in markdown(result).splitlines() if line.startswith("| a_s0 |"))
    assert "| 59.0 [" in summary  # mean return (held-out): the back leg's 59, not (100 + 59) / 2
    # the return beyond the survival bonus is shown although no retained fraction of it is defined
    assert "| short_back_left | 59.0 |" in markdown(result) and "| -941.0 |" in markdown(result)


def test_morphology_evaluation_marks_the_training_bodies_as_reference():
    from plasticrl.eval.evaluate import evaluate

    result = evaluate([_Sway("Ant-v5", 8)], "Ant-v5", suite="morphology", episodes=1, seed=0,
                      env_kwargs={"max_episode_steps": 5, "include_cfrc_ext_in_observation": False})
    assert list(result.conditions) == ["nominal", "short_front_left", "short_front_right", "short_back_left",
                                       "short_back_right"]
    assert list(result.reference_conditions) == ["short_front_left", "short_front_right"]
    assert all(not r.mid_episode for r in result.rows)
    assert all(r.mean_return_beyond_survival is not None for r in result.rows)  # Ant pays a survival bonus


def test_protocol_condition_names_are_accepted_wherever_a_perturbation_is():
    """``short_back_left`` and ``motor_failure_a2`` name their suite's perturbation in make_vec (and so in
    render --condition and env.train_perturbation), alone or in a list beside a plain perturbation."""
    from plasticrl.envs.perturb.suites import condition, expand_condition_names

    back = next(c for c in suite("Ant-v5", "morphology") if c["name"] == "short_back_left")["perturbation"]
    assert expand_condition_names("Ant-v5", "short_back_left") == back
    dead = next(c for c in suite("HalfCheetah-v5", "motor_failure") if c["name"] == "motor_failure_a2")
    mixed = expand_condition_names("HalfCheetah-v5", ["motor_failure_a2", {"name": "mass_scale", "scale": 1.5}])
    assert mixed == dead["perturbation"] + [{"name": "mass_scale", "scale": 1.5}]
    # a name of another robot's suite is not one of this env's
    with pytest.raises(PlasticRLError, match="short_back_left"):
        condition("HalfCheetah-v5", "short_back_left")
    # the named condition shortens the same geom as the explicit perturbation
    named = make_vec("Ant-v5", 1, perturbation="short_back_left")
    explicit = make_vec("Ant-v5", 1, perturbation=back)
    named.reset(seed=0)
    explicit.reset(seed=0)
    try:
        assert np.array_equal(named.models[0].geom_size, explicit.models[0].geom_size)
        assert not np.array_equal(named.models[0].geom_size, named.base_model.geom_size)
    finally:
        named.close()
        explicit.close()


def test_render_takes_the_protocol_condition_names():
    from plasticrl.report.render import _condition

    back = next(c for c in suite("Ant-v5", "morphology") if c["name"] == "short_back_left")["perturbation"]
    assert _condition("Ant-v5", "short_back_left") == back
    with pytest.raises(PlasticRLError, match="unknown condition 'short_back_left'.*motor_failure_a0"):
        _condition("HalfCheetah-v5", "short_back_left")  # no morphology suite; its own suites are listed
