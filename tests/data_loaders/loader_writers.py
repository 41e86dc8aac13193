"""Writers of small files laid out exactly like the real datasets, for the loader tests.

Each writer is the inverse of one reader in ``data_loaders`` and is written from the
byte-level format description of each dataset (``docs/data.md``), not from the reader, so a
round trip checks both against the specification.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np

# --------------------------------------------------------------------------- IDX

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of ``array``: 00 00 type ndim, big-endian uint32 sizes, big-endian data."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    sizes = b"".join(struct.pack(">I", s) for s in array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_fmnist_root(directory: Path, rng: np.random.Generator, sizes=None) -> Path:
    """A Fashion-MNIST folder with gzip'ed IDX files of random images, all classes."""
    sizes = sizes or {"train": 30, "t10k": 20}
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in sizes.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images, compress=True)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels, compress=True)
    return directory


# ----------------------------------------------------------------------- N-MNIST

NMNIST_MAX_T = (1 << 23) - 1


def nmnist_bytes(x, y, p, t, *, overflow_after=()) -> bytes:
    """Encode events, 5 bytes each: x, y, p<<7 | t[22:16], t[15:8], t[7:0].

    ``overflow_after`` lists event indices after which a ``y == 240`` overflow
    marker record is inserted.
    """
    out = bytearray()
    markers = set(int(i) for i in overflow_after)
    for i, (xi, yi, pi, ti) in enumerate(zip(x, y, p, t, strict=True)):
        ti = int(ti)
        assert 0 <= ti <= NMNIST_MAX_T
        out += bytes([int(xi), int(yi), (int(pi) << 7) | (ti >> 16), (ti >> 8) & 0xFF, ti & 0xFF])
        if i in markers:
            out += bytes([0, 240, 0, 0, 0])
    return bytes(out)


def write_nmnist(path: Path, x, y, p, t, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nmnist_bytes(x, y, p, t, **kwargs))
    return path


def write_nmnist_root(directory: Path, rng: np.random.Generator, per_digit=None) -> Path:
    """``Train/<digit>/<n>.bin`` and ``Test/<digit>/<n>.bin`` with a few events each."""
    per_digit = per_digit or {"Train": 3, "Test": 2}
    for split, count in per_digit.items():
        for digit in range(10):
            for n in range(count):
                k = int(rng.integers(5, 40))
                write_nmnist(
                    directory / split / str(digit) / f"{n + 1:05d}.bin",
                    rng.integers(0, 34, k),
                    rng.integers(0, 34, k),
                    rng.integers(0, 2, k),
                    np.sort(rng.integers(0, 300_000, k)),
                )
    return directory


# ------------------------------------------------------------------------- AEDAT

AEDAT_HEADER_LINES = (
    "#!AER-DAT3.1",
    "#Format: RAW",
    "#Source 1: DVS128",
    "#Start-Time: 2017-01-01 00:00:00 (TZ+0000)",
    "#!END-HEADER",
)
PACKET_HEADER = struct.Struct("<hhiiiiii")


def aedat_header(lines=AEDAT_HEADER_LINES) -> bytes:
    return b"".join(line.encode("ascii") + b"\r\n" for line in lines)


def split_time(t: int) -> tuple[int, int]:
    """Full time -> (eventTSOverflow, 31-bit timestamp)."""
    return int(t) >> 31, int(t) & 0x7FFFFFFF


def polarity_packet(x, y, p, ts, *, valid=None, overflow=0, capacity=None, source=1) -> bytes:
    """One polarity packet: header, then (uint32 data, int32 ts) per event, little-endian."""
    x, y, p, ts = (np.asarray(a, dtype=np.int64) for a in (x, y, p, ts))
    valid = np.ones(x.size, dtype=np.int64) if valid is None else np.asarray(valid, np.int64)
    n = x.size
    capacity = n if capacity is None else capacity
    data = valid | (p << 1) | (y << 2) | (x << 17)
    events = np.zeros(capacity, dtype=[("data", "<u4"), ("ts", "<i4")])
    events["data"][:n] = data
    events["ts"][:n] = ts
    header = PACKET_HEADER.pack(1, source, 8, 4, overflow, capacity, n, int(valid.sum()))
    return header + events.tobytes()


def other_packet(event_type=2, *, event_size=16, n_events=3, fill=0x23) -> bytes:
    """A packet of another type (e.g. 2 = frame/special) that readers must skip."""
    header = PACKET_HEADER.pack(event_type, 1, event_size, 4, 0, n_events, n_events, n_events)
    return header + bytes([fill]) * (event_size * n_events)


