"""Numba kernels: the forward pass Eq. (1)-(8) and BPTT Eq. (B3)-(B13), side by side.

Private and unchecked: ``refsnn.network`` validates, unpacks the records into the
packed arrays below, allocates every output, and calls these. Nothing is allocated
inside a time loop. Each sample of the batch is an independent task of a ``prange``
and writes only its own slots; the weight gradients are then reduced by a second
``prange`` over weight ROWS, each row summed over (sample, time) in a fixed order, so
results are bitwise identical for any thread count.

Packed arguments
----------------
hid : (7, N)
    rows ``H_DECAY_SYN, H_DECAY_MEM, H_THRESHOLD, H_V_RESET, H_V_REST`` are the
    per-neuron parameters; ``H_G`` and ``H_DG`` hold g(decay_mem) and g'(decay_mem)
    of Eq. (5) (g' already zero when the input scale is detached).
out : (4, C)
    rows ``O_DECAY_SYN, O_DECAY_MEM, O_G, O_DG`` for the readout, Eq. (7)-(8).
flags : int64 (F_COUNT,)
    the conventions as integers, indexed by the ``F_*`` constants.
ev_ptr, ev_idx, ev_val
    the input as events: for sample b and input step t < K, the events are
    ``ev_idx[ev_ptr[b*K + t] : ev_ptr[b*K + t + 1]]`` with values ``ev_val``.
"""

from __future__ import annotations

from ._numba import jit, pjit, prange
from .surrogates import smooth_spike_scalar, surrogate_scalar

H_DECAY_SYN, H_DECAY_MEM, H_THRESHOLD, H_V_RESET, H_V_REST, H_G, H_DG = range(7)
O_DECAY_SYN, O_DECAY_MEM, O_G, O_DG = range(4)

# flags
F_SPIKE, F_SURR, F_RESET, F_NEW, F_REC_DELAY, F_OUT_DELAY = range(6)
F_DETACH_R, F_DETACH_TH, F_REDUCTION, F_WIN_START = range(6, 10)
F_COUNT = 10
SPIKE_GT, SPIKE_GE, SPIKE_SIGMOID = 0, 1, 2
RESET_CODES = {"subtract": 0, "subtract_decayed": 1, "to_reset_leak": 2, "to_reset": 3, "none": 4}
RESET_SUB, RESET_SUB_DECAYED, RESET_TO_LEAK, RESET_TO_FULL, RESET_NONE = range(5)
REDUCTION_CODES = {"max": 0, "mean": 1, "last": 2, "count": 3}
RED_MAX, RED_MEAN, RED_LAST, RED_COUNT = range(4)


@jit
def _spike(vth, mode, scale):
    """Eq. (1) for one neuron: ``vth = v - threshold``."""
    if mode == SPIKE_SIGMOID:
        return smooth_spike_scalar(vth, scale)
    if mode == SPIKE_GE:
        return 1.0 if vth >= 0 else 0.0
    return 1.0 if vth > 0 else 0.0


