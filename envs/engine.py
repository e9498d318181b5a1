"""Threaded batched stepper: one (MjModel, MjData) pair per instance, stepped on worker threads.

MuJoCo's Python bindings release the GIL inside ``mj_step``, so plain threads run the physics of
different instances truly in parallel. Workers pull instance indices from a shared counter; for
each instance a worker writes the control, steps ``frame_skip`` physics steps in one call,
optionally runs ``mj_rnePostConstraint`` (contact forces), and copies the requested ``MjData``
fields into row ``i`` of preallocated batched arrays. Doing the copies on the workers lets one
thread's Python overlap with another thread's physics; the main thread then only sees contiguous
``[n, ...]`` arrays.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np


def default_num_threads() -> int:
    """Worker threads by default: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
        self._ctrl_views = [d.ctrl for d in self.datas]
        self.arrays = {f: np.zeros((self.n, *self._views[f][0].shape)) for f in self.fields}
        self.ctrl = np.zeros((self.n, self.models[0].nu))
        self._executor = (
            ThreadPoolExecutor(self.num_threads - 1, thread_name_prefix="plasticrl-mj")
            if self.num_threads > 1 else None
        )
        self._active: np.ndarray | None = None
        self._pending: tuple[Callable[[], int], list] | None = None

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
        next_index = itertools.count().__next__
        futures = ([] if self._executor is None else
                   [self._executor.submit(self._work, next_index) for _ in range(self.num_threads - 1)])
        self._pending = (next_index, futures)

    def finish(self) -> None:
        """Work on the started step until every instance is done."""
        if self._pending is None:
            raise RuntimeError("no step in progress; call start() first")
        next_index, futures = self._pending
        try:
            self._work(next_index)  # the caller works too instead of idling
            for fut in futures:
                fut.result()
        finally:
            self._pending = None

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

    def gather(self, i: int) -> None:
        """Copy instance ``i``'s fields into the batched arrays."""
        for f in self.fields:
            self.arrays[f][i] = self._views[f][i]

    def set_model(self, i: int, model: mujoco.MjModel) -> None:
        """Give instance ``i`` another model of the same sizes (a perturbed variant).

        Its ``MjData`` is kept, so this works mid-episode: the state carries over and the
        next step simulates the new model."""
        old = self.models[i]
        sizes = ("nq", "nv", "nu", "na", "nbody", "ngeom", "njnt")
        if any(getattr(model, k) != getattr(old, k) for k in sizes):
            raise ValueError(f"replacement model must keep the sizes {sizes}")
        self.models[i] = model

    def close(self) -> None:
        """Stop the worker threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
