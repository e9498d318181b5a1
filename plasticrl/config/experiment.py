"""Experiment configuration: one validated YAML document per run, with dotted overrides.

``load_config("configs/halfcheetah/bcm.yaml", ["es.population_size=128", "train.generations=50"])``
reads the file, applies the overrides (values parsed as YAML, so ``true``, ``1e-3`` and
``[64, 64]`` work), validates everything and returns an :class:`ExperimentConfig`. Unknown keys
and bad values raise :class:`~plasticrl.errors.PlasticRLError` naming the key, the value and,
where the field has a fixed set of values, the valid choices.

YAML is read by :func:`load_yaml`: a safe loader that reads ``1e-3`` as a number (as YAML 1.2
does; YAML 1.1 made it a string), refuses a key given twice in one mapping, and reports broken or
binary input as one line with its line and column. Non-finite numbers (``.inf``, ``nan``) are
refused in every field.
"""
from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plasticrl.agents.config import POLICY_KINDS, PolicyConfig
from plasticrl.errors import PlasticRLError, check_name, validation_error
from plasticrl.config.ppo import PPOConfig
from plasticrl.es.params import CMAESParams, OpenAIESParams, PGPEParams, SepCMAESParams

WANDB_MODES = ("offline", "online", "disabled")


def resolve_wandb_mode(mode: str | None) -> str:
    """The W&B mode of a run, an evaluation or a video: ``mode`` (a config's or a CLI option's), else
    ``$WANDB_MODE``, else ``offline`` (never needs a key or the network); W&B's old ``dryrun`` is
    ``offline``. Anything else is one :class:`PlasticRLError` naming the value, where it came from and
    the valid choices."""
    value = mode or os.environ.get("WANDB_MODE") or "offline"
    if value == "dryrun":
        value = "offline"
    if value not in WANDB_MODES:
        where = "" if mode else " (from $WANDB_MODE)"
        raise PlasticRLError(f"unknown wandb mode {value!r}{where}; valid choices: {', '.join(sorted(WANDB_MODES))}")
    return value


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads exponent numbers without a dot or exponent sign (``1e-3``,
    ``5e2``) as floats and refuses a mapping that repeats a key (YAML 1.1 keeps the last
    silently, so a typo'd second ``es:`` section would drop the first)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<' merges are meant to be overridden by the keys beside them
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it below
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"key {key!r} is given twice in the same mapping", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1's float needs a '.' and a signed exponent; YAML 1.2 (and Python) also read these.
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def load_yaml(text: str | bytes, source: str) -> Any:
    """Parse one YAML document safely (no Python objects are built); any problem becomes a
    one-line :class:`PlasticRLError` naming ``source`` and the line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, column = _line_column(text[:exc.start].decode("utf-8", "replace"), exc.start)
            raise PlasticRLError(f"{source}: line {line}, column {column}: byte 0x{text[exc.start]:02x} is not "
                                 "UTF-8 text (a config is a YAML text file)") from None
    try:
        value = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - _ConfigLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise PlasticRLError(f"{source}: {where}{problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character or other unreadable input
        line, column = _line_column(text, exc.position)
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise PlasticRLError(f"{source}: line {line}, column {column}: character {character!r} is not "
                             "allowed in YAML") from None
    except yaml.YAMLError as exc:
        raise PlasticRLError(f"{source}: {' '.join(str(exc).split())}") from None
    _check_size(value, source)
    return value


#: most values a config may expand to; aliases (``*a``) can nest a document into billions of them
_MAX_VALUES = 100_000


def _check_size(value: Any, source: str) -> None:
    """Refuse a document whose aliases make it recursive (``&a [*a]``) or expand it past
    :data:`_MAX_VALUES` values; everything that walks a config assumes a finite, small tree."""
    count = 0

    def visit(node: Any, ancestors: set[int]) -> None:
        nonlocal count
        count += 1
        if count > _MAX_VALUES:
            raise PlasticRLError(f"{source}: expands to more than {_MAX_VALUES} values (nested aliases?)")
        if isinstance(node, (dict, list)):
            if id(node) in ancestors:
                raise PlasticRLError(f"{source}: an alias refers to a mapping or list that contains it (recursive)")
            children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
            ancestors.add(id(node))
            for child in children:
                visit(child, ancestors)
            ancestors.discard(id(node))

    try:
        visit(value, set())
    except RecursionError:
        raise PlasticRLError(f"{source}: nested too deeply") from None


_NON_FINITE_WORD = re.compile(r"[-+]?\.?(inf|infinity|nan)", re.IGNORECASE)
#: sections whose values are read as numbers where a string spelling a non-finite one is refused up front
#: (es.params: a schedule or a stdev vector may stand where a number does, so the field's own error
#: would not say "finite")
_FREE_FORM = ("es.params", "ppo", "env.kwargs", "env.train_perturbation")


def check_finite(data: Any, path: str = "") -> None:
    """Raise naming the first field (dotted path) whose value is a non-finite number; inside the
    free-form sections (``es.params``, ``ppo``, ``env.kwargs``, ``env.train_perturbation``) a
    string spelling one (``inf``, ``nan``) counts too, as those values are read as numbers."""
    if isinstance(data, float) and not math.isfinite(data):
        raise PlasticRLError(f"{path or 'value'}: non-finite number {data!r}; give a finite number")
    if isinstance(data, str) and path.startswith(_FREE_FORM) and _NON_FINITE_WORD.fullmatch(data.strip()):
        raise PlasticRLError(f"{path}: non-finite number {data!r}; give a finite number")
    if isinstance(data, Mapping):
        for key, value in data.items():
            check_finite(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            check_finite(value, f"{path}[{i}]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EnvConfig(_Strict):
    id: str = "HalfCheetah-v5"
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Gymnasium keyword arguments of the task")
    max_episode_steps: Optional[int] = Field(None, gt=0, description="cap on control steps per episode")
    train_perturbation: Optional[Any] = Field(
        None, description="'train' (the env's domain-randomisation distribution, redrawn per row and generation), "
                          "'damage' (damage to limbs the novel suite leaves intact, redrawn likewise), "
                          "'front_legs_short' (Ant: intact or a front lower leg shortened), 'motor_failure' "
                          "(one motor dead from a step in [450, 550]) "
                          "or one perturbation (name, dict or list) applied to every training episode",
    )
    train_perturbation_draw: Literal["per_row", "shared"] = Field(
        "per_row", description="for the named distributions: 'per_row' draws a condition for every training episode "
                               "of every member; 'shared' draws episodes_per_member conditions per generation and "
                               "gives every member the same ones (common random numbers: members are ranked on "
                               "equal terms instead of on which condition each happened to draw; ES trainer only)",
    )
    train_episode_seeds: Literal["per_row", "shared"] = Field(
        "per_row", description="reset seeds of training episodes: 'per_row' gives row r (member m, episode e) "
                               "seed s + r; 'shared' gives every member the same episodes, seed s + e (common "
                               "random numbers: on tasks with a random goal per episode members are ranked on the "
                               "same goals, not on the goals each happened to draw; ES trainer only)",
    )
    physics_backend: Literal["auto", "batch", "threads", "compiled"] = Field(
        "auto", description="MuJoCo stepping: 'batch' (mujoco.batch, MuJoCo >= 4), 'threads' (mj_step per "
                            "instance on Python threads), 'compiled' (mj_step from a numba loop, GIL released; "
                            "lets the rollout run whole control steps compiled) or 'auto' (compiled with one "
                            "physics thread or where the task needs contact forces, else batch); same "
                            "trajectories either way",
    )


# The es section: ``algorithm`` picks the variant, ``params`` validates to that algorithm's typed
# hyper-parameters (plasticrl.es.params), so a bad value fails at load, before a run directory exists.
class OpenAIESConfig(_Strict):
    """``es`` section of OpenAI-ES."""

    algorithm: Literal["openai_es"] = Field("openai_es", description="the ES algorithm (picks the params model)")
    params: OpenAIESParams = Field(default_factory=OpenAIESParams, description="OpenAI-ES hyper-parameters")


class PGPEConfig(_Strict):
    """``es`` section of PGPE with ClipUp."""

    algorithm: Literal["pgpe"] = Field("pgpe", description="the ES algorithm (picks the params model)")
    params: PGPEParams = Field(default_factory=PGPEParams, description="PGPE hyper-parameters")


class CMAESConfig(_Strict):
    """``es`` section of CMA-ES."""

    algorithm: Literal["cma_es"] = Field("cma_es", description="the ES algorithm (picks the params model)")
    params: CMAESParams = Field(default_factory=CMAESParams, description="CMA-ES hyper-parameters")


class SepCMAESConfig(_Strict):
    """``es`` section of separable CMA-ES."""

    algorithm: Literal["sep_cma_es"] = Field("sep_cma_es", description="the ES algorithm (picks the params model)")
    params: SepCMAESParams = Field(default_factory=SepCMAESParams, description="sep-CMA-ES hyper-parameters")


#: the ``es`` section, one variant per algorithm, picked by ``algorithm`` (default ``openai_es``)
ESConfig = Annotated[Union[CMAESConfig, OpenAIESConfig, PGPEConfig, SepCMAESConfig],
                     Field(discriminator="algorithm")]
ES_SECTIONS: dict[str, type[BaseModel]] = {
    "cma_es": CMAESConfig, "openai_es": OpenAIESConfig, "pgpe": PGPEConfig, "sep_cma_es": SepCMAESConfig,
}
ES_ALGORITHMS = tuple(ES_SECTIONS)
DEFAULT_ES_ALGORITHM = "openai_es"


class TrainConfig(_Strict):
    generations: int = Field(100, ge=1)
    episodes_per_member: int = Field(1, ge=1)
    fitness: Literal["mean", "min"] = Field("mean", description="a member's fitness over its episodes: the mean "
                                                                 "return, or the worst episode's (risk-averse; "
                                                                 "give episodes_per_member > 1)")
    eval_every: int = Field(10, ge=1, description="evaluate the centre every k generations (and at the end)")
    eval_episodes: int = Field(5, ge=1)
    checkpoint_every: int = Field(5, ge=1)
    obs_norm: bool = True
    obs_clip: float = Field(5.0, gt=0)
    obs_std_floor: float = Field(0.0, ge=0, description="lower bound on the observation std the normaliser divides "
                                                        "by (raw units); > 0 keeps sensor noise on entries that "
                                                        "never varied in training from saturating the policy")
    max_env_steps: Optional[int] = Field(None, gt=0, description="stop once this many env steps were simulated")
    init_noise: float = Field(0.0, ge=0, description="std of noise added to the initial centre")
    init_agent: Optional[str] = Field(None, description="agent file whose genome and observation statistics "
                                                        "start the search (fine-tuning); same policy required")
    init_agent_inputs: Literal["same", "appended"] = Field(
        "same", description="same: the saved agent's observation is this task's; appended: it is a prefix of "
                            "this task's (e.g. goal_observed appends the goal), the new inputs start with weight 0")
    threads: int = Field(1, ge=1, description="population shards of a local ES rollout, each stepped end to end "
                                              "(physics, observations, policy, learning) on its own thread; results "
                                              "are the same bit for bit for any value; 1: one batched env whose "
                                              "physics uses every CPU")


class WandbConfig(_Strict):
    mode: Optional[Literal["offline", "online", "disabled"]] = Field(
        None, description="default: $WANDB_MODE, else offline"
    )
    project: str = "plasticrl"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    log_artifacts: bool = True


class LoggingConfig(_Strict):
    dir: str = "runs"
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    progress: bool = True


class DistributedConfig(_Strict):
    backend: Literal["local", "ray"] = "local"
    address: Optional[str] = Field(None, description="Ray cluster address; default: start a local Ray")
    workers: Optional[int] = Field(None, ge=1, description="Ray actors (shards); default: available CPUs")


class ExperimentConfig(_Strict):
    name: str = Field("experiment", description="run directories are <out>/<name>-<time>: letters, digits, "
                                                "'-', '_', '.', not starting with '.', at most 100 characters")
    seed: int = Field(0, ge=0)
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    torch_threads: int = Field(1, ge=1, description="intra-op threads for the policy (physics has its own)")
    env: EnvConfig = Field(default_factory=EnvConfig)
    policy: PolicyConfig = Field(default_factory=lambda: {"kind": "plastic_spiking"})  # type: ignore[assignment]
    es: ESConfig = Field(default_factory=OpenAIESConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    trainer: Literal["es", "ppo"] = Field("es", description="es: evolution strategies; ppo: recurrent PPO")
    ppo: Optional[PPOConfig] = Field(None, description="recurrent PPO hyper-parameters (trainer: ppo)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name("name", value)

    @model_validator(mode="after")
    def _member_options_need_es(self) -> "ExperimentConfig":
        if self.trainer != "es" and self.env.train_episode_seeds == "shared":
            raise ValueError(f"env.train_episode_seeds='shared' shares episodes among ES members; trainer "
                             f"{self.trainer!r} has none (valid choices there: per_row)")
        if self.trainer != "es" and self.env.train_perturbation_draw == "shared":
            raise ValueError(f"env.train_perturbation_draw='shared' shares conditions among ES members; trainer "
                             f"{self.trainer!r} has none (valid choices there: per_row)")
        if self.trainer != "es" and self.train.fitness == "min":
            raise ValueError(f"train.fitness='min' ranks ES members by their worst episode; trainer "
                             f"{self.trainer!r} has no members (valid choices there: mean)")
        initial = getattr(self.policy, "initial_weights", None)
        if self.trainer != "es" and initial is not None and initial.kind == "random":
            raise ValueError(f"policy.initial_weights.kind='random' draws the weights at every episode reset; "
                             f"trainer {self.trainer!r} replays sequences from snapshots and would redraw them "
                             "(valid choices there: evolved)")
        if self.policy.kind == "symmetric" and self.train.obs_norm:
            raise ValueError("policy.kind 'symmetric' normalises the observation itself, after the symmetry's "
                             "turn (policy.base_obs_norm); set train.obs_norm: false")
        if self.policy.kind == "symmetric" and self.policy.base is None and self.train.init_agent is None:
            raise ValueError("policy.kind 'symmetric' without policy.base takes the base from train.init_agent; "
                             "give one of them (e.g. train.init_agent: pretrained:ant-plastic)")
        if self.train.fitness == "min" and self.train.episodes_per_member < 2:
            raise ValueError("train.fitness='min' takes the worst of a member's episodes; with "
                             "train.episodes_per_member=1 it is the mean (give episodes_per_member >= 2)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_policy_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "policy" not in data:
            # pydantic does not validate defaults: without this the default would stay a plain dict
            data = {**data, "policy": {"kind": "plastic_spiking"}}
        if isinstance(data, dict) and isinstance(data.get("policy"), dict) and "kind" not in data["policy"]:
            data = {**data, "policy": {**data["policy"], "kind": "plastic_spiking"}}
        if isinstance(data, dict) and isinstance(data.get("es"), dict) and "algorithm" not in data["es"]:
            data = {**data, "es": {**data["es"], "algorithm": DEFAULT_ES_ALGORITHM}}
        return data

    def wandb_mode(self) -> str:
        """Config, else ``$WANDB_MODE``, else offline (:func:`resolve_wandb_mode`)."""
        return resolve_wandb_mode(self.logging.wandb.mode)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"]["c"] = value`` for ``dotted = "a.b.c"``, creating mappings on the way."""
    keys = dotted.split(".")
    if not all(keys):
        raise PlasticRLError(f"bad override key {dotted!r}: empty component")
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise PlasticRLError(f"override {dotted!r}: {'.'.join(keys[:i + 1])!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``[("a.b", 3), ("c", [1, 2])]`` (values parsed as YAML)."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise PlasticRLError(f"override {item!r} is not of the form key=value (e.g. train.generations=20)")
        key, raw = item.split("=", 1)
        value = load_yaml(raw, f"override {item!r}") if raw != "" else ""
        parsed.append((key.strip(), value))
    return parsed


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a raw mapping; errors list every bad key with its value (one line for one error)."""
    try:
        check_finite(data)
    except PlasticRLError as exc:
        raise PlasticRLError(f"invalid {source}: {exc}") from None
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc, source, union_tags=(*POLICY_KINDS, *ES_ALGORITHMS),
                               valid_keys=lambda parent: _valid_keys(data, parent)) from None


def _valid_keys(data: Mapping[str, Any], parent: list[str]) -> list[str]:
    """Field names of the config section at ``parent`` (for 'unknown key' messages)."""
    from plasticrl.agents.config import (
        HebbianMLPConfig,
        LinearConfig,
        MLPConfig,
        PlasticSpikingConfig,
        SymmetricConfig,
    )

    model: Any = ExperimentConfig
    node: Any = data
    for key in parent:
        node = node.get(key, {}) if isinstance(node, dict) else {}
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        if key == "policy" and model is ExperimentConfig:
            kind = node.get("kind", "plastic_spiking") if isinstance(node, dict) else "plastic_spiking"
            model = {"linear": LinearConfig, "mlp": MLPConfig, "hebbian_mlp": HebbianMLPConfig,
                     "symmetric": SymmetricConfig}.get(kind, PlasticSpikingConfig)
            continue
        if key == "es" and model is ExperimentConfig:
            algorithm = node.get("algorithm", DEFAULT_ES_ALGORITHM) if isinstance(node, dict) else None
            model = ES_SECTIONS.get(algorithm, OpenAIESConfig)  # type: ignore[arg-type]
            continue
        model = field.annotation
        optional = [arg for arg in get_args(model) if arg is not type(None)]
        if len(optional) == 1 and type(None) in get_args(model):  # Optional[Section] (ppo)
            model = optional[0]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(getattr(model, "model_fields", {}))


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML config (or start from defaults), apply ``key=value`` overrides, validate.

    ``path`` is a file or the name of a bundled config (``halfcheetah/bcm_modulated``; see
    :mod:`plasticrl.config.bundled`)."""
    from plasticrl.config.bundled import resolve_config

    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = resolve_config(path)
        loaded = load_yaml(path.read_bytes(), f"config file {str(path)!r}")
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict):
            raise PlasticRLError(f"config file {str(path)!r} must hold a mapping, not {type(loaded).__name__}")
        data = copy.deepcopy(loaded)
        source = f"config {str(path)!r}"
    for key, value in parse_overrides(overrides):
        set_dotted(data, key, value)
    return config_from_dict(data, source)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """JSON/YAML-safe dict of the fully resolved config (every default written out)."""
    return config.model_dump(mode="json")
