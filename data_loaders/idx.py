"""Reader of the IDX format (MNIST, Fashion-MNIST), raw or gzip-compressed.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, ndim >= 1
    then        ndim uint32 sizes
    then        prod(sizes) elements, row-major, big-endian

Fashion-MNIST images are ``0x00000803, N, 28, 28`` and labels ``0x00000801, N``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from typing import BinaryIO

import numpy as np

from .errors import ChecksumError, DataFormatError

__all__ = ["IDX_TYPES", "read_idx"]

#: IDX element-type byte -> big-endian numpy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class _HashingReader:
    """Reads from a binary stream, counting and hashing every byte it returns."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.offset = 0
        self.md5 = hashlib.md5()

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        self.offset += len(data)
        self.md5.update(data)
        return data


def _read_exact(reader: _HashingReader, n: int, path: str, what: str) -> bytes:
    """Read exactly ``n`` bytes or raise naming the offset where the file ended."""
    start = reader.offset
    data = reader.read(n)
    if len(data) != n:
        raise DataFormatError(
            path,
            f"byte offset {start} (decompressed)",
            f"{n} bytes of {what}",
            f"only {len(data)} bytes before the end of the file",
        )
    return data


def read_idx(path: str | os.PathLike, *, expected_md5: str | None = None) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed (detected by its content).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.idx``/``-ubyte`` file, optionally gzip-compressed (``.gz``).
    expected_md5 : str, optional
        Hex md5 digest of the DECOMPRESSED content (header and data). When given,
        a mismatch raises :class:`ChecksumError`. Debian re-gzips Fashion-MNIST, so
        only the decompressed digest is stable.

    Returns
    -------
    numpy.ndarray
        Array of shape ``sizes`` in native byte order, with the file's element
        type (``uint8`` for Fashion-MNIST images and labels).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFormatError
        If the magic number, element type or dimension count is wrong, the file is
        truncated, has trailing bytes, or the gzip stream is corrupt.
    ChecksumError
        If ``expected_md5`` is given and does not match.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        try:
            array, digest = _parse_idx(_HashingReader(stream), path)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise DataFormatError(
                path, "gzip stream", "a complete, valid gzip stream", repr(err)
            ) from err
        finally:
            if is_gzip:
                stream.close()
    if expected_md5 is not None and digest != expected_md5.lower():
        raise ChecksumError(path, "md5 of the decompressed content", expected_md5.lower(), digest)
    return array


def _parse_idx(reader: _HashingReader, path: str) -> tuple[np.ndarray, str]:
    """Parse header and data from ``reader``; return the array and the md5 digest."""
    magic = _read_exact(reader, 4, path, "IDX magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DataFormatError(
            path, "byte offset 0", "IDX magic starting with 00 00", f"{magic.hex(' ')}"
        )
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_TYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_TYPES)
        raise DataFormatError(
            path, "byte offset 2", f"an IDX element type in {{{known}}}", f"0x{type_code:02X}"
        )
    if ndim == 0:
        raise DataFormatError(path, "byte offset 3", "a dimension count >= 1", "0")
    shape = tuple(
        int(s) for s in np.frombuffer(_read_exact(reader, 4 * ndim, path, "sizes"), ">u4")
    )
    dtype = IDX_TYPES[type_code]
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    data = _read_exact(reader, n_bytes, path, f"data for shape {shape} of {dtype.name}")
    trailing_at = reader.offset
    trailing = reader.read(1)
    if trailing:
        raise DataFormatError(
            path,
            f"byte offset {trailing_at} (decompressed)",
            f"end of file after {n_bytes} data bytes for shape {shape}",
            "trailing bytes",
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True), reader.md5.hexdigest()
