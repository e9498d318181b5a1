"""Typed ES hyper-parameters: one model per algorithm behind make_es and the config's es section;
defaults, one-line errors (bad value, unknown key, another algorithm's key), every shipped config,
old run directories, and a YAML -> config -> config.yaml -> config round trip."""
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli_checks import assert_one_line_error, entries
from plasticrl.cli import app
from plasticrl.config import ES_ALGORITHMS, ExperimentConfig, config_from_dict, config_to_dict, load_config
from plasticrl.config.experiment import ES_SECTIONS
from plasticrl.errors import PlasticRLError
from plasticrl.es import ALGORITHMS, PARAMS, OpenAIESParams, make_es
from plasticrl.es.schedules import Schedule

REPO = Path(__file__).resolve().parents[1]
NAMES = sorted(PARAMS)


def test_one_model_per_algorithm_everywhere():
    assert NAMES == sorted(ALGORITHMS) == sorted(ES_ALGORITHMS)
    for name in NAMES:
        assert ALGORITHMS[name].params_type is PARAMS[name] and PARAMS[name].algorithm == name
        assert ES_SECTIONS[name].model_fields["params"].annotation is PARAMS[name]
    assert ExperimentConfig().es.params == OpenAIESParams()  # the default es section


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_the_strategys_and_survive_config_yaml(name):
    """The model is the only place a default is written: the strategy built without hyper-parameters
    holds the model's defaults; each default satisfies its own field's bounds (pydantic does not check
    defaults); and a strategy built from the defaults as config.yaml writes them draws the same
    samples and takes the same step as one built from nothing."""
    model = PARAMS[name]
    bare = make_es(name, 5)
    assert bare.config == model()
    assert model.model_validate({k: f.default for k, f in model.model_fields.items()}) == model()
    assert all(f.description for f in model.model_fields.values())
    written = yaml.safe_load(yaml.safe_dump(model().model_dump(mode="json")))
    again = make_es(name, 5, **written)
    a, b = bare.init(torch.ones(5), seed=1), again.init(torch.ones(5), seed=1)
    xa, a = bare.ask(a)
    xb, b = again.ask(b)
    assert torch.equal(xa, xb)
    a, _ = bare.tell(a, xa, -(xa ** 2).sum(1))
    b, _ = again.tell(b, xb, -(xb ** 2).sum(1))
    assert torch.equal(bare.center(a), again.center(b))


def test_a_model_instance_builds_the_strategy_and_a_foreign_one_is_refused():
    params = OpenAIESParams(population_size=8, sigma={"init": 0.3, "kind": "linear", "steps": 4, "floor": 0.1})
    algo = ALGORITHMS["openai_es"](3, params)
    assert algo.config is params and algo.population_size == 8 and algo.sigma(algo.init(torch.zeros(3), 0)) == 0.3
    assert make_es("openai_es", 3, **dict(params)).config == params
    with pytest.raises(PlasticRLError, match="OpenAIESParams holds openai_es hyper-parameters; pgpe takes PGPEParams"):
        ALGORITHMS["pgpe"](3, params)


def _one_line(overrides, config=None):
    with pytest.raises(PlasticRLError) as info:
        load_config(config, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_value_names_the_key_path_and_value():
    message = _one_line(["es.algorithm=pgpe", "es.params.center_learning_rate=-0.5"])
    assert "es.params.center_learning_rate: Input should be greater than 0 (got -0.5)" in message
    message = _one_line(["es.params.population_size=8.0"])  # an integer field takes no float
    assert "es.params.population_size:" in message and "(got 8.0)" in message
    message = _one_line(["es.params.sigma={init: 0.1, kind: step}"])
    assert "es.params.sigma:" in message and "'step'" in message and "constant, linear, exponential" in message


def test_unknown_key_names_it_and_the_valid_keys():
    message = _one_line(["es.params.sigmaa=0.1"])
    valid = ", ".join(sorted(OpenAIESParams.model_fields))
    assert message.endswith(f"es.params: unknown key(s) 'sigmaa' for openai_es; valid keys: {valid}")


def test_switching_algorithm_names_the_keys_of_the_other_algorithm(tmp_path):
    """configs/demo.yaml is PGPE; es.algorithm=cma_es leaves its PGPE keys behind."""
    message = _one_line(["es.algorithm=cma_es"], "configs/demo.yaml")
    assert ("es.params: unknown key(s) 'center_learning_rate', 'max_speed', 'stdev_init' for cma_es "
            "('center_learning_rate', 'max_speed', 'stdev_init' belong to pgpe); "
            f"valid keys: {', '.join(sorted(PARAMS['cma_es'].model_fields))}") in message
    # the same through the CLI: one line, before any run directory
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["train", "configs/demo.yaml", "es.algorithm=cma_es", "--out", str(out),
                                   "--quiet", "--wandb-mode", "disabled"])
    assert_one_line_error(res, "es.params", "'stdev_init'", "pgpe", "cma_es")
    assert entries(out) == []
    # with params of its own the switch is fine, and sep_cma_es refuses cma_es's lr_adapt
    assert load_config("configs/demo.yaml", ["es.algorithm=cma_es", "es.params={sigma: 0.2}"]).es.params.sigma == 0.2
    message = _one_line(["es.algorithm=sep_cma_es", "es.params.lr_adapt=true"])
    assert "'lr_adapt' belongs to cma_es" in message


