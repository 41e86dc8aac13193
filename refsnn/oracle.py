"""The oracle: a deliberately plain NumPy forward pass and BPTT, read beside the derivation.

Every line cites the equation of ``docs/derivation.md`` it computes: Eq. (1)-(11) for
the forward pass, Eq. (B1)-(B13) for the adjoints. Arrays are indexed by state
``k = 0 .. K`` (state 0 is the zero initial state) and vectorised over the batch and
the neurons only; time is an explicit Python loop, in the order of the derivation.
Nothing here is fast on purpose: the Numba kernels in ``refsnn.kernels`` are tested
against this module.
"""

from __future__ import annotations

import numpy as np

from .conventions import Conventions
from .network import cross_entropy, input_scale
from .params import Params
from .surrogates import smooth_spike, surrogate

__all__ = ["oracle_forward", "oracle_loss_and_grad"]


def _n_updates(T: int, conv: Conventions) -> int:
    return T - 1 if conv.skip_last_input else T


def _spike(v_minus_th: np.ndarray, conv: Conventions) -> np.ndarray:
    """Eq. (1): the forward spike."""
    if conv.spike_fn == "sigmoid":
        return smooth_spike(v_minus_th, conv.surrogate_scale)
    if conv.spike_test == "ge":
        return (v_minus_th >= 0).astype(v_minus_th.dtype)
    return (v_minus_th > 0).astype(v_minus_th.dtype)


def _delayed(s: np.ndarray, k: int) -> np.ndarray:
    """``s[:, k]``, or zeros for k < 0 (no spikes before the start)."""
    if k < 0:
        return np.zeros_like(s[:, 0])
    return s[:, k]


def oracle_forward(p: Params, x: np.ndarray, conv: Conventions) -> dict:
    """Run Eq. (1)-(9) and return every state, indexed k = 0 .. K.

    Returns a dict of arrays: ``i`` (B, K+1, N), ``v`` (B, K+1, N), ``s`` (B, K+1, N),
    ``i_out`` (B, K+1, C), ``v_out`` (B, K+1, C), ``logits`` (B, C), and ``K``.
    """
    B, T, _ = x.shape
    K = _n_updates(T, conv)
    N, C = p.n_hidden, p.n_out
    dt = x.dtype
    i = np.zeros((B, K + 1, N), dt)
    v = np.zeros((B, K + 1, N), dt)
    s = np.zeros((B, K + 1, N), dt)
    g_mem, _ = input_scale(p.decay_mem, conv)
    sub = conv.reset == "subtract"
    sub_decayed = conv.reset == "subtract_decayed"
    to_leak = conv.reset == "to_reset_leak"
    to_full = conv.reset == "to_reset"

    for t in range(K):
        s[:, t] = _spike(v[:, t] - p.threshold, conv)  # Eq. (1)
        # Eq. (2): synaptic current
        i[:, t + 1] = (
            p.decay_syn * i[:, t]
            + x[:, t] @ p.w_in
            + _delayed(s, t + 1 - conv.recurrent_delay) @ p.w_rec
        )
        drive = i[:, t + 1] if conv.membrane_current == "new" else i[:, t]  # Eq. (3)
        r = s[:, t]  # the spike that resets (a constant for BPTT if reset_detached)
        # Eq. (4): reset before the leak
        pre = v[:, t]
        if sub_decayed:
            pre = v[:, t] - r * (p.threshold - p.v_reset)
        elif to_leak:
            pre = v[:, t] - r * (v[:, t] - p.v_reset)
        # Eq. (5): leak, input, reset after the leak
        cand = p.decay_mem * (pre - p.v_rest) + p.v_rest + g_mem * drive
        if sub:
            cand = cand - r * (p.threshold - p.v_reset)
        # Eq. (6): the new membrane
        v[:, t + 1] = (1 - r) * cand + r * p.v_reset if to_full else cand
    s[:, K] = _spike(v[:, K] - p.threshold, conv)  # Eq. (1) for the last state

    # Eq. (7)-(8): the readout, driven by the (delayed) hidden spikes
    i_out = np.zeros((B, K + 1, C), dt)
    v_out = np.zeros((B, K + 1, C), dt)
    g_out, _ = input_scale(p.decay_mem_out, conv)
    for t in range(K):
        i_out[:, t + 1] = p.decay_syn_out * i_out[:, t] + _delayed(
            s, t + 1 - conv.readout_delay
        ) @ p.w_out  # Eq. (7)
        drive = i_out[:, t + 1] if conv.membrane_current == "new" else i_out[:, t]
        v_out[:, t + 1] = p.decay_mem_out * v_out[:, t] + g_out * drive  # Eq. (8)

    logits = _reduce(s, v_out, p, conv, K)  # Eq. (9)
    return dict(i=i, v=v, s=s, i_out=i_out, v_out=v_out, logits=logits, K=K)


