import gzip
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from loader_writers import IDX_CODES, idx_bytes, write_idx

from data_loaders import ChecksumError, DataFormatError, read_idx

idx_arrays = st.sampled_from(sorted(IDX_CODES, key=str)).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
        elements=hnp.from_dtype(dtype, allow_nan=False) if dtype.kind == "f" else None,
    )
)


@settings(deadline=None, max_examples=25)
@given(array=idx_arrays, compress=st.booleans())
def test_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.dtype.isnative


def test_md5_is_of_decompressed_content(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    digest = hashlib.md5(idx_bytes(array)).hexdigest()
    for compress in (False, True):
        path = write_idx(tmp_path / f"a{compress}", array, compress=compress)
        np.testing.assert_array_equal(read_idx(path, expected_md5=digest), array)
        with pytest.raises(ChecksumError, match=f"a{compress}.*{'0' * 32}.*{digest}"):
            read_idx(path, expected_md5="0" * 32)


def _raises(path, *fragments):
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


@pytest.mark.parametrize("compress", [False, True])
def test_bad_files(tmp_path, compress):
    good = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if compress else data)
        return path

    _raises(write("magic", b"\x01" + good[1:]), "byte offset 0", "00 00")
    _raises(write("type", good[:2] + b"\x07" + good[3:]), "byte offset 2", "element type")
    _raises(write("ndim0", good[:3] + b"\x00"), "byte offset 3", "dimension count")
    _raises(write("header", good[:6]), "byte offset 4", "8 bytes of sizes")
    _raises(write("data", good[:-1]), "byte offset 12", "12 bytes of data", "only 11")
    _raises(write("trailing", good + b"\x00"), "byte offset 24", "trailing")
    _raises(write("empty", b""), "byte offset 0", "magic")


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(data[: len(data) // 2])
    error = _raises(truncated)
    assert error.path == str(truncated)
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(data[:10] + b"\xff" * 40 + data[50:])
    _raises(garbage, "gzip")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")
