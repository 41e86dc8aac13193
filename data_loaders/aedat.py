r"""AEDAT 3.1 event files and the DVS128 Gesture dataset built on them.

File layout (iniVation, AEDAT 3.1)::

    header   ASCII lines ending in \r\n, from "#!AER-DAT3.1" to "#!END-HEADER\r\n"
             inclusive. The header ends exactly there: the first data byte may itself
             be 0x23 ('#').
    packets  to the end of the file, each a 28-byte little-endian header
                 int16 eventType      1 = polarity
                 int16 eventSource
                 int32 eventSize      bytes per event (8 for polarity)
                 int32 eventTSOffset  offset of the timestamp in an event (4)
                 int32 eventTSOverflow
                 int32 eventCapacity
                 int32 eventNumber
                 int32 eventValid
             followed by eventCapacity * eventSize bytes of events.
    polarity event  uint32 data, int32 timestamp (microseconds)
             data bit 0 = valid, bit 1 = polarity, bits 2-16 = y, bits 17-31 = x
             full time = (eventTSOverflow << 31) | timestamp

Packets of other types are skipped; events whose valid bit is 0 are dropped. The
reader streams: it holds one packet (or a bounded chunk of one) at a time, so a
multi-GB recording is never read into memory at once.

DVS128 Gesture (Amir et al. 2017): ``userNN_<lighting>.aedat`` with
``userNN_<lighting>_labels.csv`` (header ``class,startTime_usec,endTime_usec``;
classes 1..11, 11 = "other gestures"), and the trial lists ``trials_to_train.txt``
and ``trials_to_test.txt``. A sample is the events with ``start <= t < end`` of one
CSV row, times re-zeroed to ``start``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DataFormatError
from .nmnist import EVENT_DTYPE

__all__ = [
    "GESTURE_CLASSES",
    "PACKET_INDEX_DTYPE",
    "index_aedat31",
    "iter_aedat31",
    "list_gesture",
    "read_aedat31",
    "read_gesture_labels",
    "read_trial_list",
]

GESTURE_CLASSES = (
    "hand clap",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)

#: One row per polarity packet that holds valid events: byte offset of the packet
#: header and the first/last full timestamp (microseconds) of its valid events.
PACKET_INDEX_DTYPE = np.dtype([("offset", np.int64), ("t_first", np.int64), ("t_last", np.int64)])

_FIRST_LINE = b"#!AER-DAT3.1"
_END_HEADER = b"#!END-HEADER\r\n"
_MAX_HEADER_BYTES = 1 << 20
_PACKET_HEADER = struct.Struct("<hhiiiiii")
_POLARITY = 1
_POLARITY_SIZE = 8
_POLARITY_TS_OFFSET = 4
_CHUNK_EVENTS = 1 << 16  # events decoded at a time: bounds memory to 512 KiB of raw data
_RAW_POLARITY = np.dtype([("data", "<u4"), ("ts", "<i4")])
_CSV_HEADER = ["class", "startTime_usec", "endTime_usec"]
_HOW_TO_GET = (
    "download DvsGesture.tar.gz (IBM DVS128 Gesture dataset, research.ibm.com/dvsgesture) "
    "and unpack it; pass the DvsGesture folder (holding trials_to_train.txt, "
    "trials_to_test.txt, user*.aedat and user*_labels.csv) or its parent as root"
)


def _read_header(stream, path: str) -> int:
    """Consume the ASCII header; return the byte offset of the first packet."""
    first = stream.readline(len(_FIRST_LINE) + 64)
    if not first.startswith(_FIRST_LINE):
        raise DataFormatError(path, "byte offset 0", "first line '#!AER-DAT3.1'", repr(first[:32]))
    offset = len(first)
    while True:
        line = stream.readline(_MAX_HEADER_BYTES)
        if not line:
            raise DataFormatError(
                path, f"byte offset {offset}", "header line '#!END-HEADER'", "end of file"
            )
        if line == _END_HEADER:
            return offset + len(line)
        if not line.startswith(b"#"):
            raise DataFormatError(
                path,
                f"byte offset {offset}",
                "header lines starting with '#' until '#!END-HEADER\\r\\n'",
                repr(line[:40]),
            )
        offset += len(line)
        if offset > _MAX_HEADER_BYTES:
            raise DataFormatError(
                path, "header", f"'#!END-HEADER' within {_MAX_HEADER_BYTES} bytes", "none"
            )


def _packets(stream, path: str, offset: int, file_size: int) -> Iterator[tuple[int, tuple]]:
    """Yield ``(offset, header_fields)`` for each packet; the stream is left after the header.

    The caller must consume or skip the payload (``capacity * size`` bytes) before
    asking for the next packet; this generator seeks to the next header itself.
    """
    while offset < file_size:
        stream.seek(offset)
        raw = stream.read(_PACKET_HEADER.size)
        if len(raw) < _PACKET_HEADER.size:
            raise DataFormatError(
                path,
                f"byte offset {offset}",
                f"a {_PACKET_HEADER.size}-byte packet header",
                f"{len(raw)} bytes before the end of the file",
            )
        fields = _PACKET_HEADER.unpack(raw)
        event_type, _, size, ts_offset, _, capacity, number, valid = fields
        where = f"packet header at byte offset {offset}"
        if size <= 0 or capacity < 0 or not 0 <= number <= capacity or not 0 <= valid <= number:
            raise DataFormatError(
                path,
                where,
                "eventSize > 0 and 0 <= eventValid <= eventNumber <= eventCapacity",
                f"size={size}, capacity={capacity}, number={number}, valid={valid}",
            )
        if event_type == _POLARITY and (size != _POLARITY_SIZE or ts_offset != _POLARITY_TS_OFFSET):
            raise DataFormatError(
                path,
                where,
                f"polarity events of eventSize {_POLARITY_SIZE}, eventTSOffset "
                f"{_POLARITY_TS_OFFSET}",
                f"eventSize {size}, eventTSOffset {ts_offset}",
            )
        end = offset + _PACKET_HEADER.size + capacity * size
        if end > file_size:
            raise DataFormatError(
                path,
                where,
                f"{capacity * size} bytes of events (eventCapacity {capacity} x eventSize {size})",
                f"{file_size - offset - _PACKET_HEADER.size} bytes before the end of the file",
            )
        yield offset, fields
        offset = end


def _decode_polarity(stream, path: str, offset: int, fields: tuple) -> Iterator[np.ndarray]:
    """Decode the valid events of one polarity packet, a bounded chunk at a time."""
    overflow, number = fields[4], fields[6]
    epoch = np.int64(overflow) << np.int64(31)
    stream.seek(offset + _PACKET_HEADER.size)
    done = 0
    while done < number:
        n = min(_CHUNK_EVENTS, number - done)
        chunk = stream.read(n * _POLARITY_SIZE)
        if len(chunk) != n * _POLARITY_SIZE:  # the file shrank since its size was taken
            raise DataFormatError(
                path,
                f"packet at byte offset {offset}",
                f"{number} events",
                f"the file ended after {done * _POLARITY_SIZE + len(chunk)} bytes of them",
            )
        raw = np.frombuffer(chunk, dtype=_RAW_POLARITY)
        valid = (raw["data"] & 1).astype(bool)
        data, ts = raw["data"][valid], raw["ts"][valid]
        if ts.size and ts.min() < 0:
            bad = done + int(np.flatnonzero(valid)[np.argmin(ts)])
            raise DataFormatError(
                path,
                f"event {bad} of the packet at byte offset {offset}",
                "a non-negative 31-bit timestamp",
                str(ts.min()),
            )
        events = np.empty(data.size, dtype=EVENT_DTYPE)
        events["x"] = (data >> 17) & 0x7FFF
        events["y"] = (data >> 2) & 0x7FFF
        events["p"] = (data >> 1) & 1
        events["t"] = epoch | ts.astype(np.int64)
        done += n
        yield events


def iter_aedat31(
    path: str | os.PathLike,
    *,
    t_start: int | None = None,
    t_end: int | None = None,
    index: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Stream the valid polarity events of an AEDAT 3.1 file, chunk by chunk.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.aedat`` file.
    t_start, t_end : int, optional
        Keep only events with ``t_start <= t < t_end`` (microseconds, file clock).
    index : numpy.ndarray of :data:`PACKET_INDEX_DTYPE`, optional
        The file's packet index (:func:`index_aedat31`); with it, only packets whose
        time range meets ``[t_start, t_end)`` are read.

    Yields
    ------
    numpy.ndarray of :data:`EVENT_DTYPE`
        Consecutive runs of events in file order (``t`` in microseconds, overflow
        epochs included); possibly empty.

    Raises
    ------
    DataFormatError
        On a bad header, a malformed or truncated packet, or a negative timestamp.
    """
    path = os.fspath(path)
    low = -np.inf if t_start is None else t_start
    high = np.inf if t_end is None else t_end
    file_size = os.path.getsize(path)
    with open(path, "rb") as stream:
        if index is None:
            offset = _read_header(stream, path)
            for packet_offset, fields in _packets(stream, path, offset, file_size):
                if fields[0] == _POLARITY:
                    for events in _decode_polarity(stream, path, packet_offset, fields):
                        yield _window(events, low, high)
        else:
            wanted = index[(index["t_last"] >= low) & (index["t_first"] < high)]
            for packet_offset in wanted["offset"]:
                _, fields = next(_packets(stream, path, int(packet_offset), file_size))
                if fields[0] != _POLARITY:
                    raise DataFormatError(
                        path,
                        f"byte offset {packet_offset}",
                        "a polarity packet, as the packet index says",
                        f"eventType {fields[0]}",
                    )
                for events in _decode_polarity(stream, path, int(packet_offset), fields):
                    yield _window(events, low, high)


