"""The Numba kernels equal the NumPy oracle.

Tolerance: float64 agreement to 1e-11 relative (per field, relative to the field's
largest magnitude). Against cancellation the denominator is floored by the size of
one sample's contribution, ``max_b |grad_b| / B``: a batch gradient is a mean of
per-sample gradients of both signs (identical samples with different labels cancel
almost exactly), and its rounding error is relative to its terms, not to the result
(see ``validation.gradcheck.relative_error``). The kernel accumulates input and
recurrent events one by one while the oracle uses BLAS matrix products, so sums are
rounded in a different order (~1e-16 relative per step); BPTT then carries these
through up to 20 steps of recursion and surrogate factors up to 100 (the paper's
scale), so a few 1e-14 are observed (worst over thousands of cases ~3e-13); 1e-11
still flags any wrong term, which shows up at 1e-3 or more.
"""

import numpy as np
import pytest
from hypothesis import given

import refsnn
from refsnn.params import PARAM_NAMES
from validation.gradcheck import relative_error
from validation.strategies import cases

RTOL = 1e-11


def assert_matches_oracle(case):
    p, x, y, conv = case.params, case.x, case.labels, case.conventions
    loss, grads = refsnn.loss_and_grad(p, x, y, conv)
    loss_o, grads_o, st = refsnn.oracle_loss_and_grad(p, x, y, conv)
    trace = refsnn.forward(p, x, conv)
    k0 = trace.first_state
    if conv.spike_fn == "heaviside":
        assert np.array_equal(trace.spikes, st["s"][:, k0:]), case.describe()
    else:  # np.exp and math.exp may differ in the last bit
        assert relative_error(trace.spikes, st["s"][:, k0:]) <= RTOL
    for name, key in (("v", "v"), ("i_syn", "i"), ("v_out", "v_out"), ("i_syn_out", "i_out")):
        err = relative_error(getattr(trace, name), st[key][:, k0:])
        assert err <= RTOL, f"{name}: {err:.3g} ({case.describe()}, {conv})"
    assert abs(loss - loss_o) <= RTOL * max(1.0, abs(loss_o))
    per_sample = [
        refsnn.oracle_loss_and_grad(p, x[b : b + 1], y[b : b + 1], conv)[1]
        for b in range(x.shape[0])
    ]
    for name in PARAM_NAMES:
        floor = max(np.max(np.abs(getattr(g, name))) for g in per_sample) / x.shape[0]
        err = relative_error(getattr(grads, name), getattr(grads_o, name), floor)
        assert err <= RTOL, f"grad {name}: {err:.3g} ({case.describe()}, {conv})"


@given(cases())
def test_kernels_equal_oracle_any_conventions(case):
    assert_matches_oracle(case)


@pytest.mark.parametrize("preset", ["default", "paper", "smooth"])
def test_kernels_equal_oracle_presets(preset):
    rng = np.random.default_rng(7)
    p = refsnn.random_params(12, 10, 4, rng)
    x = (rng.random((5, 30, 12)) < 0.2).astype(np.float64)
    y = rng.integers(0, 4, 5)
    from validation.strategies import Case

    case = Case(p, x, y, refsnn.Conventions.preset(preset), 7)
    assert refsnn.forward(p, x, case.conventions).spikes.sum() > 20  # the layer fires
    assert_matches_oracle(case)


def test_non_binary_input_accumulates_event_values():
    rng = np.random.default_rng(3)
    p = refsnn.random_params(6, 5, 3, rng)
    x = rng.random((2, 10, 6)) * (rng.random((2, 10, 6)) < 0.4)  # graded inputs
    from validation.strategies import Case

    assert_matches_oracle(Case(p, x, np.array([0, 2]), refsnn.Conventions(), 3))


@pytest.mark.parametrize("n_in", [32, 70])
def test_wide_input_with_binary_and_graded_steps(n_in):
    """The input scan's 32-input blocks and tail, steps of 0/1 input and of counts."""
    rng = np.random.default_rng(n_in)
    p = refsnn.random_params(n_in, 6, 3, rng)
    x = (rng.random((3, 12, n_in)) < 0.1) * 1.0
    x[:, ::3] *= rng.integers(1, 4, (3, 4, n_in))  # counts in every third step
    from validation.strategies import Case

    assert_matches_oracle(Case(p, x, np.array([0, 2, 1]), refsnn.Conventions(), 5))


@pytest.mark.parametrize(("n_hidden", "states"), [(128, 2), (300, 1)])
def test_spike_weight_grad_in_shorter_passes(n_hidden, states):
    """(B13) takes fewer states per pass when the adjoint rows are long (float64 here);
    the small networks of the other tests all take the longest passes."""
    from refsnn import kernels
    from validation.strategies import Case

    width, row = kernels.spike_grad_columns(n_hidden + 3, 8)
    # chunks of 40 float64 columns (80 on a machine with AVX-512, kernels.WIDE = 2)
    assert width == 40 * kernels.WIDE and row % width == 0
    assert n_hidden + 3 <= row < n_hidden + 3 + width
    assert kernels.spike_grad_states(row * 8) == states < kernels.SPIKE_GRAD_STATES
    rng = np.random.default_rng(n_hidden)
    p = refsnn.random_params(20, n_hidden, 3, rng)
    x = (rng.random((9, 15, 20)) < 0.2).astype(np.float64)  # 9 samples: a partial task
    case = Case(p, x, rng.integers(0, 3, 9), refsnn.Conventions.preset("paper"), n_hidden)
    assert refsnn.forward(p, x, case.conventions).spikes.mean() > 0.05  # the layer fires
    assert_matches_oracle(case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_weight_grad_sums_each_entry_in_event_order(dtype):
    """(B12) of a task equals, bit for bit, its definition summed event by event in order
    (samples, updates, inputs ascending), ``g[m] += x * g_i[b, t + 1]``: a sample of
    spike input (sorted by input, sums in registers), one of graded input (event by
    event), one without events; N = 70 has whole runs of columns and a tail."""
    from refsnn import kernels

    rng = np.random.default_rng(11)
    B, K, n_in, N = 3, 40, 50, 70
    x = (rng.random((B, K, n_in)) < 0.1).astype(dtype)
    x[1] *= rng.integers(1, 4, (K, n_in)).astype(dtype)  # graded values
    x[1, 0, 0] = 1.5  # surely one value other than 1
    x[2] = 0  # no events
    ptr = np.zeros(B * K + 1, np.int64)
    ptr[1:] = np.cumsum(np.count_nonzero(x, axis=2).ravel())
    b_, t_, m_ = np.nonzero(x)  # (samples, steps, inputs) ascending: the event order
    ev_idx, ev_val = m_.astype(np.int32), x[b_, t_, m_]
    g_i = rng.standard_normal((B, K + 1, N)).astype(dtype)
    most = int(np.diff(ptr[::K]).max())
    got = np.full((2, n_in, N), np.nan, dtype)  # task 1; row 0 is another task's
    first, order = np.empty((2, n_in + 1), np.int64), np.empty((2, most), np.int64)
    kernels._input_weight_grad(1, 0, B, K, ptr, ev_idx, ev_val, g_i, got, first, order)
    want = np.zeros((n_in, N), dtype)
    for b, t, m in zip(b_, t_, m_, strict=True):
        want[m] += x[b, t, m] * g_i[b, t + 1]
    assert np.array_equal(got[1], want)
    assert np.isnan(got[0]).all()
