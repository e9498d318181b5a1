"""MuJoCo's ``mj_step`` called from compiled code: the physics of many instances stepped in a numba loop with
the GIL released, so that a caller's compiled loop can step the env without returning to Python.

MuJoCo's Python bindings expose the address of every ``MjModel`` and ``MjData`` (``_address``) and ship the
C library they wrap (``libmujoco``); :func:`step_rows` calls the library's ``mj_step`` (and
``mj_rnePostConstraint`` for tasks that read contact forces) on those addresses, the same C calls
``mujoco.mj_step`` and ``mujoco.batch`` make, so the trajectories are theirs bit for bit
(``tests/test_envs_async.py``). The function addresses travel as arguments rather than as ctypes globals, so
the functions that call them stay cacheable.

MuJoCo's warnings go through the handler plasticrl installs (:mod:`plasticrl.envs.mujoco_warnings`), which
takes the GIL as the bindings' own calls do. A MuJoCo *error* inside ``mj_step`` (an arena too small for the
contacts) reaches MuJoCo's default error handler, which ends the process, where ``mujoco.mj_step`` would raise
a Python exception: training keeps its finished generations in its checkpoints either way.

Without numba, where the library cannot be found, or with bindings that do not expose the addresses,
:data:`AVAILABLE` is False and the engine keeps its other backends.
"""
from __future__ import annotations

import ctypes
import glob
import os

import mujoco
import numpy as np

try:
    import numba as _numba
    from llvmlite import ir as _ir
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic
except ImportError:  # pragma: no cover - the engine keeps mujoco.batch and the thread loop
    _numba = None


def _load_library() -> ctypes.CDLL | None:
    """MuJoCo's C library as the bindings loaded it (the file next to the ``mujoco`` package), or None."""
    here = os.path.dirname(mujoco.__file__)
    for pattern in ("libmujoco.so*", "libmujoco*.dylib", "mujoco.dll"):
        for path in sorted(glob.glob(os.path.join(here, pattern))):
            try:
                return ctypes.CDLL(path)
            except OSError:  # pragma: no cover - a broken or foreign file: try the next one
                continue
    return None


# the bindings expose the structs' addresses (``_address``) in the MuJoCo versions this project pins; an
# older one without them keeps the other backends
_LIBRARY = (_load_library() if _numba is not None and hasattr(mujoco.MjData, "_address")
            and hasattr(mujoco.MjModel, "_address") else None)


def _address(name: str) -> int:
    return ctypes.cast(getattr(_LIBRARY, name), ctypes.c_void_p).value


#: whether compiled physics can run here (numba and MuJoCo's C library found)
AVAILABLE = _LIBRARY is not None
#: addresses of ``mj_step`` and ``mj_rnePostConstraint`` (both ``void f(const mjModel*, mjData*)``)
MJ_STEP = _address("mj_step") if AVAILABLE else 0
MJ_RNE_POST_CONSTRAINT = _address("mj_rnePostConstraint") if AVAILABLE else 0


def data_pointers(models, datas, fields) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(model, data, ctrl, warnings, fields)`` addresses per instance (``fields [len(fields), n]``): what
    :func:`step_rows` reads and writes. The addresses stay valid while the objects live (the caller keeps
    them); a model replaced later needs its row of ``model`` updated."""
    n = len(datas)
    model = np.array([m._address for m in models], dtype=np.int64)
    data = np.array([d._address for d in datas], dtype=np.int64)
    ctrl = np.array([d.ctrl.ctypes.data for d in datas], dtype=np.int64)
    # warning counters: mjWarningStat {int lastinfo; int number}[mjNWARNING]; the address of number[0]
    warnings = np.array([d.warning.number.ctypes.data for d in datas], dtype=np.int64)
    field = np.zeros((len(fields), n), dtype=np.int64)
    for k, name in enumerate(fields):
        for i, d in enumerate(datas):
            view = getattr(d, name)
            if view.dtype != np.float64 or not view.flags.c_contiguous:  # pragma: no cover - MjData's are
                raise TypeError(f"MjData.{name} is not a contiguous float64 array")
            field[k, i] = view.ctypes.data
    return model, data, ctrl, warnings, field


def _step_rows(mj_step, rne, post, models, datas, ctrls, field_ptrs, outs, ctrl, active, first, stop, frame_skip):
    # rows [first, stop) that are active (all if active is empty): write the control, step frame_skip times,
    # then contact forces if post, and copy the fields into row i of outs[k] ([n, size] views of the pool's
    # arrays), as PhysicsPool._work does in Python
    nu = ctrl.shape[1]
    for i in range(first, stop):
        if active.shape[0] > 0 and not active[i]:
            continue
        c = _numba.carray(_f64_pointer(ctrls[i]), (nu,))
        for j in range(nu):
            c[j] = ctrl[i, j]
        for _ in range(frame_skip):
            _call(mj_step, models[i], datas[i])
        if post:
            _call(rne, models[i], datas[i])
        for k in range(len(outs)):
            out = outs[k]
            size = out.shape[1]
            src = _numba.carray(_f64_pointer(field_ptrs[k, i]), (size,))
            for j in range(size):
                out[i, j] = src[j]


def _unstable_rows(warnings, codes, flags):
    # flags[i] = any of MuJoCo's warning counters `codes` of instance i is non-zero (PhysicsPool.unstable)
    size = 2 * (codes.max() + 1)
    for i in range(warnings.shape[0]):
        counts = _numba.carray(_i32_pointer(warnings[i]), (size,))
        hit = False
        for w in codes:
            if counts[2 * w] > 0:  # number[w]: mjWarningStat is two ints, lastinfo then number
                hit = True
        flags[i] = hit


if _numba is not None:
    def _pointer_from_address(element):
        """An intrinsic that turns an address held in an int64 into a pointer to ``element`` values."""
        target = _types.CPointer(element)

        def pointer(typingctx, address):
            def codegen(context, builder, signature, args):
                return builder.inttoptr(args[0], context.get_value_type(target))
            return target(_types.int64), codegen
        return _intrinsic(pointer)

    _f64_pointer = _pointer_from_address(_types.float64)
    _i32_pointer = _pointer_from_address(_types.int32)

    @_intrinsic
    def _call(typingctx, function, model, data):
        """Call the C function at address ``function`` as ``void f(void*, void*)`` on ``(model, data)``."""
        def codegen(context, builder, signature, args):
            pointer = _ir.IntType(8).as_pointer()
            kind = _ir.FunctionType(_ir.VoidType(), [pointer, pointer])
            target = builder.inttoptr(args[0], kind.as_pointer())
            builder.call(target, [builder.inttoptr(args[1], pointer), builder.inttoptr(args[2], pointer)])
            return context.get_dummy_value()
        return _types.void(_types.int64, _types.int64, _types.int64), codegen

    step_rows = _numba.njit(nogil=True, cache=True)(_step_rows)
    unstable_rows = _numba.njit(nogil=True, cache=True)(_unstable_rows)
else:  # pragma: no cover
    step_rows = unstable_rows = None
