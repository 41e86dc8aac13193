"""The fused multiply-add helpers (``refsnn._intrinsics``) and the dense adjoint product.

``fma`` must round once (not twice, as ``a * b + c`` does), in the compiled kernels and
in its exact Python twin (the code that runs under ``NUMBA_DISABLE_JIT=1``), and
``fma_tile4`` must give, bit for bit, the chain of ``fma`` that defines each entry of
``refsnn.kernels._matvec_quads``: that is what makes a sample's adjoint the same in a
quad of samples or alone, whatever the tile width.
"""

import numpy as np
import pytest
from numba import njit

from refsnn import _intrinsics as vec
from refsnn import kernels as kn

DTYPES = [np.float32, np.float64]


@njit
def _jit_fma(a, b, c, out):
    for k in range(a.shape[0]):
        out[k] = vec.fma(a[k], b[k], c[k])


@njit
def _jit_tile(w_p, x, y, b, p):
    vec.fma_tile4(w_p, x, y, b, p)


def _same_bits(u, v):
    u, v = np.asarray(u), np.asarray(v)
    return u.dtype == v.dtype and u.tobytes() == v.tobytes()


def _both(a, b, c):
    """Return fma(a, b, c) entry by entry, compiled and by the Python twin."""
    got = np.empty_like(a)
    _jit_fma(a, b, c, got)
    with np.errstate(all="ignore"):
        twin = np.array([vec._py_fma(*t) for t in zip(a, b, c, strict=True)], a.dtype)
    return got, twin


@pytest.mark.parametrize("dtype, p", [(np.float32, 12), (np.float64, 27)])
def test_fma_rounds_once(dtype, p):
    # (1 + 2^-p)^2 - (1 + 2^(1-p)) = 2^-2p exactly; the rounded product loses it
    a = np.array([1 + 2.0**-p], dtype)
    c = np.array([-(1 + 2.0 ** (1 - p))], dtype)
    got, twin = _both(a, a, c)
    assert got[0] == twin[0] == dtype(2.0 ** (-2 * p))
    assert a[0] * a[0] + c[0] == 0  # unfused


