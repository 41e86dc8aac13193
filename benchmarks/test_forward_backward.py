"""Forward + backward: loss and the gradient of every parameter.

refsnn (float32 and float64) at every case; the plain PyTorch autograd model of
``refsnn.bench`` at every case; snnTorch and Norse (when installed) at the target case.
pytest-benchmark's table groups them per case, so the columns compare directly.
"""

import pytest
from _common import CASES, build_step, case_of, skip_unless, timed


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("impl", ["refsnn", "refsnn-f64", "torch"])
def test_forward_backward(benchmark, name, impl):
    skip_unless(impl)
    case, rounds = case_of(name)
    if impl == "torch" and name in ("shd", "n512"):
        rounds = 3  # seconds per call
    benchmark.group = f"forward+backward {name}"
    timed(benchmark, build_step(impl, case), rounds)


@pytest.mark.parametrize("impl", ["snntorch", "norse"])
def test_forward_backward_peers(benchmark, impl):
    skip_unless(impl)
    case, rounds = case_of("target")
    benchmark.group = "forward+backward target"
    timed(benchmark, build_step(impl, case), 5)
