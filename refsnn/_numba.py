"""The one place for Numba settings.

Every kernel is compiled with ``jit`` (serial) or ``pjit`` (parallel over ``prange``).
No fastmath: a reference keeps IEEE semantics. Setting ``NUMBA_DISABLE_JIT=1`` runs
every kernel as plain Python, for coverage and debuggers.
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, fastmath=False, nogil=True)
pjit = functools.partial(numba.njit, cache=True, fastmath=False, nogil=True, parallel=True)
prange = numba.prange
