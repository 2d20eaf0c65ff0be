"""Reader and writer for the IDX format of the MNIST files (plain or gzip-compressed).

An IDX file starts with a 4-byte magic number: two zero bytes, a type code (0x08 for
unsigned bytes) and the number of dimensions. One big-endian uint32 per dimension follows,
and then the data in C order.
"""

from __future__ import annotations

import gzip
import struct
from zlib import error as zlib_error
from pathlib import Path

import numpy as np

UBYTE_TYPE = 0x08


def _open(path: Path):
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an unsigned-byte IDX file into a uint8 array of the shape its header gives.

    Raises ValueError when the magic number is not that of an unsigned-byte IDX file or
    when the data size does not match the header.
    """
    path = Path(path)
    try:
        return _read_idx(path)
    except (EOFError, gzip.BadGzipFile, zlib_error) as error:
        raise ValueError(f"{path}: file is truncated or corrupted ({error}); download it again") from error


def _read_idx(path: Path) -> np.ndarray:
    with _open(path) as handle:
        header = handle.read(4)
        if len(header) != 4 or header[0] != 0 or header[1] != 0 or header[2] != UBYTE_TYPE:
            raise ValueError(
                f"{path}: invalid IDX magic number {header.hex() or '(empty file)'}; expected "
                "00 00 08 NN (unsigned bytes, NN dimensions). Is this an MNIST IDX file?"
            )
        ndim = header[3]
        dims_bytes = handle.read(4 * ndim)
        if len(dims_bytes) != 4 * ndim:
            raise ValueError(f"{path}: IDX header is truncated (expected {ndim} dimension sizes)")
        shape = struct.unpack(f">{ndim}I", dims_bytes)
        data = handle.read()
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file contains "
            f"{len(data)} data bytes; the file is truncated or corrupted, download it again"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a uint8 array as an IDX file; gzip-compress it when the name ends in ``.gz``."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx supports uint8 arrays only, got {array.dtype}")
    header = bytes([0, 0, UBYTE_TYPE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    compress = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
