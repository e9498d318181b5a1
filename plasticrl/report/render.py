"""Offscreen rendering of an agent's episode under a condition, on CPU (OSMesa) or GPU (EGL).

MuJoCo picks its OpenGL backend from ``$MUJOCO_GL`` once, when its GL module is first
imported, so a process that already imported MuJoCo without it cannot switch. ``render_video``
therefore runs the episode in a fresh interpreter (``python -m plasticrl.report.render``) with
``MUJOCO_GL`` set: ``egl`` where an NVIDIA device is present, else ``osmesa`` (Debian's
``libosmesa6``), unless the caller's environment already names one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plasticrl.errors import PlasticRLError
from plasticrl.io import json_dumps

VIDEO_SUFFIXES = (".mp4", ".gif")
#: lines of the render process's stderr that report progress to render_video
PROGRESS, ENCODING, PROGRESS_EVERY = "plasticrl-render-progress", "plasticrl-render-encoding", 25
#: the render process's last word when it fails: ``plasticrl-render-error CAUSE MESSAGE`` (one line)
FAILURE = "plasticrl-render-error"
#: what went wrong, by cause: OpenGL (no context), the inputs, writing the file, the video encoder
CAUSES = ("gl", "input", "write", "encoder")
#: words of a render process's output that mean OpenGL could not be loaded or opened
_GL_WORDS = ("MUJOCO_GL", "OpenGL", "OSMesa", "osmesa", "EGL", "GLFW", "glfw", "gladLoadGL", "libGL",
             "PYOPENGL_PLATFORM", "gl_context")
_GL_HINTS = {"osmesa": "on CPU, install OSMesa (Debian/Ubuntu: apt-get install libosmesa6)",
             "egl": "EGL needs a GPU driver with libEGL (NVIDIA: libnvidia-egl), or use MUJOCO_GL=osmesa on CPU",
             "glfw": "GLFW needs a display ($DISPLAY), or use MUJOCO_GL=osmesa offscreen"}


class GLUnavailable(PlasticRLError):
    """MuJoCo could not load or open an OpenGL context for the chosen ``MUJOCO_GL`` backend."""


def gl_backend() -> str:
    """``$MUJOCO_GL`` if set, else ``egl`` with an NVIDIA GPU, else ``osmesa``."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    return "egl" if Path("/dev/nvidia0").exists() else "osmesa"


def _condition(env_id: str, name: str | None) -> Any:
    """A suite condition by name (``novel``'s ``NAME@severity``, or a ``morphology`` / ``motor_failure``
    condition where the env has those suites), or a JSON perturbation."""
    if name in (None, "", "nominal"):
        return None
    if name.lstrip().startswith(("{", "[")):
        return json.loads(name)
    from plasticrl.envs import condition, suite, suites_of

    try:
        return condition(env_id, name)
    except PlasticRLError:
        known = [c["name"] for s in suites_of(env_id) if s in ("novel", "morphology", "motor_failure")
                 for c in suite(env_id, s) if c["name"] != "nominal"]
        raise PlasticRLError(f"unknown condition {name!r}; valid choices: nominal, {', '.join(sorted(known))} "
                             "(or a JSON perturbation)") from None


def render_frames(agent_path: str, env_id: str | None, condition: str | None, steps: int, width: int,
                  height: int, seed: int, env_kwargs: dict[str, Any] | None = None,
                  trust_pickle: bool = False,
                  on_step: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict]:
    """Run one episode (at most ``steps`` steps) and return ``frames [T, height, width, 3]`` uint8 and
    a summary (return, length). Needs ``MUJOCO_GL`` set before MuJoCo was imported. ``on_step(done, steps)``
    is called after every rendered step."""
    import mujoco

    from plasticrl.envs import make_vec
    from plasticrl.rollouts.controllers import check_same_env, load_controller

    ctrl = load_controller(agent_path, env_id=env_id, trust_pickle=trust_pickle)
    env_id = check_same_env([ctrl], env_id)
    kwargs = {**ctrl.env_kwargs, **(env_kwargs or {})}
    env = make_vec(env_id, 1, **kwargs)
    renderer, shown, frames, total = None, None, [], 0.0
    camera = mujoco.MjvCamera()
    try:
        pert = _condition(env_id, condition)
        obs, _ = env.reset(seed=seed, options={"perturbation": pert} if pert is not None else None)
        ctrl.start(1, [seed])
        for _ in range(steps):
            model, data = env.pool.models[0], env.pool.datas[0]
            if model is not shown:  # morphology conditions swap the compiled model
                if renderer is not None:
                    renderer.close()
                renderer, shown = _renderer(mujoco, model, height, width), model
                camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
                camera.trackbodyid = 1  # the root body: the camera follows the robot
                # stat.extent includes the floor plane, so a fixed distance frames the robot better
                camera.distance, camera.elevation, camera.azimuth = 3.5, -20.0, 90.0
            renderer.update_scene(data, camera)
            _floor_follows(renderer.scene, model, camera)
            frames.append(renderer.render().copy())
            action = ctrl.act(np.asarray(obs).reshape(1, -1))
            obs, reward, terminated, truncated, _ = env.step(action)
            ctrl.learn(np.asarray(reward))
            total += float(reward[0])
            if on_step is not None:
                on_step(len(frames), steps)
            if terminated[0] or truncated[0]:
                break
    finally:
        if renderer is not None:
            renderer.close()
        env.close()
    return np.stack(frames), {"env_id": env_id, "condition": condition or "nominal", "return": total,
                              "length": len(frames), "width": width, "height": height}