def packets_for_events(events, *, valid=None, per_packet=4) -> list[bytes]:
    """Packets for events with fields x, y, p, t: split by overflow epoch and size."""
    valid = np.ones(len(events), dtype=np.int64) if valid is None else np.asarray(valid)
    packets = []
    start = 0
    while start < len(events):
        epoch = int(events["t"][start]) >> 31
        stop = start
        while (
            stop < len(events)
            and stop - start < per_packet
            and int(events["t"][stop]) >> 31 == epoch
        ):
            stop += 1
        chunk = events[start:stop]
        packets.append(
            polarity_packet(
                chunk["x"],
                chunk["y"],
                chunk["p"],
                chunk["t"].astype(np.int64) & 0x7FFFFFFF,
                valid=valid[start:stop],
                overflow=epoch,
            )
        )
        start = stop
    return packets


def write_aedat31(path: Path, packets, *, header: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((aedat_header() if header is None else header) + b"".join(packets))
    return path


def write_labels_csv(path: Path, rows, *, header="class,startTime_usec,endTime_usec") -> Path:
    lines = [header] + [",".join(str(int(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_gesture_root(directory: Path, rng: np.random.Generator) -> dict:
    """A DvsGesture folder: 2 train trials, 1 test trial, each with 3 windows.

    Returns the expected samples: split -> list of (class, events re-zeroed).
    """
    directory.mkdir(parents=True, exist_ok=True)
    trials = {"train": ["user01_fluorescent", "user02_led"], "test": ["user24_natural"]}
    expected = {"train": [], "test": []}
    classes_cycle = iter([1, 11, 5, 10, 2, 11, 3, 7, 1])
    for split, names in trials.items():
        (directory / f"trials_to_{split}.txt").write_text(
            "".join(f"{name}.aedat\n" for name in names)
        )
        for name in names:
            n = 60
            t = np.sort(rng.integers(1_000, 400_000, n)).astype(np.int64)
            events = np.zeros(n, dtype=[("x", "u2"), ("y", "u2"), ("p", "u1"), ("t", "i8")])
            events["x"] = rng.integers(0, 128, n)
            events["y"] = rng.integers(0, 128, n)
            events["p"] = rng.integers(0, 2, n)
            events["t"] = t
            packets = packets_for_events(events, per_packet=7)
            packets.insert(1, other_packet())
            write_aedat31(directory / f"{name}.aedat", packets)
            rows = []
            for start, end in ((2_000, 150_000), (100_000, 250_000), (250_000, 390_000)):
                cls = next(classes_cycle)
                rows.append((cls, start, end))
                inside = events[(events["t"] >= start) & (events["t"] < end)]
                expected[split].append((cls, inside, start))
            write_labels_csv(directory / f"{name}_labels.csv", rows)
    return expected


# ----------------------------------------------------------------------- SHD/SSC


def _pytables_attrs(node, cls: bytes, version: bytes) -> None:
    node.attrs["CLASS"] = np.bytes_(cls)
    node.attrs["VERSION"] = np.bytes_(version)
    node.attrs["TITLE"] = np.bytes_(b"")


def write_shd(path: Path, samples, labels, *, n_units: int = 700) -> Path:
    """An SHD/SSC-style file: float16 seconds and uint16 units as PyTables VLArrays.

    ``samples`` is a list of ``(times_seconds, units)``. Also writes ``extra/speaker``
    and ``extra/keys`` as the real files have them.
    """
    with h5py.File(path, "w") as f:
        f.attrs["PYTABLES_FORMAT_VERSION"] = np.bytes_(b"2.1")
        _pytables_attrs(f, b"GROUP", b"1.0")
        spikes = f.create_group("spikes")
        _pytables_attrs(spikes, b"GROUP", b"1.0")
        times = spikes.create_dataset(
            "times", (len(samples),), dtype=h5py.vlen_dtype(np.dtype("<f2"))
        )
        units = spikes.create_dataset(
            "units", (len(samples),), dtype=h5py.vlen_dtype(np.dtype("<u2"))
        )
        for dataset in (times, units):
            _pytables_attrs(dataset, b"VLARRAY", b"1.4")
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float16)
            units[i] = np.asarray(u, dtype=np.uint16)
        label_set = f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        _pytables_attrs(label_set, b"ARRAY", b"2.4")
        extra = f.create_group("extra")
        _pytables_attrs(extra, b"GROUP", b"1.0")
        extra.create_dataset("speaker", data=np.zeros(len(samples), dtype=np.uint16))
        extra.create_dataset("keys", data=np.array([b"zero", b"one"]))
    return path


def random_shd_samples(rng: np.random.Generator, n: int, *, max_spikes=50, n_units=700):
    """Samples of ascending float16-representable times in [0, 1.2) s."""
    samples = []
    for _ in range(n):
        k = int(rng.integers(0, max_spikes))
        t = np.sort(rng.uniform(0, 1.2, k)).astype(np.float16)
        samples.append((t, rng.integers(0, n_units, k).astype(np.uint16)))
    return samples
