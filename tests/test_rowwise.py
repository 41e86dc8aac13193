"""Elementwise passes over rows (``refsnn._intrinsics.rowwise``) and the kernel steps built on them.

A compiled pass and its Python twin (NumPy, which rounds every operation once) must give
the same bits: nothing contracted into an fma, nothing reassociated. A pass writes only
the first n columns of its rows, reads every input of a column before writing its
outputs, and reports a non-finite flag in any of its columns, the masked last vector
included, but never for the lanes past n. Each kernel step that runs as one pass must
give, bit for bit, its expressions written out one operation at a time as the equations
of ``refsnn.kernels`` state them, and the forward pass and the recomputation of BPTT
(each a pass per state) the same membrane and spikes.
"""

import numba
import numpy as np
import pytest
from numba import njit

import refsnn
from refsnn import _intrinsics as vec
from refsnn import kernels as kn
from refsnn import network

DTYPES = [np.float32, np.float64]
WIDTHS = [1, 3, 7, 8, 15, 16, 17, 37, 64, 130]


def _same_bits(u, v):
    u, v = np.asarray(u), np.asarray(v)
    return u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()


def _every_operator(a, b, c, scale, one, zero):
    out_a = a * b + c / scale - abs(b - c)  # a * b + c: an fma would round once
    out_b = vec.where(a > b, a, c) - (0.5 - b)
    out_c = -a + vec.where(b >= c, one, zero) * scale
    # flags: the last is inf in the lanes past n, which the masked vector loads as 0
    return out_a, out_b, out_c, a * scale, out_c, scale / a


_SIMPLE_TWIN, _SIMPLE_VECTOR = vec._rowwise(_every_operator, 3, 3)
# under NUMBA_DISABLE_JIT=1 an intrinsic cannot run: the twin stands in (as in the kernels)
_SIMPLE = _SIMPLE_TWIN if numba.config.DISABLE_JIT else _SIMPLE_VECTOR


@njit
def _simple(n, a, b, c, starts, scale):
    return _SIMPLE(n, (a, b, c), starts, (scale, 1.0, 0.0))


