"""Bad input raises a ValueError that names the argument, the bad value and what is allowed."""

import numpy as np
import pytest

import refsnn


@pytest.fixture
def good():
    rng = np.random.default_rng(0)
    p = refsnn.random_params(4, 3, 2, rng)
    x = (rng.random((2, 6, 4)) < 0.3).astype(np.float64)
    return p, x, np.array([0, 1])


def call(p, x, y, conv=None):
    return refsnn.loss_and_grad(p, x, y, conv)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p, x, y: (p, x[0], y),
         r"x must have shape \(batch, time, n_in\), got shape \(6, 4\)"),
        (lambda p, x, y: (p, x[:, :, :3], y), r"x has 3 inputs .* params.w_in expects 4"),
        (lambda p, x, y: (p, x.astype(np.float32), y),
         r"x has dtype float32 but the parameters are float64"),
        (lambda p, x, y: (p, x[:0], y[:0]), r"empty batch"),
        (lambda p, x, y: (p, x.tolist(), y), r"x must be a numpy array"),
        (lambda p, x, y: (p, np.where(x > 0, np.nan, x), y),
         r"x contains a non-finite value nan at index"),
        (lambda p, x, y: (p, np.where(x > 0, np.inf, x), y), r"x contains a non-finite value inf"),
        (lambda p, x, y: (p, x, np.array([0, 2])),
         r"labels contains 2; labels must lie in \[0, 2\)"),
        (lambda p, x, y: (p, x, np.array([-1, 0])), r"labels contains -1"),
        (lambda p, x, y: (p, x, np.array([0, 1, 1])), r"labels must have shape \(2,\)"),
        (lambda p, x, y: (p, x, np.array([0.0, 1.0])), r"labels must be integers"),
        (lambda p, x, y: (p.replace(decay_mem=np.array([0.5, 1.0, 0.5])), x, y),
         r"params.decay_mem\[1\] = 1.0 is outside \(0, 1\)"),
        (lambda p, x, y: (p.replace(decay_syn_out=np.array([0.0, 0.5])), x, y),
         r"params.decay_syn_out\[0\] = 0.0 is outside \(0, 1\)"),
        (lambda p, x, y: (p.replace(threshold=np.array([1.0, np.nan, 1.0])), x, y),
         r"params.threshold contains a non-finite value \(nan at flat index 1\)"),
        (lambda p, x, y: (p.replace(w_rec=np.zeros((3, 4))), x, y),
         r"params.w_rec has shape \(3, 4\); expected \(3, 3\)"),
        (lambda p, x, y: (p.replace(v_rest=np.zeros(2)), x, y),
         r"params.v_rest has shape \(2,\); expected \(3,\)"),
        (lambda p, x, y: (p.replace(w_out=p.w_out.astype(np.float32)), x, y),
         r"params.w_out has dtype float32 but params.w_in has float64"),
        (lambda p, x, y: (p.astype(np.float16), x.astype(np.float16), y),
         r"allowed: float32 or float64"),
        (lambda p, x, y: (p.replace(w_in=[[1.0]]), x, y), r"params.w_in must be a numpy array"),
        (lambda p, x, y: (p.as_dict(), x, y), r"params must be a refsnn.Params"),
    ],
)
def test_bad_arguments_raise_value_error(good, change, match):
    p, x, y = change(*good)
    with pytest.raises(ValueError, match=match):
        call(p, x, y)


def test_too_few_steps_for_skip_last_input(good):
    p, x, _ = good
    with pytest.raises(ValueError, match=r"x has 1 time steps .* at least 2 needed"):
        refsnn.forward(p, x[:, :1], "paper")


def test_bad_conventions():
    with pytest.raises(ValueError, match=r"unknown conventions preset 'papr'"):
        refsnn.Conventions.preset("papr")
    with pytest.raises(ValueError, match=r"Conventions.reset must be one of .*got 'zero'"):
        refsnn.Conventions(reset="zero")
    with pytest.raises(ValueError, match=r"recurrent_delay must be an int >= 1, got 0"):
        refsnn.Conventions(recurrent_delay=0)
    with pytest.raises(ValueError, match=r"surrogate_scale must be a finite float > 0, got -1"):
        refsnn.Conventions(surrogate_scale=-1)
    with pytest.raises(ValueError, match=r"spike_fn='sigmoid' .* set surrogate='sigmoid'"):
        refsnn.Conventions(spike_fn="sigmoid", surrogate="arctan")
    with pytest.raises(ValueError, match=r"has no field\(s\) \['resett'\]"):
        refsnn.Conventions().replace(resett="none")
    with pytest.raises(ValueError, match=r"reset_detached must be a bool, got 1"):
        refsnn.Conventions(reset_detached=1)
    with pytest.raises(ValueError, match=r"conventions must be a refsnn.Conventions"):
        refsnn.forward(refsnn.random_params(1, 1, 1, np.random.default_rng(0)),
                       np.zeros((1, 2, 1)), 3)


def test_overflow_is_an_error_not_a_silent_nan(good):
    p, x, y = good
    huge = p.replace(w_in=np.full_like(p.w_in, 1e308))
    with pytest.raises(FloatingPointError, match=r"overflowed \(i is not finite\)"):
        call(huge, np.ones_like(x), y)
    with pytest.raises(FloatingPointError, match="overflowed"):
        refsnn.forward(huge, np.ones_like(x))
    # a finite forward pass whose adjoint overflows: no spikes, but the surrogate carries
    # the adjoint through w_rec = 1e30 at every step (float32), to g_i and so to w_in
    quiet = p.astype(np.float32).replace(w_in=np.full((4, 3), 1e-3, np.float32),
                                         w_rec=np.full((3, 3), 1e30, np.float32))
    ones = np.ones((2, 12, 4), np.float32)
    last = refsnn.Conventions(reduction="last")
    assert refsnn.forward(quiet, ones, last).spikes.sum() == 0
    with pytest.raises(FloatingPointError, match="the gradient of w_in overflowed"):
        call(quiet, ones, y, last)
    big32 = p.astype(np.float32).replace(w_out=np.full((3, 2), 3e38, np.float32))
    with pytest.raises(FloatingPointError, match="overflowed"):
        call(big32, np.ones_like(x, dtype=np.float32), y, refsnn.Conventions(reduction="count"))
