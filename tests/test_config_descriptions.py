"""Every training setting has a description: the config reference shows them."""
from __future__ import annotations


def test_every_training_setting_is_documented():
    """The ES sections with their typed hyper-parameters, and PPO's section, describe every field
    (the config reference is read from these descriptions)."""
    from plasticrl.config import PPOConfig
    from plasticrl.config.experiment import ES_SECTIONS
    from plasticrl.es.params import PARAMS

    models = [PPOConfig, *ES_SECTIONS.values(), *PARAMS.values()]
    undocumented = [f"{model.__name__}.{name}" for model in models
                    for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []
