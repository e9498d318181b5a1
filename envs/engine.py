"""Batched steppers: many MuJoCo instances stepped in parallel, their state gathered into arrays.

Three implementations of one interface (:func:`make_physics_pool` picks):

- :class:`BatchPhysicsPool` (MuJoCo >= 4): ``mujoco.batch.Batch`` steps every instance in one
  C++ call on its own thread pool, with the GIL released for the whole step; the requested fields
  are live ``[n, ...]`` arrays over the batch's state rows and outputs. No Python runs per
  instance: on a small model like HalfCheetah the loop below takes 1.5x as long for the same
  physics (bench/bench_envs.py).
- :class:`PhysicsPool`: one (MjModel, MjData) pair per instance, stepped on Python worker
  threads (MuJoCo's bindings release the GIL inside ``mj_step``). Workers pull instance indices
  from a shared counter; for each instance a worker writes the control, steps ``frame_skip``
  physics steps in one call, optionally runs ``mj_rnePostConstraint`` (contact forces, which the
  batch cannot compute), and copies the requested fields into row ``i`` of batched arrays.
- :class:`CompiledPhysicsPool`: :class:`PhysicsPool`'s instances stepped by a numba loop that calls
  MuJoCo's C ``mj_step`` with the GIL released (:mod:`plasticrl.envs.compiled_physics`), one contiguous
  range of instances per thread. It is what lets the rollout loop run whole control steps, physics
  included, in one compiled call (:meth:`MujocoVectorEnv.compiled_step
  <plasticrl.envs.vector.MujocoVectorEnv.compiled_step>`).

All give bit-identical trajectories (``mujoco.batch`` guarantees equality with a loop of
``mj_step`` over one MjData per simulation; tests/test_envs_async.py checks it on our envs).
"""
from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np

from . import compiled_physics
from .errors import EnvError, unknown


PHYSICS_BACKENDS = ("auto", "batch", "threads", "compiled")
#: MuJoCo's "Nan, Inf or huge value in QACC/QPOS/QVEL ... The simulation is unstable" (it then resets
#: that instance's state mid-step) and "... in CTRL" (it zeroes the controls): each is counted in
#: ``MjData.warning`` until the instance's next reset; an episode that met one is not physics
UNSTABLE_WARNINGS = tuple(int(getattr(mujoco.mjtWarning, w)) for w in
                           ("mjWARN_BADQACC", "mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADCTRL"))
try:
    from mujoco.batch import Batch as _Batch

    _HAS_BATCH = True
except ImportError:  # MuJoCo < 4
    _HAS_BATCH = False


