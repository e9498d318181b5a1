"""register_rule and register_model_edit refuse what would shadow or break the built-in ones."""
import pytest

from plasticrl.envs import EnvError, Param, PerturbationType, register_model_edit
from plasticrl.errors import PlasticRLError
from plasticrl.plasticity import RuleSpec, register_rule


def test_register_rule_refuses_built_in_names_and_threshold_state():
    with pytest.raises(PlasticRLError, match=r"'bcm' is built in.*hebbian_abcd"):
        register_rule(RuleSpec("bcm", (), 0.0, 1.0, False), lambda *a: None)
    with pytest.raises(PlasticRLError, match="uses_threshold"):
        register_rule(RuleSpec("my_rule", (), 0.0, 1.0, True), lambda *a: None)


def test_register_model_edit_refuses_built_in_names_and_other_kinds():
    check = lambda v: None  # noqa: E731
    with pytest.raises(EnvError, match="'mass_scale' is built in"):
        register_model_edit(PerturbationType("mass_scale", "dynamics", "", (Param("scale", 1.0, "", check),), None),
                            lambda m, p: None)
    with pytest.raises(EnvError, match="kind 'sensing'"):
        register_model_edit(PerturbationType("my_noise", "sensing", "", (), None), lambda m, p: None)