def _renderer(mujoco: Any, model: Any, height: int, width: int) -> Any:
    """``mujoco.Renderer``, its OpenGL failures (library missing, no context) raised as :class:`GLUnavailable`."""
    try:
        return mujoco.Renderer(model, height, width)
    except ValueError as exc:  # e.g. a frame larger than the model's offscreen buffer: an input, not GL
        raise PlasticRLError(f"--width {width} / --height {height}: {exc}") from None
    except (ImportError, RuntimeError, AttributeError, OSError, mujoco.FatalError) as exc:
        raise GLUnavailable(f"{type(exc).__name__}: {exc}") from None


def failure_message(backend: str, lines: list[str], returncode: int) -> str:
    """One line naming why the render process failed, from its stderr ``lines``: its own report
    (``FAILURE CAUSE MESSAGE``) when it made one, else OpenGL when the output names it (a failure at
    ``import mujoco``, before the process could report), else the last line of the output."""
    for line in reversed(lines):
        parts = line.split(" ", 2)
        if parts[0] == FAILURE and len(parts) == 3 and parts[1] in CAUSES:
            cause, message = parts[1], parts[2].strip()
            break
    else:
        text = [line.strip() for line in lines if line.strip()]
        last = text[-1] if text else f"exit code {returncode}, no output"
        cause, message = ("gl" if any(w in "\n".join(text) for w in _GL_WORDS) else "other"), last
    if cause == "gl":
        hint = _GL_HINTS.get(backend, "set MUJOCO_GL to osmesa (CPU), egl (GPU) or glfw (a display)")
        return f"rendering could not open OpenGL with MUJOCO_GL={backend} ({message}); {hint}"
    if cause == "write":
        return f"rendering could not write the video: {message}"
    if cause == "encoder":
        return f"rendering could not encode the video: {message}"
    if cause == "input":
        return message
    return f"rendering failed: {message}"


def _floor_follows(scene: Any, model: Any, camera: Any) -> None:
    """Move every drawn floor plane under the tracked robot, so the floor never ends in the picture.

    The tasks' floors are finite planes (HalfCheetah's 80 m across), which a fast runner leaves within an
    episode. Collisions with a plane do not depend on its drawn size, so only the drawing is moved (the
    scene, after ``update_scene``; the simulated model is untouched), by a whole number of texture
    periods, so the checker pattern stays fixed to the ground and motion stays visible against it."""
    import mujoco

    for i in range(scene.ngeom):
        geom = scene.geoms[i]
        if geom.objtype != mujoco.mjtObj.mjOBJ_GEOM or model.geom_type[geom.objid] != mujoco.mjtGeom.mjGEOM_PLANE:
            continue
        g = geom.objid
        size = model.geom_size[g, :2]
        mat = model.geom_matid[g]
        if mat >= 0 and model.mat_texrepeat[mat].min() > 0:
            rep = model.mat_texrepeat[mat]
            period = 1.0 / rep if model.mat_texuniform[mat] else 2.0 * size / rep
        else:
            period = np.ones(2)
        shift = np.round((np.asarray(camera.lookat[:2]) - model.geom_pos[g, :2]) / period) * period
        geom.pos[:2] = model.geom_pos[g, :2] + shift


def write_video(frames: np.ndarray, out: Path, fps: int) -> Path:
    """Write ``frames`` as MP4 (imageio-ffmpeg) or GIF (pillow), by the suffix of ``out``."""
    import imageio.v3 as iio

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".mp4":
        iio.imwrite(out, frames, fps=fps, codec="libx264", macro_block_size=1)
    else:
        iio.imwrite(out, frames, duration=1000 / fps, loop=0)
    return out


