"""Fingerprints of what a number was computed from: image/label arrays and on-disk dataset folders.

A cached split or a stored result is only reusable for the exact data that produced it; these digests are
the keys (the cache folder of Fashion-MNIST-C, the ``provenance`` of a benchmark configuration).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["array_fingerprint", "file_sha256", "folder_fingerprint"]


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
