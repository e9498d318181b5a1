"""Fused numba CPU kernels for the plastic policies' control step (``kernel: fused``).

:class:`PlasticSpikingPolicy`: the torch path spends most of a control step in per-op dispatch
(~80 small ops for a one-hidden-layer BCM policy). Here :func:`act_kernel` runs the whole of
``act`` (encode, K sub-steps of LIF/ALIF layers with pre/post traces, decoding, action
sanitising) and :func:`learn_kernel` the whole of ``learn`` (modulator, rule, bounds, finite
guard, BCM threshold) in one call each, looping over rows and neurons inside numba.

:class:`HebbianMLPPolicy` (``kind: hebbian_mlp``): :func:`mlp_act_kernel` runs its ``act`` (tanh
layers, pre/post of the plastic layers, action sanitising) and the same :func:`learn_kernel` its
``learn`` (the ABCD or Oja rule at every sharing level, modulator, bounds, finite guard): the
update is the same job for both policies, with ``pre``/``post`` the MLP's activities instead of
spike traces.

A rule added with :func:`~plasticrl.plasticity.register_rule` and a ``numba_update`` block runs here
too: the glue calls the block per plastic layer (it writes the rule's change), then
:func:`learn_kernel` gates that change by the modulator and applies bounds and guard as for the
built-in rules. A registered rule without a block is left to the torch path.

The maths and the order of operations are the torch path's, in the policy's dtype (no fastmath),
so results agree to rounding: dense matvecs run through scipy's BLAS gemv rather than torch's
bmm, the spiking layers' sparse sums in input order, and ``tanh``/``exp`` come from libm instead
of torch's vectorised versions. All kernels release the GIL (``nogil``) and loop over the rows
they are given, so callers may run row shards on threads; a gemv stays on the calling thread below
OpenBLAS's threading threshold (``m x n < 2304 x GEMM_MULTITHREAD_THRESHOLD``, 9216 by default),
which every layer of the shipped configs is.

The policy's state stays the torch tensors of ``policy.live_state``; the glue classes
(:class:`FusedStep`, :class:`HebbianMLPFusedStep`) operate on them in place through
``tensor.numpy()`` views (shared memory), so ``fast_weights``, ``reset(mask)``,
``member_invalid()`` and the rest keep working unchanged.

:func:`fused_unsupported` lists the configuration options the kernels do not cover; a policy
built with ``kernel: fused`` and any of them raises :class:`PlasticRLError` naming each one on
one line; ``kernel: auto`` (:func:`pick_kernel`) picks the torch path instead and says why.
"""
from __future__ import annotations

import importlib
import math
import operator
from typing import NamedTuple

import numpy as np
import torch

from plasticrl.errors import PlasticRLError
from plasticrl.plasticity.rules import get_rule, numba_update_of

try:  # the kernels are compiled only when numba is there; fused_unsupported works without it
    import numba as _numba
except ImportError:  # pragma: no cover - exercised by monkeypatching require_numba's import
    _numba = None

NUMBA_HINT = 'policy.kernel "fused" needs numba: pip install "plasticrl[fast]" (or use kernel: torch)'

_RULE_CODES = {"bcm": 0, "oja": 1, "hebbian_abcd": 2}
#: A registered rule with a numba block: the block computes the change before learn_kernel applies it.
_PRECOMPUTED = 3
_MODULATION_CODES = {"none": 0, "reward": 1, "rpe": 2}
_BOUND_CODES = {"none": 0, "clip": 1, "normalise": 2}
_TORCH_OK = "kernel: torch (every option), or kernel: auto (picks torch here)"


def require_numba() -> None:
    """Raise :class:`PlasticRLError` with the install hint if numba cannot be imported."""
    try:
        importlib.import_module("numba")
    except ImportError as exc:
        raise PlasticRLError(NUMBA_HINT) from exc
    if _numba is None:  # imported now but not when this module was loaded
        raise PlasticRLError(NUMBA_HINT)


def fused_unsupported(config, device: str | torch.device = "cpu", genome=None) -> list[str]:
    """Every option of a policy config (:class:`PlasticSpikingConfig` or :class:`HebbianMLPConfig`)
    that ``kernel: fused`` does not cover, each as ``"setting: value (what fused covers)"``.

    ``genome`` (the policy's :class:`GenomeSpec`, optional) lets it also report spiking neuron
    constants that are searched (the kernels take them as fixed numbers).
    """
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    out: list[str] = []
    if dev.type != "cpu":
        out.append(f"device: {str(dev)!r} (fused runs on cpu only)")
    if config.kind != "hebbian_mlp":
        out.extend(_spiking_unsupported(config, genome))
    p = config.plasticity
    if p.rule != "none":
        if p.rule not in _RULE_CODES and numba_update_of(p.rule) is None:
            built_in = [r for r in _RULE_CODES if config.kind != "hebbian_mlp" or r != "bcm"]
            out.append(f"plasticity.rule: {p.rule!r} (registered without a numba_update block; fused covers "
                       f"{', '.join(built_in)}, none and rules registered with one)")
        if p.modulation not in _MODULATION_CODES:
            out.append(f"plasticity.modulation: {p.modulation!r} (fused covers {', '.join(_MODULATION_CODES)})")
        if p.eligibility_tau is not None:
            out.append(f"plasticity.eligibility_tau: {p.eligibility_tau!r} (eligibility traces; fused covers "
                       "only null)")
    return out