def _window(events: np.ndarray, low, high) -> np.ndarray:
    if low == -np.inf and high == np.inf:
        return events
    return events[(events["t"] >= low) & (events["t"] < high)]


def read_aedat31(
    path: str | os.PathLike,
    *,
    t_start: int | None = None,
    t_end: int | None = None,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """Read the valid polarity events of an AEDAT 3.1 file (streamed, packet by packet).

    Only the result is held in memory, never the whole file; pass a time window to
    bound the result too.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.aedat`` file.
    t_start, t_end : int, optional
        Keep only events with ``t_start <= t < t_end`` (microseconds).
    index : numpy.ndarray of :data:`PACKET_INDEX_DTYPE`, optional
        Packet index from :func:`index_aedat31`, to skip packets outside the window.

    Returns
    -------
    numpy.ndarray of :data:`EVENT_DTYPE`, shape (n_events,)
        Fields ``x``, ``y``, ``p`` (1 = ON), ``t`` (microseconds including the
        overflow epochs), in file order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFormatError
        On a bad header, a malformed or truncated packet, or a negative timestamp.
    """
    chunks = list(iter_aedat31(path, t_start=t_start, t_end=t_end, index=index))
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    return np.concatenate(chunks)


def index_aedat31(path: str | os.PathLike) -> np.ndarray:
    """Index the polarity packets of an AEDAT 3.1 file by time, in one streaming pass.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.aedat`` file.

    Returns
    -------
    numpy.ndarray of :data:`PACKET_INDEX_DTYPE`, shape (n_packets,)
        One row per polarity packet that holds at least one valid event.
    """
    path = os.fspath(path)
    rows = []
    file_size = os.path.getsize(path)
    with open(path, "rb") as stream:
        offset = _read_header(stream, path)
        for packet_offset, fields in _packets(stream, path, offset, file_size):
            if fields[0] != _POLARITY:
                continue
            first, last = None, None
            for events in _decode_polarity(stream, path, packet_offset, fields):
                if events.size:
                    low, high = int(events["t"].min()), int(events["t"].max())
                    first = low if first is None else min(first, low)
                    last = high if last is None else max(last, high)
            if first is not None:
                rows.append((packet_offset, first, last))
    return np.array(rows, dtype=PACKET_INDEX_DTYPE)


def read_gesture_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a DVS128 Gesture ``*_labels.csv``.

    Parameters
    ----------
    path : str or os.PathLike
        CSV with header ``class,startTime_usec,endTime_usec`` and one row per
        gesture.

    Returns
    -------
    numpy.ndarray, shape (n_rows,)
        Structured, fields ``cls`` (1..11), ``start`` and ``end`` (int64
        microseconds, same clock as the events), in file order.

    Raises
    ------
    DataFormatError
        If the header differs, a row has not three integers, a class is outside
        1..11, or ``end <= start``.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8-sig", newline="") as stream:
        lines = stream.read().splitlines()
    header = [field.strip() for field in lines[0].split(",")] if lines else []
    if header != _CSV_HEADER:
        raise DataFormatError(
            path,
            "line 1",
            "header 'class,startTime_usec,endTime_usec'",
            repr(lines[0] if lines else ""),
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        try:
            cls, start, end = (int(field) for field in fields)
        except ValueError:
            raise DataFormatError(
                path, f"line {number}", "three integers: class,start,end", repr(line)
            ) from None
        if not 1 <= cls <= len(GESTURE_CLASSES):
            raise DataFormatError(path, f"line {number}", "a class in 1..11", str(cls))
        if end <= start:
            raise DataFormatError(
                path, f"line {number}", "endTime_usec > startTime_usec", f"{start}, {end}"
            )
        rows.append((cls, start, end))
    return np.array(rows, dtype=[("cls", np.int64), ("start", np.int64), ("end", np.int64)])


def read_trial_list(path: str | os.PathLike) -> list[str]:
    """Read ``trials_to_train.txt`` / ``trials_to_test.txt``: one ``*.aedat`` name a line.

    Returns
    -------
    list of str
        File names such as ``user01_fluorescent.aedat``; blank lines are skipped.
    """
    path = os.fspath(path)
    names = []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            name = line.strip()
            if not name:
                continue
            if not name.endswith(".aedat") or "/" in name or "\\" in name:
                raise DataFormatError(
                    path, f"line {number}", "a file name ending in .aedat", repr(name)
                )
            names.append(name)
    return names


def _gesture_directory(root: str | os.PathLike) -> Path:
    """Find the folder holding the trial lists: ``root`` itself or ``root/DvsGesture``."""
    root = Path(root)
    for candidate in (root, root / "DvsGesture"):
        if (candidate / "trials_to_train.txt").is_file():
            return candidate
    raise FileNotFoundError(
        f"no trials_to_train.txt in {root} or {root / 'DvsGesture'}; {_HOW_TO_GET}"
    )


def list_gesture(
    root: str | os.PathLike, split: str, *, classes=tuple(range(1, 11))
) -> tuple[list[tuple[Path, int, int]], np.ndarray]:
    """List the DVS128 Gesture samples of a split from the CSVs, without reading events.

    Parameters
    ----------
    root : str or os.PathLike
        The ``DvsGesture`` folder or its parent.
    split : {"train", "test"}
        Uses ``trials_to_train.txt`` (users 01-23) or ``trials_to_test.txt`` (24-29).
    classes : sequence of int, default 1..10
        CSV classes to keep, as in the paper (class 11, "other gestures", excluded);
        pass ``range(1, 12)`` to keep it.

    Returns
    -------
    samples : list of (pathlib.Path, int, int)
        ``(aedat_path, start_us, end_us)`` per sample, in trial-list then CSV order.
    labels : numpy.ndarray of int64, shape (n,)
        Position of each sample's class in ``sorted(classes)``: 0..9 by default.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    classes = sorted(int(c) for c in classes)
    if not classes or classes[0] < 1 or classes[-1] > len(GESTURE_CLASSES):
        raise ValueError(f"classes must be a non-empty subset of 1..11, got {classes}")
    directory = _gesture_directory(root)
    trial_list = directory / f"trials_to_{split}.txt"
    if not trial_list.is_file():
        raise FileNotFoundError(f"{trial_list} does not exist; {_HOW_TO_GET}")
    samples: list[tuple[Path, int, int]] = []
    labels: list[int] = []
    position = {c: k for k, c in enumerate(classes)}
    for name in read_trial_list(trial_list):
        aedat = directory / name
        csv = directory / f"{name[: -len('.aedat')]}_labels.csv"
        for required in (aedat, csv):
            if not required.is_file():
                raise FileNotFoundError(f"{required} (listed in {trial_list}) does not exist")
        for cls, start, end in read_gesture_labels(csv):
            if int(cls) in position:
                samples.append((aedat, int(start), int(end)))
                labels.append(position[int(cls)])
    return samples, np.asarray(labels, dtype=np.int64)
