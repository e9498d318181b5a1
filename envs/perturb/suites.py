"""Evaluation suites per env: ``nominal``, ``train`` (domain randomisation), ``novel``, and the
Hebbian meta-learning protocol's ``morphology`` (Ant) and ``motor_failure`` (locomotion robots), with
the training distributions (``TRAINING_DISTRIBUTIONS``) that go with them.

``novel`` holds conditions outside the training distribution, each at three severities
(``mild``, ``moderate``, ``severe``), some from reset and some switched on mid-episode
(``start_step`` = ``MID_EPISODE``) to measure adaptation within a lifetime. Push forces are
given as accelerations of the whole robot (times its total mass) lasting about 0.1 s, so one
severity means the same shove for a 1 kg swimmer and a 40 kg humanoid.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np

from ..errors import EnvError, unknown
from ..tasks import TASKS, robot_id
from .morphology import segments

SEVERITIES = ("mild", "moderate", "severe")
SUITES = ("nominal", "train", "novel", "morphology", "motor_failure")
MID_EPISODE = 200

#: Domain randomisation ranges, uniform in [lo, hi] per episode and instance (``train``).
TRAIN_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "mass_scale": {"scale": (0.8, 1.2)},
    "friction_scale": {"scale": (0.8, 1.2)},
    "actuator_strength": {"scale": (0.85, 1.15)},
    "joint_damping_scale": {"scale": (0.8, 1.2)},
    "obs_noise": {"std": (0.0, 0.02)},
}

#: Held-out limb per env for morphology conditions (first is used in ``novel``).
_LIMB = {"Ant-v5": "leg_1", "HalfCheetah-v5": "bshin", "Hopper-v5": "foot",
         "Walker2d-v5": "foot_left"}

#: Mid-episode removals per env, graded by how much of the body is lost (mild, moderate, severe):
#: the end of a leg, the leg below the hip, more than that.
_REMOVALS: dict[str, tuple[Any, Any, Any]] = {
    "Ant-v5": ("lower_leg_1", "leg_1", ["leg_1", "leg_4"]),
    "HalfCheetah-v5": ("bfoot", "bshin", "bthigh"),
    "Hopper-v5": ("foot", "shin", "thigh"),
    "Walker2d-v5": ("foot_left", "shin_left", "thigh_left"),
}


def _model_facts(env_id: str) -> tuple[float, float, int]:
    """(total mass, env dt, number of actuators) of the nominal model."""
    from ..registry import make_config  # local: registry imports tasks, avoid a cycle

    cfg = make_config(env_id)
    model = cfg.load_model()
    return float(model.body_mass.sum()), float(model.opt.timestep * cfg.frame_skip), model.nu


def novel(env_id: str) -> list[dict[str, Any]]:
    """Held-out conditions of ``env_id``: a list of ``{"name", "severity", "perturbation"}``."""
    mass, dt, nu = _model_facts(env_id)
    push_steps = max(1, round(0.1 / dt))
    levels: dict[str, list[Any]] = {
        "mass_scale": [{"name": "mass_scale", "scale": s} for s in (1.4, 1.8, 2.5)],
        "light": [{"name": "mass_scale", "scale": s} for s in (0.7, 0.5, 0.35)],
        "friction_scale": [{"name": "friction_scale", "scale": s} for s in (0.6, 0.35, 0.15)],
        "gravity_tilt": [{"name": "gravity", "tilt_deg": d} for d in (5.0, 10.0, 20.0)],
        "weak_actuators": [{"name": "actuator_strength", "scale": s} for s in (0.75, 0.5, 0.3)],
        "joint_damping": [{"name": "joint_damping_scale", "scale": s} for s in (2.0, 4.0, 8.0)],
        "push": [{"name": "push", "force": round(a * mass, 3), "duration": push_steps,
                  "period": 100} for a in (5.0, 10.0, 20.0)],
        "obs_noise": [{"name": "obs_noise", "std": s} for s in (0.05, 0.1, 0.3)],
        "obs_dropout": [{"name": "obs_dropout", "p": p} for p in (0.05, 0.15, 0.3)],
        "obs_delay": [{"name": "obs_delay", "steps": k} for k in (1, 2, 4)],
        "action_noise": [{"name": "action_noise", "std": s} for s in (0.1, 0.25, 0.5)],
        "action_delay": [{"name": "action_delay", "steps": k} for k in (1, 2, 4)],
        "dead_actuator_mid": [{"name": "dead_actuator", "actuator": list(range(min(k, nu))),
                               "start_step": MID_EPISODE} for k in (1, 2, 3)],
    }
    limb = _LIMB.get(robot_id(env_id))
    if limb is not None and limb in segments(env_id):
        levels["shorten_limb"] = [{"name": "shorten_limb", "segment": limb, "scale": s}
                                  for s in (0.75, 0.5, 0.25)]
    out = []
    for name, conds in levels.items():
        for severity, cond in zip(SEVERITIES, conds):
            out.append({"name": f"{name}@{severity}", "severity": severity, "perturbation": [cond]})
    for severity, segment in zip(SEVERITIES, _REMOVALS.get(robot_id(env_id), ())):
        out.append({"name": f"remove_limb_mid@{severity}", "severity": severity,
                    "perturbation": [{"name": "remove_limb", "segment": segment, "start_step": MID_EPISODE}]})
    return out


#: Damage to *other* limbs than the ``novel`` suite's, for training controllers that must cope with
#: damage (``sample_damage``): segments that may be shortened, segments that may be removed
#: mid-episode, actuators that may die mid-episode. Ant: legs 2 and 3 (novel damages legs 1 and 4,
#: actuators 0-2 = hip_4, ankle_4, hip_1); HalfCheetah: the front leg (novel damages the back leg).
TRAIN_DAMAGE: dict[str, dict[str, tuple[Any, ...]]] = {
    "Ant-v5": {"shorten": ("leg_2", "leg_3"), "remove": ("lower_leg_2", "lower_leg_3", "leg_2", "leg_3"),
               "dead": (4, 5, 6, 7)},
    "HalfCheetah-v5": {"shorten": ("fthigh", "fshin", "ffoot"), "remove": ("ffoot", "fshin"), "dead": (3, 4, 5)},
}
DAMAGE_KINDS = ("nominal", "shorten_limb", "remove_limb_mid", "dead_actuator_mid")
DAMAGE_SCALE = (0.25, 0.8)  # shortened to this fraction of the length, uniform
DAMAGE_START = (100, 500)  # mid-episode damage starts at a uniform step in this range


def sample_damage(env_id: str, num: int, rng: np.random.Generator) -> list[list[dict[str, Any]]]:
    """``num`` training conditions, one per instance: nominal, a shortened limb, a limb lost
    mid-episode or one or two motors failing mid-episode (each kind a quarter of the time), all on
    limbs that the ``novel`` suite leaves intact, so its damage conditions stay held out."""
    if robot_id(env_id) not in TRAIN_DAMAGE:
        derived = sorted(k for k in TASKS if k not in TRAIN_DAMAGE and robot_id(k) in TRAIN_DAMAGE)
        raise EnvError(f"unknown env id for damage training {env_id!r}; valid choices: "
                       f"{', '.join(sorted(TRAIN_DAMAGE))} (and the adaptation tasks on them: {', '.join(derived)})")
    if not isinstance(rng, np.random.Generator):
        raise EnvError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    table = TRAIN_DAMAGE[robot_id(env_id)]
    out: list[list[dict[str, Any]]] = []
    for _ in range(num):
        kind = DAMAGE_KINDS[int(rng.integers(len(DAMAGE_KINDS)))]
        start = int(rng.integers(DAMAGE_START[0], DAMAGE_START[1] + 1))
        if kind == "nominal":
            out.append([])
        elif kind == "shorten_limb":
            out.append([{"name": "shorten_limb", "segment": str(rng.choice(table["shorten"])),
                         "scale": float(rng.uniform(*DAMAGE_SCALE))}])
        elif kind == "remove_limb_mid":
            out.append([{"name": "remove_limb", "segment": str(rng.choice(table["remove"])), "start_step": start}])
        else:
            k = int(rng.integers(1, 3))
            dead = sorted(int(a) for a in rng.choice(table["dead"], size=k, replace=False))
            out.append([{"name": "dead_actuator", "actuator": dead, "start_step": start}])
    return out


def suite(env_id: str, name: str) -> list[dict[str, Any]]:
    """The conditions of suite ``name`` for ``env_id`` (``train`` lists its ranges instead);
    ``morphology`` and ``motor_failure`` exist only for the envs :func:`suites_of` names."""
    if env_id not in TASKS:
        raise unknown("env id", env_id, TASKS)
    if name == "morphology":
        return morphology_suite(env_id)
    if name == "motor_failure":
        return motor_failure_suite(env_id)
    if name == "nominal":
        return [{"name": "nominal", "severity": None, "perturbation": []}]
    if name == "train":
        return [{"name": "train", "severity": None,
                 "ranges": {k: {p: list(r) for p, r in v.items()} for k, v in TRAIN_RANGES.items()}}]
    if name == "novel":
        return novel(env_id)
    raise unknown("suite", name, SUITES)


def condition(env_id: str, name: str) -> list[dict[str, Any]]:
    """The perturbation (a list of perturbation dicts) of a suite condition of ``env_id`` by name: a
    ``novel`` condition (``NAME@severity``, e.g. ``dead_actuator_mid@mild``), or one of the
    ``morphology`` (``short_back_left``, ...) or ``motor_failure`` (``motor_failure_a<k>``) suites where
    the env has them."""
    if robot_id(env_id) not in TASKS:
        raise unknown("env id", env_id, TASKS)
    known = _conditions_by_name(env_id)
    if name not in known:
        raise unknown(f"suite condition of {env_id}", name, known)
    return copy.deepcopy(known[name])


@functools.lru_cache(maxsize=None)
def _conditions_by_name(env_id: str) -> dict[str, list[dict[str, Any]]]:
    # cached: the suites load the model once per env id, not once per reset (callers get copies)
    named = {c["name"]: c["perturbation"] for c in novel(env_id)}
    robot = robot_id(env_id)
    if robot == "Ant-v5":
        named.update({c["name"]: c["perturbation"] for c in morphology_suite(env_id) if c["name"] != "nominal"})
    if robot in LOCOMOTION:
        named.update({c["name"]: c["perturbation"] for c in motor_failure_suite(env_id) if c["name"] != "nominal"})
    return named


def _is_condition_name(env_id: str, item: Any) -> bool:
    """``NAME@severity`` (a ``novel`` name, checked by :func:`condition`), or another suite's condition
    name of ``env_id``."""
    if not isinstance(item, str):
        return False
    if "@" in item:
        return True
    return robot_id(env_id) in TASKS and item in _conditions_by_name(env_id)


def expand_condition_names(env_id: str, spec: Any) -> Any:
    """``spec`` with every suite condition name (a string ``NAME@severity`` of ``novel``, or a condition
    of the ``morphology`` / ``motor_failure`` suites such as ``short_back_left``; alone or in a list)
    replaced by that condition's perturbations, so a suite condition is accepted wherever a
    perturbation is (``make_vec(..., perturbation=...)``, ``reset`` options, ``env.train_perturbation``,
    ``render --condition``). Anything else is returned unchanged (for
    :func:`~plasticrl.envs.perturb.spec.parse` to check)."""
    if _is_condition_name(env_id, spec):
        return condition(env_id, spec)
    if isinstance(spec, (list, tuple)) and any(_is_condition_name(env_id, x) for x in spec):
        out: list[Any] = []
        for item in spec:
            out.extend(condition(env_id, item) if _is_condition_name(env_id, item) else [item])
        return out
    return spec


def sample_train(env_id: str, num: int, rng: np.random.Generator) -> list[list[dict[str, Any]]]:
    """``num`` conditions drawn from the ``train`` distribution (one per instance), for
    ``reset(options={"perturbations": sample_train(env_id, n, rng)})``."""
    if env_id not in TASKS:
        raise unknown("env id", env_id, TASKS)
    if not isinstance(rng, np.random.Generator):
        raise EnvError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    out = []
    for _ in range(num):
        cond = []
        for pname, ranges in TRAIN_RANGES.items():
            params = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()}
            cond.append({"name": pname, **params})
        out.append(cond)
    return out


# --- The morphology-damage and motor-failure protocol of the Hebbian meta-learning literature ----------
# (Najarro & Risi 2020; Dittrich et al. 2026): train on some damaged bodies, test on others, and a motor
# that fails mid-episode.

#: Ant-v5 legs by where they attach to the torso. The rewarded direction is +x (forward_reward is the
#: x velocity) and +y is the robot's left, so, from the hips' positions in gymnasium's ant.xml:
#: leg_1 (aux_1 at +0.2, +0.2; hip_1, ankle_1) is front left, leg_4 (aux_4 at +0.2, -0.2) front right,
#: leg_2 (aux_2 at -0.2, +0.2) back left and leg_3 (aux_3 at -0.2, -0.2) back right. The XML's body
#: names say otherwise (leg_2's body is called "front_right_leg", leg_4's "right_back_leg") and do not
#: match the geometry; Najarro & Risi's damaged Ant files (ant_asym_left/right.xml) shorten the feet of
#: legs 1 and 4, the two legs on the +x side, so the geometry is the peers' convention too.
ANT_LEGS = {"front_left": 1, "front_right": 4, "back_left": 2, "back_right": 3}
#: A damaged leg: its lower leg (the segment below the ankle joint, the "foot") shortened to a quarter,
#: as the peers' damaged Ants (foot capsule 0.4 -> 0.1 along each axis).
SHORT_LEG_SCALE = 0.25
#: Legs the morphology split trains on (with the intact body) and the legs it holds out.
TRAIN_LEGS = ("front_left", "front_right")
HELD_OUT_LEGS = ("back_left", "back_right")
#: Step range of the motor failure of Dittrich et al. (a uniform step in [450, 550] of a 1000-step
#: episode) and the fixed step of the evaluation suite's failures (the range's midpoint).
MOTOR_FAILURE_STEPS = (450, 550)
MOTOR_FAILURE_STEP = 500
#: Robots with legs or fins that the motor-failure distribution and suite are defined for (the
#: pendulums balance rather than move; a dead motor there is a different question).
LOCOMOTION = ("Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Humanoid-v5", "Swimmer-v5", "Walker2d-v5")


def short_leg(leg: str) -> list[dict[str, Any]]:
    """The Ant body with ``leg`` (a key of :data:`ANT_LEGS`) damaged: its lower leg shortened to
    :data:`SHORT_LEG_SCALE` of its length (a list of one perturbation dict)."""
    if leg not in ANT_LEGS:
        raise unknown("Ant leg", leg, ANT_LEGS)
    return [{"name": "shorten_limb", "segment": f"lower_leg_{ANT_LEGS[leg]}", "scale": SHORT_LEG_SCALE}]


def _derived(robots: tuple[str, ...]) -> list[str]:
    """Env ids whose robot is one of ``robots`` (the robots and the adaptation tasks on them)."""
    return sorted(k for k in TASKS if robot_id(k) in robots)


def _require(what: str, env_id: str, robots: tuple[str, ...]) -> None:
    if env_id not in TASKS or robot_id(env_id) not in robots:
        raise EnvError(f"{what} is not defined for env id {env_id!r}; valid env ids: "
                       f"{', '.join(_derived(robots))}")


def _check_rng(rng: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise EnvError(f"rng must be a numpy Generator, got {type(rng).__name__}")


@functools.lru_cache(maxsize=None)
def _actuator_count(env_id: str) -> int:
    # cached: samplers run every generation, the model needs loading once per env id
    return _model_facts(env_id)[2]


def sample_front_legs_short(env_id: str, num: int, rng: np.random.Generator) -> list[list[dict[str, Any]]]:
    """``num`` training bodies of the morphology split (Ant robots only), each uniformly one of: the
    intact body, the front-left or the front-right lower leg shortened to a quarter. The back legs,
    which the ``morphology`` suite damages, are never touched. A pure function of ``rng``."""
    _require("training distribution 'front_legs_short'", env_id, ("Ant-v5",))
    _check_rng(rng)
    bodies: list[list[dict[str, Any]]] = [[]] + [short_leg(leg) for leg in TRAIN_LEGS]
    return [copy.deepcopy(bodies[int(k)]) for k in rng.integers(len(bodies), size=num)]


def sample_motor_failure(env_id: str, num: int, rng: np.random.Generator) -> list[list[dict[str, Any]]]:
    """``num`` training conditions of Dittrich et al.'s motor failure: one actuator, uniform over all
    of them, dead from a step uniform in :data:`MOTOR_FAILURE_STEPS` (both ends included) on. A pure
    function of ``rng``. An episode capped below that step never sees its failure."""
    _require("training distribution 'motor_failure'", env_id, LOCOMOTION)
    _check_rng(rng)
    nu = _actuator_count(env_id)
    actuators = rng.integers(nu, size=num)
    steps = rng.integers(MOTOR_FAILURE_STEPS[0], MOTOR_FAILURE_STEPS[1] + 1, size=num)
    return [[{"name": "dead_actuator", "actuator": [int(a)], "start_step": int(s)}]
            for a, s in zip(actuators, steps)]


def morphology_suite(env_id: str) -> list[dict[str, Any]]:
    """Suite ``morphology`` (Ant robots): nominal, the two training bodies (``short_front_left``,
    ``short_front_right``, for reference) and the two held-out ones (``short_back_left``,
    ``short_back_right``); each a lower leg shortened to a quarter from reset."""
    _require("suite 'morphology'", env_id, ("Ant-v5",))
    out: list[dict[str, Any]] = [{"name": "nominal", "severity": None, "perturbation": []}]
    for leg in TRAIN_LEGS + HELD_OUT_LEGS:
        out.append({"name": f"short_{leg}", "severity": None, "perturbation": short_leg(leg),
                    "held_out": leg in HELD_OUT_LEGS})
    return out


def motor_failure_suite(env_id: str) -> list[dict[str, Any]]:
    """Suite ``motor_failure`` (locomotion robots): nominal, then ``motor_failure_a<k>`` for every
    actuator ``k``, dead from step :data:`MOTOR_FAILURE_STEP` on (a mid-episode condition, like the
    ``novel`` suite's ``*_mid`` ones). Deterministic: their average over ``k`` is the expectation over
    the training distribution's random actuator, at its mean failure step."""
    _require("suite 'motor_failure'", env_id, LOCOMOTION)
    out: list[dict[str, Any]] = [{"name": "nominal", "severity": None, "perturbation": []}]
    for k in range(_actuator_count(env_id)):
        out.append({"name": f"motor_failure_a{k}", "severity": None,
                    "perturbation": [{"name": "dead_actuator", "actuator": [k], "start_step": MOTOR_FAILURE_STEP}]})
    return out


def suites_of(env_id: str) -> list[str]:
    """Names of the suites that ``env_id`` has (``morphology`` only on Ant robots, ``motor_failure``
    only on locomotion robots)."""
    if env_id not in TASKS:
        raise unknown("env id", env_id, TASKS)
    robot = robot_id(env_id)
    return [name for name in SUITES
            if (name != "morphology" or robot == "Ant-v5") and (name != "motor_failure" or robot in LOCOMOTION)]


__all__ = ["ANT_LEGS", "HELD_OUT_LEGS", "MID_EPISODE", "MOTOR_FAILURE_STEP", "MOTOR_FAILURE_STEPS", "SEVERITIES",
           "SUITES", "TRAIN_LEGS", "TRAIN_RANGES", "morphology_suite", "motor_failure_suite", "novel",
           "sample_damage", "sample_front_legs_short", "sample_motor_failure", "sample_train", "short_leg",
           "suite", "suites_of"]


#: named distributions a training episode's condition can be drawn from (``env.train_perturbation``
#: of the ES trainer, ``train_perturbation`` of the SB3 baselines): name -> sampler
TRAINING_DISTRIBUTIONS = {"train": sample_train, "damage": sample_damage,
                          "front_legs_short": sample_front_legs_short, "motor_failure": sample_motor_failure}
