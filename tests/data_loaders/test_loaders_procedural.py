import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_loaders import (
    YIN_YANG_SPLITS,
    delayed_memory,
    randman,
    yin_yang,
    yin_yang_class,
    yin_yang_encode,
)

# ------------------------------------------------------------------ Yin-Yang


def test_yin_yang_published_train_split():
    n, seed = YIN_YANG_SPLITS["train"]
    features, labels = yin_yang(n, seed)
    assert features.shape == (5000, 4) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [1681, 1702, 1617])
    np.testing.assert_allclose(features[0, :2], [0.680307538588, 0.450499251970], atol=1e-12)
    assert labels[0] == 2
    np.testing.assert_allclose(features[:, 2:], 1 - features[:, :2])


@pytest.mark.parametrize("split", ["valid", "test"])
def test_yin_yang_other_splits_are_consistent(split):
    n, seed = YIN_YANG_SPLITS[split]
    features, labels = yin_yang(n, seed)
    assert features.shape == (1000, 4)
    x, y = features[:, 0], features[:, 1]
    assert np.all((x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25)
    assert [yin_yang_class(a, b) for a, b in zip(x, y, strict=True)] == labels.tolist()
    assert np.all(np.bincount(labels) > 250)
    again, _ = yin_yang(n, seed)
    np.testing.assert_array_equal(features, again)
    assert not np.array_equal(features, yin_yang(n, seed + 100)[0])


def test_yin_yang_regions():
    assert yin_yang_class(0.75, 0.5) == 2 and yin_yang_class(0.25, 0.5) == 2  # dots
    assert yin_yang_class(0.25, 0.7) == 1  # d_l = 0.2: yin ring around the left dot
    assert yin_yang_class(0.5, 0.95) == 1  # upper half, far from the right dot
    assert yin_yang_class(0.5, 0.05) == 0  # lower half, far from both dots


def test_yin_yang_with_generator():
    a, la = yin_yang(50, np.random.default_rng(3))
    b, lb = yin_yang(50, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)


def test_yin_yang_encode():
    features = np.array([[0.0, 1.0, 1.0, 0.0], [0.5, 0.25, 0.5, 0.75]])
    times = yin_yang_encode(features, t_early=0.01, t_late=0.03, bias_time=0.02)
    np.testing.assert_allclose(
        times, [[0.01, 0.03, 0.03, 0.01, 0.02], [0.02, 0.015, 0.02, 0.025, 0.02]]
    )
    assert yin_yang_encode(features, bias_time=None).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        yin_yang_encode(features + 1)


# ------------------------------------------------------------------ Randman


def test_randman_timing_only():
    steps, units, labels = randman(200, n_classes=4, n_units=20, n_steps=50, n_spikes=2, seed=1)
    assert steps.shape == (200, 40) and units.tolist() == list(range(20)) * 2
    np.testing.assert_array_equal(np.bincount(labels), [50] * 4)
    assert steps.min() >= 0 and steps.max() <= 49
    # the same number of spikes per unit in every sample, whatever the class
    per_unit = np.stack([np.bincount(units, minlength=20) for _ in range(len(steps))])
    assert np.all(per_unit == 2)


def test_randman_task_fixed_by_seed_samples_by_sample_rng():
    kwargs = dict(n_classes=3, n_units=10, n_steps=100, seed=7)
    a = randman(60, sample_rng=1, **kwargs)
    b = randman(60, sample_rng=1, **kwargs)
    c = randman(60, sample_rng=2, **kwargs)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0])
    # the class is learnable from timing: 1-nearest neighbour across two sample sets
    distance = ((c[0][:, None, :] - a[0][None, :, :]) ** 2).sum(-1)
    accuracy = np.mean(a[2][distance.argmin(1)] == c[2])
    assert accuracy > 0.8


@settings(deadline=None, max_examples=10)
@given(st.integers(1, 3), st.floats(1.5, 4.0), st.integers(0, 2**31))
def test_randman_properties(dim, alpha, seed):
    steps, _, labels = randman(
        30, n_classes=3, n_units=5, n_steps=20, dim_manifold=dim, alpha=alpha, seed=seed
    )
    assert np.all(np.isfinite(steps)) and steps.min() >= 0 and steps.max() <= 19
    assert sorted(np.bincount(labels).tolist()) == [10, 10, 10]


def test_randman_requires_explicit_seed():
    with pytest.raises(ValueError, match="seed"):
        randman(10, seed=None)


# ------------------------------------------------------------------ delayed memory


def test_delayed_memory_structure():
    spikes, labels = delayed_memory(
        40,
        n_classes=3,
        delay=7,
        cue_steps=2,
        tail_steps=1,
        channels_per_class=4,
        p_signal=1.0,
        p_noise=0.0,
        seed=0,
    )
    assert spikes.shape == (40, 2 * 2 + 7 + 1, 12) and spikes.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [14, 13, 13])
    groups = spikes.reshape(40, 12, 3, 4).sum(-1)
    cue = groups[:, :2].sum(1).argmax(1)
    probe = groups[:, 9:11].sum(1).argmax(1)
    np.testing.assert_array_equal((cue + probe) % 3, labels)
    assert groups[:, 2:9].sum() == 0 and groups[:, 11:].sum() == 0  # silent delay, tail


def _leaky_readout_accuracy(spikes, labels, tau_steps, channels_per_class):
    """Best threshold on max_t max_group of a leaky trace of each group's spike count."""
    decay = np.exp(-1.0 / tau_steps)
    drive = spikes.reshape(*spikes.shape[:2], -1, channels_per_class).sum(-1).astype(float)
    trace = np.zeros(drive[:, 0].shape)
    peak = np.zeros(len(spikes))
    for t in range(drive.shape[1]):
        trace = decay * trace + drive[:, t]
        peak = np.maximum(peak, trace.max(1))
    best = 0.0
    for threshold in np.unique(peak):
        guess = (peak < threshold).astype(int)  # match (0) piles up twice: higher peak
        best = max(best, np.mean(guess == labels), np.mean(guess != labels))
    return best


def test_delay_needs_long_time_constants():
    spikes, labels = delayed_memory(400, delay=50, seed=3)
    assert spikes.shape == (400, 75, 20)
    short = _leaky_readout_accuracy(spikes, labels, tau_steps=3.0, channels_per_class=10)
    long = _leaky_readout_accuracy(spikes, labels, tau_steps=200.0, channels_per_class=10)
    assert short < 0.65
    assert long > 0.95


def test_delayed_memory_rejects():
    with pytest.raises(ValueError, match="n_classes"):
        delayed_memory(4, n_classes=1)
    with pytest.raises(ValueError, match="probabilities"):
        delayed_memory(4, p_signal=2.0)
