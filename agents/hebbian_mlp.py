"""Hebbian MLP: the non-spiking random-weight Hebbian network of Najarro & Risi (2020).

Network per control step, no biases::

    x_0 = obs;  x_{l+1} = tanh(W_l x_l)      (every layer, the output too)
    action = mid + action_scale * half * x_L  (x_L in [-1, 1], scaled to the action bounds)

The default shape is ``obs -> 128 -> 64 -> act``. Every synapse of the plastic layers
(``plasticity.layers``: all by default) changes once per control step, after the env step, by
the configured rule with ``pre = x_l`` and ``post = x_{l+1}`` of that step's forward pass; for
the ABCD rule ``dW_ij = eta_ij * (A_ij x_j y_i + B_ij x_j + C_ij y_i + D_ij)`` with per-synapse
(or shared, ``plasticity.sharing``) coefficients, times the modulator when there is one
(``plasticity.modulation``: reward, reward-prediction error or modulatory neurons, as the
spiking policy). Then ``plasticity.bounds``: ``normalise`` divides each layer by its largest
magnitude (times ``weight_limit``: 1 gives the peers' ``W /= max|W|``), ``clip`` clips.

Differences from the peers' code: the output is squashed by ``tanh`` before it is scaled to
the action bounds and the rule's ``post`` of the output layer is that tanh (their PyBullet
runs do the same; their MuJoCo runs clip the linear output instead); ``eta = searched eta x
plasticity.eta_scale`` so that one ES step size suits all coefficients.

Kernels: ``kernel: fused`` runs ``act`` and ``learn`` as one numba call each
(:class:`plasticrl.agents.plastic_kernel.HebbianMLPFusedStep`, on the same torch state, equal to the
torch path to rounding); ``kernel: auto`` picks it on the CPU without autograd where it covers the
options (``self.kernel``, ``self.kernel_reason`` say what was picked and why).

Initial weights: ``initial_weights.kind: random`` (the peers' setting) draws them from
``U[-scale, scale]`` or ``N(0, scale^2)`` at every episode (or once per member) and keeps them
out of the genome; ``evolved`` searches them (``layers.{l}.w``, unit scale times a fixed
``1/sqrt(fan_in)``), the static network of the comparison when ``plasticity.rule: none``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import HebbianMLPConfig
from plasticrl.agents.initial_weights import EpisodeWeights, InitialWeightDraws
from plasticrl.genome import GenomeSpec, ParamGroup
from plasticrl.plasticity import (
    coefficient_shape,
    get_rule,
    modulatory_neurons,
)
from plasticrl.plasticity.synapse import SynapseSettings, SynapseState, global_modulator, synapse_step

if TYPE_CHECKING:
    from plasticrl.agents.plastic_kernel import KernelStep

#: Najarro & Risi (2020)'s Ant network (AntBulletEnv-v0: 28 observations, 8 actions): 28 -> 128 -> 64 -> 8
NAJARRO_ANT_SYNAPSES = 28 * 128 + 128 * 64 + 64 * 8
#: ... with A, B, C, D and eta per synapse: the number of parameters their ES searched
NAJARRO_ANT_SEARCHED = 5 * NAJARRO_ANT_SYNAPSES


@dataclass(eq=False, slots=True)
class HebbianEpisodeState:
    """The per-episode state of a :class:`HebbianMLPPolicy`, per row (``N`` rows); the control step
    replaces its tensors (fixed fields, mutable values)."""

    weights: list[torch.Tensor]
    """Fast weights, one ``[N, out, in]`` per layer (static layers keep their initial weights)"""
    pre: dict[int, torch.Tensor]
    """Per plastic layer ``l``: its input ``x_l`` ``[N, in]`` in the last ``act``"""
    post: dict[int, torch.Tensor]
    """Per plastic layer ``l``: its output ``x_{l+1}`` ``[N, out]`` in the last ``act``"""
    elig: dict[int, torch.Tensor]
    """Per plastic layer: eligibility trace ``[N, out, in]`` (empty without ``plasticity.eligibility_tau``)"""
    baseline: torch.Tensor | None
    """``[N]``: the RPE modulator's running reward estimate (None unless ``modulation: rpe``)"""


