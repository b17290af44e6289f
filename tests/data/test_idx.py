import gzip
import struct

import numpy as np
import pytest

from selfsup.data.idx import read_idx


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand from the format description, independent of read_idx."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_gzipped_uint8_round_trip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (3, 4, 5)
    assert np.array_equal(back, images)
    back[0, 0, 0] = 1  # writable


def test_plain_big_endian_int32_and_float64(tmp_path):
    ints = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    (tmp_path / "ints.idx").write_bytes(_idx_bytes(ints, 0x0C))
    back = read_idx(tmp_path / "ints.idx")
    assert back.dtype == np.dtype("int32") and np.array_equal(back, ints)
    floats = np.array([0.5, -1.25])
    (tmp_path / "floats.idx").write_bytes(_idx_bytes(floats, 0x0E))
    assert read_idx(tmp_path / "floats.idx").tolist() == [0.5, -1.25]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "dtype code 0x07"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"abc", "truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"abc", "longer"),
        (b"\x00\x00", "not an IDX file"),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path, data, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(_idx_bytes(np.arange(1000, dtype=np.uint8).reshape(10, 100), 0x08))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
