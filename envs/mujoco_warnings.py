"""MuJoCo's warnings routed through Python's ``warnings`` module.

MuJoCo 4 deprecates the ``settotalmass`` compiler attribute that Gymnasium's
``half_cheetah.xml`` uses, so by default every HalfCheetah compile prints a warning to stderr
and appends it to ``MUJOCO_LOG.TXT`` in the working directory. As Python warnings they can be
filtered like any other; this known-harmless deprecation is filtered out by default (the
engine neutralises ``settotalmass`` where it matters, see perturb/morphology.py). A handler the
user installed before importing plasticrl is left alone.
"""
from __future__ import annotations

import warnings

import mujoco


class MujocoWarning(UserWarning):
    """A warning raised by the MuJoCo library."""


def _forward(message: str) -> None:
    warnings.warn(message.strip(), MujocoWarning, stacklevel=2)


def install() -> None:
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_forward)
        warnings.filterwarnings("ignore", message=r"(?s).*settotalmass.*deprecated", category=MujocoWarning)