def _spiking_unsupported(cfg, genome) -> list[str]:
    # the options only the spiking policy has
    out: list[str] = []
    if cfg.recurrent:
        out.append("recurrent: true (fused covers false)")
    if cfg.synapse != "static":
        out.append(f"synapse: {cfg.synapse!r} (short-term plasticity; fused covers static)")
    if cfg.input_plasticity.rule != "none":
        out.append(f"input_plasticity.rule: {cfg.input_plasticity.rule!r} (fused covers none)")
    if cfg.neuron.refractory > 0.0:
        out.append(f"neuron.refractory: {cfg.neuron.refractory!r} (fused covers only 0)")
    if genome is not None:
        searched = {g.name for g in genome.groups if g.searched}
        for name in sorted(searched):
            if name.endswith((".tau_mem", ".v_th")) and (name.startswith("layers.") or name == "decoder.tau_mem"):
                out.append(f"genome.search: {name!r} is searched (fused needs the neuron constants fixed)")
    return out


def numba_available() -> bool:
    """Whether the fused kernels can run here (numba imports)."""
    try:
        require_numba()
    except PlasticRLError:
        return False
    return True


def pick_kernel(config, device: str | torch.device = "cpu", genome=None, autograd: bool = False) -> tuple[str, str]:
    """The kernel ``config.kernel`` resolves to, and why: ``("fused" | "torch", reason)``.

    ``auto`` picks ``fused`` where it covers the policy (no autograd, numba installed, nothing in
    :func:`fused_unsupported`) and ``torch`` otherwise; ``torch`` and ``fused`` are taken as asked
    (``fused`` is checked when the policy builds it).
    """
    if config.kernel != "auto":
        return config.kernel, f"kernel: {config.kernel} asked for"
    if autograd:
        return "torch", "kernel: auto; the policy is built for autograd, which the fused kernel does not run"
    problems = fused_unsupported(config, device, genome)
    if problems:
        return "torch", "kernel: auto; the fused kernel does not cover " + "; ".join(problems)
    if not numba_available():
        return "torch", "kernel: auto; numba is not installed (pip install \"plasticrl[fast]\")"
    return "fused", "kernel: auto; the fused kernel covers this policy"


def check_supported(config, device, genome=None) -> None:
    """Raise :class:`PlasticRLError` listing :func:`fused_unsupported` on one line, then check numba."""
    problems = fused_unsupported(config, device, genome)
    if problems:
        raise PlasticRLError(f"policy.kernel 'fused' does not cover {'; '.join(problems)}; "
                             f"valid choices for this policy: {_TORCH_OK}")
    require_numba()


# ---------------------------------------------------------------------------------------------
# Kernels. Scalars that take part in arithmetic arrive as 0-d arrays / entries of arrays of the
# policy's dtype, so float32 policies compute in float32 as torch does (a Python float literal
# would promote numba's arithmetic to float64).

def _clip(w, clip, lo, hi):
    # the clip bound, one weight at a time (torch.clamp: NaN stays NaN for the finite guard)
    if clip:
        w = lo if w < lo else w
        w = hi if w > hi else w
    return w


def _gate(d, use_m, m):
    # a rule's change times the modulator, when there is one
    return d * m if use_m else d


def _lif_layer(v_row, a_row, cur, xo, n_out, w, thl, is_alif, beta_a, rho, rho_w, reset_zero, zero, one):
    # lif_step / alif_step of one row: lerp, spike where v - threshold > 0, reset
    small = abs(w) < 0.5
    one_m_w = one - w
    for i in range(n_out):
        a = v_row[i]
        b = cur[i]
        v = a + w * (b - a) if small else b - (b - a) * one_m_w
        thr = thl + beta_a * a_row[i] if is_alif else thl
        s = one if v - thr > 0 else zero
        if reset_zero:
            v = v * (one - s)
        else:
            v = v - s * thr
        v_row[i] = v
        if is_alif:
            a_row[i] = rho * a_row[i] + rho_w * s
        xo[i] = s


def _matvec_rows(Wn, x, out):
    # out[:n_out] = Wn @ x[:n_in] for a dense input, by BLAS gemv (numba calls scipy's BLAS): measured
    # 1.5-3x faster than an in-order loop of four row sums at a time, whose reductions LLVM does not
    # vectorise without fastmath (see the module docstring for threads)
    n_out, n_in = Wn.shape
    np.dot(Wn, x[:n_in], out[:n_out])


def _trace(row, x, n, w, one):
    # _rate_trace: torch.lerp(trace, x, w)
    small = abs(w) < 0.5
    one_m_w = one - w
    for j in range(n):
        a = row[j]
        b = x[j]
        row[j] = a + w * (b - a) if small else b - (b - a) * one_m_w


