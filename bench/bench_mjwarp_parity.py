"""MuJoCo Warp (the ``mujoco-warp`` package) against MuJoCo C on plasticrl's task models, printed as JSON:
tiers 1 and 2 of the parity plan in docs/gpu-physics.md, and a first speed reading.

For each task (the model plasticrl's engine builds, ``make_vec(...).base_model``) it draws ``--worlds``
states around the model's reference pose (positions +-0.1, velocities 0.1 x normal, as the tasks' reset
noise), lets MuJoCo C run them ``--settle`` control steps under random controls (the bodies land: contacts
active), draws uniform controls, then steps the same states and controls with ``mujoco.mj_step`` (float64, one
``MjData`` per world) and with ``mujoco_warp.step`` (float32, all worlds in one batch, on the device Warp
picks: a GPU where there is one, else the CPU) for ``frame_skip`` physics steps per control step. It reports
the largest difference of ``qpos`` and ``qvel`` after 1, 10 and 50 control steps (the controls of each step
held fixed across both engines), the contact forces ``cfrc_ext`` after one control step
(``mj_rnePostConstraint`` / ``rne_postconstraint``, which Ant-v5's observation and contact cost read), and
physics steps per second of both engines at that batch size.

    python bench/bench_mjwarp_parity.py                          # HalfCheetah-v5 and Ant-v5, 64 worlds
    python bench/bench_mjwarp_parity.py --tasks Ant-v5 --worlds 1024

Optional dependency: without ``mujoco_warp`` it prints ``{"skipped": ...}`` and exits 0. Not a test: the
tolerances are what this measures, to be written down (docs/gpu-physics.md)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

HORIZONS = (1, 10, 50)


def _states(model, worlds: int, rng: np.random.Generator, frame_skip: int,
            settle: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start states (reset noise around the reference pose, then ``settle`` control steps of MuJoCo C under
    random controls, so that the bodies stand on the floor and the contacts are active) and the controls
    of the compared steps."""
    import mujoco

    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    qpos = model.qpos0[None, :] + rng.uniform(-0.1, 0.1, (worlds, model.nq))
    qvel = 0.1 * rng.standard_normal((worlds, model.nv))
    d = mujoco.MjData(model)
    for i in range(worlds):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        for _ in range(settle):
            d.ctrl[:] = rng.uniform(low, high)
            for _ in range(frame_skip):
                mujoco.mj_step(model, d)
        qpos[i], qvel[i] = d.qpos, d.qvel
    ctrl = rng.uniform(low, high, (max(HORIZONS), worlds, model.nu))
    return qpos, qvel, ctrl


def _reference(model, qpos, qvel, ctrl, frame_skip: int) -> tuple[dict, np.ndarray, float]:
    """MuJoCo C, one MjData per world: states after each horizon, cfrc_ext after one control step, and
    physics steps per second."""
    import mujoco

    worlds = qpos.shape[0]
    datas = [mujoco.MjData(model) for _ in range(worlds)]
    for i, d in enumerate(datas):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(model, d)
    out, cfrc = {}, None
    t0 = time.perf_counter()
    for step in range(max(HORIZONS)):
        for i, d in enumerate(datas):
            d.ctrl[:] = ctrl[step, i]
            for _ in range(frame_skip):
                mujoco.mj_step(model, d)
        if step + 1 in HORIZONS:
            out[step + 1] = (np.stack([d.qpos.copy() for d in datas]), np.stack([d.qvel.copy() for d in datas]))
        if step == 0:
            for d in datas:
                mujoco.mj_rnePostConstraint(model, d)
            cfrc = np.stack([d.cfrc_ext.copy() for d in datas])
    seconds = time.perf_counter() - t0
    return out, cfrc, worlds * frame_skip * max(HORIZONS) / seconds


