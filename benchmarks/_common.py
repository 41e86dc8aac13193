"""Helpers shared by the benchmark suites (run: ``python -m pytest benchmarks --benchmark-only``).

Threads: ``REFSNN_BENCH_THREADS`` (default 2) for Numba and torch. Every timed function
is called once before timing (Numba compiles, torch warms up), then timed with
``benchmark.pedantic`` for a fixed number of rounds of one call each.
"""

import os
from dataclasses import replace

import pytest

from refsnn.bench import FASHION, SHD, TARGET, WIDE, available, build_step

THREADS = int(os.environ.get("REFSNN_BENCH_THREADS", "2"))

#: name -> (case, rounds)
CASES = {
    "target": (TARGET, 20),
    "shd": (SHD, 5),
    "fashion": (FASHION, 20),
    "n512": (WIDE, 10),
}


def timed(benchmark, func, rounds):
    """Compile / warm up, then time ``rounds`` calls."""
    func()
    benchmark.extra_info["threads"] = THREADS
    return benchmark.pedantic(func, rounds=rounds, iterations=1, warmup_rounds=1)


def skip_unless(impl):
    reason = available(impl)
    if reason is not None:
        pytest.skip(f"{impl}: {reason}")


def case_of(name, dtype="float32"):
    case, rounds = CASES[name]
    return replace(case, dtype=dtype), rounds


__all__ = ["CASES", "THREADS", "build_step", "case_of", "skip_unless", "timed"]
