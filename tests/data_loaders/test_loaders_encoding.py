import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_loaders import (
    DVS_N_INPUTS,
    NMNIST_N_INPUTS,
    bin_events,
    dvs_index,
    dvs_n_inputs,
    latency_encode,
    latency_time,
    nmnist_index,
    scale_times,
    shd_channel_jitter,
)

# ------------------------------------------------------------------ latency code


def test_latency_check_values():
    # data-formats.md: x -> T (steps), floored step or dropped
    x = np.array([1.0, 0.5, 0.25, 0.21, 0.201])
    np.testing.assert_allclose(
        latency_time(x), [4.4629, 10.2165, 32.1888, 60.8904, 106.07], atol=6e-5, rtol=1e-4
    )
    steps = latency_encode(np.array([1.0, 0.5, 0.25, 0.21, 0.201, 0.2, 0.1, 0.0]), max_value=1.0)
    np.testing.assert_array_equal(steps, [4, 10, 32, 60, -1, -1, -1, -1])


def test_latency_on_uint8_pixels():
    pixels = np.array([[255, 128, 51, 52, 0]], dtype=np.uint8)
    steps = latency_encode(pixels)
    assert steps.shape == pixels.shape and steps.dtype == np.int64
    x = np.array([255, 128, 52]) / 255
    expected = np.floor(20 * np.log(x / (x - 0.2)))
    expected[expected >= 100] = -1
    # 51/255 is exactly 0.2: at the threshold, no spike; 0 never fires
    np.testing.assert_array_equal(steps[0], [expected[0], expected[1], -1, expected[2], -1])
    assert steps[0, 0] == 4


def test_latency_window_edge():
    # T < n_steps keeps the spike (floor(T) <= n_steps - 1), T >= n_steps drops it
    x = np.array([0.25])  # T = 32.19
    assert latency_encode(x, max_value=1.0, n_steps=33)[0] == 32
    assert latency_encode(x, max_value=1.0, n_steps=32)[0] == -1


@settings(deadline=None, max_examples=30)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_latency_is_monotone(values):
    x = np.sort(np.array(values))[::-1]
    steps = latency_encode(x, max_value=1.0)
    fired = steps[steps >= 0]
    assert np.all(np.diff(fired) >= 0)  # brighter never later
    assert np.all(steps[x <= 0.2] == -1)


# ------------------------------------------------------------------ binning


def test_bin_events_paper_rule():
    dt = 0.5  # exact binary fractions: t / dt is exact
    times = np.array([0.2, 0.25, 0.75, 1.25, 1.25, 49.5, 49.75, 60.0])
    units = np.array([0, 1, 1, 2, 2, 3, 3, 0])
    x = bin_events(times, units, 4, dt, 100)
    assert x.shape == (100, 4) and x.dtype == np.float32
    expected = np.zeros((100, 4), np.float32)
    expected[0, 0] = 1  # 0.4 -> 0
    expected[0, 1] = 1  # 0.5 -> 0 (half to even)
    expected[2, 1] = 1  # 1.5 -> 2
    expected[2, 2] = 1  # 2.5 -> 2, twice: clipped to 1
    expected[99, 3] = 1  # 99 kept; 99.5 -> 100 dropped; 120 dropped
    np.testing.assert_array_equal(x, expected)
    counts = bin_events(times, units, 4, dt, 100, counts=True, dtype=np.int32)
    assert counts[2, 2] == 2 and counts.sum() == 6


def test_bin_events_float16_times_and_out():
    times = np.array([0.5, 1.0, 60000.0], dtype=np.float16)  # * 1e6 would overflow in float16
    out = np.zeros((3, 2, 2))
    bin_events(times, np.array([0, 1, 1]), 2, 0.5, 2, out=out[1])
    np.testing.assert_array_equal(out[1], [[0, 0], [1, 0]])
    assert out[0].sum() == 0 and out[2].sum() == 0
    # step 2 for t=1.0 is outside a 2-step window: dropped
    assert bin_events(times, np.array([0, 1, 1]), 2, 0.5, 3).sum() == 2


def _oracle(times, units, n_units, dt, n_steps):
    x = np.zeros((n_steps, n_units))
    for t, u in zip(times, units, strict=True):
        step = int(np.round(t / dt))
        if step < n_steps:
            x[step, u] += 1
    return x


