"""Validated policy configurations (pydantic). Unknown keys and bad values are rejected
with messages that name the field, the bad value and the valid choices."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plasticrl.envs.symmetry import SYMMETRIES
from plasticrl.plasticity.rules import RULES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _reward_input_field():
    return Field(False, description="feed the previous step's reward to the policy as one more input after the "
                 "(normalised) observation; 0 at an episode's first step (the memory-based baseline, as RL^2)")


def _reward_input_scale_field():
    return Field(1.0, allow_inf_nan=False, description="the reward input is reward x reward_input_scale")


class ContextUnitConfig(_Strict):
    """A reward-latched context unit: one more input ``c`` in ``[-1, 1]`` whose single synapse (from a
    constant input 1) learns within the episode by a reward-modulated Hebbian rule with the unit's sign as
    its postsynaptic activity, ``c <- clip(c + eta * reward * sign(c), -1, 1)`` (``sign(0) = +1``); with
    ``modulation: rpe`` the reward's prediction error ``reward - baseline`` takes the reward's place.

    Positive reward reinforces the current belief; sustained negative reward (the goal changed) drives it
    to 0 and (``crossing: jump``) straight to the full value of the other sign, where the network's other
    behaviour takes over. It is the one plastic synapse the network needs to switch between behaviours it
    has learned for both signs: a network trained with it learns a behaviour for ``c = +1`` and one for
    ``c = -1`` (docs: the adaptation results)."""

    enabled: bool = Field(False, description="append the context unit to the network's input")
    eta: float = Field(0.1, ge=0, description="learning rate of the context synapse, per unit of reward; "
                       "0 freezes the unit at `initial` (the frozen twin)")
    initial: float = Field(1.0, ge=-1, le=1, description="the unit's value at every episode start")
    modulation: Literal["reward", "rpe"] = Field(
        "reward", description="what drives the update: the reward, or its prediction error against a running "
        "baseline (rpe: reward - baseline; the baseline starts each episode at 0 and moves by rpe_rate)")
    rpe_rate: float = Field(0.02, gt=0, le=1, description="baseline update rate with modulation rpe")
    crossing: Literal["jump", "pass"] = Field(
        "jump", description="pass: c moves through 0 step by step (negative reward makes 0 an attractor: a "
        "network that stops there stays undecided); jump: a step that would take c across 0 sets it to the full "
        "value of the new sign (a bistable unit: the network sees a decided belief that negative reward erodes)")


def _context_unit_field():
    return Field(default_factory=ContextUnitConfig, description="a reward-latched context input (ContextUnitConfig)")


class GenomeConfig(_Strict):
    """Which parameter groups are searched (evolved or learned); glob patterns over group names.

    ``search: null`` keeps each group's default (weights, rule coefficients, learning rates,
    encoder gains, modulator weights searched; neuron constants fixed).
    """

    search: Optional[list[str]] = None
    fix: list[str] = Field(default_factory=list)
    seed: int = 0


INITIAL_WEIGHT_KINDS = ("evolved", "random")


class InitialWeightsConfig(_Strict):
    """Where each episode's fast weights start.

    ``evolved`` (the default): the weights are genome groups (``layers.{l}.w``), searched by ES
    like any parameter. ``random``: no weight is in the genome; every layer starts from a fresh
    draw of ``distribution`` (``uniform``: U[-scale, scale]; ``normal``: N(0, scale^2)) and only the
    rule's coefficients (and whatever else is searched) are evolved, as in Najarro & Risi (2020).
    ``draw: per_episode`` draws anew for every episode, a pure function of the episode's seed
    (:func:`plasticrl.seeding.derive_episode_seed`: the env reset seed and the episodes since);
    ``per_member`` draws once per member, a pure function of the member's genome, so the member
    starts every episode from the same weights. ``seed`` is mixed into every draw.
    """

    kind: Literal["evolved", "random"] = "evolved"
    distribution: Literal["uniform", "normal"] = "uniform"
    scale: float = Field(0.1, gt=0, description="uniform half-width, or normal std, of the random weights")
    draw: Literal["per_episode", "per_member"] = "per_episode"
    seed: int = Field(0, ge=0, description="mixed into every random draw")


class NeuronConfig(_Strict):
    model: Literal["lif", "alif"] = "lif"
    tau_mem: float = Field(0.02, gt=0, description="membrane time constant, seconds")
    v_th: float = Field(1.0, gt=0, description="firing threshold (baseline threshold for ALIF)")
    reset: Literal["zero", "subtract"] = "subtract"
    refractory: float = Field(0.0, ge=0, description="refractory period, seconds (0 = none)")
    tau_adapt: float = Field(0.2, gt=0, description="ALIF threshold-adaptation time constant, seconds")
    beta_adapt: float = Field(0.5, ge=0, description="ALIF threshold increase per unit of adaptation")
    surrogate_slope: float = Field(10.0, gt=0)


class EncoderConfig(_Strict):
    """Observation -> current. By default the current is injected straight into the first
    spiking layer (through its plastic weights), keeping the sign of every observation;
    ``spiking: true`` first turns it into spikes of an input LIF population."""

    kind: Literal["direct", "population"] = "direct"
    spiking: bool = Field(False, description="pass the current through input LIF neurons first")
    gain: float = Field(1.0, description="initial input gain")
    bias: float = Field(0.0, description="initial input bias")
    centres: int = Field(5, ge=2, description="Gaussian receptive fields per observation (population coding)")
    low: float = -3.0
    high: float = 3.0
    sigma: Optional[float] = Field(None, gt=0, description="receptive-field width; default: centre spacing")


class DecoderConfig(_Strict):
    kind: Literal["membrane", "rate"] = "membrane"
    tau_mem: float = Field(0.02, gt=0, description="output leaky-integrator time constant (membrane decoding)")


class PlasticityConfig(_Strict):
    rule: str = "bcm"
    sharing: Literal["synapse", "post", "layer", "global"] = "synapse"
    modulation: Literal["none", "reward", "rpe", "neurons"] = "reward"
    modulator_scope: Literal["layer", "post"] = "layer"
    rpe_rate: float = Field(0.05, gt=0, le=1, description="baseline update rate of the reward-prediction error")
    eligibility_tau: Optional[float] = Field(None, gt=0, description="eligibility-trace time constant, seconds")
    tau_pre: float = Field(0.02, gt=0, description="presynaptic trace time constant, seconds")
    tau_post: float = Field(0.02, gt=0, description="postsynaptic trace time constant, seconds")
    tau_theta: float = Field(0.5, gt=0, description="BCM threshold time constant, seconds")
    # 0.001 measured better than 0.01 for ES on HalfCheetah-v5 (plastic BCM at 0.8M steps: 1167 vs 399):
    # larger in-episode changes are noise ES must first learn to suppress. ES can still grow eta.
    eta_scale: float = Field(
        0.001, ge=0, description="learning rate = searched eta (unit scale, starts at 1) x eta_scale; "
        "0 freezes the fast weights (the frozen-plasticity control)"
    )
    bounds: Literal["none", "clip", "normalise"] = "clip"
    weight_limit: float = Field(5.0, gt=0, description="clip limit, or the max magnitude after normalising")
    layers: Literal["all", "hidden", "output"] = "all"

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        valid = sorted(RULES) + ["none"]
        if value not in valid:
            raise ValueError(f"unknown plasticity rule {value!r}; valid choices: {', '.join(valid)}")
        return value


INPUT_PLASTICITY_RULES = ("none", "csdp")


class InputPlasticityConfig(_Strict):
    """Self-supervised plasticity of the input layer (``W_0``: encoder -> first hidden layer).

    ``rule: csdp`` trains ``W_0`` online by contrastive-signal-dependent plasticity
    (:mod:`plasticrl.plasticity.csdp_online`): at each control step the first hidden layer
    sees the real observation (positive) and a corrupted one (negative) from the same state,
    and its synapses move by the local CSDP rule. No reward; the neuromodulated rule of
    ``policy.plasticity`` then acts on the later layers only. Genome groups
    ``layers.0.csdp_eta`` (searched, unit scale, starts at 1) and ``layers.0.csdp_theta``
    (fixed unless ``genome.search`` names it).
    """

    rule: str = "none"
    negatives: Literal["lagged", "permute"] = Field(
        "permute", description="lagged: the row's observation from `lag` steps ago; permute: features permuted"
    )
    lag: int = Field(10, ge=1, description="control steps back for lagged negatives")
    permutations: int = Field(16, ge=1, description="size of the fixed derangement bank (permute negatives)")
    threshold: float = Field(
        0.07, gt=0, description="goodness threshold per hidden neuron (theta = threshold x layer size)"
    )
    eta_scale: float = Field(0.01, ge=0, description="learning rate = searched csdp_eta (starts at 1) x eta_scale; "
                             "0 freezes the input layer")
    decay: float = Field(0.0, ge=0, description="pull of the fast weights back to the initial ones, per unit eta")
    tau_trace: float = Field(0.02, gt=0, description="time constant of the pre/post traces CSDP reads, seconds")
    seed: int = Field(0, description="seed of the permutation bank")

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in INPUT_PLASTICITY_RULES:
            raise ValueError(f"unknown input plasticity rule {value!r}; valid choices: "
                             f"{', '.join(INPUT_PLASTICITY_RULES)}")
        return value


class STPConfig(_Strict):
    """Tsodyks-Markram synapse constants for ``synapse: stp`` (times in seconds).

    They are the starting values of the genome groups ``layers.{l}.stp_U``,
    ``layers.{l}.stp_tau_rec`` and ``layers.{l}.stp_tau_fac`` (one value per presynaptic
    neuron), fixed unless ``genome.search`` names them. The defaults make a depressing synapse.
    """

    U: float = Field(0.5, gt=0, le=1, description="release increment U, in (0, 1]; 1 = renewing synapse")
    tau_rec: float = Field(0.1, gt=0, description="resource recovery time constant, seconds")
    tau_fac: float = Field(0.0, ge=0, description="facilitation time constant, seconds (0 = no facilitation)")


class PlasticSpikingConfig(_Strict):
    """Encoder -> spiking hidden layers (optionally recurrent) -> decoder, with plastic synapses."""

    kind: Literal["plastic_spiking", "static_spiking"] = "plastic_spiking"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [128])
    recurrent: bool = False
    substeps: int = Field(4, ge=1, description="spiking sub-steps per control step (K)")
    dt: float = Field(0.005, gt=0, description="sub-step length, seconds")
    input_init_gain: float = Field(2.0, gt=0, description="first-layer weight scale (non-spiking input) / sqrt(fan_in)")
    weight_init_gain: float = Field(8.0, gt=0, description="weight scale for spiking inputs / sqrt(fan_in)")
    output_init_gain: float = Field(8.0, gt=0, description="output weight scale / sqrt(fan_in)")
    zero_output_init: bool = Field(
        True, description="start the output weights at zero (every member starts from the zero action, as in ARS)"
    )
    synapse: Literal["static", "stp"] = Field(
        "static", description="stp: Tsodyks-Markram short-term plasticity on spiking presynaptic populations"
    )
    stp: STPConfig = Field(default_factory=STPConfig)
    neuron: NeuronConfig = Field(default_factory=NeuronConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    plasticity: PlasticityConfig = Field(default_factory=PlasticityConfig)
    input_plasticity: InputPlasticityConfig = Field(default_factory=InputPlasticityConfig)
    genome: GenomeConfig = Field(default_factory=GenomeConfig)
    initial_weights: InitialWeightsConfig = Field(default_factory=InitialWeightsConfig)
    reward_input: bool = _reward_input_field()
    reward_input_scale: float = _reward_input_scale_field()
    context_unit: ContextUnitConfig = _context_unit_field()
    kernel: Literal["auto", "torch", "fused"] = Field(
        "auto",
        description="auto: fused where it covers the policy (CPU, no autograd, numba installed, supported "
        "options), else torch; the policy's `kernel` attribute says which; "
        "torch: one torch op per array operation (every option, CPU or CUDA, autograd); "
        "fused: one numba CPU kernel per act/learn for gradient-free rollouts (needs plasticrl[fast]; "
        "options it does not cover are rejected at construction)",
    )

    @model_validator(mode="after")
    def _static_means_no_plasticity(self) -> "PlasticSpikingConfig":
        if self.kind == "static_spiking" and self.plasticity.rule != "none":
            object.__setattr__(self, "plasticity", self.plasticity.model_copy(update={"rule": "none"}))
        if self.kind == "static_spiking" and self.input_plasticity.rule != "none":
            object.__setattr__(self, "input_plasticity", self.input_plasticity.model_copy(update={"rule": "none"}))
        return self

    @model_validator(mode="after")
    def _csdp_needs_a_hidden_layer(self) -> "PlasticSpikingConfig":
        if self.input_plasticity.rule == "csdp" and not self.hidden:
            raise ValueError("input_plasticity.rule 'csdp' trains the synapses into the first hidden layer; "
                             "policy.hidden is empty (give at least one hidden layer, e.g. hidden: [64])")
        return self


class LinearConfig(_Strict):
    """``a = squash(W obs + b)``: the classic ES baseline."""

    kind: Literal["linear"] = "linear"
    genome: GenomeConfig = Field(default_factory=GenomeConfig)
    reward_input: bool = _reward_input_field()
    reward_input_scale: float = _reward_input_scale_field()
    context_unit: ContextUnitConfig = _context_unit_field()


class MLPConfig(_Strict):
    kind: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [64, 64])
    activation: Literal["tanh", "relu"] = "tanh"
    genome: GenomeConfig = Field(default_factory=GenomeConfig)
    reward_input: bool = _reward_input_field()
    reward_input_scale: float = _reward_input_scale_field()
    context_unit: ContextUnitConfig = _context_unit_field()


#: The built-in rules a Hebbian MLP takes (besides any rule added with ``register_rule``); BCM needs
#: spike-rate traces and its threshold state, which the MLP does not have.
HEBBIAN_MLP_RULES = ("hebbian_abcd", "oja", "none")


def hebbian_mlp_rules() -> list[str]:
    """The rules ``kind: hebbian_mlp`` takes now: the built-in ABCD and Oja rules, ``none``, and every
    rule registered in this process (:func:`plasticrl.plasticity.register_rule`; none uses a threshold)."""
    return [*HEBBIAN_MLP_RULES, *sorted(name for name, spec in RULES.items()
                                        if name not in HEBBIAN_MLP_RULES and not spec.uses_threshold)]


class HebbianMLPPlasticityConfig(PlasticityConfig):
    """The plasticity of a Hebbian MLP: the spiking policy's options, with Najarro & Risi's
    defaults (ABCD rule per synapse, no modulator, per-layer max-norm to 1 after every update).
    The rule sees the layer's input as ``pre`` and its tanh output as ``post``, once per control
    step; the trace time constants (``tau_pre``, ``tau_post``, ``tau_theta``) play no part."""

    rule: str = "hebbian_abcd"
    modulation: Literal["none", "reward", "rpe", "neurons"] = "none"
    bounds: Literal["none", "clip", "normalise"] = "normalise"
    weight_limit: float = Field(1.0, gt=0, description="clip limit, or the max magnitude after normalising")
    eta_scale: float = Field(
        0.1, ge=0, description="learning rate = searched eta (unit scale, starts at 1) x eta_scale; "
        "0 freezes the fast weights (the frozen-plasticity control)"
    )
    eligibility_tau: Optional[float] = Field(None, gt=0, description="eligibility-trace time constant, "
                                             "control steps (not seconds: the network has no clock)")

    @field_validator("rule")
    @classmethod
    def _mlp_rule(cls, value: str) -> str:
        valid = hebbian_mlp_rules()
        if value not in valid:
            raise ValueError(f"plasticity rule {value!r} is not available for kind hebbian_mlp; valid choices: "
                             f"{', '.join(valid)} (bcm needs spike-rate traces: use plastic_spiking)")
        return value


class HebbianMLPConfig(_Strict):
    """Non-spiking Hebbian network (Najarro & Risi 2020): ``obs -> hidden... -> act``, tanh units, no
    biases, every synapse plastic by the ABCD rule with its own learning rate (or by Oja's rule, or by a
    rule added with :func:`~plasticrl.plasticity.register_rule`)."""

    kind: Literal["hebbian_mlp"] = "hebbian_mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [128, 64])
    plasticity: HebbianMLPPlasticityConfig = Field(default_factory=HebbianMLPPlasticityConfig)
    initial_weights: InitialWeightsConfig = Field(default_factory=InitialWeightsConfig)
    action_scale: float = Field(
        1.0, gt=0, le=1, description="action = mid + action_scale x half-range x tanh output: below 1 a "
        "saturated output (which normalised random weights produce readily) stays inside the action bounds, "
        "and its control cost falls with the square of the scale"
    )
    genome: GenomeConfig = Field(default_factory=GenomeConfig)
    reward_input: bool = _reward_input_field()
    reward_input_scale: float = _reward_input_scale_field()
    context_unit: ContextUnitConfig = _context_unit_field()
    kernel: Literal["auto", "torch", "fused"] = Field(
        "auto",
        description="auto: fused where it covers the policy (CPU, no autograd, numba installed, modulation "
        "none/reward/rpe, no eligibility traces), else torch; the policy's `kernel` attribute says which; "
        "torch: one torch op per array operation (every option, CPU or CUDA, autograd); "
        "fused: one numba CPU kernel per act/learn for gradient-free rollouts (needs plasticrl[fast]; "
        "options it does not cover are rejected at construction)",
    )

    @model_validator(mode="after")
    def _something_to_search(self) -> "HebbianMLPConfig":
        if self.plasticity.rule == "none" and self.initial_weights.kind == "random":
            raise ValueError("kind hebbian_mlp with plasticity.rule 'none' and initial_weights.kind 'random' has "
                             "nothing to search (no weights, no rule); give a rule or initial_weights.kind: evolved")
        return self


#: A policy that is not itself a wrapper: what ``kind: symmetric`` steers.
BasePolicyConfig = Annotated[
    Union[PlasticSpikingConfig, LinearConfig, MLPConfig, HebbianMLPConfig], Field(discriminator="kind")
]


class SymmetricGoalConfig(_Strict):
    """Where a ``kind: symmetric`` policy's heading comes from.

    ``observed``: the goal's (cos, sin), the observation's last two columns (the oracle); the heading is the
    symmetry's nearest to it. ``inferred``: three plastic synapses ``w = (gx, gy, b)`` from the body's
    world-frame velocity ``v`` and a constant 1 predict the reward, ``r_hat = w . (vx, vy, 1)``, and learn
    by the normalised delta rule ``w <- w + eta * (r - r_hat) * x / |x|^2`` with ``x = (vx, vy, 1)``, the
    velocity the step ended with (a three-factor rule: presynaptic activity times the reward's prediction
    error); ``(gx, gy)`` is then the goal direction the rewards imply, and the heading the symmetry's
    nearest to it, kept unless another beats it by ``margin``. The synapses start each episode at 0.
    ``recurrent``: no plasticity; ``h <- tanh(W_in (vx, vy, r) + W_rec h + b)`` and the heading scores
    ``W_out h`` (the weights evolved, in the genome as ``goal.*``; ``W_out`` starts at 0, so a network
    fresh from a walker keeps ``initial_heading``), the same margin."""

    source: Literal["observed", "inferred", "recurrent"] = Field(
        "inferred", description="observed: read the goal from the observation's last two columns (the "
        "oracle); inferred: learn it within the episode from the reward (plastic); recurrent: a static "
        "recurrent network of `hidden` tanh units, its weights in the genome, reads the velocity and the "
        "previous reward and scores the headings (the memory-based twin: it adapts through activity only)")
    hidden: int = Field(16, ge=1, description="units of the recurrent heading network (source: recurrent)")
    eta: float = Field(0.1, ge=0, le=2, description="learning rate of the goal synapses (normalised delta rule: "
                       "stable below 2); 0 freezes them at 0, the heading at initial_heading (the frozen twin)")
    margin: float = Field(0.1, ge=0, description="the heading changes when another's predicted reward rate "
                          "beats the current one's by this much (reward units per step)")
    initial_heading: int = Field(0, ge=0, description="the heading (quarter turns from +x) before any evidence")


class BaseObsNormConfig(_Strict):
    """The base policy's observation normaliser, applied after the symmetry's map (the frame the base was
    trained in): ``clip((obs - mean) / std, -clip, clip)``; the statistics of the agent the base comes from."""

    mean: list[float]
    std: list[Annotated[float, Field(gt=0)]]
    clip: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _same_length(self) -> "BaseObsNormConfig":
        if len(self.mean) != len(self.std):
            raise ValueError(f"base_obs_norm has {len(self.mean)} means and {len(self.std)} stds; they must match")
        return self


class SymmetricConfig(_Strict):
    """A base policy trained for one goal, steered to the others by the body's symmetry
    (:mod:`plasticrl.envs.symmetry`): with heading ``k`` the base sees the observation turned by ``-k`` and
    its action is turned by ``k``. The genome is the base's. The observation normaliser must be this
    config's ``base_obs_norm`` (set ``train.obs_norm: false``): normalising before the turn would break it."""

    kind: Literal["symmetric"] = "symmetric"
    symmetry: str = Field("ant_quarter_turns", description="the body's symmetry (plasticrl.envs.symmetry.SYMMETRIES)")
    goal: SymmetricGoalConfig = Field(default_factory=SymmetricGoalConfig)
    base: Optional[BasePolicyConfig] = Field(
        None, description="the steered policy's config (any kind but symmetric); empty: the policy of "
        "train.init_agent, with its observation statistics as base_obs_norm (filled in when training starts)")
    base_obs_norm: Optional[BaseObsNormConfig] = None

    @field_validator("symmetry")
    @classmethod
    def _known_symmetry(cls, value: str) -> str:
        if value not in SYMMETRIES:
            raise ValueError(f"unknown symmetry {value!r}; valid choices: {', '.join(SYMMETRIES)}")
        return value

    @model_validator(mode="after")
    def _heading_in_range(self) -> "SymmetricConfig":
        if self.goal.initial_heading >= 4:
            raise ValueError(f"goal.initial_heading={self.goal.initial_heading} is not a quarter-turn count; "
                             "valid choices: 0, 1, 2, 3")
        return self


PolicyConfig = Annotated[
    Union[PlasticSpikingConfig, LinearConfig, MLPConfig, HebbianMLPConfig, SymmetricConfig],
    Field(discriminator="kind"),
]
POLICY_KINDS = ("plastic_spiking", "static_spiking", "linear", "mlp", "hebbian_mlp", "symmetric")
