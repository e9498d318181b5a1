"""Plastic spiking policy: encoder -> spiking layers with plastic synapses -> decoder.

Network per control step (K sub-steps of length ``dt``)::

    obs --encoder--> input current --LIF--> input spikes
        --W_0--> hidden LIF/ALIF (optional static recurrence) --W_1--> ... --W_L--> output
    output: leaky integrator read as actions (membrane decoding) or LIF spike counts (rate)

With ``synapse: stp`` every synapse fed by a *spiking* population is a Tsodyks-Markram
synapse (:mod:`plasticrl.snn.stp`, NEST ``tsodyks2_synapse`` convention): per layer a state
``[N, in]`` (one per presynaptic neuron, shared by its outgoing synapses) turns the presynaptic
spikes into ``spikes * efficacy`` before the matvec. That covers hidden->hidden and
hidden->output layers, and the first layer only with ``encoder.spiking: true``; with direct
current injection the first layer's input is a continuous current, not spikes, and stays
static. Static recurrent weights also stay without STP. The plasticity rules keep seeing the
raw presynaptic spikes. U, tau_rec and tau_fac are genome groups (``layers.{l}.stp_*``,
per presynaptic neuron, fixed unless searched, clamped to valid ranges when used); a reset
restores the state of a synapse that has not spiked (its first spike transmits U).

Fast weights ``W_l [N, out, in]`` start each episode at the member's initial weights (the
evolved genome groups ``layers.{l}.w``, or with ``initial_weights.kind: random`` a fresh random
draw per episode or per member, see :mod:`plasticrl.agents.initial_weights`) and change by the
configured rule in :meth:`learn`, once per control step, from pre/post spike
traces (traces low-pass the K sub-steps' spikes, so the rule sees rates in [0, 1]). For the
output layer with membrane decoding the postsynaptic activity is ``tanh(v)`` (it has no
spikes). Recurrent weights are searched but static.

With ``input_plasticity.rule: csdp`` the input layer ``W_0`` (encoder -> first hidden layer)
learns by online self-supervised CSDP instead (:mod:`plasticrl.plasticity.csdp_online`): each
control step also runs the first hidden layer on a negative (corrupted) observation from the
same starting state, and :meth:`learn` moves ``W_0`` by the contrastive signal of the two
streams' goodness; the neuromodulated rule keeps the later layers.

With ``reward_input: true`` the encoder's input is ``[obs, reward_input_scale * previous reward]``
(:class:`~plasticrl.agents.base.BatchedPolicy` keeps the reward): every input-sized group
(``encoder.*``, ``layers.0.w``, CSDP's negatives, the first layer's modulatory neurons) has one
more input, and the fused kernel runs it unchanged.

Everything is batched over rows ``N = P * E``; no Python loop runs over members.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from plasticrl.agents.base import BatchedPolicy
from plasticrl.agents.config import PlasticSpikingConfig
from plasticrl.agents.initial_weights import EpisodeWeights, InitialWeightDraws
from plasticrl.errors import PlasticRLError
from plasticrl.genome import GenomeSpec, ParamGroup
from plasticrl.plasticity import (
    bound_weights,
    coefficient_shape,
    get_rule,
    modulatory_neurons,
)
from plasticrl.plasticity.synapse import SynapseSettings, SynapseState, global_modulator, synapse_step
from plasticrl.plasticity.csdp_online import (
    derangement_bank,
    negative_observations,
    online_csdp_delta,
    push_history,
)
from plasticrl.snn import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    LIState,
    alif_initial_state,
    alif_step,
    direct_encode,
    gaussian_centres,
    lif_initial_state,
    lif_step,
    li_step,
    membrane_decode,
    population_encode,
    rate_decode,
)
from plasticrl.snn.stp import STPParameters, STPState, stp_initial_state, stp_retention, stp_step_retained

if TYPE_CHECKING:
    from plasticrl.agents.plastic_kernel import KernelStep

# Lower bounds applied to searched STP constants (seconds): keep exp(-dt/tau) finite and U > 0.
_STP_MIN_U = 1e-3
_STP_MIN_TAU_REC = 1e-4


def _matvec(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # [N, out, in] @ [N, in] as a row-vector product against the transposed view: BLAS runs
    # this as one batched GEMM with a transpose flag, ~7x faster on CPU than bmm(W, x[..., None]).
    return torch.bmm(x.unsqueeze(1), weights.transpose(1, 2)).squeeze(1)


def _rate_trace(trace: torch.Tensor, spikes: torch.Tensor, keep: float) -> torch.Tensor:
    # trace <- keep*trace + (1-keep)*spikes: a low-passed firing probability in [0, 1].
    return torch.lerp(trace, spikes, 1.0 - keep)


@dataclass(eq=False, slots=True)
class CSDPState:
    """Online CSDP's per-row state (``input_plasticity.rule: csdp``); ``N`` rows, ``n_in`` encoder
    outputs, ``h0`` neurons in the first hidden layer."""

    z: torch.Tensor
    """``[N, h0]``: first hidden layer's spike trace in the positive (real observation) stream"""
    z_neg: torch.Tensor
    """``[N, h0]``: the same trace in the negative stream of the last step"""
    pre: torch.Tensor
    """``[N, n_in]``: presynaptic activity of the positive stream (the input trace, or the current)"""
    pre_neg: torch.Tensor
    """``[N, n_in]``: presynaptic activity of the negative stream"""
    pre_trace: torch.Tensor
    """``[N, n_in]``: input spike trace (spiking encoder)"""
    valid: torch.Tensor
    """``[N]`` bool: whether the row had a negative this step (lagged negatives need ``lag`` steps)"""
    step: torch.Tensor
    """``[N]`` int64: control steps since the episode start"""
    history: torch.Tensor | None
    """``[N, lag, input_dim]``: the last observations, for lagged negatives (None otherwise)"""


