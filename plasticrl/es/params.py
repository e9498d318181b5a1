"""Typed hyper-parameters of every ES: one frozen pydantic model per algorithm.

Each field carries its type, its bounds, its default and a description (the config reference in
the docs is generated from these models). A model validates once, wherever the hyper-parameters
come from: keyword arguments of :func:`plasticrl.es.make_es`, the ``config`` of an algorithm's
constructor, or the ``es.params`` section of an experiment config, where it is picked by
``es.algorithm``::

    >>> from plasticrl.es.params import PGPEParams
    >>> PGPEParams(population_size=32, center_learning_rate=0.05).max_speed_or_default
    0.1

Every problem is a ``ValueError`` naming the key and the value; a key that belongs to another
algorithm says which (``'stdev_init' belongs to pgpe``), so switching ``es.algorithm`` without
switching ``es.params`` fails with the foreign keys named. :func:`parse_params` turns the
pydantic error into one :class:`~plasticrl.errors.PlasticRLError` line.

Values that depend on the genome (CMA-ES's default population size, the length of a PGPE
``stdev_init`` vector) are checked when the algorithm is built for a genome.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from plasticrl.errors import PlasticRLError, validation_error

from .schedules import Schedule, as_schedule

__all__ = ["ESParams", "OpenAIESParams", "PGPEParams", "CMAESParams", "SepCMAESParams", "PARAMS",
           "ScheduleValue", "parse_params"]


def _schedule_to_plain(schedule: Schedule) -> float | dict[str, Any]:
    """A constant schedule as its number, any other as the mapping of its set fields (so a config
    written out reads as it was written: ``sigma: 0.02``, not a five-key mapping)."""
    if schedule.kind == "constant" and schedule.floor == 0.0 and schedule.steps is None and schedule.rate is None:
        return schedule.init
    return {k: v for k, v in schedule.to_dict().items() if v is not None}


#: a number (constant) or a :class:`~plasticrl.es.schedules.Schedule` mapping, validated into a Schedule
ScheduleValue = Annotated[Schedule, PlainSerializer(_schedule_to_plain)]

# Scalar fields are strict (a bool, a string or 8.0 where an integer belongs is refused, not coerced),
# and each description ends with the field's bounds, for the generated reference (tests/test_es_params.py
# checks that the two agree).


class ESParams(BaseModel):
    """Base of the per-algorithm hyper-parameter models: frozen, finite, no unknown keys.

    ``algorithm`` (a class attribute, not a field) is the name the model is registered under in
    ``PARAMS`` and ``plasticrl.es.ALGORITHMS``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    algorithm: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # One message for all unknown keys, naming the algorithm each foreign key belongs to:
        # pydantic's own would say "Extra inputs are not permitted" once per key.
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(unknown_keys_message(cls, unknown))
        return data


def unknown_keys_message(model: type[ESParams], unknown: list[Any]) -> str:
    """``unknown key(s) 'a', 'b', 'c' for NAME ('b', 'c' belong to OTHER); valid keys: ...``."""
    by_owners: dict[tuple[str, ...], list[str]] = {}
    for key in unknown:
        owners = tuple(sorted(name for name, other in PARAMS.items() if key in other.model_fields))
        if owners:
            by_owners.setdefault(owners, []).append(repr(key))
    foreign = [f"{', '.join(keys)} {'belongs' if len(keys) == 1 else 'belong'} to {', '.join(owners)}"
               for owners, keys in by_owners.items()]
    where = f" ({'; '.join(foreign)})" if foreign else ""
    return (f"unknown key(s) {', '.join(repr(k) for k in unknown)} for {model.algorithm}{where}; "
            f"valid keys: {', '.join(sorted(model.model_fields))}")


def _check_even(population_size: int, what: str) -> None:
    if population_size % 2:
        raise ValueError(f"population_size must be even for {what}; got {population_size} "
                         f"(use {population_size - 1} or {population_size + 1})")


