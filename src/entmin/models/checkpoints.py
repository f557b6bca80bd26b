"""Committed source models: loading with checksum verification and ``weights_only=True``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils import atomic_torch_save
from .small import build_model

__all__ = [
    "CHECKPOINT_DIR",
    "checkpoint_metadata",
    "load_checkpoint",
    "load_source_model",
    "save_checkpoint",
    "sha256_of",
]

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (state_dict) and ``path.json`` (metadata + sha256 of the weights)."""
    path = Path(path)
    atomic_torch_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
    meta = dict(metadata, sha256=sha256_of(path), file=path.name)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"checkpoint metadata missing: {meta_path}")
    return json.loads(meta_path.read_text())


def load_checkpoint(model: nn.Module, path: str | Path, *, expected_sha256: str | None = None) -> nn.Module:
    """Load a state_dict safely (``weights_only=True``), refusing a file whose checksum does not match."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise ValueError(f"checkpoint {path} is corrupt or was replaced: sha256 {actual[:12]}... does not "
                             f"match the recorded {expected_sha256[:12]}...")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors of many kinds
        raise ValueError(f"cannot read checkpoint {path}: {e}") from None
    # training scripts often save {"state_dict": ...} or {"model": ...}: take the state dict inside
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = next((state[k] for k in ("state_dict", "model", "model_state_dict")
                      if isinstance(state.get(k), dict)), state)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit the {type(model).__name__} model: {e}") from None
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
