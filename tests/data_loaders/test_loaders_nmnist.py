import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_writers import NMNIST_MAX_T, nmnist_bytes, write_nmnist, write_nmnist_root

from data_loaders import EVENT_DTYPE, DataFormatError, list_nmnist, read_nmnist

nmnist_events = st.lists(
    st.tuples(
        st.integers(0, 33), st.integers(0, 33), st.integers(0, 1), st.integers(0, NMNIST_MAX_T)
    ),
    max_size=40,
)


def test_both_polarities_and_largest_timestamp(tmp_path):
    path = write_nmnist(
        tmp_path / "00001.bin",
        x=[0, 33, 17],
        y=[0, 33, 5],
        p=[1, 0, 1],
        t=[654, 311175, NMNIST_MAX_T],
    )
    assert path.stat().st_size == 15
    events = read_nmnist(path)
    assert events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(events["x"], [0, 33, 17])
    np.testing.assert_array_equal(events["y"], [0, 33, 5])
    np.testing.assert_array_equal(events["p"], [1, 0, 1])
    np.testing.assert_array_equal(events["t"], [654, 311175, 8388607])


def test_byte_layout_by_hand(tmp_path):
    # x=3, y=4, ON, t = 0x5A0102: byte2 = 0x80 | 0x5A
    path = tmp_path / "one.bin"
    path.write_bytes(bytes([3, 4, 0xDA, 0x01, 0x02]))
    (event,) = read_nmnist(path)
    assert (event["x"], event["y"], event["p"], event["t"]) == (3, 4, 1, 0x5A0102)


@settings(deadline=None, max_examples=25)
@given(nmnist_events)
def test_round_trip(tmp_path_factory, events):
    path = tmp_path_factory.mktemp("nm") / "s.bin"
    columns = list(zip(*events, strict=True)) if events else [[], [], [], []]
    write_nmnist(path, *columns)
    back = read_nmnist(path)
    assert back.size == len(events)
    for name, column in zip("xypt", columns, strict=True):
        np.testing.assert_array_equal(back[name], np.asarray(column, dtype=np.int64))


def test_overflow_markers(tmp_path):
    path = write_nmnist(
        tmp_path / "o.bin",
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        [0, 1, 0, 1],
        [10, 20, 5, 6],
        overflow_after=[1, 2],
    )
    events = read_nmnist(path)
    np.testing.assert_array_equal(events["x"], [1, 2, 3, 4])
    np.testing.assert_array_equal(events["t"], [10, 20, 5 + 8192, 6 + 2 * 8192])


def test_real_sample_size(tmp_path):
    rng = np.random.default_rng(0)
    n = 4325  # a real 21625-byte sample
    path = write_nmnist(
        tmp_path / "r.bin",
        rng.integers(0, 34, n),
        rng.integers(0, 34, n),
        rng.integers(0, 2, n),
        np.sort(rng.integers(654, 311176, n)),
    )
    assert path.stat().st_size == 21625
    assert read_nmnist(path).size == 4325


def test_bad_files(tmp_path):
    good = nmnist_bytes([1, 2], [3, 4], [0, 1], [5, 6])
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good[:-2])
    with pytest.raises(DataFormatError, match=r"truncated\.bin: byte offset 5: .*multiple of 5"):
        read_nmnist(truncated)
    off_sensor = tmp_path / "off.bin"
    off_sensor.write_bytes(good + bytes([34, 0, 0, 0, 7]))
    with pytest.raises(DataFormatError, match=r"off\.bin: byte offset 10 \(event 2\).*0\.\.33"):
        read_nmnist(off_sensor)
    with pytest.raises(FileNotFoundError):
        read_nmnist(tmp_path / "absent.bin")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert read_nmnist(empty).size == 0


def test_list_split(tmp_path):
    root = write_nmnist_root(tmp_path, np.random.default_rng(0), per_digit={"Train": 3})
    (root / "Train" / "3" / "notes.txt").write_text("ignored: not a .bin")
    paths, labels = list_nmnist(root, "train")
    assert len(paths) == 30
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3))
    assert [p.name for p in paths[:3]] == ["00001.bin", "00002.bin", "00003.bin"]
    assert all(p.parent.name == str(label) for p, label in zip(paths, labels, strict=True))
    with pytest.raises(FileNotFoundError, match="Test.*N-MNIST"):
        list_nmnist(root, "test")
    (root / "Train" / "extra").mkdir()
    with pytest.raises(DataFormatError, match="extra.*digit folder"):
        list_nmnist(root, "train")
