"""Numba kernels: the forward pass Eq. (1)-(8) and BPTT Eq. (B3)-(B13), side by side.

Private and unchecked: ``refsnn.network`` validates, unpacks the records into the
packed arrays below, allocates every array (scratch included), and calls these.
Nothing is allocated inside a kernel.

Layout and schedule
-------------------
States are stored time-major per sample, neuron innermost, and every inner loop runs
over one contiguous row. Inner loops index arrays directly: a row view would update
the array's shared reference count (an atomic operation) inside the loop. An index
computed in the loop (``N + c``) is cast to ``np.uintp``: Numba then emits no test for
a negative index, which would keep the loop from vectorising. Every array
a kernel streams through starts on a cache line (``carve``), so that the 32-byte
vectors of a row whose length is a multiple of 32 bytes never straddle two lines.

Input: ``scan_input`` reads the dense input once, 32 entries per test, and keeps its
nonzero entries as bit masks. Forward, per group of up to 8 samples in lockstep (a
``prange`` over the groups; a sample's states never depend on its group): each
sample's input events are written first from the masks (``_fill_events``); then at
each state k, Eq. (1) gives the spikes (listed from 32-neuron bit masks), and the
spikes are delivered once, event by event, to both of their targets
(``_deliver_spikes``): each spiking neuron adds its row of ``w_spk = [w_rec | w_out]``
to a sum that is parked in the slots of ``i[k + d]`` (Eq. (2)) and ``i_out[k + r]``
(Eq. (7)). The rows are added one fused multiply-add per spike, a chunk of five
vectors of columns at a time with the chunk's sums in registers (``fma_rows``), the
chunk for every sample of the group before the next chunk, so that the chunk's rows
(20 KiB for 128 neurons, 40 KiB with AVX-512, ``chunks``) are read from the
first-level cache after the first sample; spikes of a hard threshold are 0 or 1, so
their rows are added without reading a coefficient. Then each sample's update
(``_hidden_update``): the input events add their rows of ``w_in`` (Eq. (2)) four at a time,
``acc += (a w_a + b w_b) + (c w_c + d w_d)`` (then one by one), a run of columns at a
time with the run's sums in registers (``add_events``; the values are not read for a
step of spike input; the columns past the whole runs in shorter runs, then the last
few as one masked vector, so that no width of layer is added one column at a time),
and Eq. (3)-(6) give the membrane. The lists of input events and of spiking neurons
are written from bit masks without a branch per bit (``store_set_bits``; for the sparse
input, two plain stores per 32-bit word, ``store_few_set_bits``).

Elementwise steps: with the paper's spike test (``v - threshold > 0``), reset
(subtracted, detached) and surrogate (fast sigmoid), each elementwise step runs as one
pass over a sample's row (``rowwise``): Eq. (1) with the spike counts; the sum into
``i[t + 1]`` with Eq. (3)-(6) and the overflow test; in BPTT the recomputation of a
state, (B8)-(B11) and (B7). Each is written once, as a Python function of the
equations' expressions (``_update_body``, ``_hidden_adjoint_body``, ...), which
becomes vector code compiled in place, and runs on NumPy rows under
``NUMBA_DISABLE_JIT=1``. Compiled as a loop per expression, as the other conventions
are, a step pays the setup of every loop and the checks of overlap between its rows:
in the target case of ``refsnn bench`` the hidden adjoint step took 0.53 ms of a call
per thread as loops and takes 0.43 as one pass.

For BPTT the forward pass stores the currents ``i`` and ``i_out`` and the readout
membrane ``v_out`` of every state, but the hidden membrane ``v`` only every ``seg``
states (``ckpt``): the backward pass recomputes ``v`` and the spikes one segment at a
time from Eq. (1), (3)-(6), which is elementwise, cheap and bitwise identical (same
code). BPTT so keeps one number per neuron and state, where keeping v, s and the
adjoints of s and i would take five.

Backward, per task of ``GROUP`` consecutive samples in lockstep (half as many for a
batch of at most ``GROUP``, ``task_size``; a ``prange`` over the tasks; the tasks
depend on the batch size only, never on the thread count): the
readout (B3)-(B5) runs first, over all states (it depends on the logits only); then one
descending sweep over the states does the hidden layer (B8)-(B11), and for state t
collects the adjoint its spikes see from both
targets, ``g_spk = [g_i[t + d] | g_i_out[t + r]]``, and uses it twice: (B6)+(B11)
``g_s[t] += w_spk g_spk`` (a dense product, ``_matvec_quads``: four samples share each
load of the weights, each tile of sums stays in registers, one fused multiply-add per
term, and each panel of the weights serves all the task's quads in turn) and (B13)
``dL/dw_spk[j] += s[t, j] g_spk`` for the spiking j. For (B13)
``g_spk`` is kept for the states of the segment, and every few states (up to
``SPIKE_GRAD_STATES``, ``spike_grad_states``) each neuron's spikes in them (the bits of
an integer) are added to its gradient row a chunk of columns at a time, with the
chunk's sums in registers (``_spike_weight_grad``).
The adjoint of the hidden currents is summed in a ring buffer of ``d + 2`` states;
once ``g_i[t + 1]`` is complete, the sweep has read ``i[t + 1]`` for the last time, and
``g_i[t + 1]`` takes its place in the array ``i``. After the sweep, (B12) adds
``x g_i[t + 1]`` to the rows of the active inputs (``_input_weight_grad``: a sample's
events sorted by input, each row's sums in registers). The weight gradients are summed
per task, each entry in a fixed order, and the task sums are added in task order (the
per-neuron gradients in sample order), so results are bitwise identical for any thread
count. The adjoint of the readout currents is kept for all states (C per state); no
adjoint of size (batch, time, N) is allocated: ``g_i`` reuses the currents' array, which
BPTT overwrites.

The forward pass also finds the state of each readout maximum and its value, the
logits of the "max" reduction (Eq. (9); the state is used again by (B3)), and both
kernels flag the non-finite values they write (states, gradients) as they write them,
so that overflow is reported without another pass over the arrays.

All arithmetic runs in the dtype of the parameters (float32 or float64); a sum over
an index runs in a fixed order, which is stated where it is not the natural one.

Packed arguments
----------------
hid : (8, N)
    rows ``H_DECAY_SYN, H_DECAY_MEM, H_THRESHOLD, H_V_RESET, H_V_REST`` are the
    per-neuron parameters; ``H_G`` and ``H_DG`` hold g(decay_mem) and g'(decay_mem)
    of Eq. (5) (g' already zero when the input scale is detached); ``H_LEAK`` holds
    ``1 - decay_mem``, the derivative of Eq. (5) by ``v_rest``.
out : (4, C)
    rows ``O_DECAY_SYN, O_DECAY_MEM, O_G, O_DG`` for the readout, Eq. (7)-(8).
flags : int64 (F_COUNT,)
    the conventions as integers, indexed by the ``F_*`` constants.
ev_ptr, ev_idx, ev_val
    the input as events: for sample b and input step t < K, the events are
    ``ev_idx[ev_ptr[b*K + t] : ev_ptr[b*K + t + 1]]`` with values ``ev_val``.
w_spk, w_spk_t : (N, N + C), (N + C, N)
    ``[w_rec | w_out]`` and its transpose.
w_ch : (chunks, N, W)
    ``w_spk`` in column chunks of W columns, zero past N + C (``chunks``; the three
    layouts of ``w_spk`` are made together by ``spike_weights``).
w_spk_p : (N // L, N + C, L)
    the columns of ``w_spk_t`` in panels of ``L = PANEL_BYTES // itemsize`` (``panels``).
"""

from __future__ import annotations

import math

import numpy as np

from ._intrinsics import (
    VECTOR_BYTES,
    add_events,
    add_events_few,
    fma,
    fma_bits,
    fma_rows,
    fma_rows_few,
    fma_tile4,
    nonbinary_mask32,
    nonfinite_mask32,
    nonzero_mask32,
    popcount,
    prefetch,
    rowwise,
    store_set_bits,
    where,
)
from ._numba import jit, jit_noinline, like, pjit, prange
from .surrogates import SURROGATE_CODES, smooth_spike_scalar, surrogate_scalar

H_DECAY_SYN, H_DECAY_MEM, H_THRESHOLD, H_V_RESET, H_V_REST, H_G, H_DG, H_LEAK = range(8)
H_COUNT = 8
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
SURR_FAST_SIGMOID = SURROGATE_CODES["fast_sigmoid"]

