"""Registry of plasticity rules by name, with their coefficients and a common dispatch."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from plasticrl.errors import PlasticRLError, check_choice
from plasticrl.plasticity.bcm import bcm_update
from plasticrl.plasticity.hebbian import hebbian_abcd_update
from plasticrl.plasticity.oja import oja_update


@dataclass(frozen=True)
class RuleSpec:
    """What a rule needs from a genome: its coefficients (besides ``eta``) and their initial spread.

    ``eta_init`` is the searched, unit-scale learning rate; policies multiply it by their
    ``eta_scale`` so one ES step size suits weights and learning rates alike.
    """

    name: str
    coefficients: tuple[str, ...]
    init_std: float
    eta_init: float
    uses_threshold: bool


RULES: dict[str, RuleSpec] = {
    "hebbian_abcd": RuleSpec("hebbian_abcd", ("A", "B", "C", "D"), init_std=0.1, eta_init=1.0, uses_threshold=False),
    "oja": RuleSpec("oja", (), init_std=0.0, eta_init=1.0, uses_threshold=False),
    "bcm": RuleSpec("bcm", (), init_std=0.0, eta_init=1.0, uses_threshold=True),
}


#: Update functions of the rules added with :func:`register_rule`, by name.
_REGISTERED: dict[str, Callable[..., torch.Tensor]] = {}
#: Their numba blocks for the fused CPU kernel (``numba_update``), by name; a rule without one runs on torch.
_NUMBA_UPDATES: dict[str, Callable[..., None]] = {}


def register_rule(spec: RuleSpec, update: Callable[..., torch.Tensor],
                  numba_update: Callable[..., None] | None = None) -> None:
    """Add a plasticity rule, usable as ``policy.plasticity.rule: <spec.name>`` in this process.

    ``update(pre [N, in], post [N, out], weights [N, out, in], coefficients, modulator)`` returns the
    weight change ``[N, out, in]``; ``coefficients`` maps ``eta`` (already times ``eta_scale``) and each
    name in ``spec.coefficients`` (searched by ES, initial spread ``spec.init_std``) to tensors that
    broadcast against it; ``modulator`` is ``None``, ``[N]`` or ``[N, out]``
    (:func:`plasticrl.plasticity.modulation.modulate` applies it). BCM's threshold state is BCM's own.
    Re-registering the same name replaces the rule; a built-in name is refused. A saved agent that uses
    the rule loads after the rule is registered again (registration is per process, like any Python
    definition).

    Without ``numba_update`` the rule runs on the torch kernel only (``kernel: auto`` picks torch and says
    why). ``numba_update``, a ``numba.njit`` function, is the rule's block in the fused CPU kernel
    (``kernel: fused``, :mod:`plasticrl.agents.plastic_kernel`): once per plastic layer and control step
    it is called as ``numba_update(pre [N, in], post [N, out], weights [N, out, in], eta, coefficients,
    out [N, out, in])`` on numpy arrays of the policy's dtype and writes the rule's change, *without* the
    modulator, into ``out``; ``eta`` and each entry of the tuple ``coefficients`` (in
    ``spec.coefficients`` order) have the shape ``[N, out | 1, in | 1]`` of the sharing level and
    broadcast against ``out``. The fused kernel then multiplies the change by the modulator (reward or
    RPE, one per row) and applies the bounds and the finite guard, as the torch path does after
    ``update``; so ``update`` must scale its change by the modulator exactly as
    :func:`~plasticrl.plasticity.modulation.modulate` does. The rollout loop then runs ``act`` and
    ``learn`` as two calls per step rather than one compiled step (the block is a Python-level choice).
    """
    if spec.name in RULES and spec.name not in _REGISTERED:
        raise PlasticRLError(f"plasticity rule {spec.name!r} is built in; choose another name (built in: "
                             f"{', '.join(sorted(set(RULES) - set(_REGISTERED)))})")
    if spec.uses_threshold:
        raise PlasticRLError(f"plasticity rule {spec.name!r}: uses_threshold (the sliding threshold) is BCM's "
                             "state only; keep any state of a new rule in its coefficients")
    if spec.name == "none" or not callable(update):
        raise PlasticRLError(f"plasticity rule {spec.name!r} needs a name other than 'none' and a callable update")
    if numba_update is not None and getattr(numba_update, "py_func", None) is None:
        # a plain Python function would run per layer and step in the interpreter, slower than torch
        raise PlasticRLError(f"plasticity rule {spec.name!r}: numba_update must be a numba.njit function "
                             f"(got {type(numba_update).__name__}); or leave it out to run the rule on torch")
    RULES[spec.name] = spec
    _REGISTERED[spec.name] = update
    if numba_update is None:
        _NUMBA_UPDATES.pop(spec.name, None)
    else:
        _NUMBA_UPDATES[spec.name] = numba_update


def numba_update_of(name: str) -> Callable[..., None] | None:
    """The fused-kernel block ``numba_update`` registered with rule ``name``, or ``None`` (a built-in rule,
    whose blocks are the kernel's own, or a rule registered without one)."""
    return _NUMBA_UPDATES.get(name)


def get_rule(name: str) -> RuleSpec:
    """Look up a rule; an unknown name raises an error listing the valid ones."""
    check_choice("plasticity rule", name, RULES)
    return RULES[name]


def rule_delta(
    name: str,
    pre: torch.Tensor,
    post: torch.Tensor,
    weights: torch.Tensor,
    coefficients: Mapping[str, torch.Tensor | float],
    theta: torch.Tensor | None = None,
    modulator: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weight change of rule ``name``; ``coefficients`` holds ``eta`` and the rule's own names."""
    eta = coefficients["eta"]
    if name == "hebbian_abcd":
        c = coefficients
        return hebbian_abcd_update(pre, post, c["A"], c["B"], c["C"], c["D"], eta, modulator)
    if name == "oja":
        return oja_update(pre, post, weights, eta, modulator)
    if name == "bcm":
        if theta is None:
            raise ValueError("the bcm rule needs its threshold state 'theta' [N, out]")
        return bcm_update(pre, post, theta, eta, modulator)
    if name in _REGISTERED:
        return _REGISTERED[name](pre, post, weights, coefficients, modulator)
    get_rule(name)
    raise AssertionError("unreachable")
