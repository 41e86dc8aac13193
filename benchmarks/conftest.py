"""Set-up of the benchmark suites (run: ``python -m pytest benchmarks --benchmark-only``)."""

import pytest
from _common import THREADS

from refsnn.bench import _set_threads


@pytest.fixture(scope="session", autouse=True)
def threads():
    """Numba and torch use ``REFSNN_BENCH_THREADS`` threads (default 2)."""
    _set_threads(THREADS)
    return THREADS
