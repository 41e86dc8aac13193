"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) HDF5 files.

Layout (Cramer et al. 2020; written with PyTables, read here with h5py)::

    spikes/times   variable-length float16 arrays, spike times in SECONDS, ascending
    spikes/units   variable-length uint16 arrays, channel 0..699 of each spike
    labels         one integer class per sample (SHD 0..19, SSC 0..34)
    extra/...      speaker, keys, meta_info (not needed here)

Files: ``shd_{train,test}.h5`` and ``ssc_{train,valid,test}.h5`` (downloaded as
``.h5.gz``/``.zip``: decompress first; HDF5 cannot be read through gzip). Times are
widened to float64 before any arithmetic: float16 spacing is about 0.49 ms in
[0.5, 1) s, and ``float16 * 1e6`` overflows to inf.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import h5py
import numpy as np

from .errors import DataFormatError

__all__ = ["SHD_N_UNITS", "SpikeFile", "read_shd"]

SHD_N_UNITS = 700
_KEYS = ("spikes/times", "spikes/units", "labels")


class SpikeFile(Sequence):
    """Lazy, read-only view of an SHD/SSC file: ``file[i] -> (times, units, label)``.

    Only the labels are read when the file is opened; each sample is read from disk
    when indexed, so a multi-GB SSC file is never loaded whole. Use as a context
    manager, or call :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.
    n_units : int, default 700
        Number of channels; units at or above it are an error.

    Attributes
    ----------
    path : str
        The file.
    labels : numpy.ndarray of int64, shape (n_samples,)
        Class of every sample.
    n_units : int
        Number of channels.
    """

    def __init__(self, path: str | os.PathLike, *, n_units: int = SHD_N_UNITS):
        self.path = os.fspath(path)
        self.n_units = int(n_units)
        self._file = None
        self._open()

    def _open(self) -> None:
        path = self.path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SHD/SSC file {path} does not exist")
        with open(path, "rb") as stream:
            magic = stream.read(8)
        if magic[:2] == b"\x1f\x8b" or magic[:4] == b"PK\x03\x04":
            raise DataFormatError(
                path,
                "byte offset 0",
                "an uncompressed HDF5 file (gunzip/unzip it first)",
                "a gzip or zip archive",
            )
        if magic != b"\x89HDF\r\n\x1a\n":
            raise DataFormatError(path, "byte offset 0", "the HDF5 signature", repr(magic))
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise DataFormatError(path, "file", "a readable HDF5 file", repr(err)) from err
        try:
            for key in _KEYS:
                if key not in handle or not isinstance(handle[key], h5py.Dataset):
                    raise DataFormatError(path, f"key {key!r}", "an HDF5 dataset", "none")
            for key in _KEYS[:2]:
                dataset = handle[key]
                if dataset.ndim != 1 or h5py.check_vlen_dtype(dataset.dtype) is None:
                    raise DataFormatError(
                        path,
                        f"key {key!r}",
                        "a 1-d dataset of variable-length arrays",
                        f"shape {dataset.shape}, dtype {dataset.dtype}",
                    )
            labels = handle["labels"][()]
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise DataFormatError(
                    path,
                    "key 'labels'",
                    "a 1-d integer dataset",
                    f"shape {labels.shape}, dtype {labels.dtype}",
                )
            lengths = {key: handle[key].shape[0] for key in _KEYS}
            if len(set(lengths.values())) != 1:
                raise DataFormatError(
                    path,
                    "keys 'spikes/times', 'spikes/units', 'labels'",
                    "equal lengths",
                    str(lengths),
                )
            if labels.size and labels.min() < 0:
                raise DataFormatError(path, "key 'labels'", "labels >= 0", str(labels.min()))
        except BaseException:
            handle.close()
            raise
        self._file = handle
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index):
        """Return sample ``index``.

        Returns
        -------
        times_seconds : numpy.ndarray of float64, shape (n_spikes,)
        units : numpy.ndarray of int64, shape (n_spikes,)
        label : int
        """
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples in {self.path}")
        index %= n
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        try:
            times = np.asarray(self._file["spikes/times"][index], dtype=np.float64)
            units = np.asarray(self._file["spikes/units"][index])
        except OSError as err:
            raise DataFormatError(
                self.path, f"sample {index}", "readable HDF5 data", repr(err)
            ) from err
        where = f"keys 'spikes/times'[{index}] and 'spikes/units'[{index}]"
        if times.shape != units.shape or times.ndim != 1:
            raise DataFormatError(
                self.path, where, "1-d arrays of equal length", f"{times.shape}, {units.shape}"
            )
        if times.size and (not np.all(np.isfinite(times)) or times.min() < 0):
            raise DataFormatError(
                self.path,
                f"key 'spikes/times'[{index}]",
                "finite times >= 0 seconds",
                f"range {times.min()}..{times.max()}",
            )
        if units.size and (
            not np.issubdtype(units.dtype, np.integer)
            or units.min() < 0
            or units.max() >= self.n_units
        ):
            raise DataFormatError(
                self.path,
                f"key 'spikes/units'[{index}]",
                f"integers in 0..{self.n_units - 1}",
                f"{units.dtype} in {units.min()}..{units.max()}",
            )
        return times, units.astype(np.int64), int(self.labels[index])

    def close(self) -> None:
        """Close the HDF5 file; indexing afterwards raises."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getstate__(self):
        return {"path": self.path, "n_units": self.n_units}

    def __setstate__(self, state):
        self.path = state["path"]
        self.n_units = state["n_units"]
        self._file = None
        self._open()

    def __repr__(self) -> str:
        return f"SpikeFile({self.path!r}, {len(self)} samples)"


def read_shd(path: str | os.PathLike, *, n_units: int = SHD_N_UNITS) -> SpikeFile:
    """Open an SHD or SSC HDF5 file as a lazy sequence of samples.

    Parameters
    ----------
    path : str or os.PathLike
        ``shd_{train,test}.h5`` or ``ssc_{train,valid,test}.h5``, uncompressed.
    n_units : int, default 700
        Number of channels.

    Returns
    -------
    SpikeFile
        ``len(f)`` samples; ``f[i] -> (times_seconds float64 (k,), units int64 (k,),
        label int)``; ``f.labels`` holds all labels (int64).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DataFormatError
        If it is compressed, not HDF5, lacks ``spikes/times``, ``spikes/units`` or
        ``labels``, or their lengths differ; when indexed, if a sample's times and
        units differ in length or hold out-of-range values.
    """
    return SpikeFile(path, n_units=n_units)
