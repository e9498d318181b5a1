"""Morphology edits through ``mujoco.MjSpec``: shorten or remove limb segments, then recompile.

Shortening a segment by ``scale`` scales its geometry about the segment's joint (its proximal
end): capsule end points (``fromto``) or centre and half-length, and moves every child body so
it stays attached to the segment's distal end. Masses follow from the geoms' density, so a
shorter limb is lighter. Sizes of the model (nq, nv, nu, nbody) never change.

Removing a segment cannot delete bodies without changing observation sizes, so the segment and
everything below it is kept as inert geometry: geoms stop colliding (contype = conaffinity = 0),
become invisible and weigh ``REMOVED_MASS`` each; the motors of its joints get zero gain; its
joints get ``REMOVED_ARMATURE`` and ``REMOVED_DAMPING`` so the nearly massless chain stays
numerically well conditioned. Their joint angles still appear in observations, like a
phantom limb.
"""
from __future__ import annotations

from collections.abc import Iterable

import mujoco
import numpy as np

from ..errors import EnvError
from ..tasks import TASKS, robot_id
from .spec import Perturbation

REMOVED_MASS = 1e-3
REMOVED_ARMATURE = 0.01
REMOVED_DAMPING = 1.0

#: Per env: user-facing segment name -> (body name, whether the whole subtree scales).
#: Ant legs: ``leg_k`` is the whole k-th leg below the hip (thigh and lower leg),
#: ``lower_leg_k`` only the part below the ankle joint.
SEGMENTS: dict[str, dict[str, tuple[str, bool]]] = {
    "HalfCheetah-v5": {s: (s, False) for s in ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")},
    "Hopper-v5": {"thigh": ("thigh", False), "shin": ("leg", False), "foot": ("foot", False)},
    "Walker2d-v5": {"thigh": ("thigh", False), "shin": ("leg", False), "foot": ("foot", False),
                    "thigh_left": ("thigh_left", False), "shin_left": ("leg_left", False),
                    "foot_left": ("foot_left", False)},
    "Ant-v5": {**{f"leg_{k}": (f"aux_{k}", True) for k in range(1, 5)},
               **{f"lower_leg_{k}": (f"#lower{k}", False) for k in range(1, 5)}},
}


def segments(env_id: str) -> list[str]:
    """Segment names that morphology perturbations accept for ``env_id`` (its robot's)."""
    return sorted(SEGMENTS.get(robot_id(env_id), {}))


def _body(spec: mujoco.MjSpec, env_id: str, segment: str) -> tuple[mujoco.MjsBody, bool]:
    table = SEGMENTS.get(robot_id(env_id))
    if not table:
        derived = sorted(k for k in TASKS if k not in SEGMENTS and robot_id(k) in SEGMENTS)
        raise EnvError(f"morphology perturbations are not defined for {env_id!r}; valid envs: "
                       f"{', '.join(sorted(SEGMENTS))} (and the adaptation tasks on them: "
                       f"{', '.join(derived)})")
    if segment not in table:
        raise EnvError(f"unknown segment {segment!r} for {env_id}; valid choices: "
                       f"{', '.join(sorted(table))}")
    name, subtree = table[segment]
    if name.startswith("#lower"):  # Ant's lower legs are unnamed: the only child of aux_k
        body = spec.body(f"aux_{name[-1]}").bodies[0]
    else:
        body = spec.body(name)
    return body, subtree


def _names(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _rotate(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, np.asarray(vec, dtype=float), np.asarray(quat, dtype=float))
    return out


def _pivot(body: mujoco.MjsBody) -> np.ndarray:
    """The segment's proximal end in its own frame: its first joint's anchor (else its origin)."""
    return np.array(body.joints[0].pos, dtype=float) if body.joints else np.zeros(3)


def _scale_body(body: mujoco.MjsBody, scale: float, subtree: bool) -> None:
    p = _pivot(body)
    for geom in body.geoms:
        fromto = np.array(geom.fromto, dtype=float)
        if np.isfinite(fromto).all():
            geom.fromto = np.concatenate([p + scale * (fromto[:3] - p), p + scale * (fromto[3:] - p)])
        else:
            geom.pos = p + scale * (np.array(geom.pos) - p)
            if geom.type in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER):
                size = np.array(geom.size)
                size[1] *= scale
                geom.size = size
    for child in body.bodies:
        # Where the child hangs on this segment, in this segment's frame.
        anchor = np.array(child.pos) + _rotate(np.array(child.quat), _pivot(child))
        child.pos = np.array(child.pos) + (p + scale * (anchor - p) - anchor)
        if subtree:
            _scale_body(child, scale, True)


def _descendants(body: mujoco.MjsBody) -> Iterable[mujoco.MjsBody]:
    yield body
    for child in body.bodies:
        yield from _descendants(child)


_REMOVED_TAG = -7.0  # geom_user[:, 0] of the geoms of a removed limb


def _remove(spec: mujoco.MjSpec, body: mujoco.MjsBody, mass_factor: float) -> None:
    joints = set()
    for b in _descendants(body):
        for geom in b.geoms:
            # Collisions are switched off after compiling (compile_variant): geoms compiled
            # without contype/conaffinity leave the bounding-volume hierarchy, which changes
            # the MjData layout, and mujoco.batch steps only models of one layout.
            geom.userdata = [_REMOVED_TAG]
            geom.mass = REMOVED_MASS / mass_factor  # compile_variant multiplies it back
            geom.rgba = np.array([0.0, 0.0, 0.0, 0.0])
        for joint in b.joints:
            joints.add(joint.name)
            joint.armature = REMOVED_ARMATURE
            damping = np.array(joint.damping, dtype=float)
            damping[0] = REMOVED_DAMPING  # linear term; MuJoCo 4 also has polynomial terms
            joint.damping = damping
    for actuator in spec.actuators:
        if actuator.target in joints:
            gain = np.array(actuator.gainprm)
            gain[0] = 0.0
            actuator.gainprm = gain


def apply(spec: mujoco.MjSpec, env_id: str, perturbations: Iterable[Perturbation],
          mass_factor: float = 1.0) -> None:
    """Apply the morphology perturbations among ``perturbations`` to ``spec`` in place."""
    for p in perturbations:
        if p.name == "shorten_limb":
            for seg in _names(p["segment"]):
                body, subtree = _body(spec, env_id, seg)
                _scale_body(body, float(p["scale"]), subtree)
        elif p.name == "remove_limb":
            for seg in _names(p["segment"]):
                body, _ = _body(spec, env_id, seg)
                _remove(spec, body, mass_factor)


def compile_variant(xml_path: str, env_id: str, perturbations: Iterable[Perturbation]) -> mujoco.MjModel:
    """Compile the model of ``xml_path`` with the given morphology perturbations applied."""
    spec = mujoco.MjSpec.from_file(xml_path)
    total = spec.compiler.settotalmass
    factor = 1.0
    if total > 0:
        # HalfCheetah's MJCF rescales all masses to a fixed total. Recompiling an edited spec
        # that way would make every other body heavier when a limb gets shorter, so compile
        # without it and apply the nominal model's density factor instead.
        spec.compiler.settotalmass = -1
        factor = total / spec.compile().body_mass.sum()
    apply(spec, env_id, perturbations, factor)
    model = spec.compile()
    if model.nuser_geom:
        removed = model.geom_user[:, 0] == _REMOVED_TAG
        model.geom_contype[removed] = 0
        model.geom_conaffinity[removed] = 0
    if total > 0:
        model.body_mass[:] *= factor
        model.body_inertia[:] *= factor
        mujoco.mj_setConst(model, mujoco.MjData(model))
    if not np.all(np.isfinite(model.body_mass)) or np.any(model.body_mass[1:] <= 0):
        raise EnvError(f"morphology {[p.to_dict() for p in perturbations]} gives a model with "
                       "non-positive or non-finite body masses")
    return model
