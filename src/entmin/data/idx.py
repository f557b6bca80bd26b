"""Reader for the IDX format of (Fashion-)MNIST, with the checks that numpy.frombuffer alone does not do, and the
writer for uint8 arrays (how your own images become a `--dataset idx` folder)."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["IDXError", "read_idx", "write_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IDXError(DataError):
    """A malformed, truncated or unreadable IDX file."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed). Raises :class:`IDXError` naming the file and the defect."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as e:
        raise IDXError(f"{path}: corrupt gzip stream ({e})") from None
    if len(data) < 4:
        raise IDXError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _DTYPES or not 1 <= ndim <= 4:
        raise IDXError(f"{path}: bad IDX magic number {data[:4].hex()} (expected 0000 <type> <ndim>)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_DTYPES[dtype_code])
    expected = int(np.prod(dims)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise IDXError(f"{path}: {kind}: header promises shape {dims} ({expected} bytes) but {actual} bytes follow")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, arr: np.ndarray) -> Path:
    """Write a uint8 array (images (N, H, W) or labels (N,)) as IDX, gzip-compressed when ``path`` ends in .gz."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or not 1 <= arr.ndim <= 4:
        raise ValueError(f"write_idx takes a uint8 array of 1-4 dimensions, got {arr.dtype} of shape {arr.shape}")
    path = Path(path)
    data = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