def test_python_twin_rounds_a_float32_midpoint_correctly():
    # a * a = 1 + 2^-11 + 2^-24 is halfway between two float32; c = 2^-70 puts the exact
    # sum above it, but rounding it to float64 first drops c, and then the tie goes to
    # the even neighbour below: the twin must not round twice
    a = np.array([1 + 2.0**-12], np.float32)
    c = np.array([2.0**-70], np.float32)
    got, twin = _both(a, a, c)
    assert got[0] == twin[0] == np.float32(1 + 2.0**-11 + 2.0**-23)
    assert np.float32(np.float64(a[0]) * a[0] + c[0]) == np.float32(1 + 2.0**-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fma_twin_equals_compiled_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    n = 4000
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan,
                        np.finfo(dtype).tiny / 4, np.finfo(dtype).max / 2], dtype)
    vals = [np.where(rng.random(n) < 0.1, rng.choice(special, n),
                     (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)))
            .astype(dtype) for _ in range(3)]
    # cancellation: c close to -a*b, where fused and unfused differ most
    with np.errstate(all="ignore"):
        vals[2][: n // 2] = -(vals[0][: n // 2] * vals[1][: n // 2])
    got, twin = _both(*vals)
    nan = np.isnan(got)
    assert np.array_equal(nan, np.isnan(twin))
    assert _same_bits(got[~nan], twin[~nan])
    with np.errstate(all="ignore"):
        unfused = vals[0] * vals[1] + vals[2]
    assert (got[~nan] != unfused[~nan]).sum() > n // 10  # the cases tell fused apart


def _chain(w_t, x, y, b, cols):
    """The definition: each entry a chain of fma over m ascending (Python twin)."""
    out = y.copy()
    for j in cols:
        acc = out[b, j]
        for m in range(w_t.shape[0]):
            acc = vec._py_fma(w_t[m, j], x[b, m], acc)
        out[b, j] = acc
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_fma_tile_is_the_chain_of_fma_entry_by_entry(dtype):
    rng = np.random.default_rng(1)
    L = kn.PANEL_BYTES // np.dtype(dtype).itemsize
    M, J, B = 9, 2 * L + 3, 6
    w_t = rng.standard_normal((M, J)).astype(dtype)
    w_p = kn.panels(w_t)
    assert w_p.shape == (3, M, L) and w_p.flags.c_contiguous
    assert np.array_equal(w_p[1], w_t[:, L:2 * L])
    # the last panel holds the last 3 columns, then zeros
    assert np.array_equal(w_p[2, :, :3], w_t[:, 2 * L:]) and not w_p[2, :, 3:].any()
    x = rng.standard_normal((B, M)).astype(dtype)
    x[2, 3] = 0  # a zero term adds nothing
    y0 = rng.standard_normal((B, J)).astype(dtype)
    y = y0.copy()
    _jit_tile(w_p, x, y, 1, 1)  # rows 1..4, the columns of panel 1: L .. 2 L - 1
    want = y0.copy()
    for b in range(1, 5):
        want[b] = _chain(w_t, x, y0, b, range(L, 2 * L))[b]
    assert _same_bits(y, want)
    assert not np.array_equal(y[1:5, L:2 * L], y0[1:5, L:2 * L])
    twin = y0.copy()
    vec._py_fma_tile4(w_p, x, twin, 1, 1)
    assert _same_bits(twin, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("J", [5, 16, 37, 128])
def test_adjoint_product_of_a_quad_equals_each_sample_alone(dtype, J):
    # samples 1..10: two quads (panel by panel, each panel for both quads), then two
    # samples alone; every sample must get the bits it gets alone
    rng = np.random.default_rng(J)
    M = J + 7
    w_t = rng.standard_normal((M, J)).astype(dtype)
    x = rng.standard_normal((11, M)).astype(dtype)
    x[:, :2] = 0  # rows of w_t that no sample of the quad uses
    y0 = rng.standard_normal((11, J)).astype(dtype)
    quad = y0.copy()
    kn._matvec_quads(w_t, kn.panels(w_t), x, 1, 11, quad)
    for b in range(1, 11):
        alone = y0.copy()
        kn._matvec_one(w_t, x, b, alone)
        assert _same_bits(quad[b], alone[b])
        if J <= 16:
            assert _same_bits(quad[b], _chain(w_t, x, y0, b, range(J))[b])
    assert _same_bits(quad[0], y0[0])
    # with room in y for the padded last panel's columns (as BPTT's g_s has), that panel
    # runs as a tile too: the same bits in the first J columns
    L = kn.PANEL_BYTES // np.dtype(dtype).itemsize
    wide = np.zeros((11, -(-J // L) * L), dtype)
    wide[:, :J] = y0
    kn._matvec_quads(w_t, kn.panels(w_t), x, 1, 11, wide)
    assert _same_bits(wide[:, :J], quad) and not wide[:, J:].any()
    want = y0[1:] + x[1:] @ w_t  # the product itself, to float rounding
    tol = 50 * np.finfo(dtype).eps * (np.abs(y0[1:]) + np.abs(x[1:]) @ np.abs(w_t))
    assert np.all(np.abs(quad[1:] - want) <= tol)


@njit
def _jit_rows(dst, d0, src, s0, at, e0, e1, coef, c0, cs):
    vec.fma_rows(dst, d0, src, s0, at, e0, e1, coef, c0, cs, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("cs", "s0"), [(1, 0), (3, 3)])
def test_fma_rows_adds_listed_rows_as_a_chain_of_fma(dtype, cs, s0):
    rng = np.random.default_rng(2)
    lanes = 32 // np.dtype(dtype).itemsize
    R, W = 11, 4 * lanes
    src = rng.standard_normal((R, W)).astype(dtype)
    src3 = src.reshape(1, R, W)  # any C-contiguous array: rows of its last axis
    coef = rng.standard_normal(5 + cs * R).astype(dtype)
    at = np.array([[9, 0, 4, 4, 7], [1, 2, 3, 5, 6]], np.int64)
    dst0 = rng.standard_normal((2, 5 * lanes)).astype(dtype)
    dst = dst0.copy()
    _jit_rows(dst, 5 * lanes + 2, src3, s0, at, 1, 4, coef, 5, cs)  # rows 0, 4, 4 of src
    want = dst0.copy()
    for col in range(3 * lanes):  # the run: three vectors from flat index 5 lanes + 2
        acc = want[1, 2 + col]
        for r in (0, 4, 4):  # columns s0 .. of row r, scaled by coef[5 + r cs]
            acc = vec._py_fma(coef[5 + r * cs], src[r, s0 + col], acc)
        want[1, 2 + col] = acc
    assert _same_bits(dst, want)
    assert not np.array_equal(dst, dst0)
    twin = dst0.copy()
    vec._py_fma_rows(twin, 5 * lanes + 2, src3, s0, at, 1, 4, coef, 5, cs, 3)
    assert _same_bits(twin, want)


@njit
def _jit_bits(dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs):
    vec.fma_bits(dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", [0, 0b1011_0010, (1 << 63) | (1 << 40) | 1])
def test_fma_bits_adds_the_rows_its_bits_mark_lowest_first(dtype, mask):
    rng = np.random.default_rng(3)
    lanes = 32 // np.dtype(dtype).itemsize
    shift, stride, row0 = 3, 9, 2  # bit k: row 2 + (k >> 3) * 9 + (k & 7)
    R, W = row0 + 7 * stride + 8, 3 * lanes
    src = rng.standard_normal((R, W)).astype(dtype)
    coef = rng.standard_normal(1 + 2 * R).astype(dtype)
    dst0 = rng.standard_normal(4 * lanes).astype(dtype)
    dst = dst0.copy()
    _jit_bits(dst, 1, src, lanes, np.int64(np.uint64(mask)), row0, shift, stride, coef, 1, 2)
    rows = [row0 + (k >> shift) * stride + (k & 7) for k in range(64) if mask >> k & 1]
    want = dst0.copy()
    for col in range(2 * lanes):  # two vectors from flat index 1, columns lanes ..
        acc = want[1 + col]
        for r in rows:  # ascending bits; row r scaled by coef[1 + 2 r]
            acc = vec._py_fma(coef[1 + 2 * r], src[r, lanes + col], acc)
        want[1 + col] = acc
    assert _same_bits(dst, want)
    assert _same_bits(dst, dst0) == (mask == 0)
    twin = dst0.copy()
    vec._py_fma_bits(twin, 1, src, lanes, np.int64(np.uint64(mask)), row0, shift, stride,
                     coef, 1, 2, 2)
    assert _same_bits(twin, want)


@njit
def _jit_rows_unit(dst, d0, src, s0, at, e0, e1):
    vec.fma_rows(dst, d0, src, s0, at, e0, e1, None, 0, 0, 3)


@njit
def _jit_bits_unit(dst, d0, src, s0, mask, row0, shift, stride):
    vec.fma_bits(dst, d0, src, s0, mask, row0, shift, stride, None, 0, 0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_coefficient_adds_the_rows_as_fma_with_unit_coefficients_does(dtype):
    # the binary spikes' path: no coefficient is read, and fma(1, w, acc) = w + acc rounded
    rng = np.random.default_rng(4)
    lanes = 32 // np.dtype(dtype).itemsize
    scale = 10.0 ** rng.integers(-6, 6, (40, 1))
    src = (rng.standard_normal((40, 4 * lanes)) * scale).astype(dtype)
    ones = np.ones(40, dtype)
    dst0 = rng.standard_normal(5 * lanes).astype(dtype)
    at = np.array([3, 3, 17, 0, 39, 8], np.int64)
    unit, coef = dst0.copy(), dst0.copy()
    _jit_rows_unit(unit, 2, src, lanes, at, 1, 6)
    _jit_rows(coef, 2, src, lanes, at, 1, 6, ones, 0, 1)
    assert _same_bits(unit, coef) and not _same_bits(unit, dst0)
    twin = dst0.copy()
    vec._py_fma_rows(twin, 2, src, lanes, at, 1, 6, None, 0, 0, 3)
    assert _same_bits(twin, unit)
    mask = np.int64((1 << 38) | (1 << 9) | 0b101)  # bit k: row (k >> 3) * 5 + (k & 7)
    unit, coef = dst0.copy(), dst0.copy()
    _jit_bits_unit(unit, 1, src, 0, mask, 0, 3, 5)
    _jit_bits(coef, 1, src, 0, mask, 0, 3, 5, ones, 0, 1)
    assert _same_bits(unit, coef) and not _same_bits(unit, dst0)
    twin = dst0.copy()
    vec._py_fma_bits(twin, 1, src, 0, mask, 0, 3, 5, None, 0, 0, 2)
    assert _same_bits(twin, unit)


def _compiled_at_width(monkeypatch, vector_bytes, body):
    """Compile ``body`` (a Python function) afresh with the intrinsics' vectors of
    ``vector_bytes`` (32: 256-bit, 64: 512-bit; the code is chosen when a caller is
    compiled), so that both are tested on any machine."""
    monkeypatch.setattr(vec, "VECTOR_BYTES", vector_bytes)
    return njit(cache=False)(body)


def _add_events_definition(dst, d0, src, s0, at, vals, e0, e1, cols):
    """Eq. (2)'s input sum as ``_hidden_update`` defines it, entry by entry: four events at
    a time, ``acc += (v_a w_a + v_b w_b) + (v_c w_c + v_d w_d)``, each product and sum
    rounded, then the rest one by one."""
    flat = dst.reshape(-1)
    one = dst.dtype.type(1)
    for col in range(cols):
        acc, e = flat[d0 + col], e0
        w = [src[at[k], s0 + col] for k in range(len(at))]
        v = [one if vals is None else vals[k] for k in range(len(at))]
        while e + 4 <= e1:
            acc = acc + ((v[e] * w[e] + v[e + 1] * w[e + 1])
                         + (v[e + 2] * w[e + 2] + v[e + 3] * w[e + 3]))
            e += 4
        while e < e1:
            acc = acc + v[e] * w[e]
            e += 1
        flat[d0 + col] = acc


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("vector_bytes", [32, 64])
def test_add_events_sums_four_events_at_a_time_then_one_by_one(monkeypatch, dtype,
                                                               vector_bytes):
    # graded values (multiplied) and None (values of 1: the rows added, not multiplied,
    # which gives the same bits); 0 to 9 events (whole quads and a rest); a run of three
    # 32-byte vectors (with 512-bit vectors: one of 64 bytes and one of 32)
    def body(dst, d0, src, s0, at, vals, e0, e1, ones):
        if ones:
            vec.add_events(dst, d0, src, s0, at, None, e0, e1, 3)
        else:
            vec.add_events(dst, d0, src, s0, at, vals, e0, e1, 3)

    run = _compiled_at_width(monkeypatch, vector_bytes, body)
    rng = np.random.default_rng(5)
    lanes = 32 // np.dtype(dtype).itemsize
    src = (rng.standard_normal((30, 4 * lanes)) * 10.0 ** rng.integers(-4, 4, (30, 1)))
    src = src.astype(dtype)
    at = rng.integers(0, 30, 12).astype(np.int32)
    vals = (rng.integers(1, 4, 12) * rng.choice([1, 0.37], 12)).astype(dtype)
    for n in range(10):
        for ones in (False, True):
            dst0 = rng.standard_normal((2, 4 * lanes)).astype(dtype)
            got, want, twin = dst0.copy(), dst0.copy(), dst0.copy()
            v = None if ones else vals
            run(got, 4 * lanes + 1, src, lanes - 1, at, vals, 2, 2 + n, ones)
            _add_events_definition(want, 4 * lanes + 1, src, lanes - 1, at, v, 2, 2 + n,
                                   3 * lanes)
            vec._py_add_events(twin, 4 * lanes + 1, src, lanes - 1, at, v, 2, 2 + n, 3)
            assert _same_bits(got, want) and _same_bits(twin, want), (n, ones)
            assert _same_bits(got, dst0) == (n == 0)


@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize("itype", [np.int32, np.int64])
def test_store_set_bits_writes_the_indices_of_the_set_bits_and_nothing_else(
        monkeypatch, vector_bytes, itype):
    # 64: compressing stores (AVX-512), 32: a store per set bit; only the low 32 bits count
    run = _compiled_at_width(monkeypatch, vector_bytes,
                             lambda dst, at, mask, base: vec.store_set_bits(dst, at, mask,
                                                                             base))
    rng = np.random.default_rng(6)
    masks = [0, 1, 1 << 31, 0xFFFFFFFF, 0x0001_8000, 0xFFFF_0000, (1 << 40) | 0b1011]
    masks += [int(m) for m in rng.integers(0, 1 << 32, 20)]
    for mask in masks:
        at, base = int(rng.integers(0, 4)), int(rng.integers(0, 1000))
        dst = np.full(40, -1, itype)
        count = run(dst, at, np.int64(mask), base)
        want = [base + k for k in range(32) if mask >> k & 1]
        assert count == len(want)
        assert dst[at:at + count].tolist() == want
        assert (dst[:at] == -1).all() and (dst[at + count:] == -1).all()  # nothing else
        twin = np.full(40, -1, itype)
        assert vec._py_store_set_bits(twin, at, mask, base) == count
        assert np.array_equal(twin, dst)


def test_carve_gives_disjoint_arrays_each_on_a_cache_line():
    specs = [((3, 5), np.float32), ((7,), np.int64), ((0, 4), np.float64), ((2, 2, 3), np.uint8),
             ((9,), np.float64)]
    arrays = kn.carve(*specs)
    for a, (shape, dtype) in zip(arrays, specs, strict=True):
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.flags.writeable and a.ctypes.data % kn.ALIGN == 0
    for k, a in enumerate(arrays):  # writing one changes no other
        a[...] = k + 1
    for k, a in enumerate(arrays):
        assert np.all(a == k + 1)
    w = np.arange(12.0).reshape(3, 4)[:, ::2]  # not contiguous
    c = kn.aligned(w)
    assert np.array_equal(c, w) and c.flags.c_contiguous and c.ctypes.data % kn.ALIGN == 0
    assert kn.aligned(c) is c


def test_parameters_made_by_refsnn_start_on_a_cache_line():
    # so that the kernels' aligned copy of w_in (kernels.aligned) is the array itself
    import refsnn

    p = refsnn.random_params(70, 12, 3, np.random.default_rng(0))
    for q in (p, p.astype(np.float32), p.copy()):
        for name, a in q.as_dict().items():
            assert a.ctypes.data % kn.ALIGN == 0 and a.flags.c_contiguous, name
        assert kn.aligned(q.w_in) is q.w_in
    assert np.array_equal(p.astype(np.float32).w_in, p.w_in.astype(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 9, 148, 200])
def test_chunks_hold_every_column_once_and_zeros_past_the_last(dtype, M):
    w = np.random.default_rng(M).standard_normal((7, M)).astype(dtype)
    w_ch = kn.chunks(w)
    n_chunks, N, W = w_ch.shape
    assert N == 7 and w_ch.flags.c_contiguous
    assert W * w_ch.itemsize == kn.CHUNK_VECTORS * 32
    flat = w_ch.transpose(1, 0, 2).reshape(N, n_chunks * W)
    assert np.array_equal(flat[:, :M], w) and not flat[:, M:].any()
    assert n_chunks * W - M < W  # no chunk of padding alone


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, C", [(128, 20), (37, 3), (5, 1)])
def test_spike_weights_are_the_chunks_transpose_and_panels_of_w_spk(dtype, N, C):
    rng = np.random.default_rng(N)
    w_rec = rng.standard_normal((N, N)).astype(dtype)
    w_out = rng.standard_normal((N, C)).astype(dtype)
    w_spk = np.concatenate([w_rec, w_out], axis=1)
    w_ch, w_t, w_p = kn.spike_weights(w_rec, w_out)
    assert np.array_equal(w_t, w_spk.T) and w_t.flags.c_contiguous
    L = kn.PANEL_BYTES // w_t.itemsize
    assert w_p.shape == (-(-N // L), N + C, L)
    padded = np.zeros((N + C, w_p.shape[0] * L), dtype)
    padded[:, :N] = w_t
    for p in range(w_p.shape[0]):  # w_p[p, m, l] = w_t[m, p L + l], 0 past column N
        assert np.array_equal(w_p[p], padded[:, p * L:(p + 1) * L])
    flat = w_ch.transpose(1, 0, 2).reshape(N, -1)
    assert np.array_equal(flat[:, :N + C], w_spk) and not flat[:, N + C:].any()
    for a in (w_ch, w_t, w_p):
        assert a.ctypes.data % kn.ALIGN == 0
    w_ch2, w_t2, w_p2 = kn.spike_weights(w_rec, w_out, transposed=False)
    assert np.array_equal(w_ch2, w_ch) and w_t2.size == 0 and w_p2.size == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 7, 8, 24, 40, 56, 100, 120, 130, 200, 300])
def test_input_runs_cover_the_columns_past_the_whole_runs_in_vectors(dtype, N):
    # Eq. (2) and (B12) add a hidden layer's columns in runs of INPUT_VECTORS, then the
    # rest in shorter runs and one masked vector (``_input_runs_rest``,
    # ``_input_grad_runs_rest``): the rest must get the definition's bits, and nothing
    # before it may change
    rng = np.random.default_rng(N)
    run = kn.INPUT_VECTORS * 32 // np.dtype(dtype).itemsize
    n_full = N - N % run
    src = (rng.standard_normal((30, N)) * 10.0 ** rng.integers(-4, 4, (30, 1))).astype(dtype)
    at = rng.integers(0, 30, 11).astype(np.int32)
    at[-1] = 29  # the last row of src, whose end is the array's
    vals = (rng.integers(1, 4, 11) * rng.choice([1, 0.37], 11)).astype(dtype)
    A = N + 3
    for ones in (False, True):
        acc0 = rng.standard_normal((2, A)).astype(dtype)
        got, want = acc0.copy(), acc0.copy()
        v = None if ones else vals
        kn._input_runs_rest(got, A, src, at, v, 1, 11, n_full, N)
        _add_events_definition(want, A + n_full, src, n_full, at, v, 1, 11, N - n_full)
        assert _same_bits(got, want), ones
        assert _same_bits(got[1, N:], acc0[1, N:]) and _same_bits(got[0], acc0[0])
    acc0 = rng.standard_normal((2, A)).astype(dtype)
    got, want = acc0.copy(), acc0.copy()
    kn._input_grad_runs_rest(got, A, src, at, 1, 11, n_full, N)
    vec._py_fma_rows_cols(want, A + n_full, src, n_full, at, 1, 11, None, 0, 0, N - n_full)
    assert _same_bits(got, want)
    assert _same_bits(got, acc0) == (n_full == N)


@pytest.mark.parametrize("dtype", DTYPES)
def test_few_columns_are_the_definition_in_one_masked_vector(dtype):
    # add_events_few and fma_rows_few: the first ncols lanes of one 32-byte vector, for
    # every ncols a vector holds; the row's end is the array's end (a full load would
    # read past it), and nothing past the ncols columns of dst changes
    @njit
    def few(dst, d0, src, s0, at, vals, e0, e1, n, which):
        if which == 0:
            vec.add_events_few(dst, d0, src, s0, at, vals, e0, e1, n)
        elif which == 1:
            vec.add_events_few(dst, d0, src, s0, at, None, e0, e1, n)
        else:
            vec.fma_rows_few(dst, d0, src, s0, at, e0, e1, n)

    rng = np.random.default_rng(7)
    lanes = 32 // np.dtype(dtype).itemsize
    W = 2 * lanes + 3
    src = (rng.standard_normal((20, W)) * 10.0 ** rng.integers(-4, 4, (20, 1))).astype(dtype)
    at = rng.integers(0, 20, 9).astype(np.int32)
    at[3] = 19
    vals = (rng.integers(1, 4, 9) * rng.choice([1, 0.37], 9)).astype(dtype)
    for n in range(lanes + 1):
        for which in range(3):
            dst0 = rng.standard_normal(3 * lanes).astype(dtype)
            got, want = dst0.copy(), dst0.copy()
            few(got, 2, src, W - n, at, vals, 0, 9, n, which)
            if which == 2:
                vec._py_fma_rows_cols(want, 2, src, W - n, at, 0, 9, None, 0, 0, n)
            else:
                _add_events_definition(want, 2, src, W - n, at, None if which else vals, 0,
                                       9, n)
            assert _same_bits(got, want), (n, which)
            assert _same_bits(got, dst0) == (n == 0)
            twin = dst0.copy()
            if which == 2:
                vec._py_fma_rows_few(twin, 2, src, W - n, at, 0, 9, n)
            else:
                vec._py_add_events_few(twin, 2, src, W - n, at, None if which else vals, 0,
                                       9, n)
            assert _same_bits(twin, want), (n, which)
