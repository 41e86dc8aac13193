"""Exceptions raised by the readers when a file does not match its format.

Every reader in this package refuses to return half-read data: a truncated file, a
wrong magic number, a record size that does not divide the file, a missing HDF5 key
or a malformed CSV raises :class:`DataFormatError`, whose message names the file,
the place in it (byte offset, HDF5 key or CSV line) and what was expected there.
"""

from __future__ import annotations

import os

__all__ = ["ChecksumError", "DataFormatError"]


class DataFormatError(ValueError):
    """A data file does not follow its on-disk format.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file.
    where : str
        Where in the file, e.g. ``"byte offset 16"``, ``"key 'spikes/times'"`` or
        ``"line 3"``.
    expected : str
        What the format requires there.
    found : str, optional
        What the file holds instead.

    Attributes
    ----------
    path, where, expected, found
        The parameters, kept for programmatic inspection.
    """

    def __init__(
        self, path: str | os.PathLike, where: str, expected: str, found: str | None = None
    ):
        self.path = os.fspath(path)
        self.where = where
        self.expected = expected
        self.found = found
        message = f"{self.path}: {where}: expected {expected}"
        if found is not None:
            message += f", found {found}"
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.path, self.where, self.expected, self.found))


class ChecksumError(DataFormatError):
    """The md5 digest of a file's (decompressed) content is not the published one."""
