"""Fashion-MNIST from its IDX files, by default from Debian's ``dataset-fashion-mnist``.

The root directory is chosen, in order, from the ``root`` argument, the environment
variable ``REFSNN_FMNIST_ROOT``, and :data:`FMNIST_DEFAULT_ROOT`
(``/usr/share/datasets/fashion-mnist``, where ``apt-get install -y
dataset-fashion-mnist`` puts the original files). Each of the four files may be
gzip-compressed (``*.gz``, as Debian ships them) or raw.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DataFormatError
from .idx import read_idx

__all__ = [
    "FMNIST_CLASSES",
    "FMNIST_DEFAULT_ROOT",
    "FMNIST_ENV_VAR",
    "FMNIST_MD5",
    "fashion_mnist_root",
    "load_fashion_mnist",
]

FMNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FMNIST_ENV_VAR = "REFSNN_FMNIST_ROOT"
FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: md5 of the DECOMPRESSED files, keyed by file stem.
FMNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

_PREFIX = {"train": "train", "test": "t10k"}

_HOW_TO_GET = (
    "install Debian's copy with `apt-get install -y dataset-fashion-mnist` (files land in "
    f"{FMNIST_DEFAULT_ROOT}), or download the four *-ubyte.gz files of "
    "zalandoresearch/fashion-mnist and pass root=... or set "
    f"{FMNIST_ENV_VAR}=/path/to/dir"
)


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the Fashion-MNIST directory: argument, then env var, then Debian's path.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Explicit directory; wins over the environment.

    Returns
    -------
    pathlib.Path
        The chosen directory (not checked for existence).
    """
    if root is not None:
        return Path(root)
    from_env = os.environ.get(FMNIST_ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path(FMNIST_DEFAULT_ROOT)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{directory}: neither {stem}.gz nor {stem} found; to get Fashion-MNIST, {_HOW_TO_GET}"
    )


def load_fashion_mnist(
    split: str, root: str | os.PathLike | None = None, *, verify_md5: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split.

    Parameters
    ----------
    split : {"train", "test"}
        ``train`` reads ``train-*`` (60000 images), ``test`` reads ``t10k-*`` (10000).
    root : str or os.PathLike, optional
        Directory holding the IDX files; see :func:`fashion_mnist_root`.
    verify_md5 : bool, default False
        Check the md5 of the decompressed files against :data:`FMNIST_MD5`. Only
        meaningful for the original files: small test fixtures will not match.

    Returns
    -------
    images : numpy.ndarray of uint8, shape (n, 28, 28)
        Pixel intensities 0..255.
    labels : numpy.ndarray of int64, shape (n,)
        Classes 0..9, named in :data:`FMNIST_CLASSES`.

    Raises
    ------
    FileNotFoundError
        If the directory or a file is missing; the message says how to get the data.
    DataFormatError
        If a file is malformed, or images and labels disagree in shape or count.
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = fashion_mnist_root(root)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST directory {directory} does not exist; to get it, {_HOW_TO_GET}"
        )
    prefix = _PREFIX[split]
    image_stem = f"{prefix}-images-idx3-ubyte"
    label_stem = f"{prefix}-labels-idx1-ubyte"
    image_path = _find(directory, image_stem)
    label_path = _find(directory, label_stem)
    images = read_idx(image_path, expected_md5=FMNIST_MD5[image_stem] if verify_md5 else None)
    labels = read_idx(label_path, expected_md5=FMNIST_MD5[label_stem] if verify_md5 else None)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFormatError(
            image_path,
            "IDX header",
            "uint8 images of shape (n, 28, 28)",
            f"{images.dtype} of shape {images.shape}",
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFormatError(
            label_path,
            "IDX header",
            f"a 1-d label array of length {images.shape[0]} (the image count)",
            f"shape {labels.shape}",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FMNIST_CLASSES)):
        raise DataFormatError(
            label_path, "data", "labels in 0..9", f"range {labels.min()}..{labels.max()}"
        )
    return images, labels.astype(np.int64)