def default_num_threads() -> int:
    """Worker threads by default: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_physics_pool(
    models: Sequence[mujoco.MjModel],
    fields: Sequence[str],
    frame_skip: int,
    post_constraint: bool,
    num_threads: int | None = None,
    backend: str = "auto",
):
    """The stepper for these instances: ``backend`` "batch" (``mujoco.batch``), "threads"
    (:class:`PhysicsPool`), "compiled" (:class:`CompiledPhysicsPool`) or "auto": compiled where numba
    and MuJoCo's C library are at hand and the pool has one thread or the task needs the contact-force
    pass (then the rollout loop can step whole control steps in compiled code), else batch where MuJoCo
    has it and the task needs no contact-force pass, else threads."""
    if backend not in PHYSICS_BACKENDS:
        raise unknown("physics backend", backend, PHYSICS_BACKENDS)
    if backend == "compiled" and not compiled_physics.AVAILABLE:
        raise EnvError("physics backend 'compiled' is not available here: it needs numba (the 'fast' extra) "
                       "and MuJoCo's C library next to the mujoco package; use 'auto', 'batch' or 'threads'")
    threads = max(1, min(num_threads or default_num_threads(), len(models)))
    if backend == "compiled" or (backend == "auto" and compiled_physics.AVAILABLE
                                 and (threads == 1 or post_constraint)):
        return CompiledPhysicsPool(models, fields, frame_skip, post_constraint, num_threads)
    batch_ok = _HAS_BATCH and not post_constraint
    if backend == "batch" and not batch_ok:
        why = ("this MuJoCo has no mujoco.batch (needs MuJoCo >= 4)" if not _HAS_BATCH else
               "the task needs mj_rnePostConstraint (contact forces), which mujoco.batch does not run")
        raise EnvError(f"physics backend 'batch' is not available here: {why}; use 'threads' or 'auto'")
    if backend == "batch" or (backend == "auto" and batch_ok):
        return BatchPhysicsPool(models, fields, frame_skip, num_threads)
    return PhysicsPool(models, fields, frame_skip, post_constraint, num_threads)


class PhysicsPool:
    """Steps and resets a batch of MuJoCo instances and gathers their state into arrays.

    Args:
        models: one ``MjModel`` per instance (instances may carry different parameters).
        fields: ``MjData`` attribute names to gather into ``self.arrays[name]`` (``[n, ...]``).
        frame_skip: physics steps per call of :meth:`step`.
        post_constraint: run ``mj_rnePostConstraint`` after stepping (fills ``cfrc_ext``).
        num_threads: worker threads (the calling thread is one of them); ``None``: all CPUs.
    """

    def __init__(
        self,
        models: Sequence[mujoco.MjModel],
        fields: Sequence[str],
        frame_skip: int,
        post_constraint: bool,
        num_threads: int | None = None,
    ) -> None:
        self.models = list(models)
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.n = len(self.models)
        self.frame_skip = int(frame_skip)
        self.post_constraint = bool(post_constraint)
        self.fields = tuple(fields)
        self.num_threads = max(1, min(num_threads or default_num_threads(), self.n))
        # MjData attribute access builds a new view each time; build them once (they alias
        # the instance's memory for its whole life).
        self._views = {f: [getattr(d, f) for d in self.datas] for f in self.fields}
        # live views of each instance's warning counters ([mjNWARNING] ints), cleared by mj_resetData
        self._warning_counts = [d.warning.number for d in self.datas]
        self._ctrl_views = [d.ctrl for d in self.datas]
        self._xfrc_views = [d.xfrc_applied for d in self.datas]
        self.arrays = {f: np.zeros((self.n, *self._views[f][0].shape)) for f in self.fields}
        self.ctrl = np.zeros((self.n, self.models[0].nu))
        self._executor = (
            ThreadPoolExecutor(self.num_threads - 1, thread_name_prefix="plasticrl-mj")
            if self.num_threads > 1 else None
        )
        self._active: np.ndarray | None = None
        self._pending: tuple[Callable[[], None], list] | None = None

    # --- stepping ---------------------------------------------------------------------------
    def _work(self, next_index: Callable[[], int]) -> None:
        """Step instances handed out one at a time by ``next_index`` until none are left.

        Instances cost different amounts (contacts, perturbed models) and a worker may lose its
        core to another process, so fixed chunks would leave threads idle while one straggles;
        pulling indices from a shared counter balances the load (``next`` on an
        ``itertools.count`` is atomic under the GIL)."""
        n, models, datas, ctrl, active = self.n, self.models, self.datas, self.ctrl, self._active
        ctrl_views, frame_skip, post = self._ctrl_views, self.frame_skip, self.post_constraint
        gathers = [(self.arrays[f], self._views[f]) for f in self.fields]
        step, rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        while (i := next_index()) < n:
            if active is not None and not active[i]:
                continue
            m, d = models[i], datas[i]
            ctrl_views[i][:] = ctrl[i]
            step(m, d, frame_skip)
            if post:
                rne(m, d)
            for out, views in gathers:
                out[i] = views[i]

    def step(self, ctrl: np.ndarray, active: np.ndarray | None = None) -> None:
        """Step every instance (or those where ``active`` is True) with controls ``ctrl``.

        Gathered arrays are updated in place for the stepped instances only."""
        self.start(ctrl, active)
        self.finish()

    def start(self, ctrl: np.ndarray, active: np.ndarray | None = None) -> None:
        """Begin a step on the worker threads and return at once; :meth:`finish` completes it.

        Between the two calls the caller is free to do other work (e.g. compute actions for
        another batch), then joins the remaining physics in :meth:`finish`: the shared index
        counter hands it whatever instances the workers have not taken yet."""
        if self._pending is not None:
            raise RuntimeError("a step is already in progress; call finish() first")
        self.ctrl[:] = ctrl
        self._active = active
        self._pending = self._launch()

    def _launch(self) -> tuple[Callable[[], None], list]:
        """Start the worker threads on the step; returns the calling thread's share and their futures."""
        next_index = itertools.count().__next__
        futures = ([] if self._executor is None else
                   [self._executor.submit(self._work, next_index) for _ in range(self.num_threads - 1)])
        return functools.partial(self._work, next_index), futures

    def finish(self) -> None:
        """Work on the started step until every instance is done."""
        if self._pending is None:
            raise RuntimeError("no step in progress; call start() first")
        own_share, futures = self._pending
        try:
            own_share()  # the caller works too instead of idling
            for fut in futures:
                fut.result()
        finally:
            self._pending = None

    def unstable(self) -> np.ndarray:
        """``[n]`` bool: instances MuJoCo found unstable (non-finite or huge accelerations, positions or
        velocities, after which it resets their state; or such controls) since their last reset."""
        # one stacked copy and a vectorised test: a Python test per instance held the GIL for ~1 us each
        return (np.stack(self._warning_counts)[:, UNSTABLE_WARNINGS] > 0).any(axis=1)

    # --- resets and direct access ------------------------------------------------------------
    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Reset instance ``i`` to (qpos, qvel) the way Gymnasium's MujocoEnv.reset does:
        ``mj_resetData``, write the state, ``mj_forward``; then gather its fields."""
        m, d = self.models[i], self.datas[i]
        mujoco.mj_resetData(m, d)
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        mujoco.mj_forward(m, d)
        self.gather(i)

    def set_states(self, ids: Sequence[int], qpos: np.ndarray, qvel: np.ndarray) -> None:
        """:meth:`set_state` for instances ``ids`` (``qpos[k]``, ``qvel[k]`` for ``ids[k]``)."""
        for k, i in enumerate(ids):
            self.set_state(i, qpos[k], qvel[k])

    def gather(self, i: int) -> None:
        """Copy instance ``i``'s fields into the batched arrays."""
        for f in self.fields:
            self.arrays[f][i] = self._views[f][i]

    def set_model(self, i: int, model: mujoco.MjModel) -> None:
        """Give instance ``i`` another model of the same sizes (a perturbed variant).

        Its ``MjData`` is kept, so this works mid-episode: the state carries over and the
        next step simulates the new model."""
        _check_sizes(self.models[i], model)
        self.models[i] = model

    @property
    def xfrc_applied(self) -> list[np.ndarray]:
        """Per instance, its writable ``xfrc_applied [nbody, 6]`` (external forces of the next step)."""
        return self._xfrc_views

    def close(self) -> None:
        """Stop the worker threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


_SIZES = ("nq", "nv", "nu", "na", "nbody", "ngeom", "njnt")


def _check_sizes(old: mujoco.MjModel, new: mujoco.MjModel) -> None:
    if any(getattr(new, k) != getattr(old, k) for k in _SIZES):
        raise ValueError(f"replacement model must keep the sizes {_SIZES}")


class CompiledPhysicsPool(PhysicsPool):
    """:class:`PhysicsPool` with the stepping in compiled code: each thread steps one contiguous range of
    instances in a numba loop over MuJoCo's C functions (GIL released), gathering the fields as it goes.

    Its ``*_pointers`` arrays and :attr:`flat_arrays` are what that loop reads and writes, for a caller that
    steps the pool from its own compiled code (:meth:`plasticrl.envs.vector.MujocoVectorEnv.compiled_step`)."""

    def __init__(
        self,
        models: Sequence[mujoco.MjModel],
        fields: Sequence[str],
        frame_skip: int,
        post_constraint: bool,
        num_threads: int | None = None,
    ) -> None:
        super().__init__(models, fields, frame_skip, post_constraint, num_threads)
        (self.model_pointers, self.data_pointers, self.ctrl_pointers, self.warning_pointers,
         self.field_pointers) = compiled_physics.data_pointers(self.models, self.datas, self.fields)
        #: the gathered arrays as ``[n, size]`` views, in ``fields`` order (what the compiled loop writes)
        self.flat_arrays = tuple(self.arrays[f].reshape(self.n, -1) for f in self.fields)
        #: :func:`plasticrl.envs.compiled_step.env_step`'s ``physics`` argument, built once (a replaced model
        #: updates ``model_pointers`` in place, so it stays valid)
        self.step_args = (compiled_physics.MJ_STEP, compiled_physics.MJ_RNE_POST_CONSTRAINT,
                          self.post_constraint, self.model_pointers, self.data_pointers, self.ctrl_pointers,
                          self.field_pointers, self.flat_arrays, self.frame_skip, self.warning_pointers,
                          np.array(UNSTABLE_WARNINGS, dtype=np.int64))
        # contiguous ranges of instances, one per thread (the first on the calling thread)
        bounds = np.linspace(0, self.n, self.num_threads + 1).round().astype(int)
        self._ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._no_mask = np.zeros(0, dtype=bool)

    def _step_range(self, first: int, stop: int) -> None:
        active = self._no_mask if self._active is None else self._active
        mj_step, rne, post, models, datas, ctrls, fields, outs, frame_skip = self.step_args[:9]
        compiled_physics.step_rows(mj_step, rne, post, models, datas, ctrls, fields, outs, self.ctrl, active,
                                   first, stop, frame_skip)

    def _launch(self) -> tuple[Callable[[], None], list]:
        """The other threads' ranges start at once; the first range is the calling thread's share."""
        if self._active is not None:
            self._active = np.ascontiguousarray(self._active, dtype=bool)
        futures = ([] if self._executor is None else
                   [self._executor.submit(self._step_range, a, b) for a, b in self._ranges[1:]])
        return functools.partial(self._step_range, *self._ranges[0]), futures

    def set_model(self, i: int, model: mujoco.MjModel) -> None:
        """:meth:`PhysicsPool.set_model`, and the compiled loop's address of the new model."""
        super().set_model(i, model)
        self.model_pointers[i] = model._address


