"""N-MNIST: one binary event file per sample, in ``Train/<digit>/`` and ``Test/<digit>/``.

File layout (Orchard et al. 2015): no header, 5 bytes per event::

    byte 0      x, 0..33
    byte 1      y, 0..33
    byte 2      bit 7: polarity (1 = ON); bits 6-0: timestamp bits 22-16
    bytes 3-4   timestamp bits 15-0
                (23-bit big-endian timestamp in microseconds)

A record with ``y == 240`` is a timestamp-overflow marker (not present in N-MNIST
itself, kept for the sibling datasets in this format): it is removed and adds 2**13
microseconds to the times of all later events, as Orchard's reference reader does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DataFormatError

__all__ = ["EVENT_DTYPE", "list_nmnist", "read_nmnist"]

#: Structured dtype of decoded address events (N-MNIST and DVS128): t in microseconds.
EVENT_DTYPE = np.dtype([("x", np.uint16), ("y", np.uint16), ("p", np.uint8), ("t", np.int64)])

_RECORD = 5
_OVERFLOW_Y = 240
_OVERFLOW_US = 1 << 13
_SPLIT_DIRS = {"train": "Train", "test": "Test"}
_HOW_TO_GET = (
    "download Train.zip and Test.zip of N-MNIST (Orchard et al. 2015, "
    "www.garrickorchard.com/datasets/n-mnist) and unzip both into the root directory, "
    "giving <root>/Train/<digit>/<n>.bin and <root>/Test/<digit>/<n>.bin"
)


def read_nmnist(path: str | os.PathLike, *, sensor_size: int = 34) -> np.ndarray:
    """Read one N-MNIST ``.bin`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The event file.
    sensor_size : int, default 34
        Width and height of the sensor; addresses must be below it.

    Returns
    -------
    numpy.ndarray of :data:`EVENT_DTYPE`, shape (n_events,)
        Fields ``x``, ``y`` (pixel), ``p`` (1 = ON, 0 = OFF), ``t`` (microseconds,
        integer), in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFormatError
        If the length is not a multiple of 5 bytes or an address is off the sensor.
    """
    path = os.fspath(path)
    with open(path, "rb") as stream:
        raw = stream.read()
    if len(raw) % _RECORD:
        whole = len(raw) - len(raw) % _RECORD
        raise DataFormatError(
            path,
            f"byte offset {whole}",
            f"a length that is a multiple of {_RECORD} bytes (one event each)",
            f"{len(raw)} bytes, a partial event of {len(raw) - whole} bytes",
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD).astype(np.int64)
    x, y = records[:, 0], records[:, 1]
    p = records[:, 2] >> 7
    t = ((records[:, 2] & 0x7F) << 16) | (records[:, 3] << 8) | records[:, 4]
    overflow = y == _OVERFLOW_Y
    if overflow.any():
        t = t + _OVERFLOW_US * np.cumsum(overflow)
        keep = ~overflow
        x, y, p, t = x[keep], y[keep], p[keep], t[keep]
        original_index = np.flatnonzero(keep)
    else:
        original_index = None
    bad = (x >= sensor_size) | (y >= sensor_size)
    if bad.any():
        first = int(np.argmax(bad))
        record = first if original_index is None else int(original_index[first])
        raise DataFormatError(
            path,
            f"byte offset {_RECORD * record} (event {record})",
            f"x and y in 0..{sensor_size - 1}",
            f"x={x[first]}, y={y[first]}",
        )
    events = np.empty(x.size, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def _sample_key(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.name)


def list_nmnist(root: str | os.PathLike, split: str) -> tuple[list[Path], np.ndarray]:
    """List the samples of one N-MNIST split without reading them.

    Parameters
    ----------
    root : str or os.PathLike
        Directory holding ``Train/`` and ``Test/``.
    split : {"train", "test"}
        Which folder to list.

    Returns
    -------
    paths : list of pathlib.Path, length n
        The ``.bin`` files, ordered by digit, then by numeric file name.
    labels : numpy.ndarray of int64, shape (n,)
        The digit named by each file's folder.

    Raises
    ------
    FileNotFoundError
        If the split folder is missing; the message says how to get the data.
    DataFormatError
        If the split folder holds a sub-folder that is not a digit 0..9, or no
        ``.bin`` file at all.
    """
    if split not in _SPLIT_DIRS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(root) / _SPLIT_DIRS[split]
    if not directory.is_dir():
        raise FileNotFoundError(f"N-MNIST folder {directory} does not exist; {_HOW_TO_GET}")
    paths: list[Path] = []
    labels: list[int] = []
    for sub in sorted(directory.iterdir()):
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        if sub.name not in {str(d) for d in range(10)}:
            raise DataFormatError(sub, "folder name", "a digit folder 0..9", repr(sub.name))
        files = sorted((f for f in sub.iterdir() if f.suffix == ".bin"), key=_sample_key)
        paths.extend(files)
        labels.extend([int(sub.name)] * len(files))
    if not paths:
        raise DataFormatError(directory, "contents", "<digit>/<n>.bin files", "none")
    return paths, np.asarray(labels, dtype=np.int64)
