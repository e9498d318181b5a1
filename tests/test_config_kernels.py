"""Every shipped training config runs the fastest kernel its policy supports: the plastic spiking configs ask for
``kernel: auto`` (or leave it out), which resolves to the fused numba kernel wherever that kernel covers the
policy, exactly as the seven configs that used to say ``kernel: fused`` did."""
from pathlib import Path

import pytest
import yaml

from plasticrl.agents import make_policy
from plasticrl.config import load_config
from plasticrl.envs import make_vec
from plasticrl.errors import PlasticRLError

pytest.importorskip("numba")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "experiments" not in p.parts)
# the configs that shipped with `kernel: fused` before the default moved to auto: they must still get it
FORMERLY_FUSED = {"halfcheetah/hebbian_static_spiking", "halfcheetah/hebbian_random_spiking",
                  "halfcheetah_dir/run_forward", "halfcheetah_dir/oracle", "halfcheetah_dir/bcm_reward_flip",
                  "ant/hebbian_static_spiking", "ant/hebbian_random_spiking"}
_SPACES: dict = {}


def _policy(config):
    if config.env.id not in _SPACES:
        env = make_vec(config.env.id, 1, **dict(config.env.kwargs))
        _SPACES[config.env.id] = (env.single_observation_space, env.single_action_space)
        env.close()
    return make_policy(config.policy, *_SPACES[config.env.id], dtype=config.dtype)


def _name(path: Path) -> str:
    return path.relative_to(REPO / "configs").with_suffix("").as_posix()


def test_no_shipped_config_pins_the_fused_kernel():
    pinned = [_name(p) for p in CONFIGS if (yaml.safe_load(p.read_text()).get("policy") or {}).get("kernel") == "fused"]
    assert pinned == []  # they ask for auto, which says which kernel it picked


def _has_kernel_choice(path: Path) -> bool:
    # the ES-trained policies the fused kernels cover; linear/MLP policies and gradient trainers have one path
    config = load_config(str(path), [])
    return config.trainer == "es" and config.policy.kind in ("plastic_spiking", "static_spiking", "hebbian_mlp")


KERNEL_CONFIGS = [p for p in CONFIGS if _has_kernel_choice(p)]


def test_the_kernel_check_covers_every_policy_with_a_choice():
    kinds = {load_config(str(p), []).policy.kind for p in KERNEL_CONFIGS}
    assert kinds == {"plastic_spiking", "static_spiking", "hebbian_mlp"}


@pytest.mark.parametrize("path", KERNEL_CONFIGS, ids=_name)
def test_shipped_config_resolves_to_the_fastest_kernel_it_supports(path):
    config = load_config(str(path), [])
    policy = _policy(config)
    try:  # can the fused kernel run this policy at all?
        _policy(load_config(str(path), ["policy.kernel=fused"]))
        fused_covers = True
    except PlasticRLError:  # the fused kernel names the option it does not cover
        fused_covers = False
    shipped = (yaml.safe_load(path.read_text()).get("policy") or {}).get("kernel", "auto")
    if shipped == "auto":
        assert policy.kernel == ("fused" if fused_covers else "torch"), policy.kernel_reason
    else:
        assert policy.kernel == shipped
    if _name(path) in FORMERLY_FUSED:
        assert policy.kernel == "fused"
