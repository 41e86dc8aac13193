import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_writers import (
    random_shd_samples,
    write_fmnist_root,
    write_gesture_root,
    write_nmnist_root,
    write_shd,
)

from data_loaders import (
    DATASET_NAMES,
    SpikeDataset,
    bin_events,
    dvs_index,
    iterate_batches,
    load_dataset,
    nmnist_index,
    read_nmnist,
    stratified_subset,
)


def _check_interface(dataset, n_inputs, n_classes, n_steps):
    assert isinstance(dataset, SpikeDataset)
    assert (dataset.n_inputs, dataset.n_classes, dataset.n_steps) == (n_inputs, n_classes, n_steps)
    assert dataset.labels.dtype == np.int64 and dataset.labels.shape == (len(dataset),)
    assert dataset.labels.min() >= 0 and dataset.labels.max() < n_classes
    x = dataset.dense([0, len(dataset) - 1])
    assert x.shape == (2, n_steps, n_inputs) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    return x


# ------------------------------------------------------------------ each dataset


def test_fmnist(tmp_path):
    root = write_fmnist_root(tmp_path, np.random.default_rng(0))
    dataset = load_dataset("fmnist", "train", root=root)
    _check_interface(dataset, 784, 10, 100)
    assert dataset.name == "fmnist" and len(dataset) == 30
    x = dataset.dense([0])[0]
    assert (x.sum(0) <= 1).all()  # at most one spike per pixel
    coarse = load_dataset("fmnist", "train", root=root, dt=2e-3, n_steps=50)
    np.testing.assert_array_equal(coarse.dense([0])[0].sum(), x.sum())  # same latencies in s


def test_nmnist(tmp_path):
    root = write_nmnist_root(tmp_path, np.random.default_rng(1))
    dataset = load_dataset("nmnist", "test", root=root)
    _check_interface(dataset, 2312, 10, 300)
    assert len(dataset) == 20
    np.testing.assert_array_equal(dataset.labels, np.repeat(np.arange(10), 2))
    events = read_nmnist(root / "Test" / "4" / "00002.bin")
    expected = bin_events(
        events["t"] * 1e-6, nmnist_index(events["x"], events["y"], events["p"]), 2312, 1e-3, 300
    )
    np.testing.assert_array_equal(dataset.dense([9])[0], expected)


def test_dvs_gesture(tmp_path):
    expected = write_gesture_root(tmp_path / "DvsGesture", np.random.default_rng(2))
    dataset = load_dataset("dvs", "train", root=tmp_path, dt=1e-3, n_steps=400)
    kept = [(c, ev, start) for c, ev, start in expected["train"] if c != 11]
    _check_interface(dataset, 32768, 10, 400)
    assert dataset.labels.tolist() == [c - 1 for c, _, _ in kept]
    for i, (_, events, start) in enumerate(kept):
        units = dvs_index(events["x"], events["y"], events["p"])
        want = bin_events((events["t"] - start) * 1e-6, units, 32768, 1e-3, 400)
        np.testing.assert_array_equal(dataset.dense([i])[0], want)
    with_other = load_dataset("dvs", "train", root=tmp_path, classes=range(1, 12), downsample=4)
    assert with_other.n_classes == 11 and with_other.n_inputs == 2048
    assert len(with_other) == len(expected["train"])
    assert with_other.dense([0]).shape == (1, 300, 2048)


@pytest.mark.parametrize(
    "name, splits, n_classes",
    [("shd", ("train", "test"), 20), ("ssc", ("train", "valid", "test"), 35)],
)
def test_heidelberg(tmp_path, name, splits, n_classes):
    rng = np.random.default_rng(3)
    for split in splits:
        write_shd(
            tmp_path / f"{name}_{split}.h5",
            random_shd_samples(rng, 6),
            rng.integers(0, n_classes, 6),
        )
    for split in splits:
        with load_dataset(name, split, root=tmp_path) as dataset:
            _check_interface(dataset, 700, n_classes, 2000)
    times = np.array([0.0, 0.00025, 0.2, 0.99975, 1.0, 1.19], dtype=np.float16)
    write_shd(tmp_path / f"{name}_test.h5", [(times, [0, 1, 2, 3, 4, 5])], [1])
    with load_dataset(name, "test", root=tmp_path) as dataset:
        x = dataset.dense([0])[0]
    steps = np.round(times.astype(np.float64) / 0.5e-3)
    assert x.sum() == np.sum(steps < 2000)
    for unit, step in enumerate(steps):
        if step < 2000:
            assert x[int(step), unit] == 1


