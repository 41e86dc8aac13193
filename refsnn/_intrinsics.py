"""Bit-level and vector helpers for the kernels: LLVM intrinsics, each with a Python twin.

``nonzero_mask32(x, start)``, ``nonbinary_mask32(x, start)`` and
``nonfinite_mask32(x, start)`` test the 32 elements ``x.flat[start : start + 32]`` of a
C-contiguous float array at once (one vector load, one comparison, one move of the 32
comparison bits into an integer) and return the results as the bits of an int64: bit k
is set when element ``start + k`` is nonzero, is neither 0 nor 1, or is inf or NaN (NaN
is nonzero and neither 0 nor 1). ``popcount`` counts set bits. The input scan
(``refsnn.kernels.scan_input``) so reads a mostly-zero input 32 entries per test, and
the writing of input events (``refsnn.kernels._fill_events``) writes only the set bits
of its masks (``store_set_bits``, below).

``fma(a, b, c)`` is ``a * b + c`` rounded once (IEEE fused multiply-add), and
``fma_tile4(w_p, x, y, b, p)`` applies it to a tile of the dense adjoint product
(``refsnn.kernels._matvec_quads``). ``w_p`` (P, M, L) holds the columns of a matrix
``w_t`` (M, J) in panels of ``L = 64 // itemsize`` columns (16 in float32, 8 in
float64), ``w_p[p, m, l] = w_t[m, p L + l]``, so that a tile reads its columns as one
stream; for the four rows ``b .. b+3`` of ``y`` and the columns of panel ``p``,
``y[b + a, p L + l] = fma(w_p[p, m, l], x[b + a, m], y[b + a, p L + l])`` for m
ascending over all M. The tile's 4 x 2 vectors of sums stay in registers over the
whole sum, so the loop loads two vectors of ``w_p`` and four numbers of ``x`` per eight
vector multiply-adds and stores nothing; each entry is still one chain of ``fma`` in a
fixed order, so the tile gives the same bits as ``fma`` entry by entry, on any machine.

``fma_rows(dst, d0, src, s0, at, e0, e1, coef, c0, cs, nvec)`` adds listed rows of
``src`` (any C-contiguous array, rows of its last axis, W entries) to a run of ``nvec``
32-byte vectors of ``dst`` (any C-contiguous array, from flat index ``d0``), each row
scaled by its entry of ``coef``: for k = e0 .. e1-1 in turn, with ``r = at.flat[k]``,
``dst.flat[d0 + l] = fma(coef.flat[c0 + r cs], src.flat[r W + s0 + l],
dst.flat[d0 + l])`` for the run's columns l; the run's sums stay in
registers throughout (the delivery of spikes, ``refsnn.kernels._deliver_spikes``).
``nvec`` is a literal from 1 to 20. With ``coef`` None every coefficient is 1 and none is
read: the rows are added, ``dst.flat[d0 + l] = src.flat[r W + s0 + l] + dst.flat[d0 + l]``,
the same bits as ``fma(1, w, acc)`` (the binary spikes of a hard threshold).

``add_events(dst, d0, src, s0, at, vals, e0, e1, nvec)`` adds the input events
k = e0 .. e1-1 (row ``at.flat[k]`` of ``src``, value ``vals.flat[k]``) to the run of
``dst`` as Eq. (2) defines the sum: four events at a time,
``acc += (v_a w_a + v_b w_b) + (v_c w_c + v_d w_d)`` (each product and sum rounded, no
fma), then the rest one by one, the run's sums in registers; with ``vals`` None every
value is 1 and the rows are added unmultiplied (1 w = w: the same bits).

``add_events_few(dst, d0, src, s0, at, vals, e0, e1, ncols)`` and
``fma_rows_few(dst, d0, src, s0, at, e0, e1, ncols)`` are ``add_events`` and
``fma_rows`` (without coefficients) for the first ``ncols`` columns of one 32-byte
vector, ``ncols`` at run time and at most a vector's lanes: masked loads and stores,
which read and write nothing past those columns, so that the last columns of a row
need not be added one at a time (the same bits: each lane is its own chain).

``prefetch(x, start)`` asks the memory system for the cache line that holds
``x.flat[start]`` (LLVM's ``llvm.prefetch``: a read, kept in every cache level) and
changes nothing else; ``start`` may lie past the end of ``x``, as a prefetch never
faults (its address is computed without a bounds test). The input scan asks for the
line a few kilobytes ahead of the one it reads, which hides part of the latency of an
input that is not in the caches (a new batch is not).

``rowwise(body, n_out, n_flags=0)`` makes an elementwise pass over rows from a Python
function ``body`` of the entries of a column (arithmetic operators, ``abs``, ``>``,
``>=`` and ``where``): ``f(n, arrays, starts, scalars)`` reads the rows of ``arrays``
at ``starts`` column by column, ``VECTOR_BYTES`` at a time and the last columns as
one masked vector, and writes the body's first ``n_out`` results to the first rows
(``_rowwise`` says how). The body runs on LLVM vectors (``_Lanes``: one IEEE operation
per operator, nothing contracted into an fma) when the pass is compiled and on NumPy
rows in the twin: the same bits. The kernels write each elementwise step of the
paper's conventions so (``refsnn.kernels``, "Elementwise steps").

``store_set_bits(dst, at, mask, base)`` writes ``base + k`` for each set bit k of the
low 32 bits of ``mask``, lowest first, to ``dst.flat[at:]`` (an int32 or int64 array)
and returns their number; nothing else is written. With AVX-512 it is two or four
compressing stores (``vpcompressd``), with no branch per bit; else a store per bit.

The vector runs are computed in vectors of ``VECTOR_BYTES``: 64 bytes where the
machine has AVX-512, else 32 (a run's ``nvec`` still counts 32-byte vectors; an odd
one ends in a 32-byte vector). Every lane is its own chain of operations, so the
results are the same bits either way.

``fma_bits(dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs, nvec)`` is
``fma_rows`` with the rows given by the set bits of the integer ``mask``, lowest first:
bit k stands for row ``row0 + (k >> shift) stride + (k & (2**shift - 1))`` of ``src``
(a block of rows, ``2**shift`` per step of ``stride``; the spikes of a window of
states in ``refsnn.kernels._spike_weight_grad``), so that no list of rows is written.

The caller guarantees ``start + 32 <= x.size`` (masks) and ``b + 4 <= y.shape[0]``,
``p < P``, ``x.shape[1] >= M`` and ``(p + 1) L <= y.shape[1]`` (tile), the run, the
listed rows and coefficients within their arrays and ``nvec`` vectors within a row of
``src`` (rows), with C-contiguous arrays of one float dtype. With
``NUMBA_DISABLE_JIT=1`` the Python twins run instead; the twin of ``fma`` is exact
(rational arithmetic, rounded once to the dtype of ``a``).
"""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _py_popcount(v):
    return bin(int(v) & 0xFFFFFFFFFFFFFFFF).count("1")