# ============================================================================ forward
@jit
def _forward_sample(b, ev_ptr, ev_idx, ev_val, w_in, w_rec, w_out, hid, out, flags, scale,
                    i, v, s, i_out, v_out):
    """Eq. (1)-(8) for sample b, writing states 0 .. K into its slots."""
    K = i.shape[1] - 1
    N = w_in.shape[1]
    C = w_out.shape[1]
    mode = flags[F_SPIKE]
    reset = flags[F_RESET]
    new = flags[F_NEW] == 1
    d = flags[F_REC_DELAY]
    r_delay = flags[F_OUT_DELAY]
    for t in range(K):
        for n in range(N):  # Eq. (1)
            s[b, t, n] = _spike(v[b, t, n] - hid[H_THRESHOLD, n], mode, scale)
        for n in range(N):  # Eq. (2), leak
            i[b, t + 1, n] = hid[H_DECAY_SYN, n] * i[b, t, n]
        base = b * K + t
        for e in range(ev_ptr[base], ev_ptr[base + 1]):  # Eq. (2), input events
            val = ev_val[e]
            row = ev_idx[e]
            for n in range(N):
                i[b, t + 1, n] += val * w_in[row, n]
        k = t + 1 - d
        if k >= 0:  # Eq. (2), recurrent spikes (zeros skipped)
            for j in range(N):
                sj = s[b, k, j]
                if sj != 0:
                    for n in range(N):
                        i[b, t + 1, n] += sj * w_rec[j, n]
        for n in range(N):  # Eq. (3)-(6)
            drive = i[b, t + 1, n] if new else i[b, t, n]
            r = s[b, t, n]
            th_minus_reset = hid[H_THRESHOLD, n] - hid[H_V_RESET, n]
            pre = v[b, t, n]
            if reset == RESET_SUB_DECAYED:
                pre = pre - r * th_minus_reset
            elif reset == RESET_TO_LEAK:
                pre = pre - r * (pre - hid[H_V_RESET, n])
            rest = hid[H_V_REST, n]
            cand = hid[H_DECAY_MEM, n] * (pre - rest) + rest + hid[H_G, n] * drive
            if reset == RESET_SUB:
                cand = cand - r * th_minus_reset
            if reset == RESET_TO_FULL:
                cand = (1 - r) * cand + r * hid[H_V_RESET, n]
            v[b, t + 1, n] = cand
    for n in range(N):  # Eq. (1), last state
        s[b, K, n] = _spike(v[b, K, n] - hid[H_THRESHOLD, n], mode, scale)
    for t in range(K):
        for c in range(C):  # Eq. (7), leak
            i_out[b, t + 1, c] = out[O_DECAY_SYN, c] * i_out[b, t, c]
        k = t + 1 - r_delay
        if k >= 0:  # Eq. (7), spikes
            for j in range(N):
                sj = s[b, k, j]
                if sj != 0:
                    for c in range(C):
                        i_out[b, t + 1, c] += sj * w_out[j, c]
        for c in range(C):  # Eq. (8)
            drive = i_out[b, t + 1, c] if new else i_out[b, t, c]
            v_out[b, t + 1, c] = out[O_DECAY_MEM, c] * v_out[b, t, c] + out[O_G, c] * drive


@pjit
def forward_kernel(ev_ptr, ev_idx, ev_val, w_in, w_rec, w_out, hid, out, flags, scale,
                   i, v, s, i_out, v_out):
    """Eq. (1)-(8) for every sample, in parallel over the batch."""
    for b in prange(i.shape[0]):
        _forward_sample(b, ev_ptr, ev_idx, ev_val, w_in, w_rec, w_out, hid, out, flags,
                        scale, i, v, s, i_out, v_out)


