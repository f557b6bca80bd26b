"""Fingerprints of what a number was computed from: image/label arrays and on-disk dataset folders.

A cached split or a stored result is only reusable for the exact data that produced it; these digests are
the keys (the cache folder of Fashion-MNIST-C, the ``provenance`` of a benchmark configuration).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_write_bytes

__all__ = ["array_fingerprint", "file_sha256", "folder_fingerprint", "json_fingerprint", "read_checksummed",
           "state_dict_sha256", "write_checksummed"]


def json_fingerprint(obj: Any) -> str:
    """First 16 hex digits of the sha256 of ``obj`` as sorted-key JSON: the key of a configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def state_dict_sha256(state: dict[str, Any]) -> str:
    """Content hash of a state dict (names, dtypes, shapes, bytes): two runs that trained identically agree."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_checksummed(path: str | Path, data: bytes, what: str = "cached file") -> None:
    """Write ``data`` and a ``.sha256`` sidecar beside it, each atomically (the sidecar last, so a kill between
    the two leaves a file that :func:`read_checksummed` refuses rather than trusts)."""
    path = Path(path)
    atomic_write_bytes(path, data, what)
    atomic_write_bytes(path.with_suffix(".sha256"), (hashlib.sha256(data).hexdigest() + "\n").encode(),
                       f"{what} checksum")


def read_checksummed(path: str | Path) -> bytes | None:
    """The bytes of ``path`` if they match its ``.sha256`` sidecar, else None (missing, truncated or damaged:
    the caller rebuilds)."""
    path = Path(path)
    side = path.with_suffix(".sha256")
    if not (path.is_file() and side.is_file()):
        return None
    data = path.read_bytes()
    return data if hashlib.sha256(data).hexdigest() == side.read_text().strip() else None


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def array_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of each array, in order (hex)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def folder_fingerprint(root: str | Path, files: Iterable[Path], *, content: Iterable[Path] = ()) -> str:
    """sha256 over the relative path, size and modification time of each of ``files`` (cheap for 50,000
    JPEGs), plus the full bytes of the (small) files in ``content`` (e.g. a labels file). A file replaced in
    place gets a new modification time and so a new fingerprint."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(Path(f) for f in files):
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for p in sorted(Path(f) for f in content):
        h.update(p.read_bytes())
    return h.hexdigest()