def _block_load(context, builder, aryty, ary_value, start):
    """Load the vector ``<32 x dtype>`` at flat element ``start`` of the array (unaligned)."""
    ary = context.make_array(aryty)(context, builder, ary_value)
    vecty = ir.VectorType(context.get_data_type(aryty.dtype), 32)
    ptr = builder.gep(ary.data, [start])
    return vecty, builder.load(builder.bitcast(ptr, vecty.as_pointer()),
                               align=aryty.dtype.bitwidth // 8)


def _bits_to_int64(builder, cmp):
    return builder.zext(builder.bitcast(cmp, ir.IntType(32)), ir.IntType(64))


def _is_float_c_array(arr):
    return (isinstance(arr, types.Array) and arr.layout == "C"
            and isinstance(arr.dtype, types.Float))


def _mask32(py_test, ir_test):
    """Return the Python twin and the intrinsic of one 32-element test.

    ``py_test(block)`` gives the test's booleans for a NumPy block of 32 elements;
    ``ir_test(builder, vecty, v)`` builds the same test on the LLVM vector ``v``.
    """

    def python_twin(x, start):
        block = x.reshape(-1)[start:start + 32]
        return int(np.sum(py_test(block).astype(np.int64) << np.arange(32)))

    @intrinsic
    def vector(typingctx, x, start):
        if not _is_float_c_array(x):
            return None

        def codegen(context, builder, sig, args):
            vecty, v = _block_load(context, builder, sig.args[0], args[0], args[1])
            return _bits_to_int64(builder, ir_test(builder, vecty, v))

        return types.int64(x, types.intp), codegen

    return python_twin, vector


def _ir_nonzero(builder, vecty, v):
    return builder.fcmp_unordered("!=", v, ir.Constant(vecty, None))


def _ir_nonbinary(builder, vecty, v):
    one = ir.Constant(vecty, [ir.Constant(vecty.element, 1.0)] * 32)
    return builder.and_(_ir_nonzero(builder, vecty, v), builder.fcmp_unordered("!=", v, one))


def _ir_nonfinite(builder, vecty, v):
    z = builder.fmul(v, ir.Constant(vecty, None))  # NaN exactly for inf and NaN
    return builder.fcmp_unordered("uno", z, z)


_py_nonzero_mask32, _nonzero_mask32 = _mask32(lambda block: block != 0, _ir_nonzero)
_py_nonbinary_mask32, _nonbinary_mask32 = _mask32(
    lambda block: (block != 0) & (block != 1), _ir_nonbinary)
_py_nonfinite_mask32, _nonfinite_mask32 = _mask32(
    lambda block: ~np.isfinite(block), _ir_nonfinite)


@intrinsic
def _popcount(typingctx, v):
    if not isinstance(v, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        f = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(f, [context.cast(builder, args[0], sig.args[0], types.int64)])

    return types.int64(v), codegen


def _py_add_events(dst, d0, src, s0, at, vals, e0, e1, nvec):
    _py_add_events_few(dst, d0, src, s0, at, vals, e0, e1, nvec * 32 // dst.itemsize)


def _py_add_events_few(dst, d0, src, s0, at, vals, e0, e1, ncols):
    flat, at = dst.reshape(-1), at.reshape(-1)
    rows = src.reshape(-1, src.shape[-1])
    one = dst.dtype.type(1)

    def term(k, col):  # vals[k] * src[at[k], s0 + col], rounded
        v = one if vals is None else vals.reshape(-1)[k]
        return v * rows[at[k], s0 + col]

    for col in range(ncols):
        acc, e = flat[d0 + col], e0
        while e + 4 <= e1:
            acc += (term(e, col) + term(e + 1, col)) + (term(e + 2, col) + term(e + 3, col))
            e += 4
        while e < e1:
            acc += term(e, col)
            e += 1
        flat[d0 + col] = acc


def _py_store_set_bits(dst, at, mask, base):
    flat, mask, c = dst.reshape(-1), int(mask) & 0xFFFFFFFF, 0
    for k in range(32):
        if mask >> k & 1:
            flat[at + c] = base + k
            c += 1
    return c


def _py_fma(a, b, c):
    """Return ``a * b + c`` rounded once to the dtype of ``a`` (to nearest, ties to even)."""
    dt = np.asarray(a).dtype
    a, b, c = float(a), float(b), float(c)
    if not (np.isfinite(a) and np.isfinite(b)):
        with np.errstate(all="ignore"):
            return dt.type(a * b + c)  # an infinite or NaN product, as fma gives it
    if not np.isfinite(c):
        return dt.type(c)  # the exact product is finite
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:  # the sign of zero: of a * b + c when both are zeros, else +0
        return dt.type(a * b + c) if a * b == 0 else dt.type(0.0)
    try:
        near = float(exact)  # correctly rounded to float64
    except OverflowError:  # beyond float64's largest after rounding
        return dt.type(np.inf if exact > 0 else -np.inf)
    if dt == np.float64:
        return np.float64(near)
    with np.errstate(over="ignore"):
        r = dt.type(near)
    if not np.isfinite(r) or Fraction(float(r)) == exact:
        return r
    # float32: rounding the float64 again may go the wrong way at a midpoint; take the
    # nearer of the two float32 neighbours of the exact value (ties: even significand)
    lo = r if Fraction(float(r)) < exact else np.nextafter(r, dt.type(-np.inf))
    hi = np.nextafter(lo, dt.type(np.inf))
    d_lo, d_hi = exact - Fraction(float(lo)), Fraction(float(hi)) - exact
    if d_lo != d_hi:
        return lo if d_lo < d_hi else hi
    return lo if int(np.asarray(lo).view(np.uint32)) % 2 == 0 else hi


def _py_fma_tile4(w_p, x, y, b, p):
    _, M, L = w_p.shape
    for col in range(L):
        for a in range(4):
            acc = y[b + a, p * L + col]
            for m in range(M):
                acc = _py_fma(w_p[p, m, col], x[b + a, m], acc)
            y[b + a, p * L + col] = acc


def _py_fma_rows(dst, d0, src, s0, at, e0, e1, coef, c0, cs, nvec):
    _py_fma_rows_cols(dst, d0, src, s0, at, e0, e1, coef, c0, cs, nvec * 32 // dst.itemsize)


def _py_fma_rows_few(dst, d0, src, s0, at, e0, e1, ncols):
    _py_fma_rows_cols(dst, d0, src, s0, at, e0, e1, None, 0, 0, ncols)


def _py_fma_rows_cols(dst, d0, src, s0, at, e0, e1, coef, c0, cs, ncols):
    flat, at = dst.reshape(-1), at.reshape(-1)
    rows = src.reshape(-1, src.shape[-1])
    for col in range(ncols):
        acc = flat[d0 + col]
        for k in range(e0, e1):
            if coef is None:  # a unit coefficient: fma(1, w, acc) is the rounded sum
                acc = rows[at[k], s0 + col] + acc
            else:
                acc = _py_fma(coef.reshape(-1)[c0 + at[k] * cs], rows[at[k], s0 + col], acc)
        flat[d0 + col] = acc


def _py_fma_bits(dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs, nvec):
    mask = int(mask) & 0xFFFFFFFFFFFFFFFF
    rows = [row0 + (k >> shift) * stride + (k & ((1 << shift) - 1))
            for k in range(64) if mask >> k & 1]
    _py_fma_rows(dst, d0, src, s0, np.array(rows, np.int64), 0, len(rows), coef, c0, cs, nvec)


def _host_vector_bytes() -> int:
    """Bytes of the widest float vector the kernels are compiled for: 64 with AVX-512, else 32.

    The features are those Numba compiles for (``NUMBA_CPU_FEATURES``, else the host's).
    """
    features = numba.config.CPU_FEATURES
    if features is None:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        features = llvm.get_host_cpu_features().flatten()
    return 64 if "+avx512f" in features.split(",") else 32


#: bytes of the vectors the intrinsics compute in: 64 (512-bit) where the machine has
#: AVX-512, else 32 (256-bit). The results do not depend on it (every lane is its own
#: chain of operations); the speed does: a 512-bit vector does twice the work per load
#: and per multiply-add.
VECTOR_BYTES = _host_vector_bytes()


def _splat(builder, scalar, vecty):
    """Return a vector of type ``vecty`` with every lane ``scalar``."""
    undef = ir.Constant(vecty, ir.Undefined)
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vecty.count), [0] * vecty.count)
    first = builder.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, undef, zeros)


class _Vectors:
    """IR for float vectors of ``dtype``: loads, broadcasts, fma, sums in registers.

    A run of ``n`` 32-byte vectors (the unit of ``nvec``) is computed in vectors of
    ``VECTOR_BYTES``, the last one narrower where ``n`` is odd (``run``). The sums are
    ``alloca`` slots, which LLVM's mem2reg keeps in registers.
    """

    def __init__(self, context, builder, dtype):
        self.builder = builder
        self.intp = context.get_value_type(types.intp)
        self.align = dtype.bitwidth // 8
        self.unit = 32 // self.align  # lanes of a 32-byte vector
        self.fty = context.get_data_type(dtype)

    def const(self, k):
        return ir.Constant(self.intp, k)

    def run(self, n_units):
        """Return ``(offset, vector type)`` covering ``n_units`` 32-byte vectors."""
        per = VECTOR_BYTES // 32
        parts, h = [], 0
        while h < n_units:
            units = min(per, n_units - h)
            parts.append((h * self.unit, ir.VectorType(self.fty, units * self.unit)))
            h += units
        return parts

    def _pointer(self, data, idx, vecty):
        return self.builder.bitcast(self.builder.gep(data, [idx]), vecty.as_pointer())

    def _load_at(self, ptr, vecty):
        return self.builder.load(ptr, align=self.align)

    def _store_at(self, value, ptr):
        self.builder.store(value, ptr, align=self.align)

    def load(self, data, idx, vecty):
        """Load the vector at flat element ``idx`` of ``data`` (unaligned)."""
        return self._load_at(self._pointer(data, idx, vecty), vecty)

    def splat(self, scalar, vecty):
        """Return a vector with every lane ``scalar``."""
        return _splat(self.builder, scalar, vecty)

    def sums(self, data, base, run):
        """Return slots ``(offset, type, slot)`` holding the vectors of ``run`` at ``base``."""
        slots = []
        for off, vecty in run:
            slot = cgutils.alloca_once(self.builder, vecty)
            self.builder.store(self.load(data, self.builder.add(base, self.const(off)), vecty),
                               slot)
            slots.append((off, vecty, slot))
        return slots

    def fma(self, slot, a, b):
        """``slot = fma(a, b, slot)``."""
        vecty = a.type
        fn = cgutils.get_or_insert_function(
            self.builder.module, ir.FunctionType(vecty, [vecty] * 3),
            _llvm_name("fma", self.fty, vecty.count))
        self.builder.store(self.builder.call(fn, [a, b, self.builder.load(slot)]), slot)

    def add_row(self, slots, scale, data, start):
        """Add ``scale * data[start + offset ...]`` (one fma) to each slot.

        With ``scale`` None: ``slot += data[start + offset ...]``.
        """
        for off, vecty, slot in slots:
            v = self.load(data, self.builder.add(start, self.const(off)), vecty)
            if scale is None:
                self.builder.store(self.builder.fadd(self.builder.load(slot), v), slot)
            else:
                self.fma(slot, self.splat(scale, vecty), v)

    def store(self, data, base, slots):
        """Store the slots back to ``data`` at ``base``."""
        for off, vecty, slot in slots:
            self._store_at(self.builder.load(slot),
                           self._pointer(data, self.builder.add(base, self.const(off)), vecty))


class _MaskedVectors(_Vectors):
    """``_Vectors`` whose run is the first ``ncols`` lanes of one 32-byte vector.

    (Of one vector of ``lanes`` lanes, when given: ``rowwise``.) ``ncols`` is a runtime
    count, at most a vector's lanes. Only those lanes are loaded
    and stored (``llvm.masked.load`` / ``store``), so nothing past them is read or
    written; they are computed as in a full vector, so each gives the same bits.
    """

    def __init__(self, context, builder, dtype, ncols, lanes=None):
        super().__init__(context, builder, dtype)
        lanes = lanes or self.unit  # a 32-byte vector unless told
        self.vecty = ir.VectorType(self.fty, lanes)
        iota = ir.Constant(ir.VectorType(self.intp, lanes), list(range(lanes)))
        self.mask = builder.icmp_unsigned("<", iota, _splat(builder, ncols, iota.type))

    def run(self, n_units):
        return [(0, self.vecty)]

    def _masked(self, op, vecty):
        ptrty = vecty.as_pointer()
        i32, masky = ir.IntType(32), self.mask.type
        args = ([ptrty, i32, masky, vecty] if op == "load" else [vecty, ptrty, i32, masky])
        ret = vecty if op == "load" else ir.VoidType()
        name = _llvm_name(f"masked.{op}", self.fty, vecty.count) + ".p0"
        return cgutils.get_or_insert_function(self.builder.module,
                                              ir.FunctionType(ret, args), name)

    def _load_at(self, ptr, vecty):
        return self.builder.call(self._masked("load", vecty),
                                 [ptr, ir.Constant(ir.IntType(32), self.align), self.mask,
                                  ir.Constant(vecty, None)])

    def _store_at(self, value, ptr):
        self.builder.call(self._masked("store", value.type),
                          [value, ptr, ir.Constant(ir.IntType(32), self.align), self.mask])


def _llvm_name(op, float_type, lanes=0):
    """Name LLVM's intrinsic ``op`` for a float or a vector of ``lanes`` floats.

    ``op`` is ``fma``, ``fabs``, ``masked.load``, ...; ``float_type`` the LLVM float
    type; ``lanes=0`` a scalar.
    """
    bits = "f64" if isinstance(float_type, ir.DoubleType) else "f32"
    return f"llvm.{op}.v{lanes}{bits}" if lanes else f"llvm.{op}.{bits}"


_FMA_TYPES = (types.float32, types.float64)


@intrinsic
def _fma(typingctx, a, b, c):
    if not (a in _FMA_TYPES and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        f = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t] * 3),
                                           _llvm_name("fma", t))
        return builder.call(f, list(args))

    return a(a, b, c), codegen


