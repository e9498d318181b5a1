"""The rendered floor follows the robot: a runner never leaves the textured floor in the video."""
import ctypes.util
import json
import os
import subprocess
import sys

import pytest

if ctypes.util.find_library("OSMesa") is None and not os.environ.get("CI"):
    pytest.skip("OSMesa not installed (Debian: apt-get install libosmesa6)", allow_module_level=True)

# MUJOCO_GL must be set before MuJoCo is imported, hence a fresh interpreter
SCRIPT = """
import json, os
os.environ["MUJOCO_GL"] = "osmesa"
import mujoco, numpy as np
from gymnasium.envs.mujoco import __file__ as gym_mujoco
from plasticrl.report.render import _floor_follows

model = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(gym_mujoco), "assets", "half_cheetah.xml"))
data = mujoco.MjData(model)
renderer = mujoco.Renderer(model, 48, 64)
cam = mujoco.MjvCamera()
cam.type, cam.trackbodyid = mujoco.mjtCamera.mjCAMERA_TRACKING, 1
cam.distance, cam.elevation, cam.azimuth = 3.5, -20.0, 90.0
floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
mat = model.geom_matid[floor]
period = float(2 * model.geom_size[floor, 0] / model.mat_texrepeat[mat, 0])

def frame(x, follow):
    data.qpos[:] = 0
    data.qpos[0] = x
    mujoco.mj_forward(model, data)
    renderer.update_scene(data, cam)
    if follow:
        _floor_follows(renderer.scene, model, cam)
    return renderer.render().astype(float)

far = 60 * period  # beyond the floor's edge (40 m), a whole number of texture periods
out = {"half_size": float(model.geom_size[floor, 0]), "far": far,
       "follow": float(np.abs(frame(far, True) - frame(0.0, True)).mean()),
       "fixed": float(np.abs(frame(far, False) - frame(0.0, False)).mean())}
renderer.close()
print(json.dumps(out))
"""


def test_floor_follows_the_robot_past_the_edge(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["far"] > got["half_size"]  # the robot stands off the model's floor
    # moved by whole texture periods, the floor under the robot looks exactly as at the start...
    assert got["follow"] < 1.0
    # ...while the model's own floor has ended there (grey void instead of the checker)
    assert got["fixed"] > 10.0


def test_render_reports_progress(tmp_path):
    from typer.testing import CliRunner

    from plasticrl.cli import app
    from test_eval_render import _tiny_agent

    agent = _tiny_agent(tmp_path / "tiny.pt")
    res = CliRunner().invoke(app, ["render", str(agent), "--steps", "30", "--width", "32", "--height", "24",
                                   "--out", str(tmp_path / "v.gif")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"rendering {agent} (nominal, at most 30 steps")  # before the slow part
    # the render process reports every 25 steps and at the end; HalfCheetah runs all 30
    assert [line for line in lines if line.startswith("render:")] == ["render: 25/30 steps", "render: 30/30 steps"]
    assert lines.index("encoding the video") > lines.index("render: 30/30 steps")
