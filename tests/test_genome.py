import pytest
import torch

from plasticrl.agents import PlasticSpikingPolicy
from plasticrl.errors import PlasticRLError
from plasticrl.genome import GenomeSpec, ParamGroup


def spec():
    return GenomeSpec([
        ParamGroup("a", (2, 3), "normal", 0.0, 1.0),
        ParamGroup("b", (4,), "constant", 0.5),
        ParamGroup("c", (1,), "uniform", 1.0, 0.2, searched=False),
    ], seed=3)


def test_flat_named_flat_is_identity_and_views():
    s = spec()
    assert s.dim == 10
    flat = torch.randn(5, s.dim)
    named = s.unflatten(flat)
    assert named["a"].shape == (5, 2, 3) and named["c"].shape == (5, 1)
    assert torch.equal(s.flatten(named), flat)
    assert torch.equal(named["a"][2].reshape(-1), flat[2, :6])
    # fixed groups take their initial value for every member
    assert torch.all(named["c"] == s.initial_values()["c"])


def test_initial_values_deterministic_and_independent_of_selection():
    a, b = spec(), spec()
    assert torch.equal(a.initial_flat(2), b.initial_flat(2))
    narrowed = a.select(search=["b"])
    assert narrowed.dim == 4 and narrowed.searched_names == ["b"]
    assert torch.equal(narrowed.unflatten(narrowed.initial_flat(1))["a"][0], a.initial_values()["a"])
    assert a.select(fix=["a"]).searched_names == ["b"]
    with pytest.raises(PlasticRLError, match=r"'zz\*' matches no parameter group; groups: a, b, c"):
        a.select(search=["zz*"])


def test_gradients_flow_from_named_views_to_flat():
    s = spec()
    flat = s.initial_flat(2).requires_grad_(True)
    named = s.unflatten(flat)
    (named["a"].sum() * 2 + named["b"][1].sum()).backward()
    assert flat.grad[:, :6].eq(2).all() and flat.grad[0, 6:].eq(0).all() and flat.grad[1, 6:].eq(1).all()


def test_shape_errors_name_the_shapes():
    s = spec()
    with pytest.raises(PlasticRLError, match=r"\[3, 7\]; expected \[P, 10\]"):
        s.unflatten(torch.zeros(3, 7))
    with pytest.raises(PlasticRLError, match="duplicate"):
        GenomeSpec([ParamGroup("x", (1,)), ParamGroup("x", (2,))])
    with pytest.raises(PlasticRLError, match="'gamma'"):
        ParamGroup("x", (1,), "gamma")


@pytest.mark.parametrize("sharing,expected", [
    # obs 5 -> hidden 16 -> act 3; ABCD has 5 coefficients (A, B, C, D, eta) per layer
    ("synapse", 5 * (16 * 5 + 3 * 16)),
    ("post", 5 * (16 + 3)),
    ("layer", 5 * 2),
    ("global", 5),
])
def test_sharing_granularity_counts(sharing, expected):
    pol = PlasticSpikingPolicy(5, 3, [-1] * 3, [1] * 3,
                               {"hidden": [16], "plasticity": {"rule": "hebbian_abcd", "sharing": sharing}})
    coeff = {k: v for k, v in pol.genome.counts().items() if k.split(".")[-1] in {"A", "B", "C", "D", "eta"}}
    assert sum(coeff.values()) == expected
    weights = pol.genome.counts()["layers.0.w"] + pol.genome.counts()["layers.1.w"]
    assert weights == 16 * 5 + 3 * 16