def _shipped_configs() -> list[Path]:
    return sorted(p for p in (REPO / "configs").rglob("*.yaml") if "experiments" not in p.parts)


@pytest.mark.parametrize("path", _shipped_configs(), ids=lambda p: p.relative_to(REPO / "configs").as_posix())
def test_every_shipped_config_validates_to_typed_params(path):
    cfg = load_config(path)
    assert type(cfg.es.params) is PARAMS[cfg.es.algorithm]
    written = yaml.safe_load(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    assert config_from_dict(written) == cfg
    raw = (yaml.safe_load(path.read_text()) or {}).get("es", {}).get("params", {})
    dumped = written["es"]["params"]
    assert {k: dumped[k] for k in raw} == raw  # what the file sets is what config.yaml says


def test_every_experiment_spec_agent_config_validates():
    from plasticrl.experiments.comparison import _es_config, load_spec

    specs = sorted((REPO / "configs" / "experiments").glob("*.yaml"))
    assert specs
    for path in specs:
        spec = load_spec(path)
        for agent in spec.agents.values():
            cfg = _es_config(agent, spec, "disabled")
            assert type(cfg.es.params) is PARAMS[cfg.es.algorithm]


def test_an_old_run_directory_config_loads(tmp_path):
    """Before typed params, config.yaml held es.params as written (only the keys the user set): the
    same algorithm + params shape, which loads to the typed model with the rest at defaults."""
    from plasticrl.trainers.runs import read_run_config

    data = config_to_dict(load_config("configs/demo.yaml"))
    data["es"] = {"algorithm": "pgpe", "params": {"population_size": 8, "center_learning_rate": 0.15,
                                                   "max_speed": 0.3, "stdev_init": 0.1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = read_run_config(tmp_path)
    params = cfg.es.params
    assert (params.population_size, params.center_learning_rate, params.max_speed, params.stdev_init) == \
        (8, 0.15, 0.3, 0.1)
    assert params.momentum == PARAMS["pgpe"].model_fields["momentum"].default


# allow_subnormal=False: numba kernels earlier in the suite may leave flush-to-zero on, which
# hypothesis refuses subnormal strategies under
_POSITIVE = st.floats(1e-4, 2.0, allow_subnormal=False)
_UNIT = st.floats(0.0, 0.99, allow_subnormal=False)
_EVEN = st.integers(1, 64).map(lambda n: 2 * n)


@st.composite
def _schedule(draw):
    init = draw(st.floats(1e-3, 1.0, allow_subnormal=False))
    kind = draw(st.sampled_from(["constant", "linear", "exponential"]))
    if kind == "constant":
        return init
    floor = draw(st.floats(1e-4, 1.0, allow_subnormal=False)) * init
    schedule = {"init": init, "kind": kind, "floor": floor}
    if kind == "linear":
        schedule["steps"] = draw(st.integers(1, 1000))
    else:
        schedule["rate"] = draw(st.floats(0.5, 1.0, exclude_min=True, allow_subnormal=False))
    return schedule


def _some(fields: dict) -> st.SearchStrategy:
    """A dict with a random subset of ``fields`` (name -> strategy)."""
    return st.fixed_dictionaries({}, optional=fields)


PARAM_DICTS = {
    "openai_es": _some({"population_size": _EVEN, "sigma": _schedule(), "learning_rate": _schedule(),
                        "weight_decay": _UNIT, "antithetic": st.just(True), "adam_beta1": _UNIT}),
    "pgpe": _some({"population_size": _EVEN, "center_learning_rate": _POSITIVE, "max_speed": st.none() | _POSITIVE,
                   "momentum": _UNIT, "stdev_init": _POSITIVE | st.lists(_POSITIVE, min_size=1, max_size=4),
                   "stdev_learning_rate": _UNIT, "stdev_max_change": st.none() | _POSITIVE}),
    "cma_es": _some({"sigma": _POSITIVE, "population_size": st.none() | st.integers(2, 100),
                     "lr_adapt": st.booleans()}),
    "sep_cma_es": _some({"sigma": _POSITIVE, "population_size": st.none() | st.integers(2, 100)}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_valid_params_round_trip_through_yaml_config_and_config_yaml(tmp_path_factory, data, name):
    params = data.draw(PARAM_DICTS[name])
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump({"es": {"algorithm": name, "params": params}}))
    cfg = load_config(path)
    assert cfg.es.params == PARAMS[name](**params)
    written = yaml.safe_load(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))  # as config.yaml
    assert {k: written["es"]["params"][k] for k in params} == params  # given values come back as given
    again = config_from_dict(written)
    assert again == cfg and again.es.params == cfg.es.params
    for key in ("sigma", "learning_rate"):
        if name == "openai_es":
            assert isinstance(getattr(again.es.params, key), Schedule)


@pytest.mark.parametrize("name", NAMES)
def test_descriptions_state_the_bounds_the_fields_enforce(name):
    """The generated reference shows descriptions, not constraints: each description ends with its
    field's bounds, ``(>= 0, < 1)``."""
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    bounded = 0
    for key, field in PARAMS[name].model_fields.items():
        bounds = [f"{words[k]} {getattr(m, k):g}" for m in field.metadata for k in words if hasattr(m, k)]
        if bounds:
            bounded += 1
            assert field.description.endswith(f"({', '.join(bounds)})"), (key, field.description)
    assert bounded >= 2