@intrinsic
def _fma_tile4(typingctx, w_p, x, y, b, p):
    if not (_is_float_c_array(w_p) and w_p.ndim == 3 and w_p.dtype in _FMA_TYPES
            and all(_is_float_c_array(v) and v.ndim == 2 and v.dtype == w_p.dtype
                    for v in (x, y))
            and isinstance(b, types.Integer) and isinstance(p, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        w, xa, ya = (context.make_array(t)(context, builder, v)
                     for t, v in zip(sig.args[:3], args[:3], strict=True))
        vec = _Vectors(context, builder, sig.args[0].dtype)
        b_ = context.cast(builder, args[3], sig.args[3], types.intp)
        p_ = context.cast(builder, args[4], sig.args[4], types.intp)
        _, M, L = cgutils.unpack_tuple(builder, w.shape, 3)  # PANEL_BYTES // itemsize
        x_cols = cgutils.unpack_tuple(builder, xa.shape, 2)[1]
        y_cols = cgutils.unpack_tuple(builder, ya.shape, 2)[1]
        j0_ = builder.mul(p_, L)  # the panel's first column in y
        w_base = builder.mul(builder.mul(p_, M), L)
        rows = [builder.add(b_, vec.const(a)) for a in range(4)]
        run = vec.run(2 * VECTOR_BYTES // 32)  # a panel's row: two vectors
        # y[b + a, j0 ...] for a = 0..3: slots 2 a and 2 a + 1
        acc = [slot for row in rows
               for slot in vec.sums(ya.data, builder.add(builder.mul(row, y_cols), j0_), run)]
        x_rows = [builder.mul(row, x_cols) for row in rows]
        with cgutils.for_range(builder, M) as loop:
            m = loop.index
            w_row = builder.add(w_base, builder.mul(m, L))
            wv = [vec.load(w.data, builder.add(w_row, vec.const(off)), vecty)
                  for off, vecty in run]
            for a in range(4):
                xm = builder.load(builder.gep(xa.data, [builder.add(x_rows[a], m)]))
                for h, (_, vecty) in enumerate(run):
                    vec.fma(acc[2 * a + h][2], wv[h], vec.splat(xm, vecty))
        for a, row in enumerate(rows):
            vec.store(ya.data, builder.add(builder.mul(row, y_cols), j0_), acc[2 * a:2 * a + 2])
        return context.get_dummy_value()

    return types.none(w_p, x, y, b, p), codegen


def _rows_typed(dst, src, coef, nvec, integers):
    """Whether ``fma_rows`` / ``fma_bits`` accept these argument types."""
    return (isinstance(nvec, types.IntegerLiteral) and 1 <= nvec.literal_value <= 20
            and _is_float_c_array(dst) and dst.dtype in _FMA_TYPES
            and all(_is_float_c_array(a) and a.dtype == dst.dtype
                    for a in ((src, coef) if coef != types.none else (src,)))
            and all(isinstance(v, types.Integer) for v in integers))


def _listed_rows_typed(dst, src, coef, nvec, at, integers):
    """``_rows_typed``, and ``at`` a C-contiguous integer array (``fma_rows``, ``add_events``)."""
    return (_rows_typed(dst, src, coef, nvec, integers) and isinstance(at, types.Array)
            and at.layout == "C" and isinstance(at.dtype, types.Integer))


def _coefficient(context, builder, coef_ty, coef):
    """Return a function of a flat index giving the coefficient there; None for ``None``."""
    if coef_ty == types.none:
        return lambda idx: None
    data = context.make_array(coef_ty)(context, builder, coef).data
    return lambda idx: builder.load(builder.gep(data, [idx]))


def _row_start(builder, src_a, src_ty, r, s0):
    """Flat index of column ``s0`` of row ``r`` of ``src`` (rows of its last axis)."""
    W = cgutils.unpack_tuple(builder, src_a.shape, src_ty.ndim)[-1]
    return builder.add(builder.mul(r, W), s0)


@intrinsic
def _fma_rows(typingctx, dst, d0, src, s0, at, e0, e1, coef, c0, cs, nvec):
    if not _listed_rows_typed(dst, src, coef, nvec, at, (d0, s0, e0, e1, c0, cs)):
        return None
    n_vec = nvec.literal_value

    def codegen(context, builder, sig, args):
        vec = _Vectors(context, builder, sig.args[0].dtype)
        _fma_rows_ir(context, builder, sig, args, vec, n_vec)
        return context.get_dummy_value()

    return types.none(dst, d0, src, s0, at, e0, e1, coef, c0, cs, nvec), codegen


def _fma_rows_ir(context, builder, sig, args, vec, n_vec):
    """Build the body of ``fma_rows`` (its arguments, in its order) on the vectors ``vec``."""
    dst_a, src_a, at_a = (context.make_array(sig.args[i])(context, builder, args[i])
                          for i in (0, 2, 4))
    coef_r = _coefficient(context, builder, sig.args[7], args[7])
    d0_, s0_, e0_, e1_, c0_, cs_ = (context.cast(builder, args[i], sig.args[i], types.intp)
                                    for i in (1, 3, 5, 6, 8, 9))
    acc = vec.sums(dst_a.data, d0_, vec.run(n_vec))
    with cgutils.for_range(builder, builder.sub(e1_, e0_)) as loop:
        k = builder.add(e0_, loop.index)
        r = context.cast(builder, builder.load(builder.gep(at_a.data, [k])),
                         sig.args[4].dtype, types.intp)
        vec.add_row(acc, coef_r(builder.add(c0_, builder.mul(r, cs_))), src_a.data,
                    _row_start(builder, src_a, sig.args[2], r, s0_))
    vec.store(dst_a.data, d0_, acc)


@intrinsic
def _fma_bits(typingctx, dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs, nvec):
    if not _rows_typed(dst, src, coef, nvec, (d0, s0, mask, row0, shift, stride, c0, cs)):
        return None
    n_vec = nvec.literal_value

    def codegen(context, builder, sig, args):
        dst_a, src_a = (context.make_array(sig.args[i])(context, builder, args[i])
                        for i in (0, 2))
        coef_r = _coefficient(context, builder, sig.args[8], args[8])
        d0_, s0_, m_, row0_, sh_, st_, c0_, cs_ = (
            context.cast(builder, args[i], sig.args[i], types.intp)
            for i in (1, 3, 4, 5, 6, 7, 9, 10))
        vec = _Vectors(context, builder, sig.args[0].dtype)
        i64 = ir.IntType(64)
        low = builder.sub(builder.shl(vec.const(1), sh_), vec.const(1))
        acc = vec.sums(dst_a.data, d0_, vec.run(n_vec))
        bits = cgutils.alloca_once(builder, i64)
        builder.store(m_, bits)
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [i64])
        cttz = builder.module.declare_intrinsic("llvm.cttz", [i64, ir.IntType(1)])
        with cgutils.for_range(builder, builder.call(ctpop, [m_])):
            m = builder.load(bits)
            k = builder.call(cttz, [m, ir.Constant(ir.IntType(1), 1)])
            builder.store(builder.and_(m, builder.sub(m, vec.const(1))), bits)
            r = builder.add(builder.add(row0_, builder.mul(builder.ashr(k, sh_), st_)),
                            builder.and_(k, low))
            vec.add_row(acc, coef_r(builder.add(c0_, builder.mul(r, cs_))), src_a.data,
                        _row_start(builder, src_a, sig.args[2], r, s0_))
        vec.store(dst_a.data, d0_, acc)
        return context.get_dummy_value()

    return types.none(dst, d0, src, s0, mask, row0, shift, stride, coef, c0, cs, nvec), codegen


@intrinsic
def _add_events(typingctx, dst, d0, src, s0, at, vals, e0, e1, nvec):
    if not _listed_rows_typed(dst, src, vals, nvec, at, (d0, s0, e0, e1)):
        return None
    n_vec = nvec.literal_value

    def codegen(context, builder, sig, args):
        _add_events_ir(context, builder, sig, args, _Vectors(context, builder, sig.args[0].dtype),
                       n_vec)
        return context.get_dummy_value()

    return types.none(dst, d0, src, s0, at, vals, e0, e1, nvec), codegen


def _add_events_ir(context, builder, sig, args, vec, n_vec):
    """Build the body of ``add_events`` (its arguments, in its order) on the vectors ``vec``."""
    dst_a, src_a, at_a = (context.make_array(sig.args[i])(context, builder, args[i])
                          for i in (0, 2, 4))
    val_r = _coefficient(context, builder, sig.args[5], args[5])
    d0_, s0_, e0_, e1_ = (context.cast(builder, args[i], sig.args[i], types.intp)
                          for i in (1, 3, 6, 7))
    acc = vec.sums(dst_a.data, d0_, vec.run(n_vec))

    def event(k):
        """Return the row start and the value (None: 1) of event k."""
        r = context.cast(builder, builder.load(builder.gep(at_a.data, [k])),
                         sig.args[4].dtype, types.intp)
        return _row_start(builder, src_a, sig.args[2], r, s0_), val_r(k)

    def term(ev, off, vecty):
        """Return ``vals[k] * src[at[k], s0 + off ...]`` as a vector, each product rounded."""
        w = vec.load(src_a.data, builder.add(ev[0], vec.const(off)), vecty)
        return w if ev[1] is None else builder.fmul(vec.splat(ev[1], vecty), w)

    def add_to_sum(slot, x):
        builder.store(builder.fadd(builder.load(slot), x), slot)

    n_quads = builder.sdiv(builder.sub(e1_, e0_), vec.const(4))
    with cgutils.for_range(builder, n_quads) as loop:
        e = builder.add(e0_, builder.mul(loop.index, vec.const(4)))
        evs = [event(builder.add(e, vec.const(h))) for h in range(4)]
        for off, vecty, slot in acc:  # a vector at a time: few registers live
            a, b, c, d = (term(ev, off, vecty) for ev in evs)
            add_to_sum(slot, builder.fadd(builder.fadd(a, b), builder.fadd(c, d)))
    rest = builder.add(e0_, builder.mul(n_quads, vec.const(4)))
    with cgutils.for_range(builder, builder.sub(e1_, rest)) as loop:
        ev = event(builder.add(rest, loop.index))
        for off, vecty, slot in acc:
            add_to_sum(slot, term(ev, off, vecty))
    vec.store(dst_a.data, d0_, acc)


def _few_typed(ncols):
    return isinstance(ncols, types.Integer)


@intrinsic
def _add_events_few(typingctx, dst, d0, src, s0, at, vals, e0, e1, ncols):
    if not (_listed_rows_typed(dst, src, vals, types.IntegerLiteral(1), at, (d0, s0, e0, e1))
            and _few_typed(ncols)):
        return None

    def codegen(context, builder, sig, args):
        n = context.cast(builder, args[8], sig.args[8], types.intp)
        _add_events_ir(context, builder, sig, args,
                       _MaskedVectors(context, builder, sig.args[0].dtype, n), 1)
        return context.get_dummy_value()

    return types.none(dst, d0, src, s0, at, vals, e0, e1, ncols), codegen


@intrinsic
def _fma_rows_few(typingctx, dst, d0, src, s0, at, e0, e1, ncols):
    if not (_listed_rows_typed(dst, src, types.none, types.IntegerLiteral(1), at,
                               (d0, s0, e0, e1)) and _few_typed(ncols)):
        return None

    def codegen(context, builder, sig, args):
        n = context.cast(builder, args[7], sig.args[7], types.intp)
        # fma_rows' arguments: no coefficient (None at 7, zeros at 8 and 9)
        full = types.none(*sig.args[:7], types.none, types.intp, types.intp, types.intp)
        zero = context.get_constant(types.intp, 0)
        _fma_rows_ir(context, builder, full,
                     [*args[:7], context.get_dummy_value(), zero, zero, zero],
                     _MaskedVectors(context, builder, sig.args[0].dtype, n), 1)
        return context.get_dummy_value()

    return types.none(dst, d0, src, s0, at, e0, e1, ncols), codegen


class _Lanes:
    """An LLVM vector of floats with Python's arithmetic operators (``rowwise``).

    ``+ - * /``, unary ``-`` and ``abs`` emit one IEEE operation each, rounded once
    (no fast-math flags: nothing is contracted into an fma or reassociated), so a body
    written for NumPy arrays gives the same bits lane by lane. A Python number operand
    becomes a vector constant of the same float type. ``>`` and ``>=`` give a vector of
    booleans, for ``where``.
    """

    __slots__ = ("builder", "value")

    def __init__(self, builder, value):
        self.builder, self.value = builder, value

    def _of(self, x):
        if isinstance(x, _Lanes):
            return x.value
        vecty = self.value.type
        return ir.Constant(vecty, [ir.Constant(vecty.element, float(x))] * vecty.count)

    def _op(self, name, a, b):
        return _Lanes(self.builder, getattr(self.builder, name)(self._of(a), self._of(b)))

    def __neg__(self):
        return _Lanes(self.builder, self.builder.fneg(self.value))

    def __abs__(self):
        vecty = self.value.type
        fabs = cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(vecty, [vecty]),
                                              _llvm_name("fabs", vecty.element, vecty.count))
        return _Lanes(self.builder, self.builder.call(fabs, [self.value]))

    def __gt__(self, x):  # ordered: false for NaN, as NumPy's
        return _Lanes(self.builder, self.builder.fcmp_ordered(">", self.value, self._of(x)))

    def __ge__(self, x):
        return _Lanes(self.builder, self.builder.fcmp_ordered(">=", self.value, self._of(x)))


def _operator(instruction, reflected):
    """Return ``_Lanes``' method for a binary operator: ``x op y`` or, reflected, ``y op x``."""
    if reflected:
        return lambda self, x: self._op(instruction, x, self)
    return lambda self, x: self._op(instruction, self, x)


for _name, _instruction in (("add", "fadd"), ("sub", "fsub"), ("mul", "fmul"),
                            ("truediv", "fdiv")):
    setattr(_Lanes, f"__{_name}__", _operator(_instruction, False))
    setattr(_Lanes, f"__r{_name}__", _operator(_instruction, True))


def where(cond, a, b):
    """Return ``a`` where ``cond`` holds, else ``b``, lane by lane (a ``rowwise`` body).

    ``a`` and ``b`` are rows or scalars of the body (not Python numbers: NumPy would
    widen those to float64).
    """
    if isinstance(cond, _Lanes):
        return _Lanes(cond.builder, cond.builder.select(cond.value, a.value, b.value))
    return np.where(cond, a, b)


def _rowwise(body, n_out, n_flags=0):
    """Return the Python twin and the intrinsic of an elementwise step over rows.

    ``f(n, arrays, starts, scalars)``: ``arrays`` a tuple of C-contiguous arrays of one
    float dtype, ``starts`` a tuple of as many flat indices, ``scalars`` a tuple of
    numbers (cast to that dtype). For each column l < n, ``body`` receives the entries
    ``arrays[k].flat[starts[k] + l]`` and the scalars, in that order, and returns
    ``n_out`` values, written to the first ``n_out`` rows (which are read as inputs too:
    ``acc + x`` updates a row in place), then ``n_flags`` values that are tested: ``f``
    returns an int64 whose bit k is set when flag k is inf or NaN in some column (0
    when every one is finite). Every input of a column is read before its outputs are
    written; a row that is written must be disjoint from every other row passed with
    it, or the same row. ``body`` uses arithmetic operators, ``abs``, ``>``, ``>=`` and
    ``where`` only, so that the same Python function runs on NumPy rows (the twin, each
    operation rounded once) and on LLVM vectors (``_Lanes``): the same bits.

    The intrinsic runs ``VECTOR_BYTES`` of columns at a time and the last columns as one
    masked vector (nothing past column n is read or written, and those lanes are not
    tested). One pass over the columns in place of a loop per expression: Numba
    compiles such a loop with checks of overlap between its rows and its setup per row,
    and a loop over all of them at once does not vectorise at all.
    """

    def python_twin(n, arrays, starts, scalars):
        rows = [a.reshape(-1)[s:s + n] for a, s in zip(arrays, starts, strict=True)]
        dt = arrays[0].dtype.type
        with np.errstate(all="ignore"):  # as the compiled pass: overflow is in the flags
            res = body(*rows, *(dt(c) for c in scalars))
        out = [np.asarray(v, dtype=arrays[0].dtype) for v in res[:n_out]]
        bad = 0
        for k, v in enumerate(res[n_out:]):
            bad |= int(not np.all(np.isfinite(v))) << k
        for row, v in zip(rows[:n_out], out, strict=True):
            row[...] = v
        return bad

    @intrinsic
    def vector(typingctx, n, arrays, starts, scalars):
        if not (isinstance(n, types.Integer) and isinstance(arrays, types.BaseTuple)
                and isinstance(starts, types.BaseTuple) and isinstance(scalars, types.BaseTuple)
                and len(arrays) == len(starts) >= n_out
                and all(_is_float_c_array(a) and a.dtype == arrays[0].dtype for a in arrays)
                and all(isinstance(s, types.Integer) for s in starts)
                and all(isinstance(c, (types.Integer, types.Float)) for c in scalars)):
            return None
        dtype = arrays[0].dtype

        def codegen(context, builder, sig, args):
            arys = [context.make_array(t)(context, builder, v) for t, v in
                    zip(sig.args[1], cgutils.unpack_tuple(builder, args[1]), strict=True)]
            at = [context.cast(builder, v, t, types.intp) for t, v in
                  zip(sig.args[2], cgutils.unpack_tuple(builder, args[2]), strict=True)]
            consts = [context.cast(builder, v, t, dtype) for t, v in
                      zip(sig.args[3], cgutils.unpack_tuple(builder, args[3]), strict=True)]
            n_ = context.cast(builder, args[0], sig.args[0], types.intp)
            vec = _Vectors(context, builder, dtype)
            lanes = VECTOR_BYTES // vec.align
            vecty = ir.VectorType(vec.fty, lanes)
            booly = ir.VectorType(ir.IntType(1), lanes)
            flags = [cgutils.alloca_once_value(builder, ir.Constant(booly, None))
                     for _ in range(n_flags)]

            def step(v, off, mask=None):
                ins = [_Lanes(builder, v.load(a.data, builder.add(s, off), vecty))
                       for a, s in zip(arys, at, strict=True)]
                res = body(*ins, *(_Lanes(builder, v.splat(c, vecty)) for c in consts))
                for a, s, x in zip(arys[:n_out], at[:n_out], res[:n_out], strict=True):
                    v._store_at(x.value, v._pointer(a.data, builder.add(s, off), vecty))
                for slot, x in zip(flags, res[n_out:], strict=True):
                    bad = _ir_nonfinite(builder, vecty, x.value)
                    if mask is not None:
                        bad = builder.and_(bad, mask)
                    builder.store(builder.or_(builder.load(slot), bad), slot)

            n_full = builder.sdiv(n_, vec.const(lanes))
            with cgutils.for_range(builder, n_full) as loop:
                step(vec, builder.mul(loop.index, vec.const(lanes)))
            done = builder.mul(n_full, vec.const(lanes))
            rest = builder.sub(n_, done)
            with builder.if_then(builder.icmp_signed(">", rest, vec.const(0))):
                masked = _MaskedVectors(context, builder, dtype, rest, lanes)
                step(masked, done, masked.mask)
            i64 = ir.IntType(64)
            bits = ir.Constant(i64, 0)
            for k, slot in enumerate(flags):
                any_bad = builder.icmp_unsigned(
                    "!=", builder.bitcast(builder.load(slot), ir.IntType(lanes)),
                    ir.Constant(ir.IntType(lanes), 0))
                bits = builder.or_(bits, builder.shl(builder.zext(any_bad, i64),
                                                     ir.Constant(i64, k)))
            return bits

        return types.int64(n, arrays, starts, scalars), codegen

    return python_twin, vector


def rowwise(body, n_out, n_flags=0):
    """``_rowwise``'s intrinsic, or its Python twin under ``NUMBA_DISABLE_JIT=1``."""
    twin, vector = _rowwise(body, n_out, n_flags)
    return twin if numba.config.DISABLE_JIT else vector


def _py_prefetch(x, start):
    return None


@intrinsic
def _prefetch(typingctx, x, start):
    if not (isinstance(x, types.Array) and x.layout == "C" and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        at = context.cast(builder, args[1], sig.args[1], types.int64)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        # a plain address computation (no "inbounds"): the line may lie past the array
        address = builder.bitcast(builder.gep(data, [at], inbounds=False), i8p)
        fetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fetch, [address, i32(0), i32(3), i32(1)])  # read, keep, data
        return context.get_dummy_value()

    return types.none(x, start), codegen


@intrinsic
def _store_set_bits(typingctx, dst, at, mask, base):
    if not (isinstance(dst, types.Array) and dst.layout == "C"
            and isinstance(dst.dtype, types.Integer) and dst.dtype.bitwidth in (32, 64)
            and all(isinstance(v, types.Integer) for v in (at, mask, base))):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        at_, m_, base_ = (context.cast(builder, args[i], sig.args[i], types.int64)
                          for i in (1, 2, 3))
        ity = ir.IntType(sig.args[0].dtype.bitwidth)
        i64 = ir.IntType(64)
        m_ = builder.and_(m_, ir.Constant(i64, 0xFFFFFFFF))
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [i64])
        count = builder.call(ctpop, [m_])
        if VECTOR_BYTES == 64:  # AVX-512: a compressing store per 64 bytes of indices
            lanes = 64 * 8 // ity.width
            vecty = ir.VectorType(ity, lanes)
            store = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [vecty, ity.as_pointer(),
                                                ir.VectorType(ir.IntType(1), lanes)]),
                f"llvm.masked.compressstore.v{lanes}i{ity.width}")
            iota = ir.Constant(vecty, list(range(lanes)))
            at = at_
            for part in range(32 // lanes):
                sub = builder.and_(builder.lshr(m_, ir.Constant(i64, part * lanes)),
                                   ir.Constant(i64, (1 << lanes) - 1))
                bits = builder.bitcast(builder.trunc(sub, ir.IntType(lanes)),
                                       ir.VectorType(ir.IntType(1), lanes))
                first = builder.trunc(builder.add(base_, ir.Constant(i64, part * lanes)), ity)
                indices = builder.add(_splat(builder, first, vecty), iota)
                builder.call(store, [indices, builder.gep(data, [at]), bits])
                at = builder.add(at, builder.call(ctpop, [sub]))
        else:  # one store per set bit, lowest first
            rest = cgutils.alloca_once_value(builder, m_)
            cttz = builder.module.declare_intrinsic("llvm.cttz", [i64, ir.IntType(1)])
            with cgutils.for_range(builder, count) as loop:
                m = builder.load(rest)
                k = builder.call(cttz, [m, ir.Constant(ir.IntType(1), 1)])
                builder.store(builder.and_(m, builder.sub(m, ir.Constant(i64, 1))), rest)
                builder.store(builder.trunc(builder.add(base_, k), ity),
                              builder.gep(data, [builder.add(at_, loop.index)]))
        return count

    return types.int64(dst, at, mask, base), codegen


if numba.config.DISABLE_JIT:
    nonzero_mask32, nonfinite_mask32 = _py_nonzero_mask32, _py_nonfinite_mask32
    nonbinary_mask32 = _py_nonbinary_mask32
    popcount = _py_popcount
    fma, fma_tile4, fma_rows, fma_bits = _py_fma, _py_fma_tile4, _py_fma_rows, _py_fma_bits
    store_set_bits, add_events = _py_store_set_bits, _py_add_events
    prefetch = _py_prefetch
    add_events_few, fma_rows_few = _py_add_events_few, _py_fma_rows_few
else:
    nonzero_mask32, nonfinite_mask32 = _nonzero_mask32, _nonfinite_mask32
    nonbinary_mask32 = _nonbinary_mask32
    popcount = _popcount
    fma, fma_tile4, fma_rows, fma_bits = _fma, _fma_tile4, _fma_rows, _fma_bits
    store_set_bits, add_events = _store_set_bits, _add_events
    prefetch = _prefetch
    add_events_few, fma_rows_few = _add_events_few, _fma_rows_few