def _act_py(obs, gain, bias, centres, sigma, population, spiking_in, in_v, in_w, in_th,
            W, V, A, lif_w, th, alif, beta_a, rho, rho_w, reset_zero,
            pre, post, plastic, pre_w, post_w, K, membrane, mid, half, low, span, k_float,
            invalid, actions, buf, active, dense, c):
    N = obs.shape[0]
    L = len(W)
    zero = c[0]
    one = c[1]
    neg_half = c[2]
    n_in = W[0].shape[2]
    act_dim = actions.shape[1]
    cin = buf[0]
    drive0 = buf[1]
    xi = buf[2]
    xo = buf[3]
    cur = buf[4]
    count = buf[5]
    for n in range(N):
        # -- encode
        if population:
            nc = centres.shape[0]
            for d in range(obs.shape[1]):
                o = obs[n, d]
                for q in range(nc):
                    diff = (o - centres[q]) / sigma
                    k = d * nc + q
                    cin[k] = gain[n, k] * math.exp(neg_half * diff * diff) + bias[n, k]
        else:
            for k in range(n_in):
                cin[k] = gain[n, k] * obs[n, k] + bias[n, k]
        if not spiking_in:
            _matvec_rows(W[0][n], cin, drive0)
            if plastic[0]:
                P0 = pre[0][n]
                for j in range(n_in):
                    P0[j] = cin[j]
        for i in range(act_dim):
            count[i] = zero
        for _ in range(K):
            if spiking_in:
                _lif_layer(in_v[n], in_v[n], cin, xi, n_in, in_w, in_th, False, beta_a, rho, rho_w,
                           reset_zero, zero, one)
            for l in range(L):
                Wn = W[l][n]
                n_out = Wn.shape[0]
                n_pre = Wn.shape[1]
                if l == 0 and not spiking_in:
                    for i in range(n_out):
                        cur[i] = drive0[i]
                else:
                    if plastic[l]:
                        _trace(pre[l][n], xi, n_pre, pre_w, one)
                    for i in range(n_out):
                        cur[i] = zero
                    if dense:
                        for j in range(n_pre):
                            xj = xi[j]
                            for i in range(n_out):
                                cur[i] += Wn[i, j] * xj
                    else:
                        # skip silent inputs (W * 0 adds nothing to finite weights): their indices
                        # are compacted without branches, spikes being unpredictable
                        n_act = 0
                        for j in range(n_pre):
                            active[n_act] = j
                            n_act += 1 if xi[j] != 0 else 0
                        for q in range(n_act):
                            j = active[q]
                            xj = xi[j]
                            for i in range(n_out):
                                cur[i] += Wn[i, j] * xj
                last = l == L - 1
                if last and membrane:
                    _trace(V[l][n], cur, n_out, lif_w[l], one)
                else:
                    is_alif = alif and not last
                    _lif_layer(V[l][n], A[l][n] if is_alif else V[l][n], cur, xo, n_out, lif_w[l], th[l],
                               is_alif, beta_a, rho, rho_w, reset_zero, zero, one)
                    if plastic[l]:
                        _trace(post[l][n], xo, n_out, post_w, one)
                    if last:
                        for i in range(n_out):
                            count[i] = count[i] + xo[i]
                    for i in range(n_out):
                        xi[i] = xo[i]
        # -- decode and sanitise
        if membrane:
            Vo = V[L - 1][n]
            for i in range(act_dim):
                t = math.tanh(Vo[i])
                actions[n, i] = mid[i] + half[i] * t
                if plastic[L - 1]:
                    post[L - 1][n, i] = t
        else:
            for i in range(act_dim):
                actions[n, i] = low[i] + span[i] * (count[i] / k_float)
        _sanitise_row(actions, n, mid, invalid)


def _sanitise_row(actions, n, mid, invalid):
    # BatchedPolicy._sanitize_actions for one row: non-finite actions -> invalid row, midpoint action
    act_dim = actions.shape[1]
    ok = True
    for i in range(act_dim):
        ok &= math.isfinite(actions[n, i])
    if not ok:
        invalid[n] = True
        for i in range(act_dim):
            actions[n, i] = mid[i]


def _mlp_act_py(obs, W, pre, post, plastic, mid, half, invalid, actions, buf):
    # HebbianMLPPolicy._act: x_{l+1} = tanh(W_l x_l), the plastic layers keep x_l and x_{l+1}
    # as pre and post, action = mid + half * x_L
    N = obs.shape[0]
    L = len(W)
    xi = buf[0]
    xo = buf[1]
    for n in range(N):
        for j in range(obs.shape[1]):
            xi[j] = obs[n, j]
        for l in range(L):
            Wn = W[l][n]
            n_out, n_pre = Wn.shape
            _matvec_rows(Wn, xi, xo)
            for i in range(n_out):
                xo[i] = math.tanh(xo[i])
            if plastic[l]:
                P = pre[l][n]
                Q = post[l][n]
                for j in range(n_pre):
                    P[j] = xi[j]
                for i in range(n_out):
                    Q[i] = xo[i]
            for i in range(n_out):
                xi[i] = xo[i]
        for i in range(actions.shape[1]):
            actions[n, i] = mid[i] + half[i] * xi[i]
        _sanitise_row(actions, n, mid, invalid)


# Each rule updates one (row, layer) block of weights in a helper of its own, with the choice of
# per-synapse or shared learning rates made once per block rather than per output neuron: with
# that branch inside the neuron loop LLVM did not vectorise the synapse loop (the BCM update of
# a [64, 64, 17] layer took 126 us instead of 50 us).