def _rows(rng, dtype, n, pad=5):
    """Three arrays of 2 rows of n + pad columns, the pad holding sentinels (inf, NaN)."""
    arrays = []
    for _ in range(3):
        a = (rng.standard_normal((2, n + pad)) * 10.0 ** rng.integers(-3, 4, (2, n + pad)))
        a[:, n:] = [np.inf, np.nan, -np.inf, 1e30, 7.0][:pad]
        arrays.append(a.astype(dtype))
    arrays[1][1, : n // 2] = arrays[2][1, : n // 2]  # ties for >=
    return arrays


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", WIDTHS)
def test_pass_equals_its_twin_and_touches_only_its_columns(dtype, n):
    rng = np.random.default_rng(n)
    a, b, c = _rows(rng, dtype, n)
    W = n + 5
    starts = (W, W, 0)  # rows 1 of a, b (in place) and row 0 of c
    got = [x.copy() for x in (a, b, c)]
    twin = [x.copy() for x in (a, b, c)]
    flags = _simple(n, *got, starts, 3.0)
    twin_flags = _SIMPLE_TWIN(n, tuple(twin), starts, (3.0, 1.0, 0.0))
    for g, t, x in zip(got, twin, (a, b, c), strict=True):
        assert _same_bits(g, t)
        assert _same_bits(g[0, :], x[0, :]) or x is c  # rows not passed: untouched
        assert _same_bits(g[:, n:], x[:, n:])  # nothing past the n columns
    # the outputs are the expressions on the inputs as they were before the pass
    want_a = a[1, :n] * b[1, :n] + c[0, :n] / dtype(3.0) - np.abs(b[1, :n] - c[0, :n])
    assert _same_bits(got[0][1, :n], want_a)
    assert _same_bits(got[2][0, :n], -a[1, :n] + (b[1, :n] >= c[0, :n]).astype(dtype) * 3)
    assert flags == twin_flags == 0  # finite columns: the sentinels past n are not read


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 16, 17, 37])
def test_flags_report_a_non_finite_value_in_any_column(dtype, n):
    rng = np.random.default_rng(n)
    for col in {0, n // 2, n - 1}:  # the last column lies in the masked vector unless
        for bad, bit in ((np.inf, 0b011), (np.nan, 0b111)):  # n is a multiple of it
            a, b, c = _rows(rng, dtype, n)
            a[1, col] = bad
            got = [x.copy() for x in (a, b, c)]
            flags = _simple(n, *got, (n + 5, n + 5, 0), 3.0)
            twin = _SIMPLE_TWIN(n, (a, b, c), (n + 5, n + 5, 0), (3.0, 1.0, 0.0))
            assert flags == twin == bit, (col, bad)
    a, b, c = _rows(rng, dtype, n)
    big = np.finfo(dtype).max
    a[1, n - 1], c[0, n - 1] = big, 2 * np.finfo(dtype).tiny  # a * scale alone overflows
    with np.errstate(over="ignore"):
        assert _simple(n, a, b, c, (n + 5, n + 5, 0), 3.0) == 0b001


def _hidden_step_written_out(new, detach_th, t, q, hid, i, seg_v, seg_s, ring, g_v, g_vn,
                             g_hid):
    """(B8)-(B11) of the paper's reset, one NumPy operation at a time, every sample."""
    R = ring.shape[1]
    r0, r1 = t % R, (t + 1) % R
    td, rd = (t + 1, r1) if new else (t, r0)
    for b in range(g_v.shape[0]):
        ring[b, r0] = 0
        g_hid[b, 1] += g_vn[b] * (seg_v[b, q] - hid[kn.H_V_REST] + hid[kn.H_DG] * i[b, td])
        g_hid[b, 4] += g_vn[b] * hid[kn.H_LEAK]
        ring[b, rd] += hid[kn.H_G] * g_vn[b]
        g_hid[b, 3] += seg_s[q, b] * g_vn[b]
        if not detach_th:
            g_hid[b, 2] -= seg_s[q, b] * g_vn[b]
        g_v[b] = hid[kn.H_DECAY_MEM] * g_vn[b]
        g_hid[b, 0] += ring[b, r1] * i[b, t]
        ring[b, r0] += hid[kn.H_DECAY_SYN] * ring[b, r1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [5, 16, 37, 128])
@pytest.mark.parametrize("new", [False, True])
@pytest.mark.parametrize("detach_th", [False, True])
def test_hidden_adjoint_step_is_its_expressions(dtype, N, new, detach_th):
    rng = np.random.default_rng(N)
    B, K, seg = 3, 9, 4
    flags = np.zeros(kn.F_COUNT, np.int64)
    flags[kn.F_RESET] = kn.RESET_SUB
    flags[kn.F_DETACH_R] = 1
    flags[kn.F_DETACH_TH] = detach_th
    flags[kn.F_NEW] = new
    hid = rng.random((kn.H_COUNT, N)).astype(dtype)
    i = rng.standard_normal((B, K + 1, N)).astype(dtype)
    seg_v = rng.standard_normal((B, seg, N)).astype(dtype)
    seg_s = (rng.random((seg, B, N)) < 0.4).astype(dtype)
    ring = rng.standard_normal((B, 3, N)).astype(dtype)
    g_v, g_vn, g_s = (rng.standard_normal((B, N)).astype(dtype) for _ in range(3))
    g_hid = rng.standard_normal((B, 5, N)).astype(dtype)
    t, q = 5, 1
    got = [ring.copy(), g_v.copy(), g_hid.copy()]
    kn._hidden_step(0, B, t, q, hid, flags, i, seg_v, seg_s, got[0], got[1], g_vn, g_s,
                    got[2])
    want = [ring.copy(), g_v.copy(), g_hid.copy()]
    _hidden_step_written_out(new, detach_th, t, q, hid, i, seg_v, seg_s, want[0], want[1],
                             g_vn, want[2])
    for g, w in zip(got, want, strict=True):
        assert _same_bits(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [5, 16, 37, 128])
def test_fast_sigmoid_step_is_its_expressions(dtype, N):
    rng = np.random.default_rng(N)
    B, seg = 3, 4
    flags = np.zeros(kn.F_COUNT, np.int64)
    flags[kn.F_SURR] = kn.SURR_FAST_SIGMOID
    hid = rng.random((kn.H_COUNT, N)).astype(dtype)
    seg_v = (hid[kn.H_THRESHOLD] + rng.standard_normal((B, seg, N)) * 0.05).astype(dtype)
    g_v, g_vn = (rng.standard_normal((B, N)).astype(dtype) for _ in range(2))
    g_s = rng.standard_normal((B, N + 7)).astype(dtype)  # padded, as BPTT's
    g_hid = rng.standard_normal((B, 5, N)).astype(dtype)
    got_vn, got_hid = g_vn.copy(), g_hid.copy()
    kn._surrogate_step(0, B, 2, hid, flags, 100.0, seg_v, g_v, g_s, got_vn, got_hid)
    d = dtype(100.0) * np.abs(seg_v[:, 2] - hid[kn.H_THRESHOLD]) + dtype(1)
    dsur = dtype(1) / (d * d)
    assert _same_bits(got_vn, g_v + dsur * g_s[:, :N])
    want_hid = g_hid.copy()
    want_hid[:, 2] -= dsur * g_s[:, :N]
    assert _same_bits(got_hid, want_hid)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("current", ["previous", "new"])
@pytest.mark.parametrize("N", [16, 37])
def test_forward_pass_and_recomputation_give_the_same_membrane(dtype, current, N):
    # the forward pass runs Eq. (2)-(6) as one pass per update (``_update_body``) and
    # Eq. (1) with the spike counts as another; BPTT recomputes v and s from the
    # checkpoints in its own passes (``_recompute_body``): they must agree bit for bit,
    # or BPTT would differentiate another trajectory than the forward pass ran
    conv = refsnn.Conventions.preset("paper").replace(membrane_current=current)
    rng = np.random.default_rng(N)
    p = refsnn.random_params(20, N, 4, rng).astype(dtype)
    x = (rng.random((3, 40, 20)) < 0.1).astype(dtype)
    xc, scan = network._check_x(p, x, conv)
    full = network._run_forward(p, xc, scan, conv, trace=True)
    assert full["s"].any() and not full["s"].all()
    bptt = network._run_forward(p, xc, network._check_x(p, x, conv)[1], conv, trace=False)
    K, seg = bptt["K"], bptt["seg"]
    B = x.shape[0]
    seg_v, seg_s, v_row = (np.zeros(s, dtype) for s in ((B, seg, N), (seg, B, N), (B, N)))
    for b in range(B):
        for c in range(K // seg + 1):
            kn._recompute_segment(b, c, seg, bptt["i"], bptt["ckpt"], bptt["hid"],
                                  bptt["flags"], float(conv.surrogate_scale), seg_v, seg_s,
                                  v_row)
            n_states = min(seg, K + 1 - c * seg)
            states = slice(c * seg, c * seg + n_states)
            assert _same_bits(seg_v[b, :n_states], full["v"][b, states])
            assert _same_bits(seg_s[:n_states, b], full["s"][b, states])
    counts = full["s"][:, :K].sum(axis=1)
    assert _same_bits(bptt["counts"][:, 0], counts.astype(dtype))


def _readout_flags(new, reduction="max", k0=1):
    flags = np.zeros(kn.F_COUNT, np.int64)
    flags[kn.F_NEW] = new
    flags[kn.F_REDUCTION] = kn.REDUCTION_CODES[reduction]
    flags[kn.F_WIN_START] = k0
    return flags


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [3, 20, 37])
@pytest.mark.parametrize("new", [False, True])
def test_readout_steps_are_their_expressions(dtype, C, new):
    # forward, Eq. (7)-(8) with the overflow flags; backward, (B3)-(B5): each update as
    # one pass, against the expressions written out one NumPy operation at a time
    rng = np.random.default_rng(C)
    B, K, b = 2, 12, 1
    out = rng.random((4, C)).astype(dtype)
    parked = rng.standard_normal((B, K + 1, C)).astype(dtype)
    i_out, v_out = parked.copy(), np.zeros((B, K + 1, C), dtype)
    k_max, logits = np.zeros((B, C), np.int64), np.zeros((B, C), dtype)
    bad = np.ones((B, 4), np.int64)
    flags = _readout_flags(new)
    kn._readout_forward(b, out, flags, i_out, v_out, k_max, logits, bad)
    want_i, want_v = parked[b].copy(), np.zeros((K + 1, C), dtype)
    for t in range(K):
        want_i[t + 1] = out[kn.O_DECAY_SYN] * want_i[t] + want_i[t + 1]
        drive = want_i[t + 1] if new else want_i[t]
        want_v[t + 1] = out[kn.O_DECAY_MEM] * want_v[t] + out[kn.O_G] * drive
    assert _same_bits(i_out[b], want_i) and _same_bits(v_out[b], want_v)
    assert bad[b, kn.BAD_I_OUT] == 0 and bad[b, kn.BAD_V_OUT] == 0
    assert np.array_equal(k_max[b], 1 + np.argmax(want_v[1:], axis=0))
    # overflow: of v_out alone (a huge g), then of i_out too
    for bits in ((0, 1), (1, 1)):
        big, parked_big = out.copy(), parked.copy()
        if bits[0]:
            parked_big[b, 5, 0] = np.inf
        else:
            big[kn.O_G] *= np.finfo(dtype).max
        with np.errstate(over="ignore"):
            kn._readout_forward(b, big, flags, parked_big, v_out.copy(), k_max, logits, bad)
        assert (bad[b, kn.BAD_I_OUT], bad[b, kn.BAD_V_OUT]) == bits
    # backward
    g_logits = rng.standard_normal((B, C)).astype(dtype)
    g_out = rng.standard_normal((B, 2, C)).astype(dtype)
    g_vo = np.zeros((B, C), dtype)
    g_io = np.zeros((K + 1, B, C), dtype)
    want_out = g_out[b].copy()
    kn._readout_backward(b, out, flags, i_out, v_out, g_logits, k_max, g_out, g_vo, g_io)
    gio = np.zeros((K + 1, C), dtype)
    gvo = np.where(k_max[b] == K, g_logits[b], dtype(0))
    for t in range(K - 1, -1, -1):
        td = t + 1 if new else t
        gio[t] = 0
        want_out[1] += gvo * (want_v[t] + out[kn.O_DG] * want_i[td])
        gio[td] += out[kn.O_G] * gvo
        want_out[0] += gio[t + 1] * want_i[t]
        gio[t] += out[kn.O_DECAY_SYN] * gio[t + 1]
        gvo = out[kn.O_DECAY_MEM] * gvo
        if t >= 1:
            gvo = np.where(k_max[b] == t, gvo + g_logits[b], gvo)
    assert _same_bits(g_out[b], want_out) and _same_bits(g_io[:, b], gio)