@dataclass(frozen=True)
class HebbianKernelConstants:
    """What a compiled kernel needs of the policy besides its genome and state, fixed at construction:
    the action affine map (mid, half range)."""

    action_mid: torch.Tensor
    action_half: torch.Tensor


@dataclass(frozen=True)
class HebbianKernelParameters:
    """The loaded parameters as the control step uses them, rebuilt at every ``load_genome``: each
    layer's initial weights (``[N, out, in]``; for random per-episode weights the current episodes'
    draws, None before the first reset), per plastic layer its rule coefficients (``eta`` already
    multiplied by ``plasticity.eta_scale``), and the modulator gain (None without one)."""

    initial_weights: list[torch.Tensor] | None
    coefficients: dict[int, dict[str, torch.Tensor]]
    modulator_gain: torch.Tensor | None


class HebbianMLPPolicy(EpisodeWeights, BatchedPolicy):
    """Population-batched Hebbian MLP (see module docstring); rows ``N = P * E``."""

    episode_state_type = HebbianEpisodeState

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float] | torch.Tensor,
        action_high: Sequence[float] | torch.Tensor,
        config: HebbianMLPConfig | Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        autograd: bool = False,
    ):
        """``autograd``: the policy will be differentiated, so ``kernel: auto`` picks torch."""
        if config is None:
            config = HebbianMLPConfig()
        elif isinstance(config, Mapping):
            config = HebbianMLPConfig.model_validate(dict(config))
        super().__init__(obs_dim, act_dim, action_low, action_high, device, dtype,
                         config.reward_input, config.reward_input_scale, config.context_unit)
        self.config = cfg = config
        # action_scale < 1 keeps saturated tanh outputs inside the bounds (and their control cost down)
        self._action_half = self._action_half * cfg.action_scale
        p = cfg.plasticity
        self.rule = None if p.rule == "none" else p.rule
        self.sizes = [self.input_dim, *cfg.hidden, act_dim]
        self.num_layers = len(self.sizes) - 1
        if self.rule is None:
            self.plastic_layers: list[int] = []
        elif p.layers == "all":
            self.plastic_layers = list(range(self.num_layers))
        elif p.layers == "hidden":
            self.plastic_layers = list(range(self.num_layers - 1))
        else:
            self.plastic_layers = [self.num_layers - 1]
        self.modulation = p.modulation if self.plastic_layers else "none"
        self._elig_keep = None if p.eligibility_tau is None else math.exp(-1.0 / p.eligibility_tau)
        self._synapse = SynapseSettings(self.rule or "none", p.bounds, p.weight_limit,
                                        eligibility_keep=self._elig_keep)
        shapes = list(zip(self.sizes[1:], self.sizes[:-1]))
        self._draws = (InitialWeightDraws(cfg.initial_weights, shapes, self.device, self.dtype)
                       if cfg.initial_weights.kind == "random" else None)
        self._genome = self._build_genome().select(cfg.genome.search, cfg.genome.fix)
        # kernel "fused": act/learn as one numba call each; "auto" picks it where it covers the policy
        from plasticrl.agents.plastic_kernel import HebbianMLPFusedStep, pick_kernel

        self.kernel, self.kernel_reason = pick_kernel(cfg, self.device, self._genome, autograd)
        self._fused = HebbianMLPFusedStep(self) if self.kernel == "fused" else None

    # -- genome ---------------------------------------------------------------------
    def _coefficient_names(self) -> tuple[str, ...]:
        return (*get_rule(self.rule).coefficients, "eta") if self.rule else ()

    def _build_genome(self) -> GenomeSpec:
        p = self.config.plasticity
        spec = get_rule(self.rule) if self.rule else None
        groups: list[ParamGroup] = []
        for l in range(self.num_layers):
            fan_in, fan_out = self.sizes[l], self.sizes[l + 1]
            if self._draws is None:
                # unit-scale searched weights times a fixed 1/sqrt(fan_in): one ES step size suits every layer
                groups.append(ParamGroup(f"layers.{l}.w", (fan_out, fan_in), "normal", 0.0, 1.0))
                groups.append(ParamGroup(f"layers.{l}.w_scale", (1, 1), "constant", 1.0 / math.sqrt(fan_in),
                                         searched=False))
            if l in self.plastic_layers:
                if p.sharing != "global":
                    shape = coefficient_shape(p.sharing, fan_out, fan_in)
                    for c in self._coefficient_names():
                        groups.append(_coefficient_group(f"layers.{l}.{c}", c, shape, spec))
                if self.modulation == "neurons":
                    n_mod = 1 if p.modulator_scope == "layer" else fan_out
                    groups.append(ParamGroup(f"layers.{l}.mod_w", (n_mod, fan_in + 1), "normal", 0.0, 0.1))
                    groups.append(ParamGroup(f"layers.{l}.mod_b", (n_mod,), "constant", 0.0))
        if self.plastic_layers and p.sharing == "global":
            for c in self._coefficient_names():
                groups.append(_coefficient_group(f"plasticity.{c}", c, (1, 1), spec))
        if self.modulation in ("reward", "rpe"):
            groups.append(ParamGroup("modulator.gain", (1,), "constant", 1.0, searched=False))
        return GenomeSpec(groups, seed=self.config.genome.seed)

    @property
    def genome(self) -> GenomeSpec:
        return self._genome

    @property
    def plastic_synapses(self) -> int:
        """Synapses of the plastic layers (each has its own coefficients with ``sharing: synapse``)."""
        return sum(self.sizes[l] * self.sizes[l + 1] for l in self.plastic_layers)

    def _coefficient_key(self, layer: int, coefficient: str) -> str:
        prefix = "plasticity" if self.config.plasticity.sharing == "global" else f"layers.{layer}"
        return f"{prefix}.{coefficient}"

    # -- parameters -----------------------------------------------------------------
    def _apply_genome(self, flat: torch.Tensor) -> None:
        if self._draws is not None and not self._draws.per_episode:
            draws = self._draws.draw(self._draws.member_draw_seeds(flat))
            self._member_draws = [w.repeat_interleave(self.episodes_per_member, dim=0) for w in draws]
        super()._apply_genome(flat)

    def _set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        if self._draws is None:
            self._w_init = [params[f"layers.{l}.w"] * params[f"layers.{l}.w_scale"] for l in range(self.num_layers)]
        elif not self._draws.per_episode:
            self._w_init = self._member_draws
        # per_episode draws: made in _reset, from each row's episode seed
        scale = self.config.plasticity.eta_scale
        self._coeffs: dict[int, dict[str, torch.Tensor]] = {}
        for l in self.plastic_layers:
            coeffs = {c: params[self._coefficient_key(l, c)] for c in self._coefficient_names()}
            coeffs["eta"] = coeffs["eta"] * scale
            self._coeffs[l] = coeffs
        self._mod_gain = params["modulator.gain"].reshape(-1) if "modulator.gain" in params else None
        self._mod_w = {l: params[f"layers.{l}.mod_w"] for l in self.plastic_layers if self.modulation == "neurons"}
        self._mod_b = {l: params[f"layers.{l}.mod_b"] for l in self.plastic_layers if self.modulation == "neurons"}
        if self._fused is not None:
            self._fused.set_parameters(params)

    # -- the public view a compiled kernel reads (plasticrl.agents.plastic_kernel) ------------------
    def kernel_constants(self) -> HebbianKernelConstants:
        """The constants of the control step (see :class:`HebbianKernelConstants`)."""
        return HebbianKernelConstants(self._action_mid, self._action_half)

    def kernel_parameters(self) -> HebbianKernelParameters:
        """The loaded parameters as the control step uses them (see :class:`HebbianKernelParameters`)."""
        initial = list(self._w_init) if hasattr(self, "_w_init") else None
        return HebbianKernelParameters(initial, self._coeffs, self._mod_gain)

    @property
    def live_state(self) -> HebbianEpisodeState:
        """The live per-row episode state the control step reads and writes in place (not a copy; see
        :class:`HebbianEpisodeState`). A kernel may replace its tensors by contiguous copies of the same
        values."""
        return self._state

    # -- episode state ----------------------------------------------------------------
    def _fresh_state(self) -> HebbianEpisodeState:
        N, dev, dt = self.num_rows, self.device, self.dtype
        zeros = lambda *shape: torch.zeros((N, *shape), device=dev, dtype=dt)  # noqa: E731
        return HebbianEpisodeState(
            weights=list(self._w_init),
            pre={l: zeros(self.sizes[l]) for l in self.plastic_layers},
            post={l: zeros(self.sizes[l + 1]) for l in self.plastic_layers},
            elig=({l: zeros(self.sizes[l + 1], self.sizes[l]) for l in self.plastic_layers}
                  if self._elig_keep is not None else {}),
            baseline=zeros() if self.modulation == "rpe" else None,
        )

    @property
    def uses_reward(self) -> bool:
        """Reward input, or plasticity gated by the reward, its prediction error or modulatory neurons."""
        return super().uses_reward or self.modulation != "none"

    # -- control step -----------------------------------------------------------------
    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused is not None:
            return self._fused.act(x)
        s = self._state
        for l, w in enumerate(s.weights):
            # [N, in] @ [N, in, out]: one batched GEMM on the transposed view (see plastic_spiking._matvec)
            y = torch.tanh(torch.bmm(x.unsqueeze(1), w.transpose(1, 2)).squeeze(1))
            if l in s.pre:
                s.pre[l] = x
                s.post[l] = y
            x = y
        return self._sanitize_actions(self._action_mid + self._action_half * x)

    def _learn(self, reward: torch.Tensor) -> None:
        """One control step of plasticity from the activity of the last ``act``."""
        p = self.config.plasticity
        # eta_scale 0 (the frozen twin): the weights stay exactly at their start; running the rule
        # would still apply the bound (normalise rescales every step)
        if not self.plastic_layers or p.eta_scale == 0:
            return
        if self._fused is not None:
            self._fused.learn(reward)
            return
        s = self._state
        m, s.baseline = global_modulator(self.modulation, reward, self._mod_gain, s.baseline, p.rpe_rate)
        for l in self.plastic_layers:
            pre = s.pre[l]
            m_l = modulatory_neurons(pre, reward, self._mod_w[l], self._mod_b[l]) if self.modulation == "neurons" else m
            layer = synapse_step(SynapseState(s.weights[l], pre, s.post[l], None, s.elig.get(l)),
                                 self._synapse, self._coeffs[l], m_l)
            s.weights[l] = self._guard_finite(layer.weights, l)
            if layer.eligibility is not None:
                s.elig[l] = layer.eligibility

    def kernel_step(self, obs: np.ndarray, actions: np.ndarray, reward: np.ndarray) -> KernelStep | None:
        """:meth:`BatchedPolicy.kernel_step`: the fused kernels' arguments (``kind "mlp"``: those of
        :func:`~plasticrl.agents.plastic_kernel.mlp_act_kernel` and ``learn_kernel``) with ``kernel: fused``,
        else ``None`` (also for a registered rule, whose numba block runs from Python; with ``reward_input``
        the caller writes the reward column). Random per-episode
        initial weights are drawn at the reset before this call; the arguments hold them (for the finite
        guard) until the next reset."""
        if self._fused is None or not self._fused.one_call_per_step:
            return None
        from plasticrl.agents.plastic_kernel import KernelStep

        scale = self._kernel_reward_input(reward)
        act, learn = self._fused.step_arguments(obs, actions, reward)
        # as _learn decides: a plastic layer and a learning rate scale above 0
        learn_on = bool(self.plastic_layers) and self.config.plasticity.eta_scale != 0
        return KernelStep("mlp", act, learn, learn_on, scale)

    def _guard_finite(self, w: torch.Tensor, layer: int) -> torch.Tensor:
        # a row whose rule diverged is marked invalid (ranked worst) and restarts from its initial weights
        bad = ~torch.isfinite(w.sum(dim=(1, 2)))
        if bool(bad.any()):
            self.invalid |= bad
            w = torch.where(bad.view(-1, 1, 1), self._w_init[layer], w)
        return w


def _coefficient_group(name: str, coefficient: str, shape: tuple[int, int], spec) -> ParamGroup:
    if coefficient == "eta":
        return ParamGroup(name, shape, "constant", spec.eta_init)
    return ParamGroup(name, shape, "normal", 0.0, spec.init_std)
