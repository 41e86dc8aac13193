import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_writers import (
    PACKET_HEADER,
    aedat_header,
    other_packet,
    packets_for_events,
    polarity_packet,
    split_time,
    write_aedat31,
    write_gesture_root,
    write_labels_csv,
)

import data_loaders.aedat as aedat_module
from data_loaders import (
    EVENT_DTYPE,
    DataFormatError,
    index_aedat31,
    list_gesture,
    read_aedat31,
    read_gesture_labels,
    read_trial_list,
)


def _events(x, y, p, t):
    events = np.zeros(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x, y, p, t
    return events


def _fixture(tmp_path):
    """Header; a skipped packet whose first byte is '#'; an invalid event; an overflow."""
    late = (1 << 31) + 17  # second epoch
    packets = [
        other_packet(event_type=0x23),  # data starts with 0x23 right after the header
        polarity_packet([5, 6, 7], [1, 2, 3], [1, 0, 1], [100, 200, 300], valid=[1, 0, 1]),
        other_packet(event_type=2, event_size=12, n_events=2),
        polarity_packet([127], [127], [0], [split_time(late)[1]], overflow=split_time(late)[0]),
    ]
    path = write_aedat31(tmp_path / "user01_led.aedat", packets)
    expected = _events([5, 7, 127], [1, 3, 127], [1, 1, 0], [100, 300, late])
    return path, expected


def test_fixture_file(tmp_path):
    path, expected = _fixture(tmp_path)
    events = read_aedat31(path)
    assert events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(events, expected)
    assert events["t"][-1] == 2**31 + 17


def test_windows_and_index(tmp_path):
    path, expected = _fixture(tmp_path)
    index = index_aedat31(path)
    assert len(index) == 2  # polarity packets only
    np.testing.assert_array_equal(index["t_first"], [100, 2**31 + 17])
    np.testing.assert_array_equal(index["t_last"], [300, 2**31 + 17])
    for start, end in ((0, 301), (101, 2**31 + 18), (300, 2**31), (2**31 + 17, 2**32)):
        inside = expected[(expected["t"] >= start) & (expected["t"] < end)]
        np.testing.assert_array_equal(read_aedat31(path, t_start=start, t_end=end), inside)
        np.testing.assert_array_equal(
            read_aedat31(path, t_start=start, t_end=end, index=index), inside
        )


aedat_events = st.lists(
    st.tuples(
        st.integers(0, 2**15 - 1),  # 15-bit x and y fields
        st.integers(0, 2**15 - 1),
        st.integers(0, 1),
        st.integers(0, 3 * 2**31),
        st.booleans(),
    ),
    max_size=40,
).map(lambda rows: sorted(rows, key=lambda r: r[3]))


@settings(deadline=None, max_examples=25)
@given(rows=aedat_events, per_packet=st.integers(1, 9), skip_at=st.integers(0, 5))
def test_round_trip(tmp_path_factory, rows, per_packet, skip_at):
    x, y, p, t, valid = (
        (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
        if rows
        else (np.zeros(0, np.int64),) * 5
    )
    events = _events(x, y, p, t)
    packets = packets_for_events(events, valid=valid, per_packet=per_packet)
    packets.insert(min(skip_at, len(packets)), other_packet())
    path = write_aedat31(tmp_path_factory.mktemp("ae") / "r.aedat", packets)
    np.testing.assert_array_equal(read_aedat31(path), events[valid.astype(bool)])
    if rows:
        start, end = int(t[len(t) // 3]), int(t[-1])
        window = events[valid.astype(bool) & (t >= start) & (t < end)]
        np.testing.assert_array_equal(
            read_aedat31(path, t_start=start, t_end=end, index=index_aedat31(path)), window
        )


def test_capacity_beyond_number_and_small_chunks(tmp_path, monkeypatch):
    packet = polarity_packet([1, 2, 3, 4, 5], [0] * 5, [1] * 5, [1, 2, 3, 4, 5], capacity=8)
    path = write_aedat31(tmp_path / "c.aedat", [packet, polarity_packet([9], [9], [0], [9])])
    expected = _events([1, 2, 3, 4, 5, 9], [0] * 5 + [9], [1] * 5 + [0], [1, 2, 3, 4, 5, 9])
    np.testing.assert_array_equal(read_aedat31(path), expected)
    monkeypatch.setattr(aedat_module, "_CHUNK_EVENTS", 2)
    np.testing.assert_array_equal(read_aedat31(path), expected)


def test_streams_packet_by_packet(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 1000
    packets = [
        polarity_packet(
            rng.integers(0, 128, n),
            rng.integers(0, 128, n),
            rng.integers(0, 2, n),
            np.arange(k * n, (k + 1) * n),
        )
        for k in range(20)
    ]
    path = write_aedat31(tmp_path / "big.aedat", packets)
    largest = []

    class Recording:
        def __init__(self, stream):
            self._stream = stream

        def read(self, *args):
            data = self._stream.read(*args)
            largest.append(len(data))
            return data

        def readline(self, *args):
            data = self._stream.readline(*args)
            largest.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self._stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._stream.close()

    monkeypatch.setattr(
        aedat_module, "open", lambda *a, **k: Recording(open(*a, **k)), raising=False
    )
    events = read_aedat31(path)
    assert events.size == 20 * n
    assert max(largest) <= 8 * n < path.stat().st_size / 10


def _bad(path, *fragments):
    with pytest.raises(DataFormatError) as info:
        read_aedat31(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_files(tmp_path):
    good = polarity_packet([1], [1], [1], [10])

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    _bad(write("v2.aedat", b"#!AER-DAT2.0\r\n" + good), "byte offset 0", "#!AER-DAT3.1")
    _bad(
        write("noend.aedat", aedat_header(("#!AER-DAT3.1", "#Format: RAW"))),
        "#!END-HEADER",
        "end of file",
    )
    _bad(
        write("badline.aedat", b"#!AER-DAT3.1\r\nFormat: RAW\r\n#!END-HEADER\r\n" + good),
        "byte offset 14",
        "starting with '#'",
    )
    header = aedat_header()
    h = len(header)
    _bad(
        write("cut_header.aedat", header + good + good[:20]),
        f"byte offset {h + 36}",
        "28-byte packet header",
        "20 bytes",
    )
    _bad(
        write("cut_payload.aedat", header + good[:-1]),
        f"packet header at byte offset {h}",
        "8 bytes of events",
        "7 bytes",
    )
    too_many = PACKET_HEADER.pack(1, 1, 8, 4, 0, 1, 2, 2) + bytes(8)
    _bad(write("number.aedat", header + too_many), "eventNumber <= eventCapacity")
    wide = PACKET_HEADER.pack(1, 1, 16, 4, 0, 1, 1, 1) + bytes(16)
    _bad(write("wide.aedat", header + good + wide), f"byte offset {h + 36}", "eventSize 8")
    negative = polarity_packet([1], [1], [1], [-5])
    _bad(write("negative.aedat", header + negative), "event 0", "non-negative", "-5")
    with pytest.raises(FileNotFoundError):
        read_aedat31(tmp_path / "absent.aedat")


def test_invalid_negative_timestamp_is_ignored(tmp_path):
    packet = polarity_packet([1, 2], [1, 2], [1, 1], [-5, 7], valid=[0, 1])
    path = write_aedat31(tmp_path / "n.aedat", [packet])
    np.testing.assert_array_equal(read_aedat31(path)["t"], [7])


# ------------------------------------------------------------------ gesture labels


def test_labels_csv(tmp_path):
    path = write_labels_csv(tmp_path / "a_labels.csv", [(1, 10, 20), (11, 15, 30), (1, 40, 50)])
    rows = read_gesture_labels(path)
    np.testing.assert_array_equal(rows["cls"], [1, 11, 1])
    np.testing.assert_array_equal(rows["start"], [10, 15, 40])
    np.testing.assert_array_equal(rows["end"], [20, 30, 50])
    crlf = tmp_path / "crlf_labels.csv"
    crlf.write_bytes(b"class,startTime_usec,endTime_usec\r\n3,1,2\r\n\r\n")
    assert read_gesture_labels(crlf)["cls"].tolist() == [3]


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("class,start,end\n1,2,3\n", ["line 1", "header"]),
        ("", ["line 1", "header"]),
        ("class,startTime_usec,endTime_usec\n1,2\n", ["line 2", "three integers"]),
        ("class,startTime_usec,endTime_usec\n1,2,x\n", ["line 2", "three integers"]),
        ("class,startTime_usec,endTime_usec\n1,2,3\n12,4,5\n", ["line 3", "1..11", "12"]),
        ("class,startTime_usec,endTime_usec\n1,5,5\n", ["line 2", "endTime_usec > start"]),
    ],
)
def test_labels_csv_rejects(tmp_path, text, fragments):
    path = tmp_path / "bad_labels.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        read_gesture_labels(path)
    for fragment in [str(path), *fragments]:
        assert fragment in str(info.value)


def test_trial_list(tmp_path):
    path = tmp_path / "trials_to_train.txt"
    path.write_text("user01_fluorescent.aedat\n\nuser02_led.aedat\n")
    assert read_trial_list(path) == ["user01_fluorescent.aedat", "user02_led.aedat"]
    path.write_text("user01_fluorescent.aedat\nuser02_led.txt\n")
    with pytest.raises(DataFormatError, match="line 2.*aedat"):
        read_trial_list(path)


def test_list_gesture(tmp_path):
    expected = write_gesture_root(tmp_path / "DvsGesture", np.random.default_rng(0))
    samples, labels = list_gesture(tmp_path, "train")  # parent of DvsGesture works
    classes = [c for c, _, _ in expected["train"]]
    kept = [c for c in classes if c != 11]
    assert len(samples) == len(kept) and labels.tolist() == [c - 1 for c in kept]
    all_samples, all_labels = list_gesture(tmp_path / "DvsGesture", "train", classes=range(1, 12))
    assert all_labels.tolist() == [c - 1 for c in classes]
    for (path, start, end), (_, inside, zero) in zip(all_samples, expected["train"], strict=True):
        assert start == zero
        np.testing.assert_array_equal(
            read_aedat31(path, t_start=start, t_end=end)["t"], inside["t"]
        )
    (tmp_path / "DvsGesture" / "user24_natural_labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match="user24_natural_labels.csv"):
        list_gesture(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="trials_to_train.txt"):
        list_gesture(tmp_path / "elsewhere", "train")