def _bcm_phi(yi, theta, use_m, m):
    # the post-synaptic factor of BCM, y (y - theta), times the modulator when there is one
    phi = yi * (yi - theta)
    return phi * m if use_m else phi


def _bcm_block(Wn, En, x, y, Th, m, use_m, clip, lo, hi):
    # dW = eta * [m] * y (y - theta) x
    n_out, n_pre = Wn.shape
    if En.shape[1] > 1:
        for i in range(n_out):
            phi = _bcm_phi(y[i], Th[i], use_m, m)
            w_row = Wn[i]
            e_row = En[i]
            for j in range(n_pre):
                w = w_row[j] + e_row[j] * (phi * x[j])
                w_row[j] = _clip(w, clip, lo, hi)
    else:
        e_o = 1 if En.shape[0] > 1 else 0
        for i in range(n_out):
            phi = _bcm_phi(y[i], Th[i], use_m, m)
            w_row = Wn[i]
            e = En[i * e_o, 0]
            for j in range(n_pre):
                w = w_row[j] + e * (phi * x[j])
                w_row[j] = _clip(w, clip, lo, hi)


def _oja_block(Wn, En, x, y, m, use_m, clip, lo, hi):
    # dW = eta * y (x - y W), then [m]
    n_out, n_pre = Wn.shape
    if En.shape[1] > 1:
        for i in range(n_out):
            yi = y[i]
            w_row = Wn[i]
            e_row = En[i]
            for j in range(n_pre):
                w = w_row[j]
                d = (e_row[j] * yi) * (x[j] - yi * w)
                w_row[j] = _clip(w + _gate(d, use_m, m), clip, lo, hi)
    else:
        e_o = 1 if En.shape[0] > 1 else 0
        for i in range(n_out):
            yi = y[i]
            w_row = Wn[i]
            ey = En[i * e_o, 0] * yi
            for j in range(n_pre):
                w = w_row[j]
                d = ey * (x[j] - yi * w)
                w_row[j] = _clip(w + _gate(d, use_m, m), clip, lo, hi)


def _abcd_block(Wn, En, Ta, Tb, Tc, Td, x, y, m, use_m, clip, lo, hi):
    # dW = eta * (A y x + B x + C y + D), then [m]
    n_out, n_pre = Wn.shape
    if En.shape[1] > 1:
        for i in range(n_out):
            yi = y[i]
            w_row = Wn[i]
            e_row = En[i]
            ta, tb, tc, td = Ta[i], Tb[i], Tc[i], Td[i]
            for j in range(n_pre):
                xj = x[j]
                d = e_row[j] * (ta[j] * (yi * xj) + tb[j] * xj + tc[j] * yi + td[j])
                w_row[j] = _clip(w_row[j] + _gate(d, use_m, m), clip, lo, hi)
    else:
        e_o = 1 if En.shape[0] > 1 else 0
        for i in range(n_out):
            yi = y[i]
            ie = i * e_o
            w_row = Wn[i]
            e = En[ie, 0]
            a = Ta[ie, 0]
            b = Tb[ie, 0]
            cy = Tc[ie, 0] * yi
            dd = Td[ie, 0]
            for j in range(n_pre):
                xj = x[j]
                d = e * (a * (yi * xj) + b * xj + cy + dd)
                w_row[j] = _clip(w_row[j] + _gate(d, use_m, m), clip, lo, hi)


def _precomputed_block(Wn, Dn, m, use_m, clip, lo, hi):
    # a registered rule's change D (its numba block ran before this kernel), then [m]
    n_out, n_pre = Wn.shape
    for i in range(n_out):
        w_row = Wn[i]
        d_row = Dn[i]
        for j in range(n_pre):
            w_row[j] = _clip(w_row[j] + _gate(d_row[j], use_m, m), clip, lo, hi)


def _all_finite(Wn):
    ok = True
    for i in range(Wn.shape[0]):
        w_row = Wn[i]
        for j in range(Wn.shape[1]):
            ok &= math.isfinite(w_row[j])
    return ok


def _normalise_block(Wn, limit, eps):
    # bounds "normalise": scale by limit / max|W| (torch: a NaN peak makes every weight NaN, and
    # the caller's guard then restores them); returns whether the result is finite
    peak = abs(limit - limit)  # zero of the dtype
    has_nan = False
    for i in range(Wn.shape[0]):
        w_row = Wn[i]
        for j in range(Wn.shape[1]):
            a_w = abs(w_row[j])
            has_nan |= a_w != a_w
            peak = a_w if a_w > peak else peak
    if has_nan:
        return False
    scale = limit / (peak if peak > eps else eps)
    ok = True
    for i in range(Wn.shape[0]):
        w_row = Wn[i]
        for j in range(Wn.shape[1]):
            w = w_row[j] * scale
            ok &= math.isfinite(w)
            w_row[j] = w
    return ok