def _window(conv: Conventions, K: int) -> slice:
    return slice(0 if conv.record_initial_state else 1, K + 1)


def _reduce(s, v_out, p: Params, conv: Conventions, K: int) -> np.ndarray:
    """Eq. (9): the logits from the readout trace."""
    w = v_out[:, _window(conv, K)]
    if conv.reduction == "max":
        return w.max(axis=1)
    if conv.reduction == "mean":
        return w.mean(axis=1)
    if conv.reduction == "last":
        return v_out[:, K]
    total = np.zeros((s.shape[0], p.n_out), s.dtype)  # "count"
    for t in range(K):
        total += _delayed(s, t + 1 - conv.readout_delay) @ p.w_out
    return total


def oracle_loss_and_grad(p: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions):
    """Loss Eq. (10)-(11) and its gradient by the adjoint recursions Eq. (B1)-(B13).

    Returns ``(loss, grads, states)`` with ``grads`` a ``Params`` and ``states`` the
    dict of ``oracle_forward``.
    """
    st = oracle_forward(p, x, conv)
    i, v, s, i_out, v_out, K = st["i"], st["v"], st["s"], st["i_out"], st["v_out"], st["K"]
    B, T, _ = x.shape
    N = p.n_hidden
    loss, g_logits = cross_entropy(st["logits"], labels)  # Eq. (10), (B1)

    # Eq. (11): spike-count regularisers; (B2) their gradient with respect to s[k]
    g_s = np.zeros_like(s)
    count = s[:, :K].sum(axis=1)  # (B, N)
    if conv.reg_rate_strength > 0:
        excess = np.maximum(count / T - conv.reg_rate_target, 0.0)
        loss += conv.reg_rate_strength / (B + N) * np.sum(excess**2)
        g_s[:, :K] += (conv.reg_rate_strength / (B + N) * 2 * excess / T)[:, None, :]
    if conv.reg_pop_strength > 0:
        excess = np.maximum(count.sum(axis=1) / N - conv.reg_pop_target, 0.0)  # (B,)
        loss += conv.reg_pop_strength / B * np.sum(excess**2)
        g_s[:, :K] += (conv.reg_pop_strength / B * 2 * excess / N)[:, None, None]

    # ---------------------------------------------------------------- readout
    g_v_out = np.zeros_like(v_out)
    g_i_out = np.zeros_like(i_out)
    win = _window(conv, K)
    if conv.reduction == "max":  # (B3): to the first time of the maximum
        k_max = win.start + v_out[:, win].argmax(axis=1)  # (B, C)
        b_idx, c_idx = np.meshgrid(np.arange(B), np.arange(p.n_out), indexing="ij")
        g_v_out[b_idx, k_max, c_idx] += g_logits
    elif conv.reduction == "mean":
        g_v_out[:, win] += g_logits[:, None, :] / (win.stop - win.start)
    elif conv.reduction == "last":
        g_v_out[:, K] += g_logits
    g_out = {n: np.zeros_like(getattr(p, n)) for n in ("w_out", "decay_syn_out", "decay_mem_out")}
    g_mem_out, dg_mem_out = input_scale(p.decay_mem_out, conv)
    new = conv.membrane_current == "new"
    for t in reversed(range(K)):
        if conv.reduction == "count":
            g_i_out[:, t + 1] = g_logits  # (B6'): every readout input counts once
        else:
            drive = i_out[:, t + 1] if new else i_out[:, t]
            # (B4): Eq. (8) backwards
            g_out["decay_mem_out"] += np.sum(
                g_v_out[:, t + 1] * (v_out[:, t] + dg_mem_out * drive), axis=0
            )
            g_v_out[:, t] += p.decay_mem_out * g_v_out[:, t + 1]
            if new:
                g_i_out[:, t + 1] += g_mem_out * g_v_out[:, t + 1]
            else:
                g_i_out[:, t] += g_mem_out * g_v_out[:, t + 1]
            # (B5): Eq. (7) backwards, decay term
            g_out["decay_syn_out"] += np.sum(g_i_out[:, t + 1] * i_out[:, t], axis=0)
            g_i_out[:, t] += p.decay_syn_out * g_i_out[:, t + 1]
        # (B6): Eq. (7) backwards, spike term
        k = t + 1 - conv.readout_delay
        if k >= 0:
            g_out["w_out"] += s[:, k].T @ g_i_out[:, t + 1]
            g_s[:, k] += g_i_out[:, t + 1] @ p.w_out.T

    # ---------------------------------------------------------------- hidden layer
    g_v = np.zeros_like(v)
    g_i = np.zeros_like(i)
    g = {n: np.zeros_like(getattr(p, n)) for n in ("w_in", "w_rec", "decay_syn", "decay_mem",
                                                   "threshold", "v_reset", "v_rest")}
    g_mem, dg_mem = input_scale(p.decay_mem, conv)
    detach_r = conv.reset_detached
    th_hat_grad = not conv.reset_threshold_detached
    sub = conv.reset == "subtract"
    sub_decayed = conv.reset == "subtract_decayed"
    to_leak = conv.reset == "to_reset_leak"
    to_full = conv.reset == "to_reset"

    def spike_backward(k):
        """(B7): Eq. (1) backwards, once every use of s[k] has sent its adjoint."""
        d = surrogate(conv.surrogate, v[:, k] - p.threshold, conv.surrogate_scale)
        g_v[:, k] += d * g_s[:, k]
        g["threshold"] -= np.sum(d * g_s[:, k], axis=0)

    spike_backward(K)
    for t in reversed(range(K)):
        r = s[:, t]
        th_minus_reset = p.threshold - p.v_reset
        drive = i[:, t + 1] if new else i[:, t]
        pre = v[:, t]
        if sub_decayed:
            pre = v[:, t] - r * th_minus_reset
        elif to_leak:
            pre = v[:, t] - r * (v[:, t] - p.v_reset)
        cand = p.decay_mem * (pre - p.v_rest) + p.v_rest + g_mem * drive
        if sub:
            cand = cand - r * th_minus_reset
        g_r = np.zeros_like(r)
        # (B8): Eq. (6) backwards
        if to_full:
            g_cand = (1 - r) * g_v[:, t + 1]
            g_r += (p.v_reset - cand) * g_v[:, t + 1]
            g["v_reset"] += np.sum(r * g_v[:, t + 1], axis=0)
        else:
            g_cand = g_v[:, t + 1]
        # (B9): Eq. (5) backwards
        g["decay_mem"] += np.sum(g_cand * (pre - p.v_rest + dg_mem * drive), axis=0)
        g["v_rest"] += np.sum(g_cand * (1 - p.decay_mem), axis=0)
        if new:
            g_i[:, t + 1] += g_mem * g_cand
        else:
            g_i[:, t] += g_mem * g_cand
        g_pre = p.decay_mem * g_cand
        if sub:
            g_r -= th_minus_reset * g_cand
            g["v_reset"] += np.sum(r * g_cand, axis=0)
            if th_hat_grad:
                g["threshold"] -= np.sum(r * g_cand, axis=0)
        # (B10): Eq. (4) backwards
        if sub_decayed:
            g_r -= th_minus_reset * g_pre
            g["v_reset"] += np.sum(r * g_pre, axis=0)
            if th_hat_grad:
                g["threshold"] -= np.sum(r * g_pre, axis=0)
            g_v[:, t] += g_pre
        elif to_leak:
            g_r -= (v[:, t] - p.v_reset) * g_pre
            g["v_reset"] += np.sum(r * g_pre, axis=0)
            g_v[:, t] += (1 - r) * g_pre
        else:
            g_v[:, t] += g_pre
        if not detach_r:
            g_s[:, t] += g_r
        # (B11): Eq. (2) backwards
        g["decay_syn"] += np.sum(g_i[:, t + 1] * i[:, t], axis=0)
        g_i[:, t] += p.decay_syn * g_i[:, t + 1]
        g["w_in"] += x[:, t].T @ g_i[:, t + 1]
        k = t + 1 - conv.recurrent_delay
        if k >= 0:
            g["w_rec"] += s[:, k].T @ g_i[:, t + 1]
            g_s[:, k] += g_i[:, t + 1] @ p.w_rec.T
        # every use of s[t] is now accounted for: (B7) at state t
        spike_backward(t)

    grads = Params(**g, **g_out)
    return float(loss), grads, st
