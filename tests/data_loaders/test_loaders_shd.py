import gzip
import pickle

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_writers import random_shd_samples, write_shd

from data_loaders import DataFormatError, SpikeFile, read_shd


def test_fixture_layout_is_pytables_like(tmp_path):
    path = write_shd(
        tmp_path / "shd_train.h5", random_shd_samples(np.random.default_rng(0), 3), [0, 1, 19]
    )
    with h5py.File(path, "r") as f:
        times = f["spikes/times"]
        assert h5py.check_vlen_dtype(times.dtype) == np.dtype("<f2")
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.dtype("<u2")
        for key in ("spikes/times", "spikes/units"):
            assert f[key].attrs["CLASS"] == b"VLARRAY"
            assert f[key].attrs["VERSION"] == b"1.4"
            assert f[key].attrs["TITLE"] == b""


def test_read_samples(tmp_path):
    times = np.array([0.0, 0.5, 0.50049, 1.0, 1.19], dtype=np.float16)
    samples = [(times, [0, 699, 3, 3, 10]), ([], [])]
    path = write_shd(tmp_path / "shd_test.h5", samples, [7, 2])
    with read_shd(path) as spikes:
        assert len(spikes) == 2 and isinstance(spikes, SpikeFile)
        np.testing.assert_array_equal(spikes.labels, [7, 2])
        assert spikes.labels.dtype == np.int64
        t, u, label = spikes[0]
        assert t.dtype == np.float64 and u.dtype == np.int64 and label == 7
        np.testing.assert_array_equal(t, times.astype(np.float64))
        np.testing.assert_array_equal(u, [0, 699, 3, 3, 10])
        assert np.isfinite(t * 1e6).all()  # widened before scaling: no float16 overflow
        t, u, label = spikes[-1]
        assert t.size == 0 and u.size == 0 and label == 2
        assert len(spikes[0:2]) == 2
        with pytest.raises(IndexError):
            spikes[2]
    with pytest.raises(ValueError, match="closed"):
        spikes[0]


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6))
def test_round_trip(tmp_path_factory, seed, n):
    rng = np.random.default_rng(seed)
    samples = random_shd_samples(rng, n)
    labels = rng.integers(0, 35, n)
    path = write_shd(tmp_path_factory.mktemp("shd") / "ssc_valid.h5", samples, labels)
    spikes = read_shd(path)
    assert len(spikes) == n
    for (t, u), (rt, ru, rl), label in zip(samples, spikes, labels, strict=True):
        np.testing.assert_array_equal(rt, np.asarray(t, np.float16).astype(np.float64))
        np.testing.assert_array_equal(ru, u)
        assert rl == label
    spikes.close()


def test_pickles_by_path(tmp_path):
    path = write_shd(tmp_path / "shd_train.h5", [([0.1], [4])], [3])
    spikes = read_shd(path)
    clone = pickle.loads(pickle.dumps(spikes))
    assert clone[0][2] == 3 and clone[0][1].tolist() == [4]
    spikes.close()
    clone.close()


def _edit(path, action):
    with h5py.File(path, "a") as f:
        action(f)
    return path


def _expect(path, *fragments):
    with pytest.raises(DataFormatError) as info:
        read_shd(path)
    for fragment in [str(path), *fragments]:
        assert fragment in str(info.value), str(info.value)


def test_bad_files(tmp_path):
    samples = random_shd_samples(np.random.default_rng(1), 3)

    def fresh(name):
        return write_shd(tmp_path / name, samples, [0, 1, 2])

    for key in ("spikes/times", "spikes/units", "labels"):
        _expect(
            _edit(fresh(f"no_{key.replace('/', '_')}.h5"), lambda f, k=key: f.__delitem__(k)),
            f"key {key!r}",
            "an HDF5 dataset",
        )

    def flat_times(f):
        del f["spikes/times"]
        f["spikes/times"] = np.zeros((3, 4), np.float16)

    _expect(_edit(fresh("flat.h5"), flat_times), "'spikes/times'", "variable-length")

    def short_labels(f):
        del f["labels"]
        f["labels"] = np.array([0, 1])

    _expect(_edit(fresh("short.h5"), short_labels), "equal lengths")

    def float_labels(f):
        del f["labels"]
        f["labels"] = np.array([0.0, 1.0, 2.0])

    _expect(_edit(fresh("floatlabels.h5"), float_labels), "'labels'", "integer")

    packed = tmp_path / "shd_train.h5.gz"
    packed.write_bytes(gzip.compress(fresh("plain.h5").read_bytes()))
    _expect(packed, "byte offset 0", "gunzip")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    _expect(text, "HDF5 signature")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(fresh("whole.h5").read_bytes()[:600])
    with pytest.raises(DataFormatError, match="cut.h5"):
        read_shd(cut)[0]
    with pytest.raises(FileNotFoundError):
        read_shd(tmp_path / "absent.h5")


def test_bad_sample_raises_on_access_only(tmp_path):
    samples = [
        ([0.1, 0.2], [1, 2]),
        ([0.1, 0.2], [1]),
        ([0.3], [700]),
        ([np.inf], [1]),
        ([-0.5], [1]),
    ]
    path = write_shd(tmp_path / "lazy.h5", samples, [0, 1, 2, 3, 4])
    spikes = read_shd(path)  # opening reads only the labels
    assert spikes[0][2] == 0
    with pytest.raises(DataFormatError, match=r"lazy\.h5.*\[1\].*equal length"):
        spikes[1]
    with pytest.raises(DataFormatError, match=r"'spikes/units'\[2\].*0\.\.699"):
        spikes[2]
    with pytest.raises(DataFormatError, match=r"'spikes/times'\[3\].*finite"):
        spikes[3]
    with pytest.raises(DataFormatError, match=r"'spikes/times'\[4\].*>= 0"):
        spikes[4]
    spikes.close()
