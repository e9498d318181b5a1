"""Name -> ES algorithm registry, for configs and the CLI."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from plasticrl.errors import PlasticRLError

from .base import ESAlgorithm, build_config
from .cma import CMAES, CMAESConfig, SepCMAES
from .openai_es import OpenAIES, OpenAIESConfig
from .pgpe import PGPE, PGPEConfig

__all__ = ["ALGORITHMS", "make_es", "es_names", "check_es_params"]

ALGORITHMS: dict[str, type[ESAlgorithm[Any]]] = {
    OpenAIES.name: OpenAIES,
    PGPE.name: PGPE,
    CMAES.name: CMAES,
    SepCMAES.name: SepCMAES,
}


#: hyper-parameter dataclass of each algorithm (validated without a genome: see check_es_params)
CONFIGS: dict[str, type[Any]] = {
    OpenAIES.name: OpenAIESConfig,
    PGPE.name: PGPEConfig,
    CMAES.name: CMAESConfig,
    SepCMAES.name: CMAESConfig,
}


def check_es_params(name: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`PlasticRLError` naming the key and value if ``params`` are not valid
    hyper-parameters of the ES called ``name`` (checks that need the genome size come later)."""
    config_type = CONFIGS.get(name)
    if config_type is None:
        raise PlasticRLError(f"unknown ES algorithm {name!r}; valid names: {', '.join(es_names())}")
    try:
        build_config(config_type, params, name)
    except PlasticRLError:
        raise
    except (TypeError, ValueError) as exc:  # e.g. a string where a number belongs
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise PlasticRLError(f"invalid es.params for {name} ({shown}): {exc}") from None


def es_names() -> list[str]:
    """Valid algorithm names, sorted."""
    return sorted(ALGORITHMS)


def make_es(name: str, dim: int, search: Tensor | Any | None = None, **config: Any) -> ESAlgorithm[Any]:
    """Build the ES called ``name`` over a ``dim``-long genome; ``config`` holds its hyper-parameters.

    >>> algo = make_es("pgpe", 10, population_size=32, center_learning_rate=0.05)
    """
    try:
        cls = ALGORITHMS[name]
    except (KeyError, TypeError):
        raise PlasticRLError(f"unknown ES algorithm {name!r}; valid names: {', '.join(es_names())}") from None
    return cls(dim, config, search=search)  # type: ignore[call-arg]
