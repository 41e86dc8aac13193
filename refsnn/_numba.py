"""The one place for Numba settings.

Every kernel is compiled with ``jit`` (serial) or ``pjit`` (parallel over ``prange``).
No fastmath: a reference keeps IEEE semantics. ``error_model="numpy"``: a float division
by zero gives inf or NaN as in NumPy instead of raising, so a loop that divides has no
hidden branch and vectorises (the kernels never divide by zero: the callers validate).
``jit`` functions (small scalar helpers) are inlined into the jitted functions that
call them (``inline="always"``): a call that is not inlined costs a function call per
element and keeps the loop around it from vectorising. Larger functions, called once
per row or per sample, use ``jit_noinline`` (inlining them costs compile time and gains
nothing; a function called from the body of a ``prange`` loop cannot be inlined at
all). Setting ``NUMBA_DISABLE_JIT=1`` runs every kernel as plain Python, for coverage
and debuggers.

``cache=True`` keys each compiled kernel on its own source file only: after editing a
function it calls from another module (``_intrinsics.py``, ``surrogates.py``, this
file), delete ``refsnn/__pycache__/*.nbi`` and ``*.nbc`` (or point
``NUMBA_CACHE_DIR`` at a new folder), or the kernels compiled before the edit keep
running.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

_SETTINGS = dict(cache=True, fastmath=False, nogil=True, error_model="numpy")
jit = functools.partial(numba.njit, inline="always", **_SETTINGS)
jit_noinline = functools.partial(numba.njit, **_SETTINGS)
pjit = functools.partial(numba.njit, parallel=True, **_SETTINGS)
prange = numba.prange


def like(x, value):
    """Return ``value`` in the float type of ``x``: the kernels' constants and scales.

    In Numba a float literal is float64 and promotes float32 arithmetic to float64;
    ``like(x, 1.0)`` is a float32 constant when ``x`` is float32. Plain Python (and
    ``NUMBA_DISABLE_JIT=1``) returns ``value`` itself.
    """
    return value


@overload(like, inline="always")
def _like(x, value):
    if x == types.float32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)