def _learn_py(reward, modulation, mod_gain, baseline, rpe_rate, rule, W, W0, pre, post, theta,
              eta, cA, cB, cC, cD, delta, plastic, bounds, limit, eps, theta_keep, theta_w, invalid):
    N = reward.shape[0]
    L = len(W)
    neg_limit = -limit
    clip = bounds == 1
    for n in range(N):
        m = reward[n]
        if modulation == 1:
            m = mod_gain[n] * reward[n]
        elif modulation == 2:
            err = reward[n] - baseline[n]
            baseline[n] = baseline[n] + rpe_rate * err
            m = mod_gain[n] * err
        use_m = modulation != 0
        for l in range(L):
            if not plastic[l]:
                continue
            Wn = W[l][n]
            x = pre[l][n]
            y = post[l][n]
            En = eta[l][n]
            if rule == 0:
                _bcm_block(Wn, En, x, y, theta[l][n], m, use_m, clip, neg_limit, limit)
            elif rule == 1:
                _oja_block(Wn, En, x, y, m, use_m, clip, neg_limit, limit)
            elif rule == 3:  # _PRECOMPUTED
                _precomputed_block(Wn, delta[l][n], m, use_m, clip, neg_limit, limit)
            else:
                _abcd_block(Wn, En, cA[l][n], cB[l][n], cC[l][n], cD[l][n], x, y, m, use_m, clip,
                            neg_limit, limit)
            ok = _normalise_block(Wn, limit, eps) if bounds == 2 else _all_finite(Wn)
            if not ok:
                invalid[n] = True
                Wn[:, :] = W0[l][n]
            if rule == 0:
                Th = theta[l][n]
                for i in range(Wn.shape[0]):
                    yi = y[i]
                    Th[i] = theta_keep * Th[i] + theta_w * yi * yi


if _numba is not None:
    _lif_layer = _numba.njit(cache=True, error_model="numpy")(_lif_layer)
    _trace = _numba.njit(cache=True, error_model="numpy")(_trace)
    _matvec_rows = _numba.njit(cache=True, error_model="numpy")(_matvec_rows)
    _sanitise_row = _numba.njit(cache=True, error_model="numpy")(_sanitise_row)
    _bcm_block = _numba.njit(cache=True, error_model="numpy")(_bcm_block)
    _oja_block = _numba.njit(cache=True, error_model="numpy")(_oja_block)
    _abcd_block = _numba.njit(cache=True, error_model="numpy")(_abcd_block)
    _precomputed_block = _numba.njit(cache=True, error_model="numpy")(_precomputed_block)
    _all_finite = _numba.njit(cache=True, error_model="numpy")(_all_finite)
    _normalise_block = _numba.njit(cache=True, error_model="numpy")(_normalise_block)
    _clip = _numba.njit(cache=True, inline="always")(_clip)
    _gate = _numba.njit(cache=True, inline="always")(_gate)
    _bcm_phi = _numba.njit(cache=True, inline="always")(_bcm_phi)
    # error_model="numpy": IEEE results for x/0 instead of Python's ZeroDivisionError checks
    act_kernel = _numba.njit(nogil=True, cache=True, error_model="numpy")(_act_py)
    learn_kernel = _numba.njit(nogil=True, cache=True, error_model="numpy")(_learn_py)
    mlp_act_kernel = _numba.njit(nogil=True, cache=True, error_model="numpy")(_mlp_act_py)
else:  # pragma: no cover
    act_kernel = learn_kernel = mlp_act_kernel = None


# ---------------------------------------------------------------------------------------------
# Glue between the policy's torch state and the kernels.

class KernelStep(NamedTuple):
    """What a caller needs to run a fused policy's control step inside its own compiled code
    (:meth:`BatchedPolicy.kernel_step`): the ``act`` kernel's arguments and :func:`learn_kernel`'s, on
    buffers the caller owns and fills, and whether ``learn`` runs at all (a plasticity rule is on and
    its learning rate scale is above 0, as the policy's own ``learn`` decides), and with ``reward_input``
    the scale of the reward column the caller writes into the ``act`` kernel's input."""

    kind: str  # "spiking": act_kernel's arguments; "mlp": mlp_act_kernel's
    act: tuple
    learn: tuple
    learn_on: bool
    reward_scale: np.ndarray  # [1]: reward_input's scale (the caller writes the reward column); [0]: none


