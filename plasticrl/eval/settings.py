"""The evaluation settings as one validated object: :class:`EvalSettings`.

``plasticrl eval``'s options, the ``eval:`` section of an experiment spec (which extends it with the
oracle's label and its own default seed), the demo and :func:`plasticrl.eval.evaluate.evaluate` all
take this one model, so a setting is defined, documented and checked in one place. A bad value is one
line naming it (:func:`eval_settings`), before anything loads, trains or writes.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plasticrl.errors import check_choice, validation_error
from plasticrl.rollouts.batch import DEFAULT_MAX_ROWS

#: suites of named conditions (``train`` is a distribution, not a list); ``morphology`` (Ant) and
#: ``motor_failure`` (locomotion) are the Hebbian meta-learning protocol's (see plasticrl.envs.suite)
EVAL_SUITES = ("nominal", "novel", "morphology", "motor_failure")
#: the default level of the bootstrap intervals (here rather than in :mod:`plasticrl.eval.stats`, which
#: loads scipy: the settings are read and checked before anything is evaluated)
CONFIDENCE = 0.95


class EvalSettings(BaseModel):
    """How agents are evaluated: which conditions, how many paired episodes from which seed, how the
    episodes are batched and summarised. Unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    suite: str = Field("novel", description="suite of conditions besides nominal: novel (held out, 3 "
                       "severities), nominal, morphology (Ant: shortened lower legs) or motor_failure (one dead "
                       "motor from step 500)")
    """Suite of conditions besides nominal."""
    episodes: int = Field(10, gt=0, description="paired episodes per condition (seeds seed .. seed+episodes-1, "
                          "the same in every condition)")
    """Paired episodes per condition."""
    seed: int = Field(0, description="first episode seed")
    """First episode seed."""
    only: tuple[str, ...] = Field((), description="glob patterns on condition names; nominal is always kept")
    """Glob patterns on condition names (nominal is always kept)."""
    window: int = Field(20, gt=0, description="window (steps) of the adaptation curves and of time to adapt")
    """Window (steps) of the adaptation curves and of time to adapt."""
    max_rows: int = Field(DEFAULT_MAX_ROWS, gt=0, description="most (condition x episode) rows stepped in one "
                          "engine batch")
    """Most (condition x episode) rows stepped in one engine batch."""
    confidence: float = Field(CONFIDENCE, gt=0, lt=1, description="level of the bootstrap intervals")
    """Level of the bootstrap intervals."""
    max_episode_steps: Optional[int] = Field(None, gt=0, description="episode length (default: the env's, or "
                                             "the one in the env keyword arguments)")
    """Episode length (default: the env's)."""
    frozen_twins: bool = Field(False, description="also evaluate each plastic agent with its learning rates set "
                               "to 0 (label NAME/frozen): what within-episode learning adds")
    """Also evaluate each plastic agent's frozen twin (``NAME/frozen``)."""
    obs_std_floor: Optional[float] = Field(None, description="replaces each plasticrl agent's floor on the "
                                           "observation std (raw units); recorded in the result")
    """Floor on the observation std of every plasticrl agent (raw units), replacing the trained one."""

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, value: str) -> str:
        # "train" is a distribution (ranges), not a list of named conditions, so it has no place here.
        return check_choice("suite", value, EVAL_SUITES)

    @field_validator("obs_std_floor")
    @classmethod
    def _non_negative_floor(cls, value: Optional[float]) -> Optional[float]:
        if value is not None and not value >= 0:
            raise ValueError(f"obs_std_floor must be >= 0 (raw observation units); got {value!r}")
        return value


def eval_settings(source: str = "eval settings", as_options: bool = False, **values: Any) -> EvalSettings:
    """:class:`EvalSettings` from keyword values; a bad value raises
    :class:`~plasticrl.errors.PlasticRLError` (``invalid SOURCE: key: message``, one line).
    ``as_options``: name a bad value by the command-line option that gave it (``--max-rows``)."""
    try:
        return EvalSettings(**values)
    except ValidationError as exc:
        name = (lambda loc: "--" + str(loc[0]).replace("_", "-")) if as_options else None
        raise validation_error(exc, source, name_location=name) from None
