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
"""

from __future__ import annotations

import functools

import numba

_SETTINGS = dict(cache=True, fastmath=False, nogil=True, error_model="numpy")
jit = functools.partial(numba.njit, inline="always", **_SETTINGS)
jit_noinline = functools.partial(numba.njit, **_SETTINGS)
pjit = functools.partial(numba.njit, parallel=True, **_SETTINGS)
prange = numba.prange
