"""`plasticrl render`: offscreen frames of the requested size (OSMesa on CPU), MP4 and GIF output."""
import ctypes.util
import os

import imageio.v3 as iio
import pytest
from typer.testing import CliRunner

import torch

from plasticrl.rollouts.saved_agent import save_agent
from plasticrl.agents import make_policy
from plasticrl.cli import app
from plasticrl.envs import make_vec


# CI installs OSMesa (.ci/run) and must exercise rendering; elsewhere a missing library is a
# machine set-up matter, reported as a skip that says what to install.
if ctypes.util.find_library("OSMesa") is None and not os.environ.get("CI"):
    pytest.skip("OSMesa not installed (Debian: apt-get install libosmesa6)", allow_module_level=True)


def _tiny_agent(path):
    """An untrained linear agent on HalfCheetah with random weights (seeded)."""
    env = make_vec("HalfCheetah-v5", 1)
    policy = make_policy({"kind": "linear"}, env.single_observation_space, env.single_action_space)
    env.close()
    gen = torch.Generator().manual_seed(0)
    genome = 0.5 * torch.randn(policy.genome.dim, generator=gen, dtype=policy.dtype)
    return save_agent(path, policy, {"kind": "linear"}, genome, None, {"env_id": "HalfCheetah-v5", "env_kwargs": {}})


@pytest.fixture(scope="module")
def agent_file(tmp_path_factory):
    return _tiny_agent(tmp_path_factory.mktemp("agent") / "tiny.pt")


def test_render_writes_frames_of_the_right_size(agent_file, tmp_path):
    out, frames = tmp_path / "v.mp4", tmp_path / "frames"
    res = CliRunner().invoke(app, ["render", str(agent_file), "--condition", "shorten_limb@severe", "--steps", "4",
                                   "--width", "64", "--height", "48", "--out", str(out), "--frames-dir", str(frames)])
    assert res.exit_code == 0, res.output
    pngs = sorted(frames.glob("frame_*.png"))
    assert len(pngs) == 4
    first = iio.imread(pngs[0])
    assert first.shape == (48, 64, 3)
    assert first.std() > 0  # a rendered scene, not a blank buffer
    video = iio.imread(out)  # decodes with imageio-ffmpeg
    assert video.shape == (4, 48, 64, 3)


def test_render_gif_and_bad_inputs(agent_file, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["render", str(agent_file), "--steps", "2", "--width", "32", "--height", "24",
                              "--out", str(tmp_path / "v.gif")])
    assert res.exit_code == 0, res.output
    assert iio.imread(tmp_path / "v.gif").shape[1:3] == (24, 32)
    res = runner.invoke(app, ["render", str(agent_file), "--out", str(tmp_path / "v.avi")])
    assert res.exit_code == 2 and ".mp4" in res.output
    res = runner.invoke(app, ["render", str(agent_file), "--condition", "melted", "--steps", "1",
                              "--out", str(tmp_path / "w.gif")])
    assert res.exit_code == 2 and "melted" in res.output and "mass_scale@mild" in res.output