def test_shd_paper_augmentation(tmp_path):
    samples = [(np.linspace(0, 0.9, 200).astype(np.float16), np.full(200, 355))]
    write_shd(tmp_path / "shd_train.h5", samples, [5])
    merged = load_dataset("shd", "train", root=tmp_path, merge_channels=10)
    assert merged.n_inputs == 70
    np.testing.assert_array_equal(np.flatnonzero(merged.dense([0])[0].sum(0)), [35])
    jittered = load_dataset(
        "shd", "train", root=tmp_path, jitter_sd=20, merge_channels=10, rng=np.random.default_rng(0)
    )
    a = jittered.dense([0])
    b = jittered.dense([0])
    assert a.shape == (1, 2000, 70) and len(np.flatnonzero(a[0].sum(0))) > 1
    assert not np.array_equal(a, b)  # fresh jitter on every call
    np.testing.assert_array_equal(
        jittered.dense([0], rng=np.random.default_rng(5)),
        jittered.dense([0], rng=np.random.default_rng(5)),
    )
    no_rng = load_dataset("shd", "train", root=tmp_path, jitter_sd=20, merge_channels=10)
    with pytest.raises(ValueError, match="rng"):
        no_rng.dense([0])
    with pytest.raises(ValueError, match="merge_channels"):
        load_dataset("shd", "train", root=tmp_path, merge_channels=3)


def test_procedural_datasets():
    yy = load_dataset("yinyang", "train")
    _check_interface(yy, 5, 3, 60)
    np.testing.assert_array_equal(np.bincount(yy.labels), [1681, 1702, 1617])
    assert (yy.dense([0, 1]).sum(axis=(1, 2)) == 5).all()  # one spike per input
    assert len(load_dataset("yinyang", "valid")) == 1000
    rm_train = load_dataset("randman", "train", n_samples=100)
    rm_test = load_dataset("randman", "test", n_samples=50)
    _check_interface(rm_train, 100, 10, 100)
    assert not np.array_equal(rm_train.dense([0]), rm_test.dense([0]))
    np.testing.assert_array_equal(rm_train.dense([3]).sum(1), np.ones((1, 100)))
    delay = load_dataset("delay", "train", n_samples=20, delay=30)
    _check_interface(delay, 20, 2, 2 * 10 + 30 + 5)
    assert load_dataset("delay", "test", n_samples=10, n_steps=100).n_steps == 100


def test_time_scale_and_counts(tmp_path):
    write_shd(
        tmp_path / "shd_train.h5", [(np.array([0.25, 0.25, 0.5], np.float16), [1, 1, 2])], [0]
    )
    base = load_dataset("shd", "train", root=tmp_path, dt=0.25, n_steps=5)
    np.testing.assert_array_equal(np.argwhere(base.dense([0])[0]), [[1, 1], [2, 2]])
    slow = load_dataset("shd", "train", root=tmp_path, dt=0.25, n_steps=5, time_scale=2.0)
    np.testing.assert_array_equal(np.argwhere(slow.dense([0])[0]), [[2, 1], [4, 2]])
    counts = load_dataset("shd", "train", root=tmp_path, dt=0.25, n_steps=5, counts=True)
    assert counts.dense([0])[0, 1, 1] == 2


