"""Analytic oracles: hand-computed traces and the closed-form subthreshold response."""

import numpy as np
import pytest

import refsnn
from tests.helpers import CE_OFFSETS


def one_neuron(w_in, decay_syn, decay_mem, threshold, w_rec=0.0, v_reset=0.0, v_rest=0.0):
    f = lambda v: np.array(v, dtype=np.float64)  # noqa: E731
    return refsnn.Params(
        w_in=f([[w_in]]), w_rec=f([[w_rec]]), w_out=f([[1.0]]), decay_syn=f([decay_syn]),
        decay_mem=f([decay_mem]), threshold=f([threshold]), v_reset=f([v_reset]),
        v_rest=f([v_rest]), decay_syn_out=f([0.5]), decay_mem_out=f([0.5]),
    )


def test_single_neuron_hand_computed_trace():
    # default conventions: I[t+1] = a I[t] + x[t] w; v[t+1] = b v[t] + (1-b) I[t+1] - s[t] th
    p = one_neuron(w_in=2.0, decay_syn=0.5, decay_mem=0.5, threshold=0.5)
    x = np.zeros((1, 4, 1))
    x[0, 0, 0] = 1.0
    tr = refsnn.forward(p, x, refsnn.Conventions())
    # by hand, in exact binary fractions:
    # t=0: s0=0, I1=2,   v1 = 0.5*0 + 0.5*2 = 1
    # t=1: s1=1 (1 > .5), I2=1,   v2 = 0.5*1 + 0.5*1 - 0.5 = 0.5
    # t=2: s2=0 (0.5 > 0.5 false), I3=0.5, v3 = 0.25 + 0.25 = 0.5
    # t=3: s3=0, I4=0.25,  v4 = 0.25 + 0.125 = 0.375
    np.testing.assert_array_equal(tr.i_syn[0, :, 0], [2.0, 1.0, 0.5, 0.25])
    np.testing.assert_array_equal(tr.v[0, :, 0], [1.0, 0.5, 0.5, 0.375])
    np.testing.assert_array_equal(tr.spikes[0, :, 0], [1.0, 0.0, 0.0, 0.0])  # s of v1..v4
    # with the test v >= th, v2 = 0.5 fires too: v3 = 0.25 + 0.25 - 0.5 = 0, v4 = 0.125
    ge = refsnn.forward(p, x, refsnn.Conventions(spike_test="ge"))
    np.testing.assert_array_equal(ge.v[0, :, 0], [1.0, 0.5, 0.0, 0.125])
    np.testing.assert_array_equal(ge.spikes[0, :, 0], [1.0, 1.0, 0.0, 0.0])


def test_single_neuron_paper_timing():
    """Paper: the membrane uses the previous current, so a spike in bin 0 reaches v at
    state 2; traces start with the zero state; T-1 updates."""
    p = one_neuron(w_in=1.0, decay_syn=0.5, decay_mem=0.75, threshold=10.0)
    x = np.zeros((1, 4, 1))
    x[0, 0, 0] = 1.0
    tr = refsnn.forward(p, x, "paper")
    np.testing.assert_array_equal(tr.i_syn[0, :, 0], [0.0, 1.0, 0.5, 0.25])
    np.testing.assert_array_equal(tr.v[0, :, 0], [0.0, 0.0, 0.25, 0.3125])


@pytest.mark.parametrize("a,b", [(0.9, 0.8), (0.7, 0.95), (0.6, 0.6000001)])
def test_closed_form_subthreshold_impulse_response(a, b):
    """For one input impulse of weight w at t=0 and no spikes (default conventions):
    v[k] = (1 - b) w (b**k - a**k) / (b - a), k = 1..T."""
    w, T = 0.3, 60
    p = one_neuron(w_in=w, decay_syn=a, decay_mem=b, threshold=100.0)
    x = np.zeros((1, T, 1))
    x[0, 0, 0] = 1.0
    tr = refsnn.forward(p, x, refsnn.Conventions())
    k = np.arange(1, T + 1)
    expected = (1 - b) * w * (b**k - a**k) / (b - a)
    np.testing.assert_allclose(tr.v[0, :, 0], expected, rtol=1e-9 if abs(a - b) > 1e-3 else 1e-6)
    assert tr.spikes.sum() == 0


def test_threshold_crossing_weight():
    """The weight that puts the peak of the impulse response exactly at threshold: just
    below, no spike; just above, one spike."""
    a, b, th = 0.8, 0.9, 1.0
    k = np.arange(1, 200)
    peak_per_unit_w = ((1 - b) * (b**k - a**k) / (b - a)).max()
    w_star = th / peak_per_unit_w
    x = np.zeros((1, 200, 1))
    x[0, 0, 0] = 1.0
    for factor, spikes in ((1 - 1e-9, 0), (1 + 1e-9, 1)):
        p = one_neuron(w_in=w_star * factor, decay_syn=a, decay_mem=b, threshold=th)
        assert refsnn.forward(p, x, refsnn.Conventions()).spikes.sum() == spikes


def test_superposition_subthreshold():
    """Below threshold the layer is linear: the response to x1 + x2 is the sum."""
    rng = np.random.default_rng(0)
    p = refsnn.random_params(4, 3, 2, rng, heterogeneous=False).replace(
        threshold=np.full(3, 1e6), w_rec=np.zeros((3, 3))
    )
    x1 = (rng.random((2, 20, 4)) < 0.3).astype(float)
    x2 = (rng.random((2, 20, 4)) < 0.3).astype(float)
    conv = refsnn.Conventions()
    v = lambda x: refsnn.forward(p, x, conv).v  # noqa: E731
    np.testing.assert_allclose(v(x1 + x2), v(x1) + v(x2), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("d", CE_OFFSETS)
def test_cross_entropy_two_classes_closed_form(d):
    """Two classes, logits (0, d), label 0: loss ``log(1 + e^d)``, label gradient
    ``-expit(d)``, other ``expit(d)``, to rounding also where the loss is tiny (d << 0)
    and the naive ``log(sum e^z)`` and ``p_y - 1`` would cancel (4e-10 at d = -15.2)."""
    from scipy.special import expit

    from refsnn.network import cross_entropy

    loss, grad = cross_entropy(np.array([[0.0, d], [d, 0.0]]), np.array([0, 1]))
    exact = np.logaddexp(0.0, d)  # max(0, d) + log1p(exp(-|d|)): exact to rounding
    assert loss == pytest.approx(exact, rel=4e-16, abs=0.0)
    expected = np.array([[-expit(d), expit(d)], [expit(d), -expit(d)]]) / 2
    # exp(d - logsum) carries the rounding of its argument, |d| eps: the conditioning of
    # a probability e^d with respect to d, as any formula starting from rounded logits
    np.testing.assert_allclose(grad, expected, rtol=(2 + abs(d)) * 2.0**-52, atol=0.0)
