"""Policy side of plasticrl (installed as ``plasticrl.agents``)."""
from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import (
    DecoderConfig,
    EncoderConfig,
    GenomeConfig,
    HebbianMLPConfig,
    InitialWeightsConfig,
    LinearConfig,
    MLPConfig,
    NeuronConfig,
    PlasticityConfig,
    PlasticSpikingConfig,
    SymmetricConfig,
    SymmetricGoalConfig,
)
from plasticrl.agents.factory import make_policy, parse_policy_config
from plasticrl.agents.feedforward import LinearPolicy, MLPPolicy
from plasticrl.agents.hebbian_mlp import HebbianMLPPolicy
from plasticrl.agents.plastic_spiking import PlasticSpikingPolicy
from plasticrl.agents.symmetric import SymmetricPolicy


def StaticSpikingPolicy(obs_dim, act_dim, action_low, action_high, config=None, device="cpu", dtype="float32",
                        autograd=False):
    """The plastic spiking policy with plasticity off: same network, fixed weights."""
    base = config if isinstance(config, PlasticSpikingConfig) else PlasticSpikingConfig.model_validate(dict(config or {}))
    static = PlasticSpikingConfig.model_validate({**base.model_dump(), "kind": "static_spiking"})
    return PlasticSpikingPolicy(obs_dim, act_dim, action_low, action_high, static, device, dtype, autograd)


__all__ = [
    "BatchedPolicy", "DecoderConfig", "EncoderConfig", "GenomeConfig", "HebbianMLPConfig", "HebbianMLPPolicy",
    "InitialWeightsConfig", "LinearConfig", "LinearPolicy",
    "MLPConfig", "MLPPolicy", "NeuronConfig", "PlasticSpikingConfig", "PlasticSpikingPolicy", "PlasticityConfig",
    "StaticSpikingPolicy", "SymmetricConfig", "SymmetricGoalConfig", "SymmetricPolicy", "make_policy",
    "parse_policy_config",
]