@dataclass(eq=False, slots=True)
class SpikingEpisodeState:
    """The per-episode state of a :class:`PlasticSpikingPolicy`, per row (``N`` rows; layer ``l`` maps
    ``in = sizes[l]`` to ``out = sizes[l+1]`` neurons); the control step replaces its tensors (fixed
    fields, mutable values)."""

    input: LIFState
    """Input LIF neurons ``[N, sizes[0]]`` (they run only with ``encoder.spiking``)"""
    hidden: list[LIFState | ALIFState]
    """Per hidden layer, its LIF or ALIF neurons ``[N, out]``"""
    hidden_spikes: list[torch.Tensor]
    """Per hidden layer, its last sub-step's spikes ``[N, out]``, the recurrent input (``recurrent``)"""
    output: LIState | LIFState
    """Output neurons ``[N, act_dim]``: a leaky integrator (membrane decoding) or LIF (rate decoding)"""
    weights: list[torch.Tensor]
    """Fast weights, one ``[N, out, in]`` per layer (static layers keep their initial weights)"""
    pre: dict[int, torch.Tensor]
    """Per plastic layer ``l``: presynaptic trace ``[N, in]``"""
    post: dict[int, torch.Tensor]
    """Per plastic layer ``l``: postsynaptic trace ``[N, out]`` (``tanh(v)`` for a membrane output)"""
    theta: dict[int, torch.Tensor]
    """Per plastic layer: BCM sliding threshold ``[N, out]`` (empty unless ``plasticity.rule: bcm``)"""
    elig: dict[int, torch.Tensor]
    """Per plastic layer: eligibility trace ``[N, out, in]`` (empty without ``plasticity.eligibility_tau``)"""
    baseline: torch.Tensor | None
    """``[N]``: the RPE modulator's running reward estimate (None unless ``modulation: rpe``)"""
    stp: dict[int, STPState]
    """Per STP layer ``l``: Tsodyks-Markram state ``[N, in]`` (empty unless ``synapse: stp``)"""
    csdp: CSDPState | None = None
    """Online CSDP's state (None unless ``input_plasticity.rule: csdp``)"""


@dataclass(frozen=True)
class KernelConstants:
    """What a compiled kernel needs of the policy besides its genome and state, fixed at construction:
    the per-substep decay of the pre/post traces, the per-control-step decay of the BCM thresholds, the
    action affine map (mid, half range) and the population encoder's centres and width."""

    keep_pre: float
    keep_post: float
    theta_keep: float
    action_mid: torch.Tensor
    action_half: torch.Tensor
    centres: torch.Tensor | None
    sigma: float | None


@dataclass(frozen=True)
class KernelParameters:
    """The policy's parameters as the control step uses them, rebuilt at every ``load_genome``:
    encoder gain and bias, each layer's initial weights (``[N, out, in]``; for random initial
    weights the current episodes' draws), per plastic layer its rule coefficients (``eta`` already
    multiplied by ``plasticity.eta_scale``), and the modulator gain (None without one)."""

    encoder_gain: torch.Tensor
    encoder_bias: torch.Tensor
    initial_weights: list[torch.Tensor] | None  # None: random per-episode weights not drawn yet (before a reset)
    coefficients: dict[int, dict[str, torch.Tensor]]
    modulator_gain: torch.Tensor | None