# ============================================================================ backward
@jit
def _backward_sample(b, w_rec, w_out, hid, out, flags, scale, i, v, s, i_out, v_out,
                     g_logits, k_max, g_s, g_i, g_i_out, g_hid, g_out, g_v, g_v_next,
                     g_vo):
    """Eq. (B3)-(B11) for sample b.

    Inputs: the states of the forward pass, ``g_logits`` (B, C) from Eq. (B1),
    ``k_max`` (B, C) the argmax states of Eq. (9), ``g_s`` (B, K+1, N) holding the
    regulariser adjoint of Eq. (B2). Outputs (this sample's slots): ``g_s``,
    ``g_i`` (B, K+1, N), ``g_i_out`` (B, K+1, C), per-neuron gradients ``g_hid``
    (B, 5, N) and per-unit ``g_out`` (B, 2, C). ``g_v``, ``g_v_next`` (B, N) and
    ``g_vo`` (B, C) are scratch.
    """
    K = i.shape[1] - 1
    N = w_rec.shape[0]
    C = w_out.shape[1]
    surr = flags[F_SURR]
    reset = flags[F_RESET]
    new = flags[F_NEW] == 1
    d = flags[F_REC_DELAY]
    r_delay = flags[F_OUT_DELAY]
    detach_r = flags[F_DETACH_R] == 1
    detach_th = flags[F_DETACH_TH] == 1
    red = flags[F_REDUCTION]
    k0 = flags[F_WIN_START]
    inv_w = 1.0 / (K + 1 - k0)

    # ------------------------------------------------ readout, Eq. (B3)-(B6)
    for c in range(C):  # (B3): adjoint of v_out[K] from the reduction
        g_vo[b, c] = 0.0
        if red == RED_MAX and k_max[b, c] == K:
            g_vo[b, c] = g_logits[b, c]
        elif red == RED_MEAN:
            g_vo[b, c] = g_logits[b, c] * inv_w
        elif red == RED_LAST:
            g_vo[b, c] = g_logits[b, c]
    for t in range(K - 1, -1, -1):
        if red == RED_COUNT:
            for c in range(C):  # (B6')
                g_i_out[b, t + 1, c] = g_logits[b, c]
        else:
            for c in range(C):
                gv = g_vo[b, c]  # adjoint of v_out[t+1], complete
                drive = i_out[b, t + 1, c] if new else i_out[b, t, c]
                # (B4): Eq. (8) backwards
                g_out[b, 1, c] += gv * (v_out[b, t, c] + out[O_DG, c] * drive)
                if new:
                    g_i_out[b, t + 1, c] += out[O_G, c] * gv
                else:
                    g_i_out[b, t, c] += out[O_G, c] * gv
                # (B5): Eq. (7) backwards, leak
                gi = g_i_out[b, t + 1, c]
                g_out[b, 0, c] += gi * i_out[b, t, c]
                g_i_out[b, t, c] += out[O_DECAY_SYN, c] * gi
                # (B3) at state t: chain through the leak plus the reduction
                gv_t = out[O_DECAY_MEM, c] * gv
                if t >= k0:
                    if red == RED_MAX and k_max[b, c] == t:
                        gv_t += g_logits[b, c]
                    elif red == RED_MEAN:
                        gv_t += g_logits[b, c] * inv_w
                g_vo[b, c] = gv_t
        k = t + 1 - r_delay
        if k >= 0:  # (B6): Eq. (7) backwards, spikes
            for j in range(N):
                acc = 0.0
                for c in range(C):
                    acc += w_out[j, c] * g_i_out[b, t + 1, c]
                g_s[b, k, j] += acc

    # ------------------------------------------------ hidden layer, Eq. (B7)-(B11)
    for n in range(N):  # (B7) at state K
        dsur = surrogate_scalar(surr, v[b, K, n] - hid[H_THRESHOLD, n], scale)
        g_v_next[b, n] = dsur * g_s[b, K, n]
        g_hid[b, 2, n] -= dsur * g_s[b, K, n]
    for t in range(K - 1, -1, -1):
        for n in range(N):
            gv1 = g_v_next[b, n]  # adjoint of v[t+1], complete
            r = s[b, t, n]
            th_minus_reset = hid[H_THRESHOLD, n] - hid[H_V_RESET, n]
            drive = i[b, t + 1, n] if new else i[b, t, n]
            pre = v[b, t, n]
            if reset == RESET_SUB_DECAYED:
                pre = pre - r * th_minus_reset
            elif reset == RESET_TO_LEAK:
                pre = pre - r * (pre - hid[H_V_RESET, n])
            rest = hid[H_V_REST, n]
            decay = hid[H_DECAY_MEM, n]
            g_r = 0.0
            # (B8): Eq. (6) backwards
            if reset == RESET_TO_FULL:
                cand = decay * (pre - rest) + rest + hid[H_G, n] * drive
                g_cand = (1 - r) * gv1
                g_r += (hid[H_V_RESET, n] - cand) * gv1
                g_hid[b, 3, n] += r * gv1
            else:
                g_cand = gv1
            # (B9): Eq. (5) backwards
            g_hid[b, 1, n] += g_cand * (pre - rest + hid[H_DG, n] * drive)
            g_hid[b, 4, n] += g_cand * (1 - decay)
            if new:
                g_i[b, t + 1, n] += hid[H_G, n] * g_cand
            else:
                g_i[b, t, n] += hid[H_G, n] * g_cand
            g_pre = decay * g_cand
            if reset == RESET_SUB:
                g_r -= th_minus_reset * g_cand
                g_hid[b, 3, n] += r * g_cand
                if not detach_th:
                    g_hid[b, 2, n] -= r * g_cand
            # (B10): Eq. (4) backwards
            if reset == RESET_SUB_DECAYED:
                g_r -= th_minus_reset * g_pre
                g_hid[b, 3, n] += r * g_pre
                if not detach_th:
                    g_hid[b, 2, n] -= r * g_pre
                g_v[b, n] = g_pre
            elif reset == RESET_TO_LEAK:
                g_r -= (v[b, t, n] - hid[H_V_RESET, n]) * g_pre
                g_hid[b, 3, n] += r * g_pre
                g_v[b, n] = (1 - r) * g_pre
            else:
                g_v[b, n] = g_pre
            if not detach_r:
                g_s[b, t, n] += g_r
            # (B11): Eq. (2) backwards, leak
            gi = g_i[b, t + 1, n]
            g_hid[b, 0, n] += gi * i[b, t, n]
            g_i[b, t, n] += hid[H_DECAY_SYN, n] * gi
        k = t + 1 - d
        if k >= 0:  # (B11): Eq. (2) backwards, recurrent spikes
            for j in range(N):
                acc = 0.0
                for n in range(N):
                    acc += w_rec[j, n] * g_i[b, t + 1, n]
                g_s[b, k, j] += acc
        for n in range(N):  # (B7) at state t: every use of s[t] has sent its adjoint
            dsur = surrogate_scalar(surr, v[b, t, n] - hid[H_THRESHOLD, n], scale)
            g_v_next[b, n] = g_v[b, n] + dsur * g_s[b, t, n]
            g_hid[b, 2, n] -= dsur * g_s[b, t, n]