def render_video(agent: str | Path, out: str | Path, env_id: str | None = None, condition: str | None = None,
                 steps: int = 1000, width: int = 480, height: int = 320, seed: int = 0, fps: int = 30,
                 frames_dir: str | Path | None = None, env_kwargs: dict[str, Any] | None = None,
                 trust_pickle: bool = False, progress: Callable[[int, int], None] | None = None) -> dict:
    """Render in a fresh interpreter with the right GL backend; returns the summary dict.
    ``trust_pickle``: as for :func:`plasticrl.rollouts.controllers.load_controller`. ``progress(done,
    steps)`` is called once the inputs are checked (``done = 0``), as the episode runs (every few steps)
    and with ``done = -1`` when the video is being encoded."""
    from plasticrl.rollouts.controllers import load_controller

    out = Path(out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise PlasticRLError(f"--out must end in one of {', '.join(VIDEO_SUFFIXES)}; got {str(out)!r}")
    try:  # an --out that cannot be written fails now, as one line, not after the episode
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = ("is not a directory" if isinstance(exc, (FileExistsError, NotADirectoryError))
               else f"cannot be made ({exc.strerror or exc})")
        raise PlasticRLError(f"cannot write the video {str(out)!r}: {str(exc.filename or out.parent)!r} {why}") from None
    if out.is_dir():
        raise PlasticRLError(f"--out {str(out)!r} is a directory; give a video file name (.mp4 or .gif)")
    # Loaded here first so a file that cannot be (safely) loaded fails as one line, not as the
    # tail of the render process's output.
    load_controller(agent, env_id=env_id, trust_pickle=trust_pickle)
    args = {"agent": str(agent), "out": str(out), "env_id": env_id, "condition": condition, "steps": steps,
            "width": width, "height": height, "seed": seed, "fps": fps,
            "frames_dir": None if frames_dir is None else str(frames_dir), "env_kwargs": env_kwargs or {},
            "trust_pickle": trust_pickle}
    backend = gl_backend()
    if progress is not None:
        progress(0, steps)  # the inputs are valid; the render process takes seconds to start
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", backend)}
    proc = subprocess.Popen([sys.executable, "-m", "plasticrl.report.render", json_dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the child reports its progress on stderr as it goes ("progress DONE TOTAL", "encoding"); the rest
    # of stderr is kept for the error message
    other: list[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        parts = line.split()
        if parts[:1] == [PROGRESS] and len(parts) == 3 and progress is not None:
            progress(int(parts[1]), int(parts[2]))
        elif parts[:1] == [ENCODING] and progress is not None:
            progress(-1, steps)
        elif parts[:1] not in ([PROGRESS], [ENCODING]):
            other.append(line.rstrip())
    stdout = proc.stdout.read()
    if proc.wait() != 0:
        raise PlasticRLError(failure_message(backend, other or stdout.splitlines(), proc.returncode))
    return json.loads(stdout.strip().splitlines()[-1])


def _report_progress(done: int, steps: int) -> None:
    # to the parent process (render_video), every PROGRESS_EVERY steps
    if done % PROGRESS_EVERY == 0 or done == steps:
        print(f"{PROGRESS} {done} {steps}", file=sys.stderr, flush=True)


def _fail(cause: str, message: str) -> None:
    # to the parent process (render_video), which turns it into the user's one line
    print(f"{FAILURE} {cause} {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _main(raw: str) -> None:
    a = json.loads(raw)
    try:
        frames, summary = render_frames(a["agent"], a["env_id"], a["condition"], a["steps"], a["width"],
                                        a["height"], a["seed"], a["env_kwargs"], a.get("trust_pickle", False),
                                        on_step=_report_progress)
    except GLUnavailable as exc:
        _fail("gl", str(exc))
    except PlasticRLError as exc:
        _fail("input", str(exc))
    print(ENCODING, file=sys.stderr, flush=True)
    out = Path(a["out"])
    try:
        write_video(frames, out, a["fps"])
        if a["frames_dir"]:
            import imageio.v3 as iio

            d = Path(a["frames_dir"])
            d.mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(frames):
                iio.imwrite(d / f"frame_{i:05d}.png", f)
    except ImportError as exc:  # imageio, or imageio-ffmpeg for .mp4
        _fail("encoder", f"{exc} (MP4 needs imageio-ffmpeg, GIF needs pillow: pip install imageio-ffmpeg pillow)")
    except OSError as exc:
        _fail("write", f"{str(exc.filename or out)!r}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - e.g. ffmpeg refusing the codec: named, as one line
        _fail("encoder", f"{type(exc).__name__}: {exc}")
    summary.update({"out": a["out"], "backend": os.environ.get("MUJOCO_GL")})
    print(json_dumps(summary))


if __name__ == "__main__":
    _main(sys.argv[1])
