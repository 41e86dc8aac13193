"""Each surrogate equals its closed form, integrates as documented, and the Numba
scalar twin equals the NumPy function."""

import numpy as np
import pytest

from refsnn.surrogates import (
    SURROGATE_CODES,
    smooth_spike,
    smooth_spike_scalar,
    surrogate,
    surrogate_scalar,
)

# antiderivatives F with F' = surrogate, written independently of refsnn.surrogates
ANTIDERIVATIVES = {
    "fast_sigmoid": lambda x, s: np.sign(x) * (1 - 1 / (1 + s * np.abs(x))) / s,
    "arctan": lambda x, s: np.arctan(np.pi * s * x / 2) / np.pi,
    "sigmoid": lambda x, s: 1 / (1 + np.exp(-s * x)),
    "triangle": lambda x, s: np.clip(s * x - s * x * np.abs(s * x) / 2, -0.5, 0.5)
    * np.where(np.abs(s * x) <= 1, 1, 0)
    + np.sign(x) * 0.5 * np.where(np.abs(s * x) > 1, 1, 0),
    "exponential": lambda x, s: np.sign(x) * (1 - np.exp(-s * np.abs(x))) / 2,
}
TOTAL = {"fast_sigmoid": lambda s: 2 / s}


@pytest.mark.parametrize("name", sorted(SURROGATE_CODES))
@pytest.mark.parametrize("scale", [0.7, 5.0, 100.0])
def test_surrogate_is_derivative_of_its_antiderivative(name, scale):
    x = np.linspace(-3, 3, 1201) / scale + 1e-3 / scale  # avoid the kinks at 0 and +-1/s
    h = 1e-6 / scale
    fd = (ANTIDERIVATIVES[name](x + h, scale) - ANTIDERIVATIVES[name](x - h, scale)) / (2 * h)
    kink = np.abs(np.abs(scale * x) - 1) < 1e-5  # triangle's kinks at |x| = 1/s
    np.testing.assert_allclose(surrogate(name, x, scale)[~kink], fd[~kink], rtol=1e-6,
                               atol=1e-6 * scale)


@pytest.mark.parametrize("name", sorted(SURROGATE_CODES))
def test_surrogate_integral(name):
    s = 3.0
    bound = 10.0 if name == "triangle" else np.inf  # the triangle vanishes past 1/s
    total = ANTIDERIVATIVES[name](bound, s) - ANTIDERIVATIVES[name](-bound, s)
    assert total == pytest.approx(TOTAL.get(name, lambda s: 1.0)(s), rel=1e-12)


def test_closed_form_values():
    assert surrogate("fast_sigmoid", 0.0, 100.0) == 1.0
    assert surrogate("fast_sigmoid", 0.01, 100.0) == pytest.approx(0.25)
    assert surrogate("arctan", 0.0, 2.0) == pytest.approx(1.0)
    assert surrogate("sigmoid", 0.0, 4.0) == pytest.approx(1.0)
    assert surrogate("triangle", 0.5, 1.0) == pytest.approx(0.5)
    assert surrogate("triangle", 2.0, 1.0) == 0.0
    assert surrogate("exponential", 0.0, 2.0) == pytest.approx(1.0)
    # no overflow far from threshold (snnTorch's sigmoid returns NaN below x ~ -3.5)
    assert np.all(np.isfinite(surrogate("sigmoid", np.array([-1e4, 1e4]), 4.0)))


@pytest.mark.parametrize("name", sorted(SURROGATE_CODES))
def test_numba_scalar_equals_numpy(name):
    for x in [-2.0, -0.013, 0.0, 0.002, 0.7, 5.0]:
        for s in [1.0, 25.0]:
            assert surrogate_scalar(SURROGATE_CODES[name], x, s) == pytest.approx(
                float(surrogate(name, x, s)), rel=1e-14, abs=1e-300
            )


def test_smooth_spike_stable_and_twin():
    x = np.array([-1e3, -3.0, 0.0, 3.0, 1e3])
    y = smooth_spike(x, 4.0)
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    for xi, yi in zip(x, y, strict=True):
        assert smooth_spike_scalar(xi, 4.0) == pytest.approx(yi, rel=1e-15, abs=1e-300)