#: samples per backward task. Fixed (not the thread count), so the order of every sum
#: is fixed; a multiple of 4 for ``_matvec_quads``, a power of two for the bit masks of
#: ``_spike_weight_grad``.
GROUP = 8
GROUP_SHIFT = 3  # GROUP == 2**GROUP_SHIFT
#: the intrinsics' vectors (``VECTOR_BYTES``) in 32-byte vectors: 2 with AVX-512, else 1.
#: The runs below are twice as long with AVX-512, so that a run has as many vectors of
#: sums in registers (independent chains of additions) either way.
WIDE = VECTOR_BYTES // 32
#: 32-byte vectors of columns per chunk of ``w_spk`` in the forward (``chunks``):
#: 40 columns in float32 (80 with AVX-512), 20 in float64 (40)
CHUNK_VECTORS = 5 * WIDE
#: 32-byte vectors of columns per call of ``add_events`` in Eq. (2) (``_hidden_update``)
#: and of ``fma_rows`` in (B12) (``_input_weight_grad``); the columns past the last
#: whole run go in runs of a half, a quarter, an eighth and a sixteenth of it (at least
#: one 32-byte vector), the last ones (fewer than a 32-byte vector) as one masked
#: vector, so that a hidden layer of any width runs in vectors
INPUT_VECTORS = 8 * WIDE
INPUT_VECTORS_2, INPUT_VECTORS_4 = INPUT_VECTORS // 2, INPUT_VECTORS // 4
INPUT_VECTORS_8, INPUT_VECTORS_16 = max(1, INPUT_VECTORS // 8), max(1, INPUT_VECTORS // 16)
#: 32-byte vectors of columns per chunk of the adjoint rows in (B13)
#: (``_spike_weight_grad``): 80 columns in float32 (160 with AVX-512), 40 in float64 (80)
SPIKE_GRAD_VECTORS = 10 * WIDE
#: the most states per pass of (B13) (``_spike_weight_grad``): their GROUP x
#: SPIKE_GRAD_STATES spikes of a neuron are the bits of one integer
SPIKE_GRAD_STATES = 4
#: bytes of adjoint rows a pass of (B13) may read (again for every neuron): most of the
#: first-level cache (``spike_grad_states``)
SPIKE_GRAD_BYTES = 24 * 1024
assert GROUP == 2**GROUP_SHIFT and GROUP * SPIKE_GRAD_STATES <= 64
#: bytes of a panel's row (``panels``): two of the intrinsics' vectors (``VECTOR_BYTES``,
#: 64 with AVX-512, else 32), the width of ``fma_tile4``
PANEL_BYTES = 2 * VECTOR_BYTES
#: how far ahead of the row it tests the input scan asks for the input's cache lines
#: (``prefetch``): a new batch is not in the caches, and the scan reads it from memory
PREFETCH_BYTES = 4096
#: the (bad) non-finite counters of the forward pass, per sample
BAD_I, BAD_V, BAD_I_OUT, BAD_V_OUT = range(4)


#: the byte boundary on which refsnn's arrays start (``carve``): a cache line
ALIGN = 64


@jit
def _address(a):
    return a.ctypes.data  # a seventh of the cost of NumPy's ``a.ctypes.data``


def carve(*specs) -> list[np.ndarray]:
    """Return empty arrays of the ``(shape, dtype)`` specs, each starting on a cache line.

    NumPy aligns to 16 bytes only, so half the 32-byte vectors of a kernel's rows would
    straddle two cache lines, each such load costing two; with the arrays aligned, a row
    whose length is a multiple of 32 bytes has none (the delivery of spikes: 20 % faster).
    The arrays are carved from one allocation, which lives as long as any of them does
    (an allocation apiece would cost some microseconds each).
    """
    specs = [(shape, np.dtype(dtype)) for shape, dtype in specs]
    starts, total = [], 0
    for shape, dtype in specs:
        starts.append(total)
        total += -(-math.prod(shape) * dtype.itemsize // ALIGN) * ALIGN
    buf = np.empty(total + ALIGN, np.uint8)
    first = -_address(buf) % ALIGN
    return [np.ndarray(shape, dtype, buf, first + start)
            for start, (shape, dtype) in zip(starts, specs, strict=True)]


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on a cache line (``ALIGN``; see ``carve``)."""
    return carve((shape if isinstance(shape, tuple) else (shape,), dtype))[0]


def zeros(shape, dtype) -> np.ndarray:
    """``empty`` filled with zeros."""
    a = empty(shape, dtype)
    a.fill(0)
    return a


def aligned_copy(a, dtype=None) -> np.ndarray:
    """Return a C-contiguous copy of ``a`` (cast to ``dtype``) that starts on a cache line.

    The parameters refsnn makes (``Params.astype``, ``Params.copy``, the initialisations,
    the optimiser's variables) are such copies, so that ``aligned`` need not copy them.
    """
    a = np.asarray(a)
    out = empty(a.shape, a.dtype if dtype is None else np.dtype(dtype))
    out[...] = a
    return out


def aligned(a: np.ndarray) -> np.ndarray:
    """Return ``a`` C-contiguous, starting on a cache line: ``a`` itself if it is, else a copy."""
    if a.flags.c_contiguous and _address(a) % ALIGN == 0:
        return a
    return aligned_copy(a)


def panels(w_t: np.ndarray) -> np.ndarray:
    """Return the panels of ``w_t`` (M, J): ``w_p[p, m, l] = w_t[m, p L + l]``, 0 past J.

    ``L = PANEL_BYTES // itemsize`` columns per panel, ``ceil(J / L)`` panels (the last
    one padded with zero columns), C-contiguous, so that ``fma_tile4`` reads a panel as
    one stream (the columns of ``w_t`` would be rows ``J * itemsize`` bytes apart).
    Made by ``spike_weights`` from the transpose of ``w_t``.
    """
    w_spk = np.ascontiguousarray(w_t.T)
    return spike_weights(w_spk, w_spk[:, :0])[2]


def chunks(w_spk: np.ndarray) -> np.ndarray:
    """Return ``w_spk`` (N, M) in column chunks for ``_deliver_spikes``.

    ``w_ch[c, j] = w_spk[j, c W : (c + 1) W]``, zero past column M: chunks of
    ``CHUNK_VECTORS`` 32-byte vectors of columns (W = 40 in float32, 20 in float64;
    160 bytes of a row, so that a chunk of N = 128 rows, 20 KiB, fits the first-level
    cache; twice that with AVX-512, whose five 64-byte vectors of sums give as many
    independent chains of additions).
    """
    w_spk = np.ascontiguousarray(w_spk)
    return spike_weights(w_spk, w_spk[:, :0], transposed=False)[0]


def spike_weights(w_rec: np.ndarray, w_out: np.ndarray, transposed: bool = True):
    """Return the layouts of ``w_spk = [w_rec | w_out]`` (N, M) the kernels read.

    ``(w_ch, w_spk_t, w_spk_p)``: the column chunks of the forward pass (``chunks``),
    and, with ``transposed``, the transpose (M, N) and its panels (``panels``) that
    BPTT reads (else both empty). One allocation and one compiled pass, instead of a
    concatenation, two copies and a transposition.
    """
    N, M = w_rec.shape[0], w_rec.shape[1] + w_out.shape[1]
    dt = w_rec.dtype
    W = CHUNK_VECTORS * 32 // dt.itemsize
    L = PANEL_BYTES // dt.itemsize
    rows = M if transposed else 0
    w_ch, w_t, w_p = carve(((-(-M // W), N, W), dt), ((rows, N), dt),
                           ((-(-N // L), rows, L), dt))
    _fill_spike_weights(w_rec, w_out, w_ch, w_t, w_p)
    return w_ch, w_t, w_p


@jit_noinline
def _fill_spike_weights(w_rec, w_out, w_ch, w_t, w_p):
    N, A = w_rec.shape
    M = A + w_out.shape[1]
    n_chunks, _, W = w_ch.shape
    for c in range(n_chunks):
        lo = c * W
        a = max(0, min(W, A - lo))  # the chunk's columns of w_rec, then of w_out
        z = max(0, min(W, M - lo))
        for j in range(N):
            for col in range(a):
                w_ch[c, j, col] = w_rec[j, np.uintp(lo + col)]
            for col in range(a, z):
                w_ch[c, j, col] = w_out[j, np.uintp(lo + col - A)]
            for col in range(z, W):
                w_ch[c, j, col] = 0
    if w_t.shape[0] == 0:
        return
    # the panels (``panels``) from the rows of L neurons, which stay in the first-level
    # cache, then the transpose from the panels, a run of L columns at a time (2.5 times
    # faster than the transpose first: its reads are a row apart)
    P, _, L = w_p.shape
    for p in range(P):
        n = min(L, N - p * L)  # the panel's neurons; zero columns past the last
        for m in range(A):
            for col in range(n):
                w_p[p, m, col] = w_rec[p * L + col, m]
            for col in range(n, L):
                w_p[p, m, col] = 0
        for m in range(A, M):
            for col in range(n):
                w_p[p, m, col] = w_out[p * L + col, m - A]
            for col in range(n, L):
                w_p[p, m, col] = 0
    for m in range(M):
        for p in range(P):
            for col in range(min(L, N - p * L)):
                w_t[m, p * L + col] = w_p[p, m, col]


# ============================================================================ checks, loss
@jit_noinline
def first_outside(a, hi):
    """Return the first index k with ``a[k]`` outside [0, hi), or -1 (``a`` 1-D integers)."""
    for k in range(a.shape[0]):
        if a[k] < 0 or a[k] >= hi:
            return k
    return -1


@jit_noinline
def softmax_cross_entropy(logits, labels, grad):
    """Eq. (10) and (B1) compiled: the mean loss, and its logit gradient in ``grad``.

    The formulas of ``refsnn.network.cross_entropy`` (its NumPy reference), in the dtype
    of the logits, sample by sample: a row's loss ``log1p(sum of the others' exp) -
    z_y`` with ``z = logits - max``, and its gradient ``exp(z - log sum exp z)`` with
    the label's entry as minus the others' sum, over the batch size. The exponentials
    and logarithms are the C library's, whose float32 results can differ from NumPy's
    vectorised ones in the last bit. The rows' losses are added in float64.
    """
    B, C = logits.shape
    n = like(logits[0, 0], B)
    total = 0.0
    for b in range(B):
        top = 0
        for c in range(1, C):
            if logits[b, c] > logits[b, top]:
                top = c
        z_top = logits[b, top]
        y = labels[b]
        s = like(z_top, 0.0)
        rest = like(z_top, 0.0)
        for c in range(C):
            e = math.exp(logits[b, c] - z_top)
            s += e
            if c != top:
                rest += e
        log_s = math.log(s)
        total += math.log1p(rest) - (logits[b, y] - z_top)
        others = like(z_top, 0.0)
        for c in range(C):
            grad[b, c] = math.exp((logits[b, c] - z_top) - log_s)
            if c != y:
                others += grad[b, c]
        grad[b, y] = -others
        for c in range(C):
            grad[b, c] /= n
    return total / B


# ============================================================================ events
@pjit
def scan_input(x, K, ptr, masks, general):
    """Read the input ``x`` (B, T, n_in) once, in parallel over the batch.

    For the input steps t < K of sample b, writes the nonzero inputs as the bits of
    ``masks[b, t]`` (bit k of word w for input ``32 w + k``), and
    ``general[b*K + t] = 1`` when some input of the step is neither 0 nor 1 (else 0:
    the events of the step are all 1, the common case of spike input, and
    ``_fill_events`` then need not read ``x`` again). Returns the number of inf and NaN
    entries of all of ``x``, and the most events of a sample (for the scratch of
    ``_input_weight_grad``). Each row is tested 32 entries at a time
    (``refsnn._intrinsics``); the last ``n_in % 32`` as the row's last 32 entries, whose
    results are shifted past the entries already tested (a row shorter than 32 one entry
    at a time). Non-finite entries are counted only in blocks with entries other than 0
    and 1 (inf and NaN are such entries), so spike input skips that test. Before testing
    a row, the scan asks for the cache lines ``PREFETCH_BYTES`` further on
    (``prefetch``): a batch not in the caches then streams from memory a quarter faster.
    Then ``ptr`` (B K + 1) receives where the events of each step start in the event
    arrays (module doc): ``ptr[b*K + t + 1] - ptr[b*K + t]`` nonzero inputs.
    """
    B, T, n_in = x.shape
    n_words = (n_in + 31) // 32
    line = 64 // x.itemsize
    ahead = PREFETCH_BYTES // x.itemsize
    bad = 0
    for b in prange(B):
        bad_b = 0
        for t in range(T):
            c = 0
            other = 0
            base = (b * T + t) * n_in
            for m in range(0, n_in, line):
                prefetch(x, base + ahead + m)
            if n_in >= 32:
                for w in range(n_words):
                    # the last word's block is the row's last 32 entries, shifted past
                    # those the word before tested (no shift when 32 divides n_in)
                    start = min(32 * w, n_in - 32)
                    shift = 32 * w - start
                    mask = nonzero_mask32(x, base + start) >> shift
                    if t < K:
                        masks[b, t, w] = mask
                    c += popcount(mask)
                    if (nonbinary_mask32(x, base + start) >> shift) != 0:  # inf, NaN too
                        other = 1
                        bad_b += popcount(nonfinite_mask32(x, base + start) >> shift)
            else:
                mask = 0
                for m in range(n_in):
                    v = x[b, t, m]
                    mask |= (v != 0) << m
                    other |= (v != 0) & (v != 1)
                    bad_b += v - v != 0  # true for inf and NaN only
                if t < K:
                    masks[b, t, 0] = mask
                c += popcount(mask)
            if t < K:
                ptr[b * K + t + 1] = c
                general[b * K + t] = other != 0
        bad += bad_b
    ptr[0] = 0
    for k in range(B * K):
        ptr[k + 1] += ptr[k]
    most = 0
    for b in range(B):
        most = max(most, ptr[(b + 1) * K] - ptr[b * K])
    return bad, most


@jit
def _trailing_zeros(m):
    """Return the number of trailing zero bits of the int64 ``m`` (64 for 0)."""
    return popcount((m & -m) - 1)


@jit
def store_few_set_bits(dst, at, mask, base):
    """``store_set_bits`` for a mask with few set bits, with two spare stores.

    Writes ``base + k`` for the set bits k of the 32-bit ``mask``, lowest first, to
    ``dst[at:]`` and returns their number. The first two go by two stores that are
    made whatever the mask (no branch), the others, rare in a sparse input, by a loop.
    So ``dst[at]`` and ``dst[at + 1]`` are written even past the set bits (with values
    to be overwritten): the caller owns them and writes them afterwards.
    """
    mask = np.int64(mask)  # (the masks are uint32: -mask must not wrap)
    dst[at] = base + _trailing_zeros(mask)
    rest = mask & (mask - 1)
    dst[at + 1] = base + _trailing_zeros(rest)
    count = popcount(mask)
    if count > 2:
        rest &= rest - 1
        k = at + 2
        while rest != 0:
            dst[k] = base + _trailing_zeros(rest)
            rest &= rest - 1
            k += 1
    return count


@jit_noinline
def _fill_events(b, x, masks, general, ev_ptr, ev_idx, ev_val):
    """Write the events of sample b (see the module doc), in (step, input) order.

    Writes the set bits of each step's ``masks`` (from ``scan_input``) as input indices,
    a 32-bit word at a time, then the values: 1, read from ``x`` only for a step with
    values other than 0 and 1. A word goes by ``store_few_set_bits`` (two stores
    whatever its bits, the input being sparse) while its two spare stores land among
    the sample's later events, which overwrite them; the last steps, whose spare stores
    could reach the next sample's events (another thread's), by ``store_set_bits``
    (compressing stores, nothing written past the events). Timed alone, 1.7 against
    2.9 ns per word at 2 % density.
    """
    K = (ev_ptr.shape[0] - 1) // x.shape[0]
    n_words = masks.shape[2]
    end = ev_ptr[(b + 1) * K]
    for t in range(K):
        e = ev_ptr[b * K + t]
        if ev_ptr[b * K + t + 1] + 2 <= end:
            for w in range(n_words):
                e += store_few_set_bits(ev_idx, e, masks[b, t, w], 32 * w)
        else:
            for w in range(n_words):
                e += store_set_bits(ev_idx, e, masks[b, t, w], 32 * w)
    for e in range(ev_ptr[b * K], ev_ptr[(b + 1) * K]):
        ev_val[e] = 1
    for t in range(K):
        if general[b * K + t] != 0:
            for e in range(ev_ptr[b * K + t], ev_ptr[b * K + t + 1]):
                ev_val[e] = x[b, t, ev_idx[e]]


# ============================================================================ one neuron
@jit
def _spike(vth, mode, scale):
    """Eq. (1) for one neuron: ``vth = v - threshold``."""
    if mode == SPIKE_SIGMOID:
        return smooth_spike_scalar(vth, scale)
    if mode == SPIKE_GE:
        return 1.0 if vth >= 0 else 0.0
    return 1.0 if vth > 0 else 0.0


@jit
def _membrane(v, r, drive, hid, n, reset):
    """Eq. (4)-(6) for neuron n: the membrane after an update.

    From ``v``, the spike ``r`` and the current ``drive`` of Eq. (3). The forward pass
    and the recomputation of the backward pass both call this, so they agree bit for bit
    (with the paper's reset, both run the same expression as ``_membrane_sub`` in
    ``rowwise`` passes instead).
    """
    rest = hid[H_V_REST, n]
    th_minus_reset = hid[H_THRESHOLD, n] - hid[H_V_RESET, n]
    if reset == RESET_SUB:  # the paper's: after the leak, undecayed
        return (hid[H_DECAY_MEM, n] * (v - rest) + rest + hid[H_G, n] * drive
                - r * th_minus_reset)
    pre = v
    if reset == RESET_SUB_DECAYED:
        pre = v - r * th_minus_reset
    elif reset == RESET_TO_LEAK:
        pre = v - r * (v - hid[H_V_RESET, n])
    cand = hid[H_DECAY_MEM, n] * (pre - rest) + rest + hid[H_G, n] * drive
    if reset == RESET_TO_FULL:
        cand = (1 - r) * cand + r * hid[H_V_RESET, n]
    return cand


@jit_noinline
def _spike_list(s, b, k, lst):
    """List the neurons with ``s[b, k, j] != 0``, ascending, in ``lst[b]``; return their count.

    The row is tested 32 neurons at a time (``nonzero_mask32``), and the set bits are
    written as neuron indices without a branch per spike (``store_set_bits``); the last
    ``N % 32`` neurons one by one, branch-free.
    """
    N = s.shape[2]
    n32 = N - N % 32
    base = (b * s.shape[1] + k) * N
    at = b * lst.shape[1]
    c = 0
    for j0 in range(0, n32, 32):
        c += store_set_bits(lst, at + c, nonzero_mask32(s, base + j0), j0)
    for j in range(n32, N):
        lst[b, c] = j
        c += s[b, k, j] != 0
    return c


# ============================================================================ forward
def _spike_gt(v, th, one, zero):
    """Eq. (1) with the paper's test ``v - threshold > 0``, in ``rowwise`` bodies."""
    return where(v - th > 0, one, zero)