def _own(t: torch.Tensor) -> torch.Tensor:
    """A private contiguous copy: the kernels write into it in place."""
    return t.detach().clone(memory_format=torch.contiguous_format)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _FusedGlue:
    """What both glue classes do the same way: the dtype check, the learning constants and
    coefficients of :func:`learn_kernel`, the initial weights its finite guard restores, the
    autograd check, and the state views rebuilt only when the policy replaced its tensors."""

    def __init__(self, policy) -> None:
        check_supported(policy.config, policy.device, policy.genome)
        if policy.dtype not in (torch.float32, torch.float64):
            raise PlasticRLError(f"policy.kernel 'fused' supports float32 and float64; got {policy.dtype}")
        self.policy = policy
        self.np_dtype = f = np.float32 if policy.dtype == torch.float32 else np.float64
        p = policy.config.plasticity
        self.L = L = policy.num_layers
        self.plastic_set = set(policy.plastic_layers)
        self.plastic = np.array([l in self.plastic_set for l in range(L)], dtype=np.bool_)
        self.rule = _RULE_CODES.get(policy.rule, _PRECOMPUTED) if policy.rule else 0
        # a registered rule's numba block, run from Python before learn_kernel (which then adds its change)
        self.rule_update = numba_update_of(policy.rule) if self.rule == _PRECOMPUTED else None
        self.modulation = _MODULATION_CODES[policy.modulation] if policy.plastic_layers else 0
        self.bounds = _BOUND_CODES[p.bounds]
        self.rpe_rate = f(p.rpe_rate)
        self.limit = f(p.weight_limit)
        self.eps = f(1e-12)
        self.theta_keep = self.theta_w = f(0.0)  # BCM only (the spiking policy sets them)
        self.consts = np.array([0.0, 1.0, -0.5], dtype=f)
        self._empty2 = np.zeros((0, 0), dtype=f)
        self._empty3 = np.zeros((0, 0, 0), dtype=f)
        self._empty1 = np.zeros(0, dtype=f)
        self.theta = tuple([self._empty2] * L)
        self.baseline = self._empty1
        self.params_require_grad = False
        self._leaves: list[torch.Tensor] | None = None

    # -- parameters (once per load_genome / reload_parameters) --------------------------------
    def set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        """Take the rule's coefficients, the modulator gain and the initial weights of the policy's
        :meth:`kernel_parameters` (``params``: the per-row genome groups, checked for autograd)."""
        self.params_require_grad = any(v.requires_grad for v in params.values())
        view = self.policy.kernel_parameters()
        if view.initial_weights is not None:  # random per-episode weights: drawn at the reset that follows
            self.set_initial_weights()
        self.mod_gain = _np(view.modulator_gain) if view.modulator_gain is not None else self._empty1
        coeffs = view.coefficients

        def coeff(name: str) -> tuple[np.ndarray, ...]:
            return tuple(_np(coeffs[l][name]) if l in self.plastic_set and name in coeffs[l]
                         else self._empty3 for l in range(self.L))

        self.eta = coeff("eta")
        self.cA, self.cB, self.cC, self.cD = (coeff(c) for c in "ABCD")
        if self.rule_update is not None:  # the registered rule's own coefficients, in its spec's order
            names = get_rule(self.policy.rule).coefficients
            self.rule_coefficients = tuple(
                tuple(_np(coeffs[l][c]) for c in names) if l in self.plastic_set else () for l in range(self.L))
        self.delta = tuple([self._empty3] * self.L)
        self._leaves = None

    def set_initial_weights(self) -> None:
        """Take the policy's current initial weights (the finite guard restores them); called again
        whenever the policy draws new ones (``initial_weights.kind: random``)."""
        self.w_init = tuple(_np(w) for w in self.policy.initial_weights)

    # -- state views (rebuilt only when the state's tensors were replaced) --------------------
    def _current_leaves(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def _own_state(self) -> None:
        """Replace the live state's tensors by private contiguous copies and take numpy views of them."""
        raise NotImplementedError

    def _sync(self) -> None:
        leaves = self._current_leaves()
        cached = self._leaves
        if cached is not None and len(cached) == len(leaves) and all(map(operator.is_, leaves, cached)):
            return
        pol = self.policy
        if not pol.invalid.is_contiguous():
            pol.invalid = pol.invalid.contiguous()
        self._own_state()
        self.invalid_np = pol.invalid.numpy()
        self._leaves = self._current_leaves()

    def _check_grad(self, *tensors: torch.Tensor) -> None:
        if torch.is_grad_enabled() and (self.params_require_grad or any(t.requires_grad for t in tensors)):
            raise PlasticRLError(
                "policy.kernel 'fused' runs gradient-free rollouts only: call act/learn under "
                "torch.no_grad() or torch.inference_mode(), or use kernel: torch for autograd (BPTT) "
                "(kernel: auto picks torch when the policy is built with autograd=True)"
            )

    # -- control step ------------------------------------------------------------------------
    @property
    def one_call_per_step(self) -> bool:
        """Whether the rollout loop may run this policy's act and learn inside its compiled step
        (:meth:`step_arguments`): not with a registered rule, whose numba block runs from Python, nor with a
        context unit, which learns in :meth:`BatchedPolicy.learn <plasticrl.agents.base.BatchedPolicy.learn>`."""
        return self.rule_update is None and self.policy.context_unit is None

    def learn(self, reward: torch.Tensor) -> None:
        """One control step of plasticity (the policy has checked that a rule is on)."""
        self._check_grad(reward)
        self._sync()
        if self.rule_update is not None:
            self._registered_rule_changes()
        learn_kernel(*self.learn_arguments(reward.detach().contiguous().numpy()))

    def _registered_rule_changes(self) -> None:
        # the registered rule's block writes each plastic layer's change into delta, which learn_kernel
        # then gates by the modulator and adds (buffers kept while the weights' shapes stay)
        if any(self.delta[l].shape != self.W[l].shape for l in self.plastic_set):
            self.delta = tuple(np.empty_like(self.W[l]) if l in self.plastic_set else self._empty3
                               for l in range(self.L))
        for l in self.plastic_set:
            self.rule_update(self.pre[l], self.post[l], self.W[l], self.eta[l], self.rule_coefficients[l],
                             self.delta[l])

    def learn_arguments(self, reward: np.ndarray) -> tuple:
        """The arguments of :func:`learn_kernel` for the reward array ``reward [N]`` (policy dtype), on the
        current state views (call :meth:`_sync` first)."""
        return (reward, self.modulation, self.mod_gain, self.baseline, self.rpe_rate, self.rule, self.W,
                self.w_init, self.pre, self.post, self.theta, self.eta, self.cA, self.cB, self.cC, self.cD,
                self.delta, self.plastic, self.bounds, self.limit, self.eps, self.theta_keep, self.theta_w,
                self.invalid_np)

    def step_arguments(self, obs: np.ndarray, actions: np.ndarray, reward: np.ndarray) -> tuple[tuple, tuple]:
        """The arguments of the ``act`` and ``learn`` kernels on caller-owned buffers, for a caller that runs
        them itself inside one compiled step (:mod:`plasticrl.rollouts.compiled`): ``obs [N, input_dim]``
        read by ``act``, ``actions [N, act_dim]`` written by it, ``reward [N]`` read by ``learn``, all
        C-contiguous in the policy's dtype. They stay valid while the policy's state tensors do (until
        the next ``load_genome``, ``reset`` or state load); checked for autograd as ``act`` is."""
        self._check_grad()
        self._sync()
        return self.act_arguments(obs, actions), self.learn_arguments(reward)

    def act_arguments(self, obs: np.ndarray, actions: np.ndarray) -> tuple:
        """The arguments of this policy's ``act`` kernel on ``obs`` and ``actions`` (see :meth:`step_arguments`)."""
        raise NotImplementedError


class FusedStep(_FusedGlue):
    """Runs ``act``/``learn`` of one :class:`PlasticSpikingPolicy` through the fused kernels."""

    def __init__(self, policy) -> None:
        super().__init__(policy)
        cfg = policy.config
        f = self.np_dtype
        self.alif = cfg.neuron.model == "alif"
        self.spiking_in = bool(cfg.encoder.spiking)
        self.population = cfg.encoder.kind == "population"
        self.membrane = cfg.decoder.kind == "membrane"
        self.reset_zero = cfg.neuron.reset == "zero"
        dt = policy.dt
        n = cfg.neuron
        self.in_w = f(1.0 - math.exp(-dt / n.tau_mem))
        self.in_th = f(n.v_th)
        self.beta_a = f(n.beta_adapt)
        rho = math.exp(-dt / n.tau_adapt)
        self.rho, self.rho_w = f(rho), f(1.0 - rho)
        const = policy.kernel_constants()
        self.pre_w = f(1.0 - const.keep_pre)
        self.post_w = f(1.0 - const.keep_post)
        self.theta_keep = f(const.theta_keep)
        self.theta_w = f(1.0 - const.theta_keep)
        self.k_float = f(float(policy.K))  # rate decoding divides the spike count by float(K)
        self.mid = _np(const.action_mid)
        self.half = _np(const.action_half)
        self.low = _np(policy.action_low)
        self.span = _np(policy.action_high - policy.action_low)
        if self.population:
            self.centres = _np(const.centres)
            self.sigma = f(const.sigma)
        else:
            self.centres = np.zeros(1, dtype=f)
            self.sigma = f(1.0)
        self.buf = np.zeros((6, max(policy.sizes)), dtype=f)
        self.active = np.zeros(max(policy.sizes), dtype=np.intp)

    # -- parameters (once per load_genome / reload_parameters) --------------------------------
    def set_parameters(self, params: dict[str, torch.Tensor]) -> None:
        """The shared parameters, then the encoder and the neuron constants."""
        pol = self.policy
        f = self.np_dtype
        view = pol.kernel_parameters()
        self.gain = _np(view.encoder_gain)
        self.bias = _np(view.encoder_bias)
        lif_w, th = [], []
        for l in range(pol.output_layer):
            tau = float(params[f"layers.{l}.tau_mem"].reshape(-1)[0])
            v_th = float(params[f"layers.{l}.v_th"].reshape(-1)[0])
            lif_w.append(1.0 - math.exp(-pol.dt / tau))
            th.append(v_th)
        tau_dec = float(params["decoder.tau_mem"].reshape(-1)[0])
        lif_w.append(1.0 - math.exp(-pol.dt / tau_dec))
        th.append(pol.config.neuron.v_th)
        self.lif_w = np.array(lif_w, dtype=f)
        self.th = np.array(th, dtype=f)
        super().set_parameters(params)

    def set_initial_weights(self) -> None:
        """The shared initial weights, and whether a weight is non-finite (then every input is summed:
        skipping a silent input would drop its inf * 0 = NaN)."""
        super().set_initial_weights()
        self.dense = not all(bool(np.isfinite(w).all()) for w in self.w_init)

    # -- state views --------------------------------------------------------------------------
    def _current_leaves(self) -> list[torch.Tensor]:
        s = self.policy.live_state
        leaves = [self.policy.invalid, s.output.v]
        if self.spiking_in:
            leaves.append(s.input.v)
        for h in s.hidden:
            leaves.append(h.v)
            if self.alif:
                leaves.append(h.a)
        leaves.extend(s.weights)
        for l in self.plastic_set:
            leaves.append(s.pre[l])
            leaves.append(s.post[l])
        leaves.extend(s.theta.values())
        if s.baseline is not None:
            leaves.append(s.baseline)
        return leaves

    def _own_state(self) -> None:
        s = self.policy.live_state
        s.output = s.output._replace(v=_own(s.output.v))
        if self.spiking_in:
            s.input = s.input._replace(v=_own(s.input.v))
        if self.alif:
            s.hidden = [h._replace(v=_own(h.v), a=_own(h.a)) for h in s.hidden]
        else:
            s.hidden = [h._replace(v=_own(h.v)) for h in s.hidden]
        s.weights = [_own(w) for w in s.weights]
        s.pre = {l: _own(t) for l, t in s.pre.items()}
        s.post = {l: _own(t) for l, t in s.post.items()}
        s.theta = {l: _own(t) for l, t in s.theta.items()}
        if s.baseline is not None:
            s.baseline = _own(s.baseline)
        L, e2 = self.L, self._empty2
        self.W = tuple(w.numpy() for w in s.weights)
        self.V = tuple([h.v.numpy() for h in s.hidden] + [s.output.v.numpy()])
        self.A = tuple([h.a.numpy() for h in s.hidden] + [e2]) if self.alif else tuple([e2] * L)
        self.in_v = s.input.v.numpy() if self.spiking_in else e2
        self.pre = tuple(s.pre[l].numpy() if l in self.plastic_set else e2 for l in range(L))
        self.post = tuple(s.post[l].numpy() if l in self.plastic_set else e2 for l in range(L))
        self.theta = tuple(s.theta[l].numpy() if l in s.theta else e2 for l in range(L))
        self.baseline = s.baseline.numpy() if s.baseline is not None else self._empty1

    # -- control step ------------------------------------------------------------------------
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [N, input_dim]`` -> actions, advancing the neuron state and traces in place."""
        self._check_grad(obs)
        self._sync()
        pol = self.policy
        actions = torch.empty((pol.num_rows, pol.act_dim), dtype=pol.dtype)
        act_kernel(*self.act_arguments(obs.detach().contiguous().numpy(), actions.numpy()))
        return actions

    def act_arguments(self, obs: np.ndarray, actions: np.ndarray) -> tuple:
        """The arguments of :func:`act_kernel` for ``obs`` and ``actions``, on the current state views."""
        return (obs, self.gain, self.bias, self.centres, self.sigma, self.population, self.spiking_in,
                self.in_v, self.in_w, self.in_th, self.W, self.V, self.A, self.lif_w, self.th, self.alif,
                self.beta_a, self.rho, self.rho_w, self.reset_zero, self.pre, self.post, self.plastic,
                self.pre_w, self.post_w, self.policy.K, self.membrane, self.mid, self.half, self.low, self.span,
                self.k_float, self.invalid_np, actions, self.buf, self.active, self.dense, self.consts)


class HebbianMLPFusedStep(_FusedGlue):
    """Runs ``act``/``learn`` of one :class:`HebbianMLPPolicy` through :func:`mlp_act_kernel` and
    :func:`learn_kernel`."""

    def __init__(self, policy) -> None:
        super().__init__(policy)
        const = policy.kernel_constants()
        self.mid = _np(const.action_mid)
        self.half = _np(const.action_half)
        self.buf = np.zeros((2, max(policy.sizes)), dtype=self.np_dtype)

    # -- state views --------------------------------------------------------------------------
    def _current_leaves(self) -> list[torch.Tensor]:
        s = self.policy.live_state
        leaves = [self.policy.invalid, *s.weights]
        for l in self.plastic_set:
            leaves.append(s.pre[l])
            leaves.append(s.post[l])
        if s.baseline is not None:
            leaves.append(s.baseline)
        return leaves

    def _own_state(self) -> None:
        s = self.policy.live_state
        s.weights = [_own(w) for w in s.weights]
        s.pre = {l: _own(t) for l, t in s.pre.items()}
        s.post = {l: _own(t) for l, t in s.post.items()}
        if s.baseline is not None:
            s.baseline = _own(s.baseline)
        e2 = self._empty2
        self.W = tuple(w.numpy() for w in s.weights)
        self.pre = tuple(s.pre[l].numpy() if l in self.plastic_set else e2 for l in range(self.L))
        self.post = tuple(s.post[l].numpy() if l in self.plastic_set else e2 for l in range(self.L))
        self.baseline = s.baseline.numpy() if s.baseline is not None else self._empty1

    # -- control step ------------------------------------------------------------------------
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [N, input_dim]`` -> actions, keeping each plastic layer's pre/post activity in place."""
        self._check_grad(obs)
        self._sync()
        pol = self.policy
        actions = torch.empty((pol.num_rows, pol.act_dim), dtype=pol.dtype)
        mlp_act_kernel(*self.act_arguments(obs.detach().contiguous().numpy(), actions.numpy()))
        return actions

    def act_arguments(self, obs: np.ndarray, actions: np.ndarray) -> tuple:
        """The arguments of :func:`mlp_act_kernel` for ``obs`` and ``actions``, on the current state views."""
        return (obs, self.W, self.pre, self.post, self.plastic, self.mid, self.half, self.invalid_np, actions,
                self.buf)