def test_load_dataset_errors(tmp_path, monkeypatch):
    assert set(DATASET_NAMES) == {
        "fmnist",
        "nmnist",
        "dvs",
        "shd",
        "ssc",
        "yinyang",
        "randman",
        "delay",
    }
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist", "train")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("shd", "valid", root=tmp_path)
    with pytest.raises(TypeError, match="unknown options"):
        load_dataset("yinyang", "train", colour="red")
    for name in ("nmnist", "dvs", "shd", "ssc"):
        monkeypatch.delenv(f"REFSNN_{name.upper()}_ROOT", raising=False)
        with pytest.raises(FileNotFoundError, match=f"REFSNN_{name.upper()}_ROOT"):
            load_dataset(name, "train")
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_dataset(name, "train", root=tmp_path / "absent")
    (tmp_path / "shd_train.h5.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(FileNotFoundError, match="decompress"):
        load_dataset("shd", "train", root=tmp_path)
    monkeypatch.setenv("REFSNN_SHD_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="decompress"):
        load_dataset("shd", "train")


# ------------------------------------------------------------------ subsets and batches


def test_stratified_subset():
    labels = np.repeat(np.arange(4), [50, 50, 50, 3])
    subset = stratified_subset(labels, 43, np.random.default_rng(0))
    assert subset.dtype == np.int64 and np.all(np.diff(subset) > 0)
    counts = np.bincount(labels[subset], minlength=4)
    assert counts[3] == 3 and counts.sum() == 43 and counts[:3].max() - counts[:3].min() <= 1
    again = stratified_subset(labels, 43, np.random.default_rng(0))
    np.testing.assert_array_equal(subset, again)
    assert stratified_subset(labels, 0, 1).size == 0
    np.testing.assert_array_equal(stratified_subset(labels, len(labels), 1), np.arange(153))
    with pytest.raises(ValueError, match="size"):
        stratified_subset(labels, 154, 0)


@settings(deadline=None, max_examples=30)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=80),
    st.data(),
)
def test_stratified_subset_balanced(labels, data):
    labels = np.array(labels)
    size = data.draw(st.integers(0, len(labels)))
    subset = stratified_subset(labels, size, np.random.default_rng(0))
    assert subset.size == size == np.unique(subset).size
    present, available = np.unique(labels, return_counts=True)
    taken = np.array([np.sum(labels[subset] == c) for c in present])
    # balanced as far as possible: a class below the maximum has given all it has
    short = taken < taken.max()
    assert np.all(taken[short] >= np.minimum(available[short], taken.max() - 1))


def test_iterate_batches():
    dataset = load_dataset("delay", "train", n_samples=23, delay=5)
    batches = list(iterate_batches(dataset, 5, np.random.default_rng(0)))
    assert len(batches) == 4
    for x, y in batches:
        assert x.shape == (5, dataset.n_steps, 20) and x.dtype == np.float32
        assert y.dtype == np.int64
    seen = np.concatenate([y for _, y in batches])
    assert seen.size == 20
    evaluation = list(iterate_batches(dataset, 5, None, drop_last=False, dtype=np.float64))
    assert [len(y) for _, y in evaluation] == [5, 5, 5, 5, 3]
    assert evaluation[0][0].dtype == np.float64
    np.testing.assert_array_equal(np.concatenate([y for _, y in evaluation]), dataset.labels)
    np.testing.assert_array_equal(evaluation[1][0], dataset.dense(np.arange(5, 10), np.float64))
    first = [y for _, y in iterate_batches(dataset, 5, np.random.default_rng(7))]
    second = [y for _, y in iterate_batches(dataset, 5, np.random.default_rng(7))]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    subset = stratified_subset(dataset.labels, 10, np.random.default_rng(1))
    picked = list(
        iterate_batches(dataset, 4, np.random.default_rng(2), indices=subset, drop_last=False)
    )
    assert sum(len(y) for _, y in picked) == 10
    with pytest.raises(IndexError):
        next(iterate_batches(dataset, 4, None, indices=[23]))
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(dataset, 0, None))


def test_subset_view():
    dataset = load_dataset("yinyang", "test")
    view = dataset.subset([5, 2])
    assert len(view) == 2 and view.labels.tolist() == dataset.labels[[5, 2]].tolist()
    np.testing.assert_array_equal(view.dense([0, 1]), dataset.dense([5, 2]))