class BatchPhysicsPool:
    """:class:`PhysicsPool`'s interface over ``mujoco.batch.Batch`` (persistent: one MjData per
    instance inside the batch). ``arrays[f]`` are the batch's live arrays (read-only for derived
    fields); ``datas`` are snapshots (``Batch.get_data``), for reading: a write to one is lost.
    """

    def __init__(
        self,
        models: Sequence[mujoco.MjModel],
        fields: Sequence[str],
        frame_skip: int,
        num_threads: int | None = None,
    ) -> None:
        self.models = list(models)
        self.n = len(self.models)
        self.frame_skip = int(frame_skip)
        self.fields = tuple(fields)
        self.num_threads = max(1, min(num_threads or default_num_threads(), self.n))
        self._batch = _Batch(self.models[0], self.n, nthread=self.num_threads, persistent=True)
        self._batch.set_models(self.models)
        self._models_changed = False
        self._qpos, self._qvel = self._batch.bind("qpos"), self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        self.arrays = {f: self._batch.bind(f) for f in self.fields}
        self.ctrl = np.zeros((self.n, self.models[0].nu))
        self._pending: np.ndarray | None | bool = False

    def _sync_models(self) -> None:
        # set_models re-reads every model; deferred so a reset that swaps many models pays once
        if self._models_changed:
            self._batch.set_models(self.models)
            self._models_changed = False

    # --- stepping ---------------------------------------------------------------------------
    def step(self, ctrl: np.ndarray, active: np.ndarray | None = None) -> None:
        """Step every instance (or those where ``active`` is True) with controls ``ctrl``."""
        self.start(ctrl, active)
        self.finish()

    def start(self, ctrl: np.ndarray, active: np.ndarray | None = None) -> None:
        """Record the step; the physics runs in :meth:`finish` (one C++ call, GIL released)."""
        if self._pending is not False:
            raise RuntimeError("a step is already in progress; call finish() first")
        self.ctrl[:] = ctrl
        self._pending = None if active is None else np.flatnonzero(active).astype(np.int32)

    def finish(self) -> None:
        """Run the started step."""
        if self._pending is False:
            raise RuntimeError("no step in progress; call start() first")
        ids, self._pending = self._pending, False
        self._sync_models()
        if ids is None:
            self._ctrl[:] = self.ctrl
        else:
            if ids.size == 0:
                return
            self._ctrl[ids] = self.ctrl[ids]
        self._batch.step(ids, nstep=self.frame_skip)

    def unstable(self) -> np.ndarray:
        """``[n]`` bool: instances MuJoCo found unstable since their last reset (the batch's live
        warning counters, ``[n, mjNWARNING, (lastinfo, number)]``)."""
        return (self._batch.warning[:, UNSTABLE_WARNINGS, 1] > 0).any(axis=1)

    # --- resets and direct access ------------------------------------------------------------
    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Reset instance ``i`` to (qpos, qvel) as :meth:`PhysicsPool.set_state` does (reset to the
        model's defaults, write the state, ``mj_forward``)."""
        self.set_states([i], qpos[None], qvel[None])

    def set_states(self, ids: Sequence[int], qpos: np.ndarray, qvel: np.ndarray) -> None:
        """:meth:`set_state` for instances ``ids`` in one batch call per stage."""
        self._sync_models()
        rows = np.asarray(ids, dtype=np.int32)
        self._batch.reset(rows, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[rows] = qpos
        self._qvel[rows] = qvel
        self._batch.forward(rows)

    def gather(self, i: int) -> None:
        """Nothing to copy: the arrays are live."""

    def set_model(self, i: int, model: mujoco.MjModel) -> None:
        """Give instance ``i`` another model of the same sizes; its state carries over."""
        _check_sizes(self.models[i], model)
        self.models[i] = model
        self._models_changed = True

    @property
    def xfrc_applied(self) -> np.ndarray:
        """``[n, nbody, 6]`` writable external forces of the next step (the batch's state)."""
        return self._batch.bind("xfrc_applied")

    @property
    def datas(self) -> list[mujoco.MjData]:
        """A snapshot ``MjData`` per instance (its state and the derived fields of its last call)."""
        return [self._batch.get_data(i) for i in range(self.n)]

    def close(self) -> None:
        """Release the batch (its threads stop with it)."""
        self._batch = None
