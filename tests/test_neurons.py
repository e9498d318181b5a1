"""Neuron steps against analytic trajectories and plain-Python reference loops."""
import math

import pytest
import torch

from plasticrl.snn import (
    ALIFParameters,
    LIFParameters,
    LIState,
    alif_initial_state,
    alif_step,
    fast_sigmoid_grad,
    lif_initial_state,
    lif_step,
    li_step,
    spike_fn,
    trace_step,
)

DT, TAU = 1e-3, 1e-2
BETA = math.exp(-DT / TAU)


def run_lif(current: float, steps: int, **kw):
    params = LIFParameters(tau_mem=TAU, **kw)
    state = lif_initial_state((1, 1), dtype=torch.float64)
    vs, spikes = [], []
    for _ in range(steps):
        s, state = lif_step(torch.full((1, 1), current, dtype=torch.float64), state, params, DT)
        vs.append(state.v.item())
        spikes.append(s.item())
    return vs, spikes


def test_lif_subthreshold_matches_analytic_exponential():
    vs, spikes = run_lif(0.6, 200)
    expected = [0.6 * (1 - math.exp(-(t + 1) * DT / TAU)) for t in range(200)]
    assert sum(spikes) == 0
    assert vs == pytest.approx(expected, abs=1e-12)


def test_lif_reset_to_zero_fires_at_analytic_interval():
    current = 2.0
    # v(t) = I (1 - beta^t) first crosses 1 at t* = ceil(ln(1 - 1/I) / ln beta); after a reset
    # to zero the same climb repeats, so spikes land on multiples of t*.
    t_star = math.ceil(math.log(1 - 1 / current) / math.log(BETA))
    vs, spikes = run_lif(current, 5 * t_star, reset="zero")
    spike_steps = [t + 1 for t, s in enumerate(spikes) if s]
    assert spike_steps == [k * t_star for k in range(1, 6)]
    assert all(vs[t - 1] == 0.0 for t in spike_steps)


def test_lif_reset_by_subtraction_matches_reference_loop():
    current, v, ref_spikes, ref_v = 1.7, 0.0, [], []
    for _ in range(100):
        v = BETA * v + (1 - BETA) * current
        s = 1.0 if v > 1.0 else 0.0
        v -= s
        ref_spikes.append(s)
        ref_v.append(v)
    vs, spikes = run_lif(current, 100, reset="subtract")
    assert spikes == ref_spikes
    assert vs == pytest.approx(ref_v, abs=1e-12)
    assert sum(spikes) > 3


def test_lif_refractory_period_adds_silent_steps():
    current = 2.0
    t_star = math.ceil(math.log(1 - 1 / current) / math.log(BETA))
    _, spikes = run_lif(current, 200, reset="zero", refractory=3 * DT)
    steps = [t + 1 for t, s in enumerate(spikes) if s]
    assert steps[0] == t_star
    assert all(b - a == t_star + 3 for a, b in zip(steps, steps[1:]))


def test_alif_threshold_adaptation_matches_reference_loop():
    tau_a, beta_a, current = 0.05, 2.0, 3.0
    rho = math.exp(-DT / tau_a)
    v, a, ref = 0.0, 0.0, []
    for _ in range(300):
        v = BETA * v + (1 - BETA) * current
        thr = 1.0 + beta_a * a
        s = 1.0 if v > thr else 0.0
        v -= s * thr
        a = rho * a + (1 - rho) * s
        ref.append((s, v, a))
    params = ALIFParameters(tau_mem=TAU, v_th=1.0, tau_adapt=tau_a, beta_adapt=beta_a, reset="subtract")
    state = alif_initial_state((1, 1), dtype=torch.float64)
    got = []
    for _ in range(300):
        s, state = alif_step(torch.full((1, 1), current, dtype=torch.float64), state, params, DT)
        got.append((s.item(), state.v.item(), state.a.item()))
    assert [g[0] for g in got] == [r[0] for r in ref]
    assert [x for g in got for x in g[1:]] == pytest.approx([x for r in ref for x in r[1:]], abs=1e-12)
    # adaptation slows firing: later inter-spike intervals are longer than the first
    times = [t for t, r in enumerate(ref) if r[0]]
    assert times[-1] - times[-2] > times[1] - times[0]


def test_leaky_integrator_and_trace():
    state = LIState(torch.zeros(1, 1, dtype=torch.float64))
    for t in range(1, 30):
        v, state = li_step(torch.full((1, 1), -0.4, dtype=torch.float64), state, TAU, DT)
        assert v.item() == pytest.approx(-0.4 * (1 - BETA**t), abs=1e-12)
    trace = torch.zeros(1)
    trace = trace_step(trace, torch.ones(1), 0.5)
    trace = trace_step(trace, torch.zeros(1), 0.5)
    trace = trace_step(trace, torch.ones(1), 0.5)
    assert trace.item() == pytest.approx(0.25 + 1.0)


def test_spike_fn_forward_heaviside_backward_fast_sigmoid():
    x = torch.tensor([-1.0, -0.1, 0.0, 0.2, 3.0], requires_grad=True)
    s = spike_fn(x, slope=5.0)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    s.sum().backward()
    expected = [1 / (5 * abs(v) + 1) ** 2 for v in [-1.0, -0.1, 0.0, 0.2, 3.0]]
    assert x.grad.tolist() == pytest.approx(expected)
    assert fast_sigmoid_grad(x.detach(), 5.0).tolist() == pytest.approx(expected)


def test_unknown_reset_mode_names_valid_choices():
    params = LIFParameters(reset="bounce")
    with pytest.raises(ValueError, match=r"'bounce'.*subtract.*zero"):
        lif_step(torch.full((1, 1), 5.0), lif_initial_state((1, 1)), params, DT)
