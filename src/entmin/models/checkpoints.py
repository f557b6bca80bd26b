"""Weights on disk: safe loading (``weights_only=True``, checksums, clear refusals) and saving with metadata."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.fingerprint import file_sha256
from ..errors import DataError, UsageError
from ..utils import atomic_torch_save, atomic_write_bytes
from .small import build_model

__all__ = [
    "CHECKPOINT_DIR",
    "checkpoint_metadata",
    "load_checkpoint",
    "load_source_model",
    "safe_torch_load",
    "save_checkpoint",
    "sha256_of",
]

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


sha256_of = file_sha256  # the name this module has always exported


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (state_dict) and ``path.json`` (metadata + sha256 of the weights)."""
    path = Path(path)
    atomic_torch_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
    meta = dict(metadata, sha256=sha256_of(path), file=path.name)
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode(),
                       "checkpoint metadata")
    return meta


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"checkpoint metadata missing: {meta_path}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"checkpoint metadata {meta_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise DataError(f"checkpoint metadata {meta_path} must hold a JSON object")
    return meta


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line reasons for every refusal: an empty file, a
    file that is no PyTorch archive, a pickle that asks for code (refused, whatever its origin)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{what} {path} is empty (0 bytes): an interrupted or failed write")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m is None:  # not a pickle of ours at all (torch wraps every failure in the same advice)
            detail = re.search(r"WeightsUnpickler error: \s*(.+?)\s*\n", str(e) + "\n")
            raise DataError(f"{what} {path} is not a readable PyTorch file"
                            f"{' (' + detail.group(1) + ')' if detail else ''}") from None
        raise DataError(f"{what} {path} refused: it contains Python objects other than tensors and plain "
                        f"containers ({m.group(1)}); entmin loads weights only") from None
    except Exception as e:  # zip/EOF/key errors of truncated or foreign files
        raise DataError(f"{what} {path} is not a readable PyTorch file ({type(e).__name__}"
                        f"{': ' + str(e) if str(e) else ''})") from None


def _fit_report(model: nn.Module, state: dict[str, Any]) -> str | None:
    """None if ``state`` fits ``model`` exactly, else a one-line summary of the mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and isinstance(state[k], torch.Tensor)
                and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or reshaped):
        return None
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)):
        if keys:
            more = f", ... (+{len(keys) - 3})" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{more})")
    return "; ".join(parts)


def load_checkpoint(model: nn.Module, path: str | Path, *, expected_sha256: str | None = None) -> nn.Module:
    """Load a state_dict safely (``weights_only=True``), refusing a file whose checksum does not match."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise DataError(f"checkpoint {path} is corrupt or was replaced: sha256 {actual[:12]}... does not "
                            f"match the recorded {expected_sha256[:12]}...")
    state = safe_torch_load(path)
    # training scripts often save {"state_dict": ...} or {"model": ...}: take the state dict inside
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = next((state[k] for k in ("state_dict", "model", "model_state_dict")
                      if isinstance(state.get(k), dict)), state)
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    if (problem := _fit_report(model, state)) is not None:
        raise UsageError(f"checkpoint {path} does not fit the {type(model).__name__} model: {problem}")
    model.load_state_dict(state)
    return model


def load_source_model(name: str, checkpoint_dir: str | Path | None = None, device: str | torch.device = "cpu"
                      ) -> nn.Module:
    """The committed source model ``name`` (``cnn`` or ``vit``), checksum-verified, in eval mode."""
    folder = Path(checkpoint_dir) if checkpoint_dir else CHECKPOINT_DIR
    path = folder / f"fmnist_{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no source checkpoint for model {name!r} at {path}; train one with "
                                f"`entmin train-source --model {name}`")
    meta = checkpoint_metadata(path)
    model = build_model(meta.get("arch", name), meta.get("num_classes", 10))
    load_checkpoint(model, path, expected_sha256=meta["sha256"])
    return model.to(device).eval()
