"""Bit-level helpers for the kernels: LLVM intrinsics, each with a plain Python twin.

``nonzero_mask32(x, start)``, ``nonbinary_mask32(x, start)`` and
``nonfinite_mask32(x, start)`` test the 32 elements ``x.flat[start : start + 32]`` of a
C-contiguous float array at once (one vector load, one comparison, one move of the 32
comparison bits into an integer) and return the results as the bits of an int64: bit k
is set when element ``start + k`` is nonzero, is neither 0 nor 1, or is inf or NaN (NaN
is nonzero and neither 0 nor 1). ``popcount`` and ``trailing_zeros`` count set bits and
the zeros below the lowest set bit. The input scan (``refsnn.kernels.scan_input``) so
reads a mostly-zero input 32 entries per test, and the writing of input events
(``refsnn.kernels._fill_events``) visits only the set bits of its masks.

The caller guarantees ``start + 32 <= x.size``. With ``NUMBA_DISABLE_JIT=1`` the Python
twins run instead.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


def _py_popcount(v):
    return bin(int(v) & 0xFFFFFFFFFFFFFFFF).count("1")


def _py_trailing_zeros(v):
    v = int(v)
    return ((v & -v).bit_length() - 1) if v else 64


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


@intrinsic
def _trailing_zeros(typingctx, v):
    if not isinstance(v, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        f = builder.module.declare_intrinsic("llvm.cttz", [ir.IntType(64), ir.IntType(1)])
        x = context.cast(builder, args[0], sig.args[0], types.int64)
        return builder.call(f, [x, ir.Constant(ir.IntType(1), 0)])

    return types.int64(v), codegen


if numba.config.DISABLE_JIT:
    nonzero_mask32, nonfinite_mask32 = _py_nonzero_mask32, _py_nonfinite_mask32
    nonbinary_mask32 = _py_nonbinary_mask32
    popcount, trailing_zeros = _py_popcount, _py_trailing_zeros
else:
    nonzero_mask32, nonfinite_mask32 = _nonzero_mask32, _nonfinite_mask32
    nonbinary_mask32 = _nonbinary_mask32
    popcount, trailing_zeros = _popcount, _trailing_zeros
