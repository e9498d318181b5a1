"""`import plasticrl` offers the flat API the architecture page names, each entry documented, and a
__version__ that is the installed distribution's."""
from __future__ import annotations

import importlib.metadata
import inspect

import plasticrl

FLAT_API = {"make_env", "make_policy", "rollout", "train", "evaluate", "load"}


def test_flat_api_is_complete_and_documented():
    assert set(plasticrl.__all__) == FLAT_API | {"__version__"}
    for name in FLAT_API:
        function = getattr(plasticrl, name)
        assert callable(function) and inspect.getdoc(function), name


def test_version_is_the_installed_distributions():
    assert plasticrl.__version__ == importlib.metadata.version("plasticrl")