def _spike_counts_body(s, c0, c1, v, th, one, zero, u0, u1):
    """Eq. (1) (``_spike_gt``) and the spike counts: a ``rowwise`` body.

    ``u0`` and ``u1`` are 1 when the state's spikes are counted in ``counts[b, 0]``
    and ``counts[b, 1]``, else 0 (a count is at least 0: adding 0 leaves its bits).
    """
    s = _spike_gt(v, th, one, zero)
    return s, c0 + s * u0, c1 + s * u1


_spike_counts = rowwise(_spike_counts_body, 3)


@jit_noinline
def _deliver_spikes(b0, b1, k, sk, s, lst, n_spk, w_ch, d, r_delay, i, i_out, acc, binary):
    """Send the spikes of state k (in ``s[b, sk]``) of samples b0 .. b1-1 to both targets.

    ``acc[b] = sum over the spiking j (ascending) of s[b, sk, j] * w_spk[j]``, one
    fused multiply-add per spike (an addition when the spikes are ``binary``, 0 or 1,
    which gives the same bits): the first N entries are the spike term of Eq. (2) for
    ``i[k + d]``, the next C the spike term of Eq. (7) for ``i_out[k + r]``; each is
    parked in that (not yet computed) state's slot, which its update then adds to. The
    columns run in the chunks of ``w_ch`` (``chunks``), each chunk for every sample of
    the group in turn with its sums in registers (``fma_rows``), so that the chunk's
    rows, read by the first sample, are in the first-level cache for the others.
    ``lst[b, :n_spk[b]]`` lists the spiking neurons.
    """
    K = i.shape[1] - 1
    N = i.shape[2]
    C = i_out.shape[2]
    to_rec = k + d <= K
    to_out = 1 <= k + r_delay <= K
    if not (to_rec or to_out):
        return
    n_chunks, _, width = w_ch.shape
    A = acc.shape[1]
    L = lst.shape[1]
    s_flat = s.reshape(-1)
    for b in range(b0, b1):
        for m in range(A):
            acc[b, m] = 0
    for c in range(n_chunks):
        w_c = w_ch[c]
        for b in range(b0, b1):
            if binary:  # every listed spike is 1: the rows are added, no coefficient read
                fma_rows(acc, b * A + c * width, w_c, 0, lst, b * L, b * L + n_spk[b], None,
                         0, 0, CHUNK_VECTORS)
            else:
                fma_rows(acc, b * A + c * width, w_c, 0, lst, b * L, b * L + n_spk[b], s_flat,
                         (b * s.shape[1] + sk) * N, 1, CHUNK_VECTORS)
    for b in range(b0, b1):
        if to_rec:
            for n in range(N):
                i[b, k + d, n] = acc[b, n]
        if to_out:
            for cc in range(C):
                i_out[b, k + r_delay, cc] = acc[b, np.uintp(N + cc)]


