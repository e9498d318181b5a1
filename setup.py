"""Package discovery for the one `plasticrl` namespace (metadata lives in pyproject.toml).

envs/ and agents/ are installed as plasticrl.envs and plasticrl.agents; their
sub-packages are found here so a new sub-package never needs a manual listing.
"""
from setuptools import find_packages, setup


def _mapped(directory: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(directory)]


setup(
    packages=find_packages(include=["plasticrl", "plasticrl.*"])
    + _mapped("envs", "plasticrl.envs")
    + _mapped("agents", "plasticrl.agents"),
    package_data={"plasticrl.envs": ["assets/*.xml"], "plasticrl": ["py.typed"]},
)
