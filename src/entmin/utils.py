"""Small shared helpers: seeding, device resolution, atomic file writes."""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, UsageError

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_bytes", "ensure_dir", "resolve_device",
           "seed_everything"]

MAX_SEED = 2 ** 63 - 1


def seed_everything(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")


def parse_device(device: str | torch.device) -> torch.device:
    """The named device, checked to be a kind entmin runs on (not that this machine has it: a Ray driver
    checks the name, its workers the hardware)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use one of {DEVICE_TYPES} (optionally cuda:N)") from None
    if dev.type not in DEVICE_TYPES:
        raise UsageError(f"unsupported device {device!r}; use one of {DEVICE_TYPES} (optionally cuda:N)")
    return dev


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` -> cuda if available else cpu; otherwise the named device, checked to exist."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = parse_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r} requested but MPS is not available")
    return dev


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """Create ``path`` (and parents) or fail with one line naming it (a regular file in the way, no
    permission)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"cannot create the {what} {path}: a file of that name (or of a parent) is in the way")\
            from None
    except PermissionError:
        raise DataError(f"cannot create the {what} {path}: permission denied") from None
    except OSError as e:
        raise DataError(f"cannot create the {what} {path}: {e.strerror or e}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, what: str = "file") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically with the
    permissions of a normally created file (``0666 & ~umask``, not ``mkstemp``'s 0600, so a shared cache
    stays readable by its other users); on failure (a full disk, a kill) the temporary file is removed and
    ``path`` is left as it was."""
    path = Path(path)
    ensure_dir(path.parent, f"folder of the {what}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise DataError(f"cannot write the {what} {path}: {e.strerror or e}") from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "file") -> None:
    with atomic_write(path, what) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_torch_save(obj: Any, path: str | Path, what: str = "checkpoint") -> None:
    """``torch.save`` through :func:`atomic_write`: a run killed mid-write never leaves a truncated file
    under the final name."""
    with atomic_write(path, what) as tmp:
        torch.save(obj, tmp)