@pjit
def backward_kernel(w_rec, w_out, hid, out, flags, scale, i, v, s, i_out, v_out, g_logits,
                    k_max, g_s, g_i, g_i_out, g_hid, g_out, g_v, g_v_next, g_vo):
    """Eq. (B3)-(B11) for every sample, in parallel over the batch."""
    for b in prange(i.shape[0]):
        _backward_sample(b, w_rec, w_out, hid, out, flags, scale, i, v, s, i_out, v_out,
                         g_logits, k_max, g_s, g_i, g_i_out, g_hid, g_out, g_v, g_v_next,
                         g_vo)


# ============================================================ weight gradients, (B12)-(B13)
@pjit
def input_weight_grad(row_ptr, ev_b, ev_t, ev_val, g_i, g_w_in):
    """(B12): ``g_w_in[m] = sum over events (b, t, m) of x * g_i[b, t+1]``.

    The events are grouped by input row m (``row_ptr``), sorted by (b, t) within a
    row, so each row is summed in a fixed order by one task.
    """
    N = g_w_in.shape[1]
    for m in prange(g_w_in.shape[0]):
        for n in range(N):
            g_w_in[m, n] = 0.0
        for e in range(row_ptr[m], row_ptr[m + 1]):
            b = ev_b[e]
            t1 = ev_t[e] + 1
            val = ev_val[e]
            for n in range(N):
                g_w_in[m, n] += val * g_i[b, t1, n]


@pjit
def spike_weight_grad(s, delay, g_cur, g_w):
    """(B13): ``g_w[j] = sum over (b, t) of s[b, t+1-delay, j] * g_cur[b, t+1]``.

    For the recurrent weights (``g_cur = g_i``, delay d) and the readout weights
    (``g_cur = g_i_out``, delay r). One task per row j; zero spikes skipped.
    """
    B = s.shape[0]
    K = s.shape[1] - 1
    M = g_w.shape[1]
    for j in prange(g_w.shape[0]):
        for m in range(M):
            g_w[j, m] = 0.0
        for b in range(B):
            for t in range(K):
                k = t + 1 - delay
                if k < 0:
                    continue
                sj = s[b, k, j]
                if sj != 0:
                    for m in range(M):
                        g_w[j, m] += sj * g_cur[b, t + 1, m]
