"""Dynamics perturbations as edits of a compiled ``MjModel`` (one model per instance).

Each edit touches only the fields it names; ``mass_scale`` additionally recomputes MuJoCo's
derived constants (``mj_setConst``: subtree masses, inverse weights, ``actuator_acc0``) because
the solver reads them, and a mass change that left them stale would be a different model from
the one MuJoCo compiles for those masses.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import mujoco
import numpy as np

from ..errors import EnvError
from .spec import TYPES, Perturbation, PerturbationType

#: Perturbations applied by :func:`apply` (others are morphology or runtime effects).
MODEL_EDITS = frozenset({"mass_scale", "friction_scale", "gravity", "joint_damping_scale",
                         "actuator_strength", "dead_actuator"})


def resolve(model: mujoco.MjModel, obj: mujoco.mjtObj, what: str, count: int, value: object,
            skip_world: bool = False) -> np.ndarray:
    """Indices for a target given as 'all', a name, an index, or a list of names/indices."""
    first = 1 if skip_world else 0
    if value == "all":
        return np.arange(first, count)
    names = [mujoco.mj_id2name(model, obj, i) or str(i) for i in range(first, count)]
    out = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, str):
            idx = mujoco.mj_name2id(model, obj, item)
            if idx < first:
                raise EnvError(f"unknown {what} {item!r}; valid choices: 'all', "
                               f"{', '.join(names)} (or an index {first}..{count - 1})")
        else:
            idx = int(item)
            if not first <= idx < count:
                raise EnvError(f"{what} index {item!r} out of range; valid: {first}..{count - 1} "
                               f"({', '.join(names)})")
        out.append(idx)
    return np.array(sorted(set(out)), dtype=int)


def actuator_names(model: mujoco.MjModel) -> list[str]:
    """A name per actuator: its own, else the joint it drives (Hopper's motors are unnamed)."""
    out = []
    for a in range(model.nu):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
        if not name and model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
        out.append(name or str(a))
    return out


def actuators(model: mujoco.MjModel, value: object) -> np.ndarray:
    """Actuator indices for 'all', an index, an actuator name or the name of its joint."""
    if value == "all":
        return np.arange(model.nu)
    names = actuator_names(model)
    out = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, str):
            if item not in names:
                raise EnvError(f"unknown actuator {item!r}; valid choices: 'all', "
                               f"{', '.join(names)} (or an index 0..{model.nu - 1})")
            out.append(names.index(item))
        elif not 0 <= int(item) < model.nu:
            raise EnvError(f"actuator index {item!r} out of range; valid: 0..{model.nu - 1} "
                           f"({', '.join(names)})")
        else:
            out.append(int(item))
    return np.array(sorted(set(out)), dtype=int)


#: Model edits added with :func:`register_model_edit`, by perturbation name.
REGISTERED_EDITS: dict[str, Callable[[mujoco.MjModel, Perturbation], None]] = {}


def register_model_edit(ptype: PerturbationType, edit: Callable[[mujoco.MjModel, Perturbation], None]) -> None:
    """Add a perturbation type that edits the compiled model, usable by name wherever a perturbation is
    (``make_vec(..., perturbation=...)``, reset options, ``gym.make``, ``env.train_perturbation``) in this
    process, from reset or switched on mid-episode with ``start_step``.

    ``edit(model, perturbation)`` changes ``model`` (the instance's own copy) in place, reading the
    validated parameters as ``perturbation["name"]``; an edit of masses must also call
    ``mujoco.mj_setConst``. ``ptype.kind`` must be ``"dynamics"``. Re-registering the same name
    replaces it; a built-in name is refused.
    """
    global MODEL_EDITS
    if ptype.kind != "dynamics":
        raise EnvError(f"register_model_edit: perturbation {ptype.name!r} has kind {ptype.kind!r}; a model "
                       "edit has kind 'dynamics'")
    if ptype.name in TYPES and ptype.name not in REGISTERED_EDITS:
        raise EnvError(f"perturbation {ptype.name!r} is built in; choose another name")
    if not callable(edit):
        raise EnvError(f"register_model_edit: the edit of {ptype.name!r} must be callable")
    TYPES[ptype.name] = ptype
    REGISTERED_EDITS[ptype.name] = edit
    MODEL_EDITS = MODEL_EDITS | {ptype.name}


def apply(model: mujoco.MjModel, perturbations: Iterable[Perturbation],
          scratch: mujoco.MjData | None = None) -> None:
    """Apply the model-edit perturbations among ``perturbations`` to ``model`` in place.

    ``scratch``: an ``MjData`` of the same sizes used by ``mj_setConst`` (never the instance's
    live data, whose state must survive a mid-episode switch)."""
    set_const = False
    for p in perturbations:
        if p.name == "mass_scale":
            idx = resolve(model, mujoco.mjtObj.mjOBJ_BODY, "body", model.nbody, p["body"],
                          skip_world=True)
            model.body_mass[idx] *= p["scale"]
            model.body_inertia[idx] *= p["scale"]
            set_const = True
        elif p.name == "friction_scale":
            model.geom_friction[:, 0] *= p["scale"]
        elif p.name == "gravity":
            g = np.linalg.norm(model.opt.gravity) * p["scale"]
            tilt, az = np.deg2rad(p["tilt_deg"]), np.deg2rad(p["azimuth_deg"])
            unit = np.array([np.sin(tilt) * np.cos(az), np.sin(tilt) * np.sin(az), -np.cos(tilt)])
            unit[np.abs(unit) < 1e-12] = 0.0  # exact axes for multiples of 90 degrees
            model.opt.gravity[:] = g * unit
        elif p.name == "joint_damping_scale":
            jnt = resolve(model, mujoco.mjtObj.mjOBJ_JOINT, "joint", model.njnt, p["joint"])
            dofs = [d for d in range(model.nv) if model.dof_jntid[d] in set(jnt.tolist())]
            model.dof_damping[dofs] *= p["scale"]
        elif p.name == "actuator_strength":
            model.actuator_gainprm[actuators(model, p["actuator"]), 0] *= p["scale"]
        elif p.name == "dead_actuator":
            model.actuator_gainprm[actuators(model, p["actuator"]), 0] = 0.0
        elif p.name in REGISTERED_EDITS:
            REGISTERED_EDITS[p.name](model, p)
    if set_const:
        mujoco.mj_setConst(model, scratch if scratch is not None else mujoco.MjData(model))
