"""Forward pass alone: ``refsnn.forward`` (full traces) and ``refsnn.loss`` (what BPTT keeps)."""

import pytest
from _common import CASES, case_of, timed

import refsnn
from refsnn.bench import make_problem


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("what", ["forward", "loss"])
def test_forward(benchmark, name, what):
    case, rounds = case_of(name)
    p, x, y = make_problem(case)
    conv = refsnn.Conventions.preset("paper")
    benchmark.group = f"forward {name}"
    if what == "forward":
        timed(benchmark, lambda: refsnn.forward(p, x, conv), rounds)
    else:
        timed(benchmark, lambda: refsnn.loss(p, x, y, conv), rounds)


def test_forward_float64(benchmark):
    case, rounds = case_of("target", "float64")
    p, x, _ = make_problem(case)
    benchmark.group = "forward target"
    timed(benchmark, lambda: refsnn.forward(p, x, "paper"), rounds)