def _warp(model, qpos, qvel, ctrl, frame_skip: int) -> tuple[dict, np.ndarray, float, str]:
    """The same with mujoco_warp, all worlds in one batch (the first step compiles the kernels: timed apart)."""
    import mujoco
    import mujoco_warp as mjw
    import warp as wp

    worlds = qpos.shape[0]
    m = mjw.put_model(model)
    d = mjw.put_data(model, mujoco.MjData(model), nworld=worlds, nconmax=64 * worlds, njmax=256)
    mjw.step(m, d)  # compiles the kernels outside the timing; the compared states are set below
    out, cfrc = {}, None
    d.qpos.assign(qpos.astype(np.float32))
    d.qvel.assign(qvel.astype(np.float32))
    d.time.zero_()
    mjw.forward(m, d)
    wp.synchronize()
    t0 = time.perf_counter()
    for step in range(max(HORIZONS)):
        d.ctrl.assign(ctrl[step].astype(np.float32))
        for _ in range(frame_skip):
            mjw.step(m, d)
        if step + 1 in HORIZONS:
            out[step + 1] = (d.qpos.numpy().astype(np.float64), d.qvel.numpy().astype(np.float64))
        if step == 0:
            mjw.rne_postconstraint(m, d)
            cfrc = d.cfrc_ext.numpy().astype(np.float64)
    wp.synchronize()
    seconds = time.perf_counter() - t0
    return out, cfrc, worlds * frame_skip * max(HORIZONS) / seconds, str(wp.get_device())


def _difference(a: np.ndarray, b: np.ndarray) -> dict:
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(a).max(), 1e-12)
    return {"max_abs": float(diff.max()), "median_abs": float(np.median(diff)), "max_abs_over_max": float(diff.max() / scale)}


def compare(task: str, worlds: int, seed: int, settle: int) -> dict:
    """One task's comparison (module docstring)."""
    from plasticrl.envs import make_vec

    env = make_vec(task, 1)
    model, frame_skip = env.base_model, int(env.config.frame_skip)
    env.close()
    qpos, qvel, ctrl = _states(model, worlds, np.random.default_rng(seed), frame_skip, settle)
    ref, ref_cfrc, ref_rate = _reference(model, qpos, qvel, ctrl, frame_skip)
    got, got_cfrc, warp_rate, device = _warp(model, qpos, qvel, ctrl, frame_skip)
    row = {"task": task, "worlds": worlds, "frame_skip": frame_skip, "settle_control_steps": settle,
           "warp_device": device,
           "mujoco_c_physics_steps_per_s": round(ref_rate, 1), "warp_physics_steps_per_s": round(warp_rate, 1)}
    for h in HORIZONS:
        finite = bool(np.isfinite(got[h][0]).all() and np.isfinite(got[h][1]).all())
        row[f"after_{h}_control_steps"] = {"qpos": _difference(ref[h][0], got[h][0]),
                                           "qvel": _difference(ref[h][1], got[h][1]), "warp_finite": finite}
    row["cfrc_ext_after_1_control_step"] = _difference(ref_cfrc, got_cfrc)
    row["cfrc_ext_nonzero"] = {"mujoco_c": bool(np.abs(ref_cfrc).max() > 0), "warp": bool(np.abs(got_cfrc).max() > 0)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["HalfCheetah-v5", "Ant-v5"])
    parser.add_argument("--worlds", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settle", type=int, default=40, help="control steps of MuJoCo C before the comparison "
                        "(the bodies land and touch the floor)")
    args = parser.parse_args()
    # Warp prints its start-up and kernel-load messages to stdout, which is the JSON's: they go to stderr
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import mujoco_warp  # noqa: F401
            import warp
        except ImportError as exc:
            skipped = f"mujoco_warp not installed ({exc})"
        else:
            skipped = None
            rows = [compare(task, args.worlds, args.seed, args.settle) for task in args.tasks]
    if skipped:
        print(json.dumps({"benchmark": "mjwarp_parity", "skipped": skipped}))
        return
    import mujoco

    print(json.dumps({"benchmark": "mjwarp_parity", "mujoco": mujoco.__version__, "warp": warp.__version__,
                      "cpu_count": os.cpu_count(), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
