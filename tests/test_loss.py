"""The compiled loss head (``kernels.softmax_cross_entropy``) against its NumPy reference."""

import numpy as np
import pytest

from refsnn import kernels as kn
from refsnn.network import cross_entropy


def _both(logits, labels):
    grad = np.empty_like(logits)
    value = kn.softmax_cross_entropy(logits, labels, grad)
    return (value, grad), cross_entropy(logits, labels)


@pytest.mark.parametrize("scale", [0.1, 3.0, 40.0])
def test_compiled_cross_entropy_equals_numpy_in_float64(scale):
    rng = np.random.default_rng(int(scale * 10))
    logits = rng.standard_normal((33, 20)) * scale
    labels = rng.integers(0, 20, 33)
    (value, grad), (value0, grad0) = _both(logits, labels)
    # the same formulas; float64 exp and log agree with NumPy's here, but the sums run in
    # another order (NumPy's pairwise sums): a few units of the last place
    assert value == pytest.approx(value0, rel=1e-14, abs=1e-300)
    np.testing.assert_allclose(grad, grad0, rtol=1e-13, atol=1e-17)
    assert grad.dtype == np.float64


def test_compiled_cross_entropy_float32_within_a_few_ulps():
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((32, 20)) * 3).astype(np.float32)
    labels = rng.integers(0, 20, 32)
    (value, grad), (value0, grad0) = _both(logits, labels)
    # NumPy's float32 exp and log are its own vectorised ones (up to ~4 ulps), the
    # compiled head uses the C library's: a few float32 ulps apart
    assert grad.dtype == np.float32
    assert value == pytest.approx(value0, rel=8 * 2.0**-23)
    ulp = 2.0**-23
    np.testing.assert_allclose(grad, grad0, rtol=8 * ulp, atol=8 * ulp * np.abs(grad0).max())


def test_compiled_cross_entropy_keeps_tiny_losses_and_the_label_gradient():
    # a confident right answer: the loss is log1p(e^-d) ~ e^-d, not 0; the label's
    # gradient is minus the others' probabilities, not the rounded 1 - p_y
    d = 30.0
    logits = np.array([[d, 0.0], [0.0, d]])
    labels = np.array([0, 1])
    grad = np.empty_like(logits)
    value = kn.softmax_cross_entropy(logits, labels, grad)
    assert value == pytest.approx(np.log1p(np.exp(-d)), rel=1e-15)
    assert grad[0, 0] == pytest.approx(-np.exp(-d) / (1 + np.exp(-d)) / 2, rel=1e-15)
    assert grad[0, 1] == -grad[0, 0] and grad[1, 0] == grad[0, 1]


def test_first_outside():
    assert kn.first_outside(np.array([0, 3, 20, -1]), 20) == 2
    assert kn.first_outside(np.array([0, 19], np.int32), 20) == -1
    assert kn.first_outside(np.array([-1], np.int8), 20) == 0
