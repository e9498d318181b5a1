"""Name -> ES algorithm registry, for configs and the CLI."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from plasticrl.errors import PlasticRLError

from .base import ESAlgorithm
from .cma import CMAES, SepCMAES
from .openai_es import OpenAIES
from .pgpe import PGPE

__all__ = ["ALGORITHMS", "make_es", "es_names"]

ALGORITHMS: dict[str, type[ESAlgorithm[Any]]] = {
    OpenAIES.name: OpenAIES,
    PGPE.name: PGPE,
    CMAES.name: CMAES,
    SepCMAES.name: SepCMAES,
}


def es_names() -> list[str]:
    """Valid algorithm names, sorted."""
    return sorted(ALGORITHMS)


def make_es(name: str, dim: int, search: Tensor | Any | None = None, **params: Any) -> ESAlgorithm[Any]:
    """Build the ES called ``name`` over a ``dim``-long genome.

    ``params`` are its hyper-parameters as keywords, validated by the algorithm's model in
    :mod:`plasticrl.es.params` (``PGPEParams`` for ``pgpe``, see :data:`plasticrl.es.params.PARAMS`);
    omitted ones take the model's defaults. A validated model ``p`` passes as ``**dict(p)``, which
    is how a trainer builds the ES of a config's ``es`` section. Raises
    :class:`~plasticrl.errors.PlasticRLError` naming a bad key or value.

    >>> algo = make_es("pgpe", 10, population_size=32, center_learning_rate=0.05)
    """
    try:
        cls = ALGORITHMS[name]
    except (KeyError, TypeError):
        raise PlasticRLError(f"unknown ES algorithm {name!r}; valid names: {', '.join(es_names())}") from None
    return cls(dim, params, search=search)  # type: ignore[call-arg]