class OpenAIESParams(ESParams):
    """OpenAI-ES (Salimans et al. 2017): antithetic Gaussian sampling, centred ranks, Adam, L2.

    ``sigma`` and ``learning_rate`` take a number (constant) or a schedule mapping, e.g.
    ``{init: 0.05, kind: exponential, rate: 0.999, floor: 0.01}`` (kinds: ``constant``, ``linear``
    with ``steps``, ``exponential`` with ``rate``; see ``plasticrl.es.Schedule``).
    """

    algorithm: ClassVar[str] = "openai_es"

    population_size: int = Field(64, strict=True, ge=2,
                                 description="members per generation (P); even when antithetic (>= 2)")
    sigma: ScheduleValue = Field(
        0.02, validate_default=True,
        description="std of the Gaussian perturbations: a number or a schedule; stays > 0 (a decaying "
                    "schedule needs floor > 0)")
    learning_rate: ScheduleValue = Field(
        0.01, validate_default=True, description="Adam step size on the centre: a number or a schedule (>= 0)")
    weight_decay: float = Field(
        0.0, strict=True, ge=0, description="coupled L2 pull of the searched genome towards 0; off by default "
                                            "because genomes also hold neuron constants (thresholds near 1) it "
                                            "would distort (>= 0)")
    antithetic: bool = Field(True, strict=True, description="mirrored sampling: each perturbation is also tried "
                                                            "with its sign flipped (halves the gradient noise)")
    adam_beta1: float = Field(0.9, strict=True, ge=0, lt=1,
                              description="Adam decay rate of the gradient mean (>= 0, < 1)")
    adam_beta2: float = Field(0.999, strict=True, ge=0, lt=1,
                              description="Adam decay rate of the squared-gradient mean (>= 0, < 1)")
    adam_eps: float = Field(1e-8, strict=True, gt=0, description="Adam denominator offset (> 0)")

    @field_validator("sigma", "learning_rate", mode="before")
    @classmethod
    def _schedule(cls, value: Any, info: ValidationInfo) -> Schedule:
        return as_schedule(value, str(info.field_name))

    @model_validator(mode="after")
    def _consistent(self) -> "OpenAIESParams":
        if self.antithetic:
            _check_even(self.population_size, "antithetic (symmetric) sampling")
        sigma = self.sigma
        if sigma.init <= 0 or (sigma.kind != "constant" and sigma.floor <= 0):
            # sigma divides the gradient estimate; it must stay strictly positive.
            raise ValueError(f"sigma must stay > 0: init > 0 and, for decaying schedules, floor > 0; "
                             f"got {sigma.to_dict()}")
        return self