@jit_noinline
def _forward_group(b0, b1, x, masks, general, ev_ptr, ev_idx, ev_val, w_in, w_ch, hid,
                   out, flags, scale, seg, i, v, s, i_out, v_out, ckpt, counts, k_max, logits,
                   lst, n_spk, acc, bad):
    """Eq. (1)-(8) for the samples b0 .. b1-1 in lockstep, state by state.

    A sample's states do not depend on the others' or on the group: the group only
    shares the delivery of each state's spikes (``_deliver_spikes``). Each sample's
    input events are written first (``_fill_events``; ``ev_ptr`` is given). ``i``,
    ``i_out``, ``v_out`` (B, K+1, .) receive every state. ``v`` and ``s`` are
    (B, K+1, N) for a full trace, or rolling buffers (B, 2, N) and (B, 1, N) (state t
    in row ``t % rows``) with ``ckpt[b, c] = v[c * seg]`` (B, K // seg + 1, N) for
    BPTT. ``counts[b, 0]`` sums the spikes of states 0 .. K-1 (the regularisers, Eq.
    (11)), ``counts[b, 1]`` those that drive a readout update (the "count" reduction).
    For the "max" reduction, ``k_max[b, c]`` is the first recorded state at which
    ``v_out[b, :, c]`` is largest (``argmax``) and ``logits[b, c]`` its value (Eq. (9)).
    ``lst`` (B, N), ``n_spk`` (B,) and ``acc`` (B, chunk columns) are scratch;
    ``bad[b]`` flags (0 or 1) non-finite states of i_out and of v_out, and counts the
    updates that made a non-finite i or v (all zero when every state is finite).
    """
    K = i.shape[1] - 1
    N = i.shape[2]
    C = i_out.shape[2]
    V = v.shape[1]
    S1 = s.shape[1]
    mode = flags[F_SPIKE]
    reset = flags[F_RESET]
    new = flags[F_NEW] == 1
    d = flags[F_REC_DELAY]
    r_delay = flags[F_OUT_DELAY]
    th = hid[H_THRESHOLD]
    for b in range(b0, b1):
        # the initial state, and zero spike terms before the first delivered spikes
        for k in range(min(d, K + 1)):
            for n in range(N):
                i[b, k, n] = 0
        for k in range(min(max(r_delay, 1), K + 1)):
            for c in range(C):
                i_out[b, k, c] = 0
        for c in range(C):
            v_out[b, 0, c] = 0
        for n in range(N):
            v[b, 0, n] = 0
            counts[b, 0, n] = 0
            counts[b, 1, n] = 0
        for q in range(4):
            bad[b, q] = 0
        _fill_events(b, x, masks, general, ev_ptr, ev_idx, ev_val)
    w_lo = max(0, 1 - r_delay)  # states that drive a readout update
    w_hi = K - r_delay
    for t in range(K + 1):
        vt = t % V
        st = t % S1
        for b in range(b0, b1):
            if ckpt.shape[1] > 0 and t % seg == 0:
                for n in range(N):
                    ckpt[b, t // seg, n] = v[b, vt, n]
            # Eq. (1), the mode tested once per row so that the loop vectorises
            if mode == SPIKE_GT:  # the paper's: one pass with the counts
                _spike_counts(N, (s, counts, counts, v, hid),
                              ((b * S1 + st) * N, b * 2 * N, (b * 2 + 1) * N,
                               (b * V + vt) * N, H_THRESHOLD * N),
                              (1.0, 0.0, 1.0 if t < K else 0.0, 1.0 if w_lo <= t <= w_hi else 0.0))
            else:
                for n in range(N):
                    s[b, st, n] = _spike(v[b, vt, n] - th[n], mode, scale)
                if t < K:
                    for n in range(N):
                        counts[b, 0, n] += s[b, st, n]
                if w_lo <= t <= w_hi:
                    for n in range(N):
                        counts[b, 1, n] += s[b, st, n]
            n_spk[b] = _spike_list(s, b, st, lst)
        _deliver_spikes(b0, b1, t, st, s, lst, n_spk, w_ch, d, r_delay, i, i_out, acc,
                        mode != SPIKE_SIGMOID)
        if t == K:
            break
        _hidden_update(b0, b1, t, general, ev_ptr, ev_idx, ev_val, w_in, hid, reset, new, i,
                       v, s, acc, bad)
    for b in range(b0, b1):
        _readout_forward(b, out, flags, i_out, v_out, k_max, logits, bad)


@jit_noinline
def _input_runs_rest(acc, d0, w_in, ev_idx, ev_val, e0, e1, n0, N):
    """Add Eq. (2)'s events to the columns n0 .. N-1 (fewer than a whole run).

    ``add_events`` in runs of a half, a quarter, an eighth and a sixteenth of
    ``INPUT_VECTORS``, then the last columns, fewer than a 32-byte vector, as one masked
    vector (``add_events_few``). ``ev_val`` None: every value is 1.
    """
    cols = 32 // acc.itemsize  # columns per 32-byte vector
    # a call per run length, written out: an intrinsic's nvec is a compile-time literal
    if n0 + INPUT_VECTORS_2 * cols <= N:
        add_events(acc, d0 + n0, w_in, n0, ev_idx, ev_val, e0, e1, INPUT_VECTORS_2)
        n0 += INPUT_VECTORS_2 * cols
    if n0 + INPUT_VECTORS_4 * cols <= N:
        add_events(acc, d0 + n0, w_in, n0, ev_idx, ev_val, e0, e1, INPUT_VECTORS_4)
        n0 += INPUT_VECTORS_4 * cols
    if n0 + INPUT_VECTORS_8 * cols <= N:
        add_events(acc, d0 + n0, w_in, n0, ev_idx, ev_val, e0, e1, INPUT_VECTORS_8)
        n0 += INPUT_VECTORS_8 * cols
    if n0 + INPUT_VECTORS_16 * cols <= N:
        add_events(acc, d0 + n0, w_in, n0, ev_idx, ev_val, e0, e1, INPUT_VECTORS_16)
        n0 += INPUT_VECTORS_16 * cols
    if n0 < N:
        add_events_few(acc, d0 + n0, w_in, n0, ev_idx, ev_val, e0, e1, N - n0)


@jit_noinline
def _input_grad_runs_rest(g_w_in, d0, g_i, order, k0, k1, n0, N):
    """Add (B12)'s rows of ``g_i`` to the columns n0 .. N-1 (fewer than a whole run).

    ``fma_rows`` without coefficients, in the runs of ``_input_runs_rest``, the last
    columns as one masked vector (``fma_rows_few``).
    """
    cols = 32 // g_w_in.itemsize
    if n0 + INPUT_VECTORS_2 * cols <= N:
        fma_rows(g_w_in, d0 + n0, g_i, n0, order, k0, k1, None, 0, 0, INPUT_VECTORS_2)
        n0 += INPUT_VECTORS_2 * cols
    if n0 + INPUT_VECTORS_4 * cols <= N:
        fma_rows(g_w_in, d0 + n0, g_i, n0, order, k0, k1, None, 0, 0, INPUT_VECTORS_4)
        n0 += INPUT_VECTORS_4 * cols
    if n0 + INPUT_VECTORS_8 * cols <= N:
        fma_rows(g_w_in, d0 + n0, g_i, n0, order, k0, k1, None, 0, 0, INPUT_VECTORS_8)
        n0 += INPUT_VECTORS_8 * cols
    if n0 + INPUT_VECTORS_16 * cols <= N:
        fma_rows(g_w_in, d0 + n0, g_i, n0, order, k0, k1, None, 0, 0, INPUT_VECTORS_16)
        n0 += INPUT_VECTORS_16 * cols
    if n0 < N:
        fma_rows_few(g_w_in, d0 + n0, g_i, n0, order, k0, k1, N - n0)


def _membrane_sub(v, s, drive, rest, decay, g, th, v_reset):
    """Eq. (4)-(6) with the paper's reset, in ``rowwise`` bodies: ``_membrane``'s expression."""
    return decay * (v - rest) + rest + g * drive - s * (th - v_reset)


def _recompute_body(v1, s, v, drive, rest, decay, g, th, v_reset, one, zero):
    """Eq. (1) and (3)-(6) as BPTT recomputes a state: a ``rowwise`` body.

    The paper's spike test and reset: the forward pass's expressions (``_spike_gt``,
    ``_membrane_sub``), so the same bits.
    """
    s = _spike_gt(v, th, one, zero)
    return _membrane_sub(v, s, drive, rest, decay, g, th, v_reset), s


def _spike_body(s, v, th, one, zero):
    """Eq. (1) (``_spike_gt``) alone, for the last state of a segment: a ``rowwise`` body."""
    return (_spike_gt(v, th, one, zero),)


_recompute_state = rowwise(_recompute_body, 2)
_spike_state = rowwise(_spike_body, 1)


def _update_body(new):
    """Eq. (2)'s sum into i[t + 1] and Eq. (3)-(6), the paper's reset: a ``rowwise`` body.

    Inputs: i[t + 1] (holding the parked spike term), v[t + 1], the sum of the leak and
    the input events (``acc``), v[t], s[t], i[t], then the per-neuron ``v_rest``,
    ``decay_mem``, g(decay_mem), ``threshold``, ``v_reset``. Returns i[t + 1] and
    v[t + 1], then both again to be tested for overflow: the expressions of
    ``_hidden_update`` and ``_membrane``.
    """

    def body(i1, v1, acc, v, s, i_t, rest, decay, g, th, v_reset):
        i1 = acc + i1
        drive = i1 if new else i_t  # the current of Eq. (3)
        v1 = _membrane_sub(v, s, drive, rest, decay, g, th, v_reset)
        return i1, v1, i1, v1

    return body


_update_prev = rowwise(_update_body(False), 2, 2)
_update_new = rowwise(_update_body(True), 2, 2)


@jit_noinline
def _hidden_update(b0, b1, t, general, ev_ptr, ev_idx, ev_val, w_in, hid, reset, new, i, v, s,
                   acc, bad):
    """Eq. (2)-(6) for update t of the samples b0 .. b1-1: the current, then the membrane.

    One call for the group, not one per sample: a call passes every array field by field
    (about a hundred words here): one call per sample made the forward pass 5 to 6 %
    slower.
    """
    K = i.shape[1] - 1
    N = i.shape[2]
    V = v.shape[1]
    vt = t % V
    vt1 = (t + 1) % V
    st = t % s.shape[1]
    td = t + 1 if new else t  # the current of Eq. (3)
    A = acc.shape[1]
    run = INPUT_VECTORS * 32 // acc.itemsize  # columns per call of add_events
    n_full = N - N % run
    for b in range(b0, b1):
        # Eq. (2): the leak, the input events (four at a time), the parked spike term
        for n in range(N):
            acc[b, n] = hid[H_DECAY_SYN, n] * i[b, t, n]
        e0, e1 = ev_ptr[b * K + t], ev_ptr[b * K + t + 1]
        # runs of columns with their sums in registers (``add_events``); the values are
        # not read (nor multiplied: 1 w = w) for a step of spike input
        spikes = general[b * K + t] == 0
        for n0 in range(0, n_full, run):
            if spikes:
                add_events(acc, b * A + n0, w_in, n0, ev_idx, None, e0, e1, INPUT_VECTORS)
            else:
                add_events(acc, b * A + n0, w_in, n0, ev_idx, ev_val, e0, e1, INPUT_VECTORS)
        if n_full < N:  # shorter runs, then a masked vector, for the rest
            if spikes:
                _input_runs_rest(acc, b * A, w_in, ev_idx, None, e0, e1, n_full, N)
            else:
                _input_runs_rest(acc, b * A, w_in, ev_idx, ev_val, e0, e1, n_full, N)
        if reset == RESET_SUB:  # the paper's reset: one pass, overflow tested in it
            rows = (i, v, acc, v, s, i, hid, hid, hid, hid, hid)
            at = ((b * (K + 1) + t + 1) * N, (b * V + vt1) * N, b * A, (b * V + vt) * N,
                  (b * s.shape[1] + st) * N, (b * (K + 1) + t) * N, H_V_REST * N,
                  H_DECAY_MEM * N, H_G * N, H_THRESHOLD * N, H_V_RESET * N)
            bits = _update_new(N, rows, at, ()) if new else _update_prev(N, rows, at, ())
            bad[b, BAD_I] += bits & 1
            bad[b, BAD_V] += bits >> 1
            continue
        # whether a state overflowed (``v - v != 0`` holds for inf and NaN only): a flag,
        # not a count, so that the loop runs on whole vectors of floats (an int64 count
        # took 4 lanes of floats per vector)
        bad_i = False
        for n in range(N):
            i[b, t + 1, n] = acc[b, n] + i[b, t + 1, n]
            bad_i |= i[b, t + 1, n] - i[b, t + 1, n] != 0
        # Eq. (3)-(6)
        bad_v = False
        for n in range(N):
            v[b, vt1, n] = _membrane(v[b, vt, n], s[b, st, n], i[b, td, n], hid, n, reset)
            bad_v |= v[b, vt1, n] - v[b, vt1, n] != 0
        bad[b, BAD_I] += bad_i
        bad[b, BAD_V] += bad_v


def _readout_update_body(new):
    """Eq. (7)-(8) for one class at update t: a ``rowwise`` body.

    Inputs: i_out[t + 1] (holding the parked spike term), v_out[t + 1], i_out[t],
    v_out[t], then ``decay_syn_out``, ``decay_mem_out``, g(decay_mem_out). Returns
    i_out[t + 1] and v_out[t + 1], then both again to be tested for overflow.
    """

    def body(i1, v1, i_t, v_t, decay_syn, decay_mem, g):
        i1 = decay_syn * i_t + i1  # Eq. (7): the leak plus the parked spike term
        v1 = decay_mem * v_t + g * (i1 if new else i_t)  # Eq. (8)
        return i1, v1, i1, v1

    return body


_readout_update_prev = rowwise(_readout_update_body(False), 2, 2)
_readout_update_new = rowwise(_readout_update_body(True), 2, 2)


@jit_noinline
def _readout_forward(b, out, flags, i_out, v_out, k_max, logits, bad):
    """Eq. (7)-(8) for sample b, once its spike terms are parked; the "max" of Eq. (9).

    For the "max" reduction, ``k_max[b, c]`` receives the first recorded state at which
    ``v_out[b, :, c]`` is largest and ``logits[b, c]`` that value, tracked as the states
    are visited (a select, not a gather of ``v_out[b, k_max[b, c], c]``). Eq. (7)-(8)
    run as one pass per update (``rowwise``), which tests the new states for overflow.
    """
    K = i_out.shape[1] - 1
    C = i_out.shape[2]
    new = flags[F_NEW] == 1
    bits = 0
    for t in range(K):  # Eq. (7)-(8) as one pass per update (``_readout_update_body``)
        rows = (i_out, v_out, i_out, v_out, out, out, out)
        at = ((b * (K + 1) + t + 1) * C, (b * (K + 1) + t + 1) * C, (b * (K + 1) + t) * C,
              (b * (K + 1) + t) * C, O_DECAY_SYN * C, O_DECAY_MEM * C, O_G * C)
        if new:
            bits |= _readout_update_new(C, rows, at, ())
        else:
            bits |= _readout_update_prev(C, rows, at, ())
    bad[b, BAD_I_OUT] = bits & 1
    bad[b, BAD_V_OUT] = bits >> 1
    if flags[F_REDUCTION] == RED_MAX:  # Eq. (9): the first largest recorded state
        k0 = flags[F_WIN_START]
        for c in range(C):
            k_max[b, c] = k0
            logits[b, c] = v_out[b, k0, c]
        for t in range(k0 + 1, K + 1):
            for c in range(C):  # a select, not a branch, so that the loop vectorises
                later = v_out[b, t, c] > logits[b, c]
                logits[b, c] = v_out[b, t, c] if later else logits[b, c]
                k_max[b, c] = t if later else k_max[b, c]


@pjit
def forward_kernel(x, masks, general, ev_ptr, ev_idx, ev_val, w_in, w_ch, hid, out, flags, scale,
                   seg, group, i, v, s, i_out, v_out, ckpt, counts, k_max, lst, n_spk, acc,
                   bad, logits):
    """Eq. (1)-(8) for every sample: groups of ``group`` samples in parallel.

    See ``_forward_group``. A sample's states do not depend on the group size. For the
    "max" reduction, also Eq. (9): ``logits[b, c] = v_out[b, k_max[b, c], c]`` (B, C);
    ``logits`` is untouched for the others. Returns the sum of ``bad``: zero when every
    state is finite.
    """
    B = i.shape[0]
    for grp in prange((B + group - 1) // group):
        b0 = grp * group
        _forward_group(b0, min(b0 + group, B), x, masks, general, ev_ptr, ev_idx, ev_val,
                       w_in, w_ch, hid, out, flags, scale, seg, i, v, s, i_out, v_out, ckpt,
                       counts, k_max, logits, lst, n_spk, acc, bad)
    n_bad = 0
    for b in range(B):
        for q in range(4):
            n_bad += bad[b, q]
    return n_bad


# ============================================================================ backward
@jit
def spike_grad_columns(n_cols, itemsize):
    """Return (B13)'s chunk width and the row length ``n_cols`` padded to whole chunks.

    A chunk is ``SPIKE_GRAD_VECTORS`` 32-byte vectors of columns (80 in float32, 40 in
    float64; twice that with AVX-512); the adjoint rows ``g_spk`` and the task gradients
    ``g_w_spk`` have the padded length, zero (``g_spk``) or unused past ``n_cols``.
    """
    width = SPIKE_GRAD_VECTORS * 32 // itemsize
    return width, -(-n_cols // width) * width


@jit
def spike_grad_states(row_bytes):
    """Return the states per pass of (B13) for adjoint rows of ``row_bytes`` bytes.

    ``SPIKE_GRAD_STATES``, or fewer while the pass's ``GROUP`` rows per state would
    overflow ``SPIKE_GRAD_BYTES``; at least 1 (4 for 128 neurons in float32, 1 for 512
    in either dtype: with 4, the rows came from the second-level cache and 512 neurons
    in float64 ran 10 % slower than the pairs of samples before the windows).
    """
    return max(1, min(SPIKE_GRAD_STATES, SPIKE_GRAD_BYTES // (GROUP * row_bytes)))


@jit_noinline
def _recompute_segment(b, c, seg, i, ckpt, hid, flags, scale, seg_v, seg_s, v_row):
    """Recompute v and s (Eq. (1), (3)-(6)) of the states of segment c of sample b.

    The states ``c*seg .. c*seg + seg - 1`` (at most K) go to ``seg_v[b, q]`` and
    ``seg_s[q, b]`` for q = 0, 1, ..., from ``ckpt[b, c]``: the same arithmetic as the
    forward pass. (``seg_s`` is state-major so that (B13) finds the spike of row
    ``q B + b`` of the segment's adjoints at one stride.)
    ``v_row[b]`` (N,) receives a copy of each row of v as its spikes are found, and the
    membrane update reads it there: a loop that reads one row of ``seg_v`` and writes
    another is not vectorised by the compiler (it ran scalar, three times slower).
    """
    K = i.shape[1] - 1
    N = i.shape[2]
    mode = flags[F_SPIKE]
    reset = flags[F_RESET]
    new = flags[F_NEW] == 1
    t0 = c * seg
    t1 = min(t0 + seg, K + 1)
    for n in range(N):
        seg_v[b, 0, n] = ckpt[b, c, n]
    if mode == SPIKE_GT and reset == RESET_SUB:  # the paper's: one pass per state
        S, B = seg_v.shape[1], seg_s.shape[1]
        for t in range(t0, t1):
            q = t - t0
            if t + 1 < t1:
                td = t + 1 if new else t
                _recompute_state(
                    N, (seg_v, seg_s, seg_v, i, hid, hid, hid, hid, hid),
                    ((b * S + q + 1) * N, (q * B + b) * N, (b * S + q) * N,
                     (b * (K + 1) + td) * N, H_V_REST * N, H_DECAY_MEM * N, H_G * N,
                     H_THRESHOLD * N, H_V_RESET * N), (1.0, 0.0))
            else:
                _spike_state(N, (seg_s, seg_v, hid), ((q * B + b) * N, (b * S + q) * N,
                                                       H_THRESHOLD * N), (1.0, 0.0))
        return
    for t in range(t0, t1):
        q = t - t0
        if mode == SPIKE_GT:
            for n in range(N):
                v_n = seg_v[b, q, n]
                v_row[b, n] = v_n
                seg_s[q, b, n] = 1.0 if v_n - hid[H_THRESHOLD, n] > 0 else 0.0
        else:
            for n in range(N):
                v_n = seg_v[b, q, n]
                v_row[b, n] = v_n
                seg_s[q, b, n] = _spike(v_n - hid[H_THRESHOLD, n], mode, scale)
        if t + 1 < t1:
            td = t + 1 if new else t
            if reset == RESET_SUB:
                for n in range(N):
                    seg_v[b, q + 1, n] = _membrane(v_row[b, n], seg_s[q, b, n], i[b, td, n],
                                                   hid, n, RESET_SUB)
            else:
                for n in range(N):
                    seg_v[b, q + 1, n] = _membrane(v_row[b, n], seg_s[q, b, n], i[b, td, n],
                                                   hid, n, reset)


def _readout_adjoint_body(new):
    """(B4), (B5) and the leak of (B3) for one class at update t: a ``rowwise`` body.

    Inputs: the rows 1 and 0 of ``g_out``, g_i_out[t] (receives its first terms here),
    g_i_out[t + 1], ``g_vo`` (the adjoint of v_out[t + 1]), v_out[t], the current of
    Eq. (8), i_out[t], then g'(decay_mem_out), g(decay_mem_out), ``decay_syn_out``,
    ``decay_mem_out``. Returns the first five, updated: the expressions of
    ``_readout_backward``'s loop, in its order. With a "new" current (``new``), the
    input-scale term goes to g_i_out[t + 1] before the leak reads it.
    """

    def body(g1, g0, gio_t, gio_t1, gvo, v_t, i_d, i_t, dg, g, decay_syn, decay_mem):
        g1 = g1 + gvo * (v_t + dg * i_d)  # (B4): Eq. (8) backwards
        if new:
            gio_t1 = gio_t1 + g * gvo
            gio_t = 0.0 + decay_syn * gio_t1
        else:
            gio_t = (0.0 + g * gvo) + decay_syn * gio_t1
        g0 = g0 + gio_t1 * i_t  # (B5): Eq. (7) backwards, leak
        return g1, g0, gio_t, gio_t1, decay_mem * gvo  # (B3): the leak

    return body


_readout_adjoint_prev = rowwise(_readout_adjoint_body(False), 5)
_readout_adjoint_new = rowwise(_readout_adjoint_body(True), 5)


@jit_noinline
def _readout_backward(b, out, flags, i_out, v_out, g_logits, k_max, g_out, g_vo, g_io):
    """(B3)-(B5): every readout update backwards, K-1 down to 0, for sample b.

    The readout's adjoints depend on the logits only, never on the hidden layer's, so
    they run before the hidden layer's sweep, one sample at a time. Writes the adjoint
    of every readout current, ``g_io[t, b] = dL/di_out[t]`` (its rows 1 .. K are
    read), adds to ``g_out[b]``; ``g_vo[b]`` (C,) is scratch for the adjoint of the
    readout membrane.
    """
    K = i_out.shape[1] - 1
    C = i_out.shape[2]
    new = flags[F_NEW] == 1
    red = flags[F_REDUCTION]
    k0 = flags[F_WIN_START]
    inv_w = 1.0 / (K + 1 - k0)
    if red == RED_COUNT:
        for t in range(K + 1):  # (B6')
            for c in range(C):
                g_io[t, b, c] = g_logits[b, c]
        return
    for c in range(C):  # (B3): the adjoint of v_out[K], from the reduction only
        g_io[K, b, c] = 0
        g_vo[b, c] = 0
        if red == RED_MAX and k_max[b, c] == K:
            g_vo[b, c] = g_logits[b, c]
        elif red == RED_MEAN:
            g_vo[b, c] = g_logits[b, c] * inv_w
        elif red == RED_LAST:
            g_vo[b, c] = g_logits[b, c]
    B = g_io.shape[1]
    for t in range(K - 1, -1, -1):
        # g_vo[b] is the adjoint of v_out[t + 1], complete; g_io[t + 1, b] lacks only
        # the term of Eq. (8) when that current drove v_out[t + 1]
        td = t + 1 if new else t  # the current that drove v_out[t + 1]
        # (B4), (B5) and (B3)'s leak as one pass (``_readout_adjoint_body``)
        rows = (g_out, g_out, g_io, g_io, g_vo, v_out, i_out, i_out, out, out, out, out)
        at = ((b * 2 + 1) * C, b * 2 * C, (t * B + b) * C, ((t + 1) * B + b) * C, b * C,
              (b * (K + 1) + t) * C, (b * (K + 1) + td) * C, (b * (K + 1) + t) * C,
              O_DG * C, O_G * C, O_DECAY_SYN * C, O_DECAY_MEM * C)
        if new:
            _readout_adjoint_new(C, rows, at, ())
        else:
            _readout_adjoint_prev(C, rows, at, ())
        if t >= k0:  # (B3) at state t: the reduction (the leak is in the pass)
            if red == RED_MAX:
                for c in range(C):
                    if k_max[b, c] == t:
                        g_vo[b, c] += g_logits[b, c]
            elif red == RED_MEAN:
                for c in range(C):
                    g_vo[b, c] += g_logits[b, c] * inv_w


def _hidden_adjoint_body(new, detach_th):
    """(B8)-(B11) of the paper's reset (subtracted, detached) for one neuron: a ``rowwise`` body.

    Inputs: the ring rows of g_i[t] (``ring0``, receives its first terms here) and of
    g_i[t + 1] (``ring1``), the rows 0, 1, 2, 3, 4 of ``g_hid``, then ``g_v``, then
    ``gv1`` (the adjoint of v[t + 1]), v[t], s[t], i[t], the current of Eq. (3) and the
    per-neuron ``v_rest``, g'(decay_mem), ``1 - decay_mem``, ``decay_mem``,
    g(decay_mem), ``decay_syn``. Returns the first eight, updated: each expression is
    the one the loops of ``_hidden_step`` compute, in their order. With a "new"
    current (``new``), the input-scale term goes to g_i[t + 1] before the leak reads it.
    """

    def body(ring0, ring1, gh0, gh1, gh2, gh3, gh4, g_v, gv1, v, s, i_t, i_d, rest, dg, leak,
             decay, g, decay_syn):
        gh1 = gh1 + gv1 * ((v - rest) + dg * i_d)  # (B9): Eq. (5) backwards
        gh4 = gh4 + gv1 * leak
        if new:
            ring1 = ring1 + g * gv1
        gh3 = gh3 + s * gv1
        if not detach_th:
            gh2 = gh2 - s * gv1
        g_v = decay * gv1  # (B10): Eq. (4) backwards
        gh0 = gh0 + ring1 * i_t  # (B11): Eq. (2) backwards, leak
        if new:
            ring0 = 0.0 + decay_syn * ring1
        else:  # the input-scale term, then the leak
            ring0 = (0.0 + g * gv1) + decay_syn * ring1
        return ring0, ring1, gh0, gh1, gh2, gh3, gh4, g_v

    return body


# ``_hidden_adjoint_body`` as intrinsics, by (current of Eq. (3), threshold detached)
_hidden_adjoint_prev_live = rowwise(_hidden_adjoint_body(False, False), 8)
_hidden_adjoint_prev = rowwise(_hidden_adjoint_body(False, True), 8)
_hidden_adjoint_new_live = rowwise(_hidden_adjoint_body(True, False), 8)
_hidden_adjoint_new = rowwise(_hidden_adjoint_body(True, True), 8)


@jit_noinline
def _hidden_step(b0, b1, t, q, hid, flags, i, seg_v, seg_s, ring_i, g_v, g_v_next, g_s,
                 g_hid):
    """(B8)-(B11) without the spike term: the hidden update t backwards, samples b0 .. b1-1.

    ``g_v_next[b]`` is the complete adjoint of ``v[t + 1]``; ``seg_v[b, q]``,
    ``seg_s[q, b]`` hold ``v[t]``, ``s[t]``. Leaves the adjoint of v[t] through
    Eq. (4)-(5) in ``g_v[b]``, adds the reset's adjoint to ``g_s[b]`` (unless
    detached), and completes ``g_i[t + 1]`` (ring row ``(t + 1) % R``). One call for the
    group, as ``_hidden_update``.
    """
    N = i.shape[2]
    R = ring_i.shape[1]
    reset = flags[F_RESET]
    new = flags[F_NEW] == 1
    detach_r = flags[F_DETACH_R] == 1
    detach_th = flags[F_DETACH_TH] == 1
    r1 = (t + 1) % R
    r0 = t % R
    td = t + 1 if new else t  # the current that drove v[t+1], Eq. (3)
    rd = r1 if new else r0
    if reset == RESET_SUB and detach_r:  # the paper's case: one pass per sample
        # seg_v is (., S, N), seg_s (S, B, N)
        S, B, K1 = seg_v.shape[1], seg_s.shape[1], i.shape[1]
        for b in range(b0, b1):
            rows = (ring_i, ring_i, g_hid, g_hid, g_hid, g_hid, g_hid, g_v, g_v_next, seg_v,
                    seg_s, i, i, hid, hid, hid, hid, hid, hid)
            at = ((b * R + r0) * N, (b * R + r1) * N, b * 5 * N, (b * 5 + 1) * N,
                  (b * 5 + 2) * N, (b * 5 + 3) * N, (b * 5 + 4) * N, b * N, b * N,
                  (b * S + q) * N, (q * B + b) * N, (b * K1 + t) * N, (b * K1 + td) * N,
                  H_V_REST * N, H_DG * N, H_LEAK * N, H_DECAY_MEM * N, H_G * N,
                  H_DECAY_SYN * N)
            if new:
                if detach_th:
                    _hidden_adjoint_new(N, rows, at, ())
                else:
                    _hidden_adjoint_new_live(N, rows, at, ())
            elif detach_th:
                _hidden_adjoint_prev(N, rows, at, ())
            else:
                _hidden_adjoint_prev_live(N, rows, at, ())
        return
    for b in range(b0, b1):
        for n in range(N):  # g_i[t] receives its first term in this step
            ring_i[b, r0, n] = 0
        for n in range(N):
            gv1 = g_v_next[b, n]  # adjoint of v[t+1], complete
            r = seg_s[q, b, n]
            v_t = seg_v[b, q, n]
            th_minus_reset = hid[H_THRESHOLD, n] - hid[H_V_RESET, n]
            drive = i[b, td, n]
            pre = v_t
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
            g_hid[b, 4, n] += g_cand * hid[H_LEAK, n]
            ring_i[b, rd, n] += hid[H_G, n] * g_cand
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
                g_r -= (v_t - hid[H_V_RESET, n]) * g_pre
                g_hid[b, 3, n] += r * g_pre
                g_v[b, n] = (1 - r) * g_pre
            else:
                g_v[b, n] = g_pre
            if not detach_r:
                g_s[b, n] += g_r
            # (B11): Eq. (2) backwards, leak
            gi = ring_i[b, r1, n]
            g_hid[b, 0, n] += gi * i[b, t, n]
            ring_i[b, r0, n] += hid[H_DECAY_SYN, n] * gi


@jit_noinline
def _matvec_quads(w_t, w_p, x, b0, b1, y):
    """``y[b, j] += sum_m w_t[m, j] * x[b, m]`` for the samples b = b0 .. b1-1.

    Each entry is one chain of fused multiply-adds, ``y = fma(w_t[m, j], x[b, m], y)``
    for m ascending: the order of ``_matvec_one``, so a sample gets the same bits in a
    quad or alone. The samples run four at a time, and the columns in the panels ``w_p``
    (``panels(w_t)``) as tiles whose 4 x 2 vectors of sums stay in registers over the
    whole sum (``fma_tile4``); panel by panel, each panel for every quad in turn, so
    that a panel (19 KiB for 128 neurons) is read from the first-level cache after the
    first quad, where the whole of ``w_p`` is not (76 KiB). The last panel, padded with
    zero columns, runs as a tile too when ``y`` has room for its columns (BPTT's
    ``g_s`` has): its columns past J are computed and never read. Else the columns
    past the whole panels run one entry at a time. The samples past the last quad run
    alone (``_matvec_one``).
    """
    M, J = w_t.shape
    P, _, L = w_p.shape
    if P * L > y.shape[1]:
        P = J // L
    b_end = b0 + (b1 - b0) // 4 * 4  # the samples of whole quads
    for p in range(P):
        for b in range(b0, b_end, 4):
            fma_tile4(w_p, x, y, b, p)
    for b in range(b0, b_end):
        for j in range(P * L, J):
            acc = y[b, j]
            for m in range(M):
                acc = fma(w_t[m, j], x[b, m], acc)
            y[b, j] = acc
    for b in range(b_end, b1):
        _matvec_one(w_t, x, b, y)


@jit_noinline
def _matvec_one(w_t, x, b, y):
    """``_matvec_quads`` for the single sample b, in the same order."""
    M, J = w_t.shape
    for m in range(M):
        xm = x[b, m]
        for j in range(J):
            y[b, j] = fma(w_t[m, j], xm, y[b, j])


@jit_noinline
def _input_weight_grad(grp, b0, b1, K, ev_ptr, ev_idx, ev_val, g_i, g_w_in, first, order):
    """(B12) for samples b0 .. b1-1: ``dL/dw_in[m] += x g_i[t + 1]``, into ``g_w_in[grp]``.

    Runs once the sweep is done, with ``g_i[b, t]`` (B, K+1, N) the adjoint of every
    hidden current (``_backward_group`` leaves it in the array that held the currents).
    ``g_w_in[grp]`` is zeroed, then each sample's events add their terms, samples
    ascending, so that every entry is the sum of its terms in the order (samples, then
    updates) ascending. A sample whose events are all 1 (spike input) runs input by
    input: its events sorted by input (a counting sort; ``first`` (tasks, n_in + 1)
    and ``order`` (tasks, the most events of a sample) are scratch), each row of
    ``g_w_in[grp]`` adds the sample's rows of ``g_i`` with the sums in registers
    (``fma_rows``, ``INPUT_VECTORS`` vectors of columns at a time) and is loaded
    and stored once per sample, not once per event. Another sample adds its events one
    by one, ``x`` times the row of ``g_i``: the same bits when x is 1.

    Run within the sweep, a window of states at a time, the rows of ``g_w_in[grp]``
    were evicted by the sweep's other arrays between windows, and (B12) took a fifth of
    BPTT; event by event after the sweep it still stored a row per event.
    """
    n_in, N = g_w_in.shape[1], g_w_in.shape[2]
    run = INPUT_VECTORS * 32 // g_w_in.itemsize  # columns per call of fma_rows
    n_full = N - N % run
    L = order.shape[1]
    for m in range(n_in):
        for n in range(N):
            g_w_in[grp, m, n] = 0
    for b in range(b0, b1):
        e0, e1 = ev_ptr[b * K], ev_ptr[(b + 1) * K]
        binary = True
        for e in range(e0, e1):
            binary &= ev_val[e] == 1
        if not binary:
            for t in range(K):
                for e in range(ev_ptr[b * K + t], ev_ptr[b * K + t + 1]):
                    m = ev_idx[e]
                    val = ev_val[e]
                    for n in range(N):
                        g_w_in[grp, m, n] += val * g_i[b, t + 1, n]
            continue
        # the sample's events by input, updates ascending: ``order`` holds the flat row
        # of g_i[b, t + 1]; after the fill, input m's run ends at ``first[grp, m]``
        # (indices cast to np.uintp: no test for a negative index; the prefix sum in a
        # register, not through the array: the sort took a third of (B12) before)
        for m in range(n_in + 1):
            first[grp, m] = 0
        for e in range(e0, e1):
            first[grp, np.uintp(ev_idx[e] + 1)] += 1
        total = 0
        for m in range(n_in + 1):
            total += first[grp, m]
            first[grp, m] = total
        for t in range(K):
            row = b * (K + 1) + t + 1
            for e in range(ev_ptr[b * K + t], ev_ptr[b * K + t + 1]):
                m = np.uintp(ev_idx[e])
                order[grp, np.uintp(first[grp, m])] = row
                first[grp, m] += 1
        lo = 0
        for m in range(n_in):
            hi = first[grp, m]
            if hi > lo:
                base = (grp * n_in + m) * N
                for n0 in range(0, n_full, run):
                    fma_rows(g_w_in, base + n0, g_i, n0, order, grp * L + lo, grp * L + hi,
                             None, 0, 0, INPUT_VECTORS)
                if n_full < N:  # shorter runs, then a masked vector, for the rest
                    _input_grad_runs_rest(g_w_in, base, g_i, order, grp * L + lo,
                                          grp * L + hi, n_full, N)
            lo = hi


@jit_noinline
def _spike_weight_grad(grp, b0, b1, t_lo, t_hi, t0, K, d, r_delay, seg_s, g_seg, bits,
                       g_w_spk, binary):
    """(B13) for the states t_lo .. t_hi-1 of samples b0 .. b1-1.

    ``dL/dw_spk[j] += s[b, t, j] g_spk[b, t]``, once the states are done. They lie in the
    segment that starts at state t0: ``seg_s[q, b]`` holds the spikes of state
    ``t0 + q``, and ``g_seg[q, b]`` the adjoint ``g_spk`` those spikes see (zero past
    N + C). First the bits of ``bits[grp, j]`` mark where neuron j spikes, bit
    ``(t - t_lo) GROUP + b - b0`` (one vectorised pass per state and sample; only
    states whose spikes drive an update); then, by chunks of ``SPIKE_GRAD_VECTORS``
    vectors of columns, each neuron adds the rows its bits mark, lowest first, to its
    row of ``g_w_spk[grp]`` (N, chunks x chunk columns) with the chunk's sums in
    registers (``fma_bits``), one fused multiply-add per spike, its coefficient the
    spike ``s[b, t, j]`` (an addition when the spikes are ``binary``, 0 or 1). A row of
    the gradient is so loaded and stored once per pass (``spike_grad_states``), not once
    per spike or pair of spikes; the rows of
    ``g_seg`` those states hold (20 KiB for 128 neurons) stay in the first-level cache
    for all the neurons. (Chunk by chunk over all the neurons instead, a gradient row
    is fetched in pieces a row apart: 10 % slower for 512 neurons in float64.)
    """
    N = seg_s.shape[2]
    B = seg_s.shape[1]
    M = g_w_spk.shape[2]
    width = spike_grad_columns(M, g_w_spk.itemsize)[0]
    n_ch = M // width
    for j in range(N):
        bits[grp, j] = 0
    for t in range(t_lo, t_hi):
        if not (t + d <= K or 1 <= t + r_delay <= K):
            continue  # the spikes of state t drive no update
        q = t - t0
        for b in range(b0, b1):
            k = (t - t_lo) * GROUP + b - b0
            for j in range(N):
                bits[grp, j] |= np.int64(seg_s[q, b, j] != 0) << k
    row0 = (t_lo - t0) * B + b0
    for j in range(N):  # a gradient row at a time, so that its chunks are one stream
        for ch in range(n_ch):
            if binary:
                fma_bits(g_w_spk, (grp * N + j) * M + ch * width, g_seg, ch * width,
                         bits[grp, j], row0, GROUP_SHIFT, B, None, 0, 0, SPIKE_GRAD_VECTORS)
            else:
                fma_bits(g_w_spk, (grp * N + j) * M + ch * width, g_seg, ch * width,
                         bits[grp, j], row0, GROUP_SHIFT, B, seg_s, j, N, SPIKE_GRAD_VECTORS)


def _fast_sigmoid_body(g_v_next, g_th, g_v, g_s, v, th, scale):
    """(B7) with the fast-sigmoid surrogate for one neuron: a ``rowwise`` body.

    The expressions of ``surrogate_scalar`` (code 0) and of ``_surrogate_step``.
    """
    d = scale * abs(v - th) + 1.0
    dsur = 1.0 / (d * d)
    return g_v + dsur * g_s, g_th - dsur * g_s


_fast_sigmoid_step = rowwise(_fast_sigmoid_body, 2)


@jit_noinline
def _surrogate_step(b0, b1, q, hid, flags, scale, seg_v, g_v, g_s, g_v_next, g_hid):
    """(B7) for the samples b0 .. b1-1: the adjoint of v[t] (state t in row q of ``seg_v``).

    ``g_v_next[b] = g_v[b] + sigma'(v[t] - threshold) g_s[b]``; the threshold's gradient
    receives the same term with the opposite sign.
    """
    N = seg_v.shape[2]
    surr = flags[F_SURR]
    if surr == SURR_FAST_SIGMOID:  # the paper's surrogate: one pass per sample
        S = seg_v.shape[1]
        for b in range(b0, b1):
            _fast_sigmoid_step(N, (g_v_next, g_hid, g_v, g_s, seg_v, hid),
                               (b * N, (b * 5 + 2) * N, b * N, b * g_s.shape[1],
                                (b * S + q) * N, H_THRESHOLD * N), (scale,))
        return
    for b in range(b0, b1):
        for n in range(N):
            dsur = surrogate_scalar(surr, seg_v[b, q, n] - hid[H_THRESHOLD, n], scale)
            g_v_next[b, n] = g_v[b, n] + dsur * g_s[b, n]
            g_hid[b, 2, n] -= dsur * g_s[b, n]


@jit_noinline
def _backward_group(grp, b0, b1, w_spk_t, w_spk_p, hid, out, flags, scale, seg, ev_ptr, ev_idx,
                    ev_val, i, i_out, v_out, ckpt, g_logits, k_max, g_seed, g_hid, g_out,
                    g_w_in, g_w_spk, ring_i, g_io, seg_v, seg_s, v_row, g_spk, g_v, g_v_next,
                    g_s, g_vo, bits, first, order):
    """Eq. (B3)-(B13) for the samples b0 .. b1-1 in lockstep, state K down to 0.

    Per sample: ``g_hid`` (B, 5, N), ``g_out`` (B, 2, C). Per task ``grp``: the weight
    gradients ``g_w_in[grp]`` (n_in, N) and ``g_w_spk[grp]`` (N, chunks x chunk columns,
    the first N + C used; see ``_spike_weight_grad``). ``i`` (B, K+1, N), the currents,
    is overwritten: ``i[b, t]`` becomes ``g_i[t]`` for t = 1 .. K once the sweep is past
    its last use, and (B12) runs on it after the sweep. Scratch:
    ``ring_i`` (B, d + 2, N) (the g_i being summed, states t .. t + d + 1),
    ``g_io`` (K + 1, B, C) (g_i_out, from ``_readout_backward``; state-major, so that the
    sweep reads the task's rows of a state as one descending stream), ``seg_v`` (B, seg, N),
    ``seg_s`` (seg, B, N), ``v_row`` (B, N) (for ``_recompute_segment``), ``g_spk``
    (seg, B, chunks x chunk columns of (B13); zero past N + C: the adjoint the spikes of
    each state of the segment see),
    ``g_v``, ``g_v_next``, ``g_s`` (B, N) (the adjoints of v[t] through Eq. (4)-(5), of
    v[t + 1], and of s[t]), ``g_vo`` (B, C); ``bits`` (tasks, N) int64 for (B13);
    ``first``, ``order`` for (B12) (``_input_weight_grad``).
    """
    K = i.shape[1] - 1
    N = i.shape[2]
    C = i_out.shape[2]
    d = flags[F_REC_DELAY]
    r_delay = flags[F_OUT_DELAY]
    R = ring_i.shape[1]
    n_grad = spike_grad_states(g_spk.shape[2] * g_spk.itemsize)  # states per pass of (B13)
    for j in range(N):
        for m in range(g_w_spk.shape[2]):
            g_w_spk[grp, j, m] = 0
    for b in range(b0, b1):
        for n in range(N):
            g_v[b, n] = 0
            ring_i[b, K % R, n] = 0
        _readout_backward(b, out, flags, i_out, v_out, g_logits, k_max, g_out, g_vo, g_io)
    seg_c = -1
    for t in range(K, -1, -1):
        c = t // seg
        if c != seg_c:  # v and s of this segment's states
            for b in range(b0, b1):
                _recompute_segment(b, c, seg, i, ckpt, hid, flags, scale, seg_v, seg_s,
                                   v_row)
            seg_c = c
        q = t - c * seg
        for b in range(b0, b1):  # g_s[t], seeded by the regularisers (B2)
            if t < K:
                for n in range(N):
                    g_s[b, n] = g_seed[b, n]
            else:
                for n in range(N):
                    g_s[b, n] = 0
        if t < K:
            _hidden_step(b0, b1, t, q, hid, flags, i, seg_v, seg_s, ring_i, g_v, g_v_next,
                         g_s, g_hid)
        # the adjoint the spikes of state t see: g_spk = [g_i[t + d] | g_i_out[t + r]]
        # (the conditions and row indices out of the loops, so that the copies vectorise)
        rec = t + d <= K
        ro_ok = 1 <= t + r_delay <= K
        r_rec = (t + d) % R
        t_out = t + r_delay if ro_ok else 0
        # g_spk[q] (B, .) is the state's, kept for (B13) at the end of the segment
        g_q = g_spk[q]
        for b in range(b0, b1):
            if rec:
                for n in range(N):
                    g_q[b, n] = ring_i[b, r_rec, n]
            else:
                for n in range(N):
                    g_q[b, n] = 0
            if ro_ok:
                for cc in range(C):
                    g_q[b, np.uintp(N + cc)] = g_io[t_out, b, cc]
            else:
                for cc in range(C):
                    g_q[b, np.uintp(N + cc)] = 0
        if rec or ro_ok:
            # (B6) + (B11): g_s[t] += w_spk g_spk, four samples at a time
            _matvec_quads(w_spk_t, w_spk_p, g_q, b0, b1, g_s)
        if q % n_grad == 0:  # (B13) for the states t .. of the segment, done
            t_hi = min(t + n_grad, (c + 1) * seg, K + 1)
            _spike_weight_grad(grp, b0, b1, t, t_hi, c * seg, K, d, r_delay, seg_s, g_spk,
                               bits, g_w_spk, flags[F_SPIKE] != SPIKE_SIGMOID)
        # (B7) at state t: every use of s[t] has sent its adjoint
        _surrogate_step(b0, b1, q, hid, flags, scale, seg_v, g_v, g_s, g_v_next, g_hid)
        if t < K:  # g_i[t + 1] is complete and i[t + 1] read for the last time
            r1 = (t + 1) % R
            for b in range(b0, b1):
                for n in range(N):
                    i[b, t + 1, n] = ring_i[b, r1, n]
    _input_weight_grad(grp, b0, b1, K, ev_ptr, ev_idx, ev_val, i, g_w_in, first, order)


@jit
def _add_up(parts, j, lo, hi, out, r):
    """``out[r, :hi - lo] = sum over k of parts[k, j, lo:hi]``, k ascending.

    Returns 1 if a sum is not finite (``v - v != 0`` holds for inf and NaN only), else 0.
    """
    n = hi - lo
    for c in range(n):
        out[r, c] = parts[0, j, np.uintp(lo + c)]
    for k in range(1, parts.shape[0]):
        for c in range(n):
            out[r, c] += parts[k, j, np.uintp(lo + c)]
    bad = False  # a flag, not a count: the loop then runs on whole vectors of floats
    for c in range(n):
        bad |= out[r, c] - out[r, c] != 0
    return np.int64(bad)


def task_size(batch: int) -> int:
    """Return the samples per task of BPTT for a batch of ``batch`` samples.

    ``GROUP``, or half of it for a batch of at most ``GROUP`` samples, so that such a
    batch still makes two tasks (for two threads). A function of the batch size only:
    the tasks' weight gradients are added in task order, so the thread count must not
    decide them (bitwise the same on any).
    """
    return GROUP if batch > GROUP else GROUP // 2


@pjit
def backward_kernel(w_spk_t, w_spk_p, hid, out, flags, scale, seg, task, ev_ptr, ev_idx,
                    ev_val, i, i_out, v_out, ckpt, g_logits, k_max, g_seed, g_hid, g_out,
                    g_w_in, g_w_spk, ring_i, g_io, seg_v, seg_s, v_row, g_spk, g_v, g_v_next, g_s,
                    g_vo, bits, first, order, sum_w_in, sum_w_rec, sum_w_out, sum_hid,
                    sum_out):
    """Eq. (B3)-(B13) for every sample: one task per ``task`` samples, in parallel.

    ``task`` from ``task_size``: at most ``GROUP``. See ``_backward_group``. Then the
    weight gradients of the tasks are added in task order (in parallel over rows) into
    ``sum_w_in`` (n_in, N), ``sum_w_rec`` (N, N) and ``sum_w_out`` (N, C), and the
    per-neuron gradients of the samples in sample order into ``sum_hid`` (5, N) and
    ``sum_out`` (2, C). Returns, for each of the five sums, the number of its rows with
    a non-finite entry.
    """
    B = i.shape[0]
    n_tasks = (B + task - 1) // task
    for grp in prange(n_tasks):
        b0 = grp * task
        _backward_group(grp, b0, min(b0 + task, B), w_spk_t, w_spk_p, hid, out, flags, scale, seg,
                        ev_ptr, ev_idx, ev_val, i, i_out, v_out, ckpt, g_logits, k_max,
                        g_seed, g_hid, g_out, g_w_in, g_w_spk, ring_i, g_io, seg_v,
                        seg_s, v_row, g_spk, g_v, g_v_next, g_s, g_vo, bits, first,
                        order)
    N = sum_w_rec.shape[0]
    C = sum_w_out.shape[1]
    bad_in = 0
    for m in prange(sum_w_in.shape[0]):
        bad_in += _add_up(g_w_in, m, 0, N, sum_w_in, m)
    bad_rec = 0
    bad_out = 0
    for j in prange(N):
        bad_rec += _add_up(g_w_spk, j, 0, N, sum_w_rec, j)
        bad_out += _add_up(g_w_spk, j, N, N + C, sum_w_out, j)
    bad_hid = 0
    for r in range(sum_hid.shape[0]):
        bad_hid += _add_up(g_hid, r, 0, N, sum_hid, r)
    bad_ro = 0
    for r in range(sum_out.shape[0]):
        bad_ro += _add_up(g_out, r, 0, C, sum_out, r)
    return bad_in, bad_rec, bad_out, bad_hid, bad_ro
