"""MuJoCo warnings arrive as Python warnings; the known settotalmass deprecation is filtered."""
import warnings

import mujoco

import plasticrl.envs  # noqa: F401 - installs the handler
from plasticrl.envs.mujoco_warnings import MujocoWarning

XML = '<mujoco><compiler settotalmass="3"/><worldbody><body><freejoint/><geom size="0.1"/></body></worldbody></mujoco>'


def test_mujoco_warnings_become_python_warnings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mujoco.MjModel.from_xml_string(XML)
    assert any(issubclass(w.category, MujocoWarning) and "settotalmass" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("ignore", message=r"(?s).*settotalmass.*deprecated", category=MujocoWarning)
        mujoco.MjModel.from_xml_string(XML)
    assert not caught
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's own handler would have written it