class PGPEParams(ESParams):
    """PGPE (Sehnke et al. 2010) with the ClipUp optimiser (Toklu et al. 2020).

    Give the initial spread either as ``stdev_init`` (a number, or a vector over the searched
    dims) or as ``radius_init`` (``stdev = radius_init / sqrt(d)``, ClipUp's parametrisation), not
    both; with neither, ``stdev_init`` is 0.1.
    """

    algorithm: ClassVar[str] = "pgpe"

    population_size: int = Field(64, strict=True, ge=2,
                                 description="members per generation (P); even (symmetric pairs) (>= 2)")
    center_learning_rate: float = Field(0.075, strict=True, gt=0, description="ClipUp step size on the centre (> 0)")
    max_speed: Optional[float] = Field(
        None, strict=True, gt=0, description="ClipUp's cap on the centre's velocity norm; null: 2 x "
                                             "center_learning_rate (the ClipUp paper's rule of thumb) (> 0)")
    momentum: float = Field(0.9, strict=True, ge=0, lt=1, description="ClipUp heavy-ball momentum (>= 0, < 1)")
    stdev_init: Optional[Union[float, list[float]]] = Field(  # not strict: _stdev_init checks it
        None, description="initial per-dim std: a number, or a list with one value per searched dim, all finite "
                          "and > 0; null: 0.1 unless radius_init is given")
    radius_init: Optional[float] = Field(
        None, strict=True, gt=0, description="initial std as the norm of the std vector (stdev = radius_init / "
                                             "sqrt(d)); exclusive with stdev_init (> 0)")
    stdev_learning_rate: float = Field(0.1, strict=True, ge=0,
                                       description="step size of the std's gradient step (0: fixed std) (>= 0)")
    stdev_max_change: Optional[float] = Field(
        0.2, strict=True, gt=0, description="largest relative change of each std entry per generation; null: "
                                            "unbounded (> 0)")
    stdev_min: float = Field(1e-8, strict=True, gt=0,
                             description="lower clamp of every std entry (the std gradient divides by it) (> 0)")
    stdev_max: Optional[float] = Field(None, strict=True, gt=0,
                                       description="upper clamp of every std entry, >= stdev_min; null: none (> 0)")

    @field_validator("stdev_init", mode="before")
    @classmethod
    def _stdev_init(cls, value: Any) -> Any:
        if value is None:
            return None
        if hasattr(value, "tolist"):  # a tensor or an array, from Python code
            value = value.tolist()
        values = value if isinstance(value, (list, tuple)) else [value]
        ok = isinstance(value, (list, tuple, int, float)) and len(values) > 0 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values)
        if not ok:
            raise ValueError(f"stdev_init must be a number or a 1-D list of finite numbers > 0; got {value!r}")
        return list(value) if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _consistent(self) -> "PGPEParams":
        _check_even(self.population_size, "antithetic (symmetric) sampling")
        if self.stdev_init is not None and self.radius_init is not None:
            raise ValueError(f"give stdev_init or radius_init, not both; got stdev_init={self.stdev_init!r}, "
                             f"radius_init={self.radius_init!r}")
        if self.stdev_max is not None and self.stdev_max < self.stdev_min:
            raise ValueError(f"stdev_max must be >= stdev_min={self.stdev_min}; got {self.stdev_max!r}")
        return self

    @property
    def max_speed_or_default(self) -> float:
        """``max_speed``, or twice ``center_learning_rate`` when it is null."""
        return self.max_speed if self.max_speed is not None else 2.0 * self.center_learning_rate

    @property
    def stdev_init_or_default(self) -> float | list[float] | None:
        """``stdev_init``; 0.1 when neither it nor ``radius_init`` is given; None with ``radius_init``."""
        if self.stdev_init is None and self.radius_init is None:
            return 0.1
        return self.stdev_init


class SepCMAESParams(ESParams):
    """Separable CMA-ES (Ros & Hansen 2008; diagonal covariance) through the ``cmaes`` library."""

    algorithm: ClassVar[str] = "sep_cma_es"

    sigma: float = Field(0.1, strict=True, gt=0, description="initial global step size (> 0)")
    population_size: Optional[int] = Field(
        None, strict=True, ge=2, description="members per generation; null: the library's 4 + floor(3 ln d) over "
                                             "the d searched dims (>= 2)")


class CMAESParams(SepCMAESParams):
    """CMA-ES (Hansen 2016) through the ``cmaes`` library."""

    algorithm: ClassVar[str] = "cma_es"

    lr_adapt: bool = Field(False, strict=True, description="learning-rate adaptation (Nomura et al. 2023), for "
                                                           "noisy or multimodal problems")


#: algorithm name -> its hyper-parameter model
PARAMS: dict[str, type[ESParams]] = {
    model.algorithm: model for model in (OpenAIESParams, PGPEParams, CMAESParams, SepCMAESParams)
}


def parse_params(model: type[ESParams], params: ESParams | Mapping[str, Any] | None) -> Any:
    """``params`` as a ``model``: an instance passes through, a mapping is validated, None is the
    defaults. Raises a :class:`PlasticRLError` (one line per problem) naming the key and the value."""
    if params is None:
        return model()
    if type(params) is model:
        return params
    if isinstance(params, ESParams):
        raise PlasticRLError(f"{type(params).__name__} holds {params.algorithm} hyper-parameters; "
                             f"{model.algorithm} takes {model.__name__}")
    if not isinstance(params, Mapping):
        raise PlasticRLError(f"hyper-parameters of {model.algorithm} must be a {model.__name__}, a mapping or "
                             f"None; got {type(params).__name__}")
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise validation_error(exc, f"{model.algorithm} hyper-parameters") from None