class PlasticSpikingPolicy(EpisodeWeights, BatchedPolicy):
    """Population-batched plastic spiking controller (see module docstring)."""

    episode_state_type = SpikingEpisodeState

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Sequence[float] | torch.Tensor,
        action_high: Sequence[float] | torch.Tensor,
        config: PlasticSpikingConfig | Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        autograd: bool = False,
    ):
        """``autograd``: the policy will be differentiated (BPTT); ``kernel: auto`` then picks torch."""
        if config is None:
            config = PlasticSpikingConfig()
        elif isinstance(config, Mapping):
            config = PlasticSpikingConfig.model_validate(dict(config))
        super().__init__(obs_dim, act_dim, action_low, action_high, device, dtype,
                         config.reward_input, config.reward_input_scale, config.context_unit)
        self.config = cfg = config
        self.rule = None if cfg.plasticity.rule == "none" else cfg.plasticity.rule
        if self.rule is not None:
            get_rule(self.rule)
        self.csdp = cfg.input_plasticity.rule == "csdp"
        if self.csdp and not cfg.hidden:
            raise PlasticRLError("input_plasticity.rule 'csdp' needs at least one hidden layer (policy.hidden)")
        # the encoder sees the whole input: the observation, then the reward input if any
        n_in = self.input_dim * cfg.encoder.centres if cfg.encoder.kind == "population" else self.input_dim
        self.sizes = [n_in, *cfg.hidden, act_dim]
        self.num_layers = len(self.sizes) - 1
        self.output_layer = self.num_layers - 1
        self.plastic_layers = self._choose_plastic_layers()
        self.stp_layers = self._choose_stp_layers()
        self.modulation = cfg.plasticity.modulation if self.plastic_layers else "none"
        self.K = cfg.substeps
        self.dt = cfg.dt
        control_dt = cfg.dt * cfg.substeps
        self._keep_pre = math.exp(-cfg.dt / cfg.plasticity.tau_pre)
        self._keep_post = math.exp(-cfg.dt / cfg.plasticity.tau_post)
        self._theta_keep = math.exp(-control_dt / cfg.plasticity.tau_theta)
        tau_e = cfg.plasticity.eligibility_tau
        self._elig_keep = None if tau_e is None else math.exp(-control_dt / tau_e)
        self._synapse = SynapseSettings(self.rule or "none", cfg.plasticity.bounds, cfg.plasticity.weight_limit,
                                        self._theta_keep, self._elig_keep)
        if cfg.encoder.kind == "population":
            self._centres = gaussian_centres(cfg.encoder.low, cfg.encoder.high, cfg.encoder.centres,
                                             device=self.device, dtype=self.dtype)
            spacing = (cfg.encoder.high - cfg.encoder.low) / (cfg.encoder.centres - 1)
            self._sigma = cfg.encoder.sigma or spacing
        n = cfg.neuron
        self._input_params = LIFParameters(tau_mem=n.tau_mem, v_th=n.v_th, reset=n.reset,
                                           refractory=n.refractory, surrogate_slope=n.surrogate_slope)
        if self.csdp:
            ip = cfg.input_plasticity
            self._csdp_keep = math.exp(-cfg.dt / ip.tau_trace)
            self._csdp_bank = (derangement_bank(self.input_dim, ip.permutations, ip.seed).to(self.device)
                               if ip.negatives == "permute" else None)
        # initial_weights "random": the weights are drawn per row, not searched (no layers.{l}.w groups)
        self._draws = (InitialWeightDraws(cfg.initial_weights, list(zip(self.sizes[1:], self.sizes[:-1])),
                                          self.device, self.dtype)
                       if cfg.initial_weights.kind == "random" else None)
        self._genome = self._build_genome().select(cfg.genome.search, cfg.genome.fix)
        if self._draws is not None and self._genome.dim == 0:
            raise PlasticRLError("initial_weights.kind 'random' leaves nothing to search here (no plasticity rule, "
                                 "every other group fixed); give plasticity.rule or search a group (genome.search)")
        # kernel "fused": act/learn run as one numba call each (plasticrl.agents.plastic_kernel);
        # options it does not cover, or a missing numba, are rejected here; "auto" picks it where
        # it covers the policy (self.kernel and self.kernel_reason say what was picked and why)
        from plasticrl.agents.plastic_kernel import FusedStep, pick_kernel

        self.kernel, self.kernel_reason = pick_kernel(cfg, self.device, self._genome, autograd)
        self._fused = FusedStep(self) if self.kernel == "fused" else None

    # -- structure ------------------------------------------------------------------
    def _choose_plastic_layers(self) -> list[int]:
        """Layers of the neuromodulated rule; the input layer is CSDP's when that is on."""
        if self.rule is None:
            return []
        which = self.config.plasticity.layers
        if which == "all":
            layers = list(range(self.num_layers))
        elif which == "hidden":
            layers = list(range(self.num_layers - 1))
        else:
            layers = [self.output_layer]
        return [l for l in layers if not (self.csdp and l == 0)]

    def _choose_stp_layers(self) -> list[int]:
        # STP acts on presynaptic spikes: layer 0 only has them when the encoder spikes.
        if self.config.synapse != "stp":
            return []
        first = 0 if self.config.encoder.spiking else 1
        return list(range(first, self.num_layers))

    def _coefficient_names(self) -> tuple[str, ...]:
        return (*get_rule(self.rule).coefficients, "eta") if self.rule else ()

    def _build_genome(self) -> GenomeSpec:
        cfg = self.config
        p = cfg.plasticity
        n_in = self.sizes[0]
        groups = [
            ParamGroup("encoder.gain", (n_in,), "constant", cfg.encoder.gain),
            ParamGroup("encoder.bias", (n_in,), "constant", cfg.encoder.bias),
        ]
        spec = get_rule(self.rule) if self.rule else None
        for l in range(self.num_layers):
            fan_in, fan_out = self.sizes[l], self.sizes[l + 1]
            # Searched weights are unit-scale (effective W = w * w_scale) so that one ES step
            # size suits every layer; the fan-in scaling lives in the fixed w_scale.
            if l == self.output_layer:
                gain = cfg.output_init_gain
            elif l == 0 and not cfg.encoder.spiking:
                gain = cfg.input_init_gain
            else:
                gain = cfg.weight_init_gain
            zero = l == self.output_layer and cfg.zero_output_init
            if self._draws is None:
                groups.append(ParamGroup(f"layers.{l}.w", (fan_out, fan_in), "constant" if zero else "normal",
                                         0.0, 1.0))
                groups.append(ParamGroup(f"layers.{l}.w_scale", (1, 1), "constant", gain / math.sqrt(fan_in),
                                         searched=False))
            if l < self.output_layer:
                if cfg.recurrent:
                    groups.append(ParamGroup(f"layers.{l}.w_rec", (fan_out, fan_out), "normal", 0.0,
                                             0.5 / math.sqrt(fan_out)))
                groups.append(ParamGroup(f"layers.{l}.tau_mem", (1,), "constant", cfg.neuron.tau_mem, searched=False))
                groups.append(ParamGroup(f"layers.{l}.v_th", (1,), "constant", cfg.neuron.v_th, searched=False))
            if l in self.stp_layers:
                stp = cfg.stp
                for name, value in (("U", stp.U), ("tau_rec", stp.tau_rec), ("tau_fac", stp.tau_fac)):
                    groups.append(ParamGroup(f"layers.{l}.stp_{name}", (fan_in,), "constant", value, searched=False))
            if l in self.plastic_layers:
                if p.sharing != "global":
                    shape = coefficient_shape(p.sharing, fan_out, fan_in)
                    for c in self._coefficient_names():
                        groups.append(self._coefficient_group(f"layers.{l}.{c}", c, shape, spec))
                if self.modulation == "neurons":
                    n_mod = 1 if p.modulator_scope == "layer" else fan_out
                    groups.append(ParamGroup(f"layers.{l}.mod_w", (n_mod, fan_in + 1), "normal", 0.0, 0.1))
                    groups.append(ParamGroup(f"layers.{l}.mod_b", (n_mod,), "constant", 0.0))
        if self.csdp:
            # eta: unit scale like the other rules' learning rates, searched by default (ES can
            # turn the rule down or off); theta: per hidden neuron, fixed unless searched.
            groups.append(ParamGroup("layers.0.csdp_eta", (1,), "constant", 1.0))
            groups.append(ParamGroup("layers.0.csdp_theta", (1,), "constant", cfg.input_plasticity.threshold,
                                     searched=False))
        if self.plastic_layers and p.sharing == "global":
            for c in self._coefficient_names():
                groups.append(self._coefficient_group(f"plasticity.{c}", c, (1, 1), spec))
        if self.modulation in ("reward", "rpe"):
            groups.append(ParamGroup("modulator.gain", (1,), "constant", 1.0, searched=False))
        groups.append(ParamGroup("decoder.tau_mem", (1,), "constant", cfg.decoder.tau_mem, searched=False))
        return GenomeSpec(groups, seed=cfg.genome.seed)

    @staticmethod
    def _coefficient_group(name: str, coefficient: str, shape: tuple[int, int], spec) -> ParamGroup:
        if coefficient == "eta":
            return ParamGroup(name, shape, "constant", spec.eta_init)
        return ParamGroup(name, shape, "normal", 0.0, spec.init_std)

    @property
    def genome(self) -> GenomeSpec:
        return self._genome

    def _coefficient_key(self, layer: int, coefficient: str) -> str:
        prefix = "plasticity" if self.config.plasticity.sharing == "global" else f"layers.{layer}"
        return f"{prefix}.{coefficient}"

    # -- parameters -----------------------------------------------------------------
    def _apply_genome(self, flat: torch.Tensor) -> None:
        if self._draws is not None and not self._draws.per_episode:
            # per_member: one draw per member, repeated over its episodes
            draws = self._draws.draw(self._draws.member_draw_seeds(flat))
            self._member_draws = [w.repeat_interleave(self.episodes_per_member, dim=0) for w in draws]
        super()._apply_genome(flat)

    def _constant(self, name: str, value: torch.Tensor) -> float | torch.Tensor:
        # Fixed neuron constants stay Python floats: it keeps the sub-step loop free of
        # broadcasting work that would be identical for every row.
        group = next(g for g in self.genome.groups if g.name == name)
        if not group.searched and not value.requires_grad:
            return float(value.reshape(-1)[0])
        return value.reshape(value.shape[0], 1)

    def _set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        n = cfg.neuron
        self._enc_gain = params["encoder.gain"]
        self._enc_bias = params["encoder.bias"]
        if self._draws is None:
            self._w_init = [params[f"layers.{l}.w"] * params[f"layers.{l}.w_scale"] for l in range(self.num_layers)]
        elif not self._draws.per_episode:
            self._w_init = self._member_draws
        # per_episode draws: made in _reset, from each row's episode seed
        self._w_rec = [params[f"layers.{l}.w_rec"] for l in range(self.output_layer)] if cfg.recurrent else []
        self._hidden_params = []
        for l in range(self.output_layer):
            tau = self._constant(f"layers.{l}.tau_mem", params[f"layers.{l}.tau_mem"])
            v_th = self._constant(f"layers.{l}.v_th", params[f"layers.{l}.v_th"])
            if isinstance(tau, torch.Tensor):
                tau = tau.clamp_min(1e-4)
            if isinstance(v_th, torch.Tensor):
                v_th = v_th.clamp_min(1e-3)
            if n.model == "alif":
                self._hidden_params.append(ALIFParameters(tau, v_th, n.tau_adapt, n.beta_adapt, n.reset,
                                                          n.refractory, n.surrogate_slope))
            else:
                self._hidden_params.append(LIFParameters(tau, v_th, n.reset, n.refractory, n.surrogate_slope))
        tau_dec = self._constant("decoder.tau_mem", params["decoder.tau_mem"])
        self._decoder_tau = tau_dec.clamp_min(1e-4) if isinstance(tau_dec, torch.Tensor) else tau_dec
        self._output_params = LIFParameters(self._decoder_tau, n.v_th, n.reset, n.refractory, n.surrogate_slope)
        self._coeffs: dict[int, dict[str, torch.Tensor]] = {}
        for l in self.plastic_layers:
            self._coeffs[l] = {c: params[self._coefficient_key(l, c)] for c in self._coefficient_names()}
            if "eta" in self._coeffs[l]:
                self._coeffs[l]["eta"] = self._coeffs[l]["eta"] * cfg.plasticity.eta_scale
        self._stp_params = {
            l: STPParameters(
                U=params[f"layers.{l}.stp_U"].clamp(_STP_MIN_U, 1.0),
                tau_rec=params[f"layers.{l}.stp_tau_rec"].clamp_min(_STP_MIN_TAU_REC),
                tau_fac=params[f"layers.{l}.stp_tau_fac"].clamp_min(0.0),
            )
            for l in self.stp_layers
        }
        # retentions exp(-dt/tau) once per load, not per sub-step
        self._stp_keep = {l: stp_retention(q, self.dt) for l, q in self._stp_params.items()}
        if self.csdp:
            ip = cfg.input_plasticity
            eta = self._constant("layers.0.csdp_eta", params["layers.0.csdp_eta"])
            theta = self._constant("layers.0.csdp_theta", params["layers.0.csdp_theta"])
            # a negative eta would turn CSDP into its opposite; a negative threshold is meaningless
            self._csdp_eta = (eta.clamp_min(0.0) if isinstance(eta, torch.Tensor) else max(eta, 0.0)) * ip.eta_scale
            theta = theta.clamp_min(0.0) if isinstance(theta, torch.Tensor) else max(theta, 0.0)
            self._csdp_theta = theta * self.sizes[1]
        self._mod_gain = params["modulator.gain"].reshape(-1) if "modulator.gain" in params else None
        self._mod_w = {l: params[f"layers.{l}.mod_w"] for l in self.plastic_layers if self.modulation == "neurons"}
        self._mod_b = {l: params[f"layers.{l}.mod_b"] for l in self.plastic_layers if self.modulation == "neurons"}
        if self._fused is not None:
            self._fused.set_parameters(params)

    # -- episode state ----------------------------------------------------------------
    def _fresh_state(self) -> SpikingEpisodeState:
        N, dev, dt = self.num_rows, self.device, self.dtype
        zeros = lambda *shape: torch.zeros((N, *shape), device=dev, dtype=dt)  # noqa: E731
        new_hidden = alif_initial_state if self.config.neuron.model == "alif" else lif_initial_state
        csdp = None
        if self.csdp:
            ip = self.config.input_plasticity
            n_in, h0 = self.sizes[0], self.sizes[1]
            csdp = CSDPState(
                z=zeros(h0), z_neg=zeros(h0), pre=zeros(n_in), pre_neg=zeros(n_in), pre_trace=zeros(n_in),
                valid=torch.zeros(N, dtype=torch.bool, device=dev),
                step=torch.zeros(N, dtype=torch.long, device=dev),
                history=zeros(ip.lag, self.input_dim) if ip.negatives == "lagged" else None,
            )
        return SpikingEpisodeState(
            input=lif_initial_state((N, self.sizes[0]), dev, dt),
            hidden=[new_hidden((N, h), dev, dt) for h in self.sizes[1:-1]],
            hidden_spikes=[zeros(h) for h in self.sizes[1:-1]],
            output=(LIState(zeros(self.act_dim)) if self.config.decoder.kind == "membrane"
                    else lif_initial_state((N, self.act_dim), dev, dt)),
            pre={l: zeros(self.sizes[l]) for l in self.plastic_layers},
            post={l: zeros(self.sizes[l + 1]) for l in self.plastic_layers},
            weights=[w for w in self._w_init],
            theta={l: zeros(self.sizes[l + 1]) for l in self.plastic_layers if self.rule == "bcm"},
            elig=({l: zeros(self.sizes[l + 1], self.sizes[l]) for l in self.plastic_layers}
                  if self._elig_keep is not None else {}),
            baseline=zeros() if self.modulation == "rpe" else None,
            stp={l: stp_initial_state((N, self.sizes[l]), U=self._stp_params[l].U, device=dev, dtype=dt)
                 for l in self.stp_layers},
            csdp=csdp,
        )

    # -- the public view a compiled kernel reads (plasticrl.agents.plastic_kernel) ------------------
    def kernel_constants(self) -> KernelConstants:
        """The constants of the control step (see :class:`KernelConstants`)."""
        population = self.config.encoder.kind == "population"
        return KernelConstants(self._keep_pre, self._keep_post, self._theta_keep, self._action_mid,
                               self._action_half, self._centres if population else None,
                               float(self._sigma) if population else None)

    def kernel_parameters(self) -> KernelParameters:
        """The loaded parameters as the control step uses them (see :class:`KernelParameters`)."""
        initial = list(self._w_init) if hasattr(self, "_w_init") else None
        return KernelParameters(self._enc_gain, self._enc_bias, initial, self._coeffs, self._mod_gain)

    @property
    def live_state(self) -> SpikingEpisodeState:
        """The live per-row episode state the control step reads and writes in place (not a copy; see
        :class:`SpikingEpisodeState`). A kernel may replace its tensors by contiguous copies of the same
        values."""
        return self._state

    # -- control step -----------------------------------------------------------------
    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        if self.config.encoder.kind == "population":
            return population_encode(obs, self._centres, self._sigma, self._enc_gain) + self._enc_bias
        return direct_encode(obs, self._enc_gain, self._enc_bias)

    @property
    def uses_reward(self) -> bool:
        """Reward input, or plasticity gated by the reward, its prediction error or modulatory
        neurons (which read the reward too)."""
        return super().uses_reward or self.modulation != "none"

    def _act(self, obs: torch.Tensor) -> torch.Tensor:
        # obs: the full input [N, input_dim] (the reward input, if any, is its last column)
        if self._fused is not None:
            return self._fused.act(obs)
        s = self._state
        W = s.weights
        plastic = self.plastic_layers
        membrane = self.config.decoder.kind == "membrane"
        hidden_step = alif_step if self.config.neuron.model == "alif" else lif_step
        current_in = self._encode(obs)
        spiking_input = self.config.encoder.spiking
        csdp = s.csdp
        if csdp is not None:
            # the negative stream starts from the layer's state before this step's observation
            start = (s.input, s.hidden[0], s.hidden_spikes[0], csdp.z, csdp.pre_trace,
                     s.stp.get(0), W[0])
        if not spiking_input:
            # Direct injection: the encoded current is constant over the control step, so the
            # first layer's drive is computed once; the rules see the current as pre activity.
            drive_0 = _matvec(W[0], current_in)
            if 0 in plastic:
                s.pre[0] = current_in
        spike_count = None
        for _ in range(self.K):
            if spiking_input:
                x, s.input = lif_step(current_in, s.input, self._input_params, self.dt)
                if csdp is not None:
                    csdp.pre_trace = _rate_trace(csdp.pre_trace, x, self._csdp_keep)
            for l in range(self.num_layers):
                if l == 0 and not spiking_input:
                    current = drive_0
                else:
                    if l in plastic:
                        s.pre[l] = _rate_trace(s.pre[l], x, self._keep_pre)
                    if l in self._stp_params:
                        efficacy, s.stp[l] = stp_step_retained(x, s.stp[l], self._stp_params[l].U,
                                                                  *self._stp_keep[l])
                        current = _matvec(W[l], x * efficacy)
                    else:
                        current = _matvec(W[l], x)
                if l < self.output_layer:
                    if self._w_rec:
                        current = current + _matvec(self._w_rec[l], s.hidden_spikes[l])
                    x, s.hidden[l] = hidden_step(current, s.hidden[l], self._hidden_params[l], self.dt)
                    if self._w_rec:
                        s.hidden_spikes[l] = x
                    if l == 0 and csdp is not None:
                        csdp.z = _rate_trace(csdp.z, x, self._csdp_keep)
                    if l in plastic:
                        s.post[l] = _rate_trace(s.post[l], x, self._keep_post)
                elif membrane:
                    _, s.output = li_step(current, s.output, self._decoder_tau, self.dt)
                else:
                    x, s.output = lif_step(current, s.output, self._output_params, self.dt)
                    spike_count = x if spike_count is None else spike_count + x
                    if l in plastic:
                        s.post[l] = _rate_trace(s.post[l], x, self._keep_post)
        if membrane:
            if self.output_layer in plastic:
                s.post[self.output_layer] = torch.tanh(s.output.v)
            actions = membrane_decode(s.output.v, self.action_low, self.action_high)
        else:
            actions = rate_decode(spike_count, self.K, self.action_low, self.action_high)
        if csdp is not None:
            self._csdp_negative_stream(obs, current_in, csdp, start)
        return self._sanitize_actions(actions)

    def _csdp_negative_stream(self, obs: torch.Tensor, current_in: torch.Tensor, csdp: CSDPState,
                              start: tuple) -> None:
        """Run the first hidden layer on this step's negative from the step's starting state."""
        ip = self.config.input_plasticity
        negative, csdp.valid = negative_observations(ip.negatives, obs, csdp.history, csdp.step,
                                                        self._csdp_bank)
        if csdp.history is not None:
            csdp.history = push_history(csdp.history, obs)
        csdp.step = csdp.step + 1
        s_in, h, h_spikes, z, pre_trace, stp, w0 = start
        current_neg = self._encode(negative)
        spiking_input = self.config.encoder.spiking
        hidden_step = alif_step if self.config.neuron.model == "alif" else lif_step
        keep = self._csdp_keep
        drive = None if spiking_input else _matvec(w0, current_neg)
        for _ in range(self.K):
            if spiking_input:
                x, s_in = lif_step(current_neg, s_in, self._input_params, self.dt)
                pre_trace = _rate_trace(pre_trace, x, keep)
                if 0 in self._stp_params:
                    efficacy, stp = stp_step_retained(x, stp, self._stp_params[0].U, *self._stp_keep[0])
                    x = x * efficacy
                drive = _matvec(w0, x)
            current = drive
            if self._w_rec:
                current = current + _matvec(self._w_rec[0], h_spikes)
            x, h = hidden_step(current, h, self._hidden_params[0], self.dt)
            if self._w_rec:
                h_spikes = x
            z = _rate_trace(z, x, keep)
        csdp.z_neg = z
        csdp.pre = csdp.pre_trace if spiking_input else current_in
        csdp.pre_neg = pre_trace if spiking_input else current_neg

    def _learn(self, reward: torch.Tensor) -> None:
        """Apply one control step of plasticity, gated by the configured modulator."""
        if not self.plastic_layers and not self.csdp:
            return
        # A learning rate scale of 0 (the frozen twin) freezes those fast weights exactly where they
        # started: running the rule would still apply the bound (normalise rescales every step).
        rule_on = bool(self.plastic_layers) and self.config.plasticity.eta_scale > 0
        csdp_on = self.csdp and self.config.input_plasticity.eta_scale > 0
        if not rule_on and not csdp_on:
            return
        s = self._state
        if self._fused is not None:
            self._fused.learn(reward)
            return
        p = self.config.plasticity
        if csdp_on:
            # self-supervised: the reward and the modulator play no part in the input layer's rule
            c = s.csdp
            delta = online_csdp_delta(c.pre, c.pre_neg, c.z, c.z_neg, c.valid, self._csdp_theta,
                                      self._csdp_eta, s.weights[0], self._w_init[0],
                                      self.config.input_plasticity.decay)
            s.weights[0] = self._guard_finite(bound_weights(s.weights[0] + delta, p.bounds, p.weight_limit), 0)
        if not rule_on:
            return
        m, s.baseline = global_modulator(self.modulation, reward, self._mod_gain, s.baseline,
                                            self.config.plasticity.rpe_rate)
        for l in self.plastic_layers:
            pre = s.pre[l]
            m_l = modulatory_neurons(pre, reward, self._mod_w[l], self._mod_b[l]) if self.modulation == "neurons" else m
            layer = synapse_step(SynapseState(s.weights[l], pre, s.post[l], s.theta.get(l), s.elig.get(l)),
                                 self._synapse, self._coeffs[l], m_l)
            s.weights[l] = self._guard_finite(layer.weights, l)
            if layer.theta is not None:
                s.theta[l] = layer.theta
            if layer.eligibility is not None:
                s.elig[l] = layer.eligibility

    def kernel_step(self, obs: np.ndarray, actions: np.ndarray, reward: np.ndarray) -> KernelStep | None:
        """:meth:`BatchedPolicy.kernel_step`: the fused kernels' arguments with ``kernel: fused``, else
        ``None`` (also for a registered rule, whose numba block runs from Python; with ``reward_input``
        the caller writes the reward column)."""
        if self._fused is None or not self._fused.one_call_per_step:
            return None
        from plasticrl.agents.plastic_kernel import KernelStep

        scale = self._kernel_reward_input(reward)
        act, learn = self._fused.step_arguments(obs, actions, reward)
        # as _learn decides: the fused kernel covers no CSDP, so the rule alone (at a scale above 0)
        learn_on = bool(self.plastic_layers) and self.config.plasticity.eta_scale > 0
        return KernelStep("spiking", act, learn, learn_on, scale)

    def _guard_finite(self, w: torch.Tensor, layer: int) -> torch.Tensor:
        # A member whose rule diverges is marked invalid (ranked worst by the trainer) and its
        # weights restart from the initial ones, so one bad row cannot poison the batch.
        bad = ~torch.isfinite(w.sum(dim=(1, 2)))
        if bool(bad.any()):
            self.invalid |= bad
            w = torch.where(bad.view(-1, 1, 1), self._w_init[layer], w)
        return w
