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
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's own handler would have written it


_COMPILE = f"""
import warnings, mujoco
import plasticrl.envs
from plasticrl.envs.mujoco_warnings import MujocoWarning
if {{drop}}:  # the control: without plasticrl's filter the deprecation reaches stderr
    warnings.filters[:] = [f for f in warnings.filters if f[2] is not MujocoWarning]
mujoco.MjModel.from_xml_string({XML!r})
print("compiled")
"""


def test_the_package_filters_the_settotalmass_deprecation_by_default(tmp_path):
    """In a fresh interpreter that shows every warning (-W always; pytest's own filter for this
    message does not apply there), importing plasticrl.envs is what silences the deprecation."""
    import subprocess
    import sys

    runs = {}
    for drop in (False, True):
        runs[drop] = subprocess.run([sys.executable, "-W", "always", "-c", _COMPILE.format(drop=drop)],
                                    cwd=tmp_path, capture_output=True, text=True)
        assert runs[drop].returncode == 0 and "compiled" in runs[drop].stdout, runs[drop].stderr
    assert "settotalmass" in runs[True].stderr and "MujocoWarning" in runs[True].stderr
    assert "settotalmass" not in runs[False].stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