@settings(deadline=None, max_examples=40)
@given(
    st.lists(st.tuples(st.floats(0, 0.2, allow_subnormal=False), st.integers(0, 6)), max_size=60),
    st.sampled_from([1e-3, 0.5e-3, 2e-3, 0.01]),
    st.integers(1, 120),
)
def test_bin_events_matches_oracle(events, dt, n_steps):
    times = np.array([e[0] for e in events], dtype=np.float64)
    units = np.array([e[1] for e in events], dtype=np.int64)
    oracle = _oracle(times, units, 7, dt, n_steps)
    np.testing.assert_array_equal(bin_events(times, units, 7, dt, n_steps, counts=True), oracle)
    np.testing.assert_array_equal(bin_events(times, units, 7, dt, n_steps), np.minimum(oracle, 1))


@pytest.mark.parametrize(
    "times, units, kwargs, match",
    [
        ([-0.1], [0], {}, "finite and >= 0"),
        ([np.nan], [0], {}, "finite"),
        ([np.inf], [0], {}, "finite"),
        ([0.1], [5], {}, r"\[0, 5\)"),
        ([0.1], [-1], {}, r"\[0, 5\)"),
        ([0.1, 0.2], [0], {}, "differ in length"),
        ([0.1], [0.5], {}, "integers"),
        ([0.1], [0], {"dt": 0.0}, "dt"),
        ([0.1], [0], {"out": np.zeros((3, 3))}, "shape"),
    ],
)
def test_bin_events_rejects(times, units, kwargs, match):
    args = {"n_units": 5, "dt": 1e-3, "n_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        bin_events(np.array(times), np.array(units), **args)


def test_scale_times():
    np.testing.assert_array_equal(
        scale_times(np.array([0.1, 0.25], np.float16), 2.0),
        np.array([0.1, 0.25], np.float16).astype(float) * 2,
    )
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="time-scale"):
            scale_times(np.array([0.1]), bad)


# ------------------------------------------------------------------ SHD jitter


def test_shd_channel_jitter():
    units = np.full(20000, 350)
    jittered = shd_channel_jitter(units, np.random.default_rng(1), merge=1)
    shift = jittered - 350
    assert abs(shift.mean()) < 0.5 and 19 < shift.std() < 21
    again = shd_channel_jitter(units, np.random.default_rng(1), merge=1)
    np.testing.assert_array_equal(jittered, again)
    merged = shd_channel_jitter(np.arange(700), np.random.default_rng(0), sd=0.0)
    np.testing.assert_array_equal(merged, np.arange(700) // 10)
    edges = shd_channel_jitter(np.array([0, 699] * 500), np.random.default_rng(2))
    assert edges.min() >= 0 and edges.max() <= 69
    assert (edges == 69).any() and (edges == 0).any()  # wrapped around modulo 700
    with pytest.raises(ValueError, match="divide"):
        shd_channel_jitter(units, np.random.default_rng(0), merge=3)


# ------------------------------------------------------------------ input indexing


def test_nmnist_index():
    assert NMNIST_N_INPUTS == 2312
    np.testing.assert_array_equal(
        nmnist_index([0, 1, 0, 0, 33], [0, 0, 1, 0, 33], [0, 0, 0, 1, 1]),
        [0, 1, 34, 1156, 2311],
    )
    with pytest.raises(ValueError, match="x must lie"):
        nmnist_index([34], [0], [0])
    with pytest.raises(ValueError, match="p must lie"):
        nmnist_index([0], [0], [2])


def test_dvs_index_and_downsampling():
    assert DVS_N_INPUTS == 32768 == dvs_n_inputs(1)
    np.testing.assert_array_equal(
        dvs_index([0, 1, 0, 0, 127], [0, 0, 1, 0, 127], [0, 0, 0, 1, 1]),
        [0, 1, 128, 16384, 32767],
    )
    assert dvs_n_inputs(4) == 2048
    np.testing.assert_array_equal(
        dvs_index([0, 3, 4, 127], [0, 3, 0, 127], [0, 0, 0, 1], downsample=4),
        [0, 0, 1, 31 + 32 * 31 + 1024],
    )
    with pytest.raises(ValueError, match="divide"):
        dvs_n_inputs(3)
    with pytest.raises(ValueError, match="y must lie"):
        dvs_index([0], [128], [0])
