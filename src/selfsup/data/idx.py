"""Read IDX files, the format of MNIST and Fashion-MNIST (optionally gzipped).

The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number of
dimensions, each dimension as a big-endian uint32, then the values in C order, big-endian.

Example:
    >>> import struct, tempfile
    >>> f = Path(tempfile.mkdtemp()) / "tiny-idx1-ubyte"
    >>> _ = f.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([7, 8, 9]))
    >>> read_idx(f).tolist()
    [7, 8, 9]
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

# The dtype codes of the format, all big-endian on disk.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, plain or gzipped (told apart by content, not by name).

    Args:
        path: the file.

    Returns:
        A writable array in native byte order with the file's shape and dtype.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a file that is not IDX, a bad gzip stream, an unknown dtype code, or data
            shorter or longer than the dimensions say. The message names the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: broken or truncated gzip data ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (it must start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise ValueError(
            f"{path}: IDX data {problem}: {actual} bytes after the header, "
            f"expected {expected} for shape {shape} of {dtype.name}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
