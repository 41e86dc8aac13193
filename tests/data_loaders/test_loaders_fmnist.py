from pathlib import Path

import numpy as np
import pytest
from loader_writers import write_fmnist_root, write_idx

from data_loaders import (
    FMNIST_DEFAULT_ROOT,
    FMNIST_ENV_VAR,
    ChecksumError,
    DataFormatError,
    fashion_mnist_root,
    latency_encode,
    load_dataset,
    load_fashion_mnist,
)

REAL = Path(FMNIST_DEFAULT_ROOT)
needs_real = pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"{REAL} absent: apt-get install -y dataset-fashion-mnist",
)


@needs_real
def test_real_fashion_mnist_counts_and_md5():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_fashion_mnist(split, REAL, verify_md5=True)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)


@needs_real
def test_real_test_set_latency_spike_count():
    dataset = load_dataset("fmnist", "test", root=REAL)
    assert (dataset.n_inputs, dataset.n_steps, dataset.n_classes) == (784, 100, 10)
    images, _ = load_fashion_mnist("test", REAL)
    steps = latency_encode(images.reshape(len(images), -1))
    spikes_per_image = (steps >= 0).sum(axis=1).mean()
    assert spikes_per_image == pytest.approx(333.1412)  # data-formats.md: about 333
    x = dataset.dense(np.arange(50))
    np.testing.assert_array_equal(x.sum(axis=(1, 2)), (steps[:50] >= 0).sum(axis=1))


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)
    assert fashion_mnist_root() == REAL
    monkeypatch.setenv(FMNIST_ENV_VAR, str(tmp_path))
    assert fashion_mnist_root() == tmp_path
    assert fashion_mnist_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_fixture_root_via_argument_and_env(monkeypatch, tmp_path):
    root = write_fmnist_root(tmp_path / "fm", np.random.default_rng(0))
    images, labels = load_fashion_mnist("train", root)
    assert images.shape == (30, 28, 28)
    np.testing.assert_array_equal(labels, np.arange(30) % 10)
    monkeypatch.setenv(FMNIST_ENV_VAR, str(root))
    dataset = load_dataset("fmnist", "test")
    assert len(dataset) == 20
    with pytest.raises(ChecksumError, match="md5"):
        load_fashion_mnist("test", root, verify_md5=True)


def test_raw_files_accepted(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 9], np.uint8))
    images, labels = load_fashion_mnist("test", tmp_path)
    assert images.shape == (2, 28, 28)
    np.testing.assert_array_equal(labels, [3, 9])


def test_missing_directory_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fmnist", "train", root=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_fashion_mnist("test", tmp_path)


def test_inconsistent_files(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 9, 1], np.uint8))
    with pytest.raises(DataFormatError, match="t10k-labels.*length 2"):
        load_fashion_mnist("test", tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 10], np.uint8))
    with pytest.raises(DataFormatError, match="labels in 0..9"):
        load_fashion_mnist("test", tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 27, 28), np.uint8))
    with pytest.raises(DataFormatError, match=r"t10k-images.*\(n, 28, 28\)"):
        load_fashion_mnist("test", tmp_path)
