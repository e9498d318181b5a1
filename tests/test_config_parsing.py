"""Config and override parsing: numbers in exponent form, duplicated keys, broken or binary YAML,
unsafe run names, non-finite numbers, a missing policy section, and property tests of the parser."""
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli_checks import assert_one_line_error, entries
from plasticrl.cli import app
from plasticrl.config import ExperimentConfig, load_config, load_yaml, parse_overrides
from plasticrl.errors import PlasticRLError

runner = CliRunner()


def _train(tmp_path, *args):
    """``plasticrl train ARGS --out tmp/out``; returns the result and the --out directory."""
    out = tmp_path / "out"
    return runner.invoke(app, ["train", *args, "--out", str(out), "--quiet", "--wandb-mode", "disabled"]), out


# ---------------------------------------------------------------- numbers, duplicates, broken YAML


def test_exponent_numbers_are_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads 1e-3 (no dot, no exponent sign) as a string; the config parser reads it as
    the number, in a file and in key=value overrides, in es.params and in perturbation parameters."""
    path = tmp_path / "c.yaml"
    path.write_text("es:\n  algorithm: pgpe\n  params: {stdev_init: 5e-2, center_learning_rate: 1E-3}\n"
                    "env:\n  train_perturbation: {name: mass_scale, scale: 15e-1}\n")
    cfg = load_config(path, ["es.params.max_speed=2e-3", "train.obs_std_floor=1e-2"])
    params = cfg.es.params
    assert (params.stdev_init, params.center_learning_rate, params.max_speed) == (0.05, 0.001, 0.002)
    assert cfg.env.train_perturbation == {"name": "mass_scale", "scale": 1.5}
    assert cfg.train.obs_std_floor == 0.01
    assert parse_overrides(["a=1e3", "b=-2e+2", "c=1e", "d=e5", "e=1.5", "f=7"]) == [
        ("a", 1000.0), ("b", -200.0), ("c", "1e"), ("d", "e5"), ("e", 1.5), ("f", 7)]


def test_bad_es_param_fails_at_load_in_one_line_before_any_run_directory(tmp_path):
    """es.params.stdev_init=5e-2 trains; a non-number is one line naming it (not a TypeError)."""
    assert load_config(None, ["es.algorithm=pgpe", "es.params.stdev_init=5e-2"]).es.params.stdev_init == 0.05
    res, out = _train(tmp_path, "es.algorithm=pgpe", "es.params.stdev_init=abc")
    assert_one_line_error(res, "es.params.stdev_init", "'abc'")
    assert entries(out) == []


@pytest.mark.parametrize("text, where, named", [
    ("train:\n  generations: 2\ntrain:\n  eval_every: 1\n", "line 3, column 1", "'train' is given twice"),
    ("es:\n  params: {sigma: 0.1, sigma: 0.2}\n", "line 2, column 24", "'sigma' is given twice"),
    ("train: [1,\n  2\n", "line 3, column 1", "expected ',' or ']'"),
    ("train:\n\tgenerations: 2\n", "line 2, column 1", "'\\t' that cannot start any token"),
])
def test_duplicate_keys_and_malformed_yaml_name_line_and_column(tmp_path, text, where, named):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PlasticRLError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and where in message and named in message and "bad.yaml" in message
    res, out = _train(tmp_path, str(path))
    assert_one_line_error(res, where, "bad.yaml")
    assert entries(out) == []


def test_binary_file_is_one_line_with_its_position(tmp_path):
    path = tmp_path / "image.yaml"
    path.write_bytes(b"name: x\nseed: 1\n\x89PNG\x00\xff")
    res, out = _train(tmp_path, str(path))
    assert_one_line_error(res, "image.yaml", "line 3, column 1", "0x89 is not UTF-8")
    path.write_bytes(b"name: x\nseed: \x00\n")  # valid UTF-8, but not YAML text
    res, _ = _train(tmp_path, str(path))
    assert_one_line_error(res, "line 2, column 7", "'\\x00'")
    assert entries(out) == []


def test_yaml_never_builds_python_objects():
    with pytest.raises(PlasticRLError, match="line 1, column 4: could not determine a constructor"):
        load_yaml("a: !!python/object/apply:os.system ['true']", "t")


def test_recursive_and_exploding_aliases_are_refused():
    with pytest.raises(PlasticRLError, match="recursive"):
        load_yaml("a: &x [1, *x]", "t")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    with pytest.raises(PlasticRLError, match="more than 100000 values"):
        load_yaml(laughs, "t")


def test_config_without_policy_section_gets_the_default_policy(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {generations: 1}\n")
    cfg = load_config(path)
    assert cfg.policy == load_config(None, ["policy.kind=plastic_spiking"]).policy
    assert cfg.policy.kind == "plastic_spiking" and cfg.policy.plasticity.rule == "bcm"
    assert ExperimentConfig().policy.kind == "plastic_spiking"


# ---------------------------------------------------------------- run names


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute", "nested/dir", ".hidden", "a" * 101, "a" * 300,
                                  "sp ace", ""])
def test_unsafe_run_names_are_refused_before_any_directory(tmp_path, name):
    res, out = _train(tmp_path, f"name={name}")
    line = assert_one_line_error(res, "name", "at most 100 characters", "not starting with '.'")
    assert repr(name[:60]) in line
    assert entries(out) == [] and not (tmp_path / "escaped").exists()


def test_name_rule_boundaries():
    assert load_config(None, ["name=" + "a" * 100]).name == "a" * 100
    assert load_config(None, ["name=run_1.v-2"]).name == "run_1.v-2"
    for bad in ("a" * 101, "..", "a/b", "a\\b"):
        with pytest.raises(PlasticRLError, match="cannot name a directory"):
            load_config(None, [f"name={bad}"])


def test_experiment_name_and_labels_must_be_safe_names(tmp_path):
    from plasticrl.experiments.comparison import load_spec

    spec = tmp_path / "e.yaml"
    spec.write_text("name: ok\nenv: {id: HalfCheetah-v5}\nagents: {}\nbaselines: {'../up': {algo: ppo, steps: 1}}\n")
    with pytest.raises(PlasticRLError, match=r"agent label '\.\./up' cannot name a directory"):
        load_spec(spec)
    with pytest.raises(PlasticRLError, match=r"experiment name '/abs' cannot name a directory"):
        load_spec(spec, ["name=/abs", "baselines={}"])


# ---------------------------------------------------------------- non-finite numbers


@pytest.mark.parametrize("overrides, field", [
    (["train.obs_std_floor=.inf"], "train.obs_std_floor"),
    (["train.obs_clip=.nan"], "train.obs_clip"),
    (["train.init_noise=inf"], "train.init_noise"),  # a string pydantic would turn into inf
    (["policy.plasticity.eta_scale=.inf"], "policy.plasticity.eta_scale"),
    (["policy.neuron.tau_mem=nan"], "policy.neuron.tau_mem"),
    (["es.params.sigma=-.inf"], "es.params.sigma"),
    (["es.params.sigma=NaN"], "es.params.sigma"),
    (["env.train_perturbation={name: mass_scale, scale: .inf}"], "env.train_perturbation.scale"),
    (["trainer=ppo", "ppo.lr=.inf"], "ppo.lr"),
])
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, overrides, field):
    with pytest.raises(PlasticRLError, match=rf"{field}: .*finite") as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value)
    res, out = _train(tmp_path, *overrides)
    assert_one_line_error(res, field)
    assert entries(out) == []


def test_non_finite_numbers_are_refused_in_files_too(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("policy:\n  plasticity:\n    eta_scale: .inf\n")
    with pytest.raises(PlasticRLError, match=r"policy.plasticity.eta_scale: non-finite number inf"):
        load_config(path)


# ---------------------------------------------------------------- property tests

KEY_PART = st.text(string.ascii_letters + "_", min_size=1, max_size=8)
SAFE_TEXT = st.text(string.ascii_letters + string.digits + " _-", min_size=1, max_size=12)


@st.composite
def scalar_and_text(draw):
    """A value and a way a user might type it after ``key=``."""
    kind = draw(st.sampled_from(["int", "float", "exp", "bool", "str", "null"]))
    if kind == "int":
        value = draw(st.integers(-10**12, 10**12))
        return value, str(value)
    if kind == "float":
        # no subnormals: a library built with -ffast-math (imported by other tests) flushes them to 0
        value = draw(st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64))
        return value, repr(value) if "e" in repr(value) or "." in repr(value) else repr(value) + ".0"
    if kind == "exp":  # mantissa and exponent without a dot: the form YAML 1.1 misses
        mantissa, exponent = draw(st.integers(-999, 999)), draw(st.integers(-30, 30))
        text = f"{mantissa}{draw(st.sampled_from('eE'))}{exponent:+d}" if draw(st.booleans()) \
            else f"{mantissa}e{exponent}"
        return float(text), text
    if kind == "bool":
        value = draw(st.booleans())
        return value, draw(st.sampled_from(["true", "True"] if value else ["false", "False"]))
    if kind == "null":
        return None, "null"
    text = ("s" + draw(SAFE_TEXT)).strip()  # a leading letter keeps it a word (not a number, bool or null)
    return text, text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(KEY_PART, min_size=1, max_size=4), pair=scalar_and_text())
def test_overrides_parse_to_the_intended_value(parts, pair):
    value, text = pair
    key = ".".join(parts)
    [(got_key, got)] = parse_overrides([f"{key}={text}"])
    assert got_key == key
    assert got == value and type(got) is type(value)
    # and through the whole config: env.kwargs is free-form, so the value arrives unchanged
    cfg = load_config(None, [f"env.kwargs.{parts[-1]}={text}"])
    assert cfg.env.kwargs[parts[-1]] == value


KEYS = st.one_of(
    st.lists(st.sampled_from(["train", "generations", "es", "params", "policy", "kind", "name", "env", "kwargs",
                              "ppo", "seed", "sigma", "obs_clip", "plasticity", "eta_scale", "logging", "x", ""]),
             min_size=1, max_size=4).map(".".join),
    st.text(max_size=20),
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1e-3", ".inf", "-.nan", "[1, 2", "{a: 1, a: 2}", "!!python/name:os.system", "&a [*a]",
                     "2020-01-01", "!!binary aGk=", "{", "]", "- a\n- b", "? a", "0x1F", "1_000", "~", "'", "\x00",
                     "\ud7ff\x85", "*x", "!!set {a}", "!!omap [a: 1]", "1e999", "-1e400", "10" * 200]),
    st.integers().map(str),
    st.floats(allow_subnormal=False).map(repr),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_any_override_either_parses_or_is_a_plasticrl_error(items):
    """Whatever the keys and values, the parser answers with a config or a PlasticRLError, never
    another exception type (which the CLI would show as a traceback)."""
    try:
        cfg = load_config(None, [f"{k}={v}" for k, v in items])
    except PlasticRLError:
        return
    assert isinstance(cfg, ExperimentConfig)
    dumped = yaml.safe_dump(cfg.model_dump(mode="json"))  # a valid config is finite everywhere
    assert ".inf" not in dumped and ".nan" not in dumped


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob=st.one_of(st.binary(max_size=60), st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_file_content_either_loads_or_is_one_line(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(blob)
    try:
        load_config(path)
    except PlasticRLError as exc:  # YAML problems are one line; several bad keys are listed one per line
        assert "\n" not in str(exc) or str(exc).startswith(f"invalid config file {str(path)!r}:\n  ")


def test_one_validation_error_formatter_for_every_model():
    """Experiment, policy and PPO configs report pydantic errors the same way: one line per problem,
    the dotted key, the message and the value; unknown keys name the valid ones."""
    from plasticrl.agents import parse_policy_config
    from plasticrl.config import parse_ppo_config

    with pytest.raises(PlasticRLError) as policy_err:
        parse_policy_config({"kind": "linear", "hiden": 3})
    assert str(policy_err.value).startswith("invalid policy config: policy.hiden: Extra inputs")
    with pytest.raises(PlasticRLError) as ppo_err:
        parse_ppo_config({"num_envs": 8, "clip_range": 0.2})
    message = str(ppo_err.value)
    assert message.startswith("invalid ppo config: ppo.clip_range: unknown key; valid keys: ")
    assert "num_envs" in message and "\n" not in message
    with pytest.raises(PlasticRLError) as cfg_err:
        load_config(None, ["policy.kind=snn"])
    assert "policy: unknown kind 'snn'; valid choices:" in str(cfg_err.value)
    assert "\n" not in str(cfg_err.value)
