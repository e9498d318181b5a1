"""Package discovery for the one `plasticrl` namespace (metadata lives in pyproject.toml).

envs/ and agents/ are installed as plasticrl.envs and plasticrl.agents;
their sub-packages are found here so a new sub-package never needs a manual listing. plasticrl/envs and
plasticrl/agents are symlinks to them, only so that import-linter (which reads the plasticrl/ folder)
sees the installed layout; packaging takes them from envs/ and agents/. configs/ (YAML only) is installed
as the data folder plasticrl/configs; the symlink plasticrl/configs gives a checkout (and an editable
install) the same layout, so plasticrl.config.bundled finds the configs the same way in both.
"""
from setuptools import find_packages, setup


def _mapped(directory: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(directory)]


setup(
    packages=find_packages(include=["plasticrl", "plasticrl.*"],
                           exclude=["plasticrl.envs", "plasticrl.envs.*", "plasticrl.agents", "plasticrl.agents.*"])
    + _mapped("envs", "plasticrl.envs")
    + _mapped("agents", "plasticrl.agents")
    # configs/ holds YAML only: a data package, installed as plasticrl/configs (plasticrl.config.bundled)
    + ["plasticrl.configs"],
    package_data={"plasticrl.envs": ["assets/*.xml"],
                  "plasticrl": ["py.typed", "pretrained/*.json", "pretrained/*.pt"],
                  "plasticrl.configs": ["*.yaml", "*/*.yaml"]},
)
