"""Source training of the scene segmenter: cross-entropy on clean training scenes, a fixed recipe by steps.

The committed checkpoint (``models/checkpoints/seg_unet.pt`` and its ``.json``) is reproduced by
``entmin seg-train --seed 0``; its metadata records the scenes' fingerprint (Fashion-MNIST fingerprint, scene
code version and parameters), the recipe, the clean-test mIoU and the weights' sha256.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..models.checkpoints import CHECKPOINT_DIR, checkpoint_metadata, load_checkpoint, save_checkpoint
from .metrics import SegMetrics
from .model import SegUNet
from .scenes import NUM_SEG_CLASSES, SceneData

__all__ = ["SEG_CHECKPOINT", "SegRecipe", "evaluate", "load_seg_model", "train_segmenter"]

SEG_CHECKPOINT = CHECKPOINT_DIR / "seg_unet.pt"


@dataclass(frozen=True)
class SegRecipe:
    steps: int = 2400
    batch_size: int = 24
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 12


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 100) -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy of ``model`` in eval mode."""
    model.eval()
    m = SegMetrics(NUM_SEG_CLASSES)
    for i in range(0, len(x), batch_size):
        m.update(model(x[i:i + batch_size]), y[i:i + batch_size])
    return m.summary()


def train_segmenter(data: SceneData, recipe: SegRecipe = SegRecipe(), seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> tuple[SegUNet, dict[str, Any]]:
    """Train from scratch on the clean training scenes (Adam, cosine schedule, horizontal flips)."""
    torch.manual_seed(seed)
    x, y = data.split("clean", "train")
    model = SegUNet(NUM_SEG_CLASSES, recipe.width)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        idx = torch.randint(len(x), (recipe.batch_size,), generator=g)
        xb, yb = x[idx], y[idx]
        flip = torch.rand(recipe.batch_size, generator=g) < 0.5
        xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step + 1) % 100 == 0:
            progress(f"step {step + 1}/{recipe.steps} loss {loss.item():.3f}")
    xt, yt = data.split("clean", "test")
    metrics = evaluate(model, xt, yt)
    info = {"arch": "seg_unet", "num_classes": NUM_SEG_CLASSES, "recipe": asdict(recipe), "seed": seed,
            "scenes": data.key(), "scenes_fingerprint": data.fingerprint, "clean_test_miou": metrics["miou"],
            "clean_test_pixel_accuracy": metrics["pixel_accuracy"], "torch": torch.__version__,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "command": f"entmin seg-train --seed {seed} --steps {recipe.steps}"}
    return model.eval(), info


def save_segmenter(model: SegUNet, info: dict[str, Any], path: Path = SEG_CHECKPOINT) -> dict[str, Any]:
    return save_checkpoint(model, path, info)


def load_seg_model(path: str | Path | None = None) -> tuple[SegUNet, dict[str, Any]]:
    """The committed (or given) segmenter, checksum-verified, in eval mode, with its metadata."""
    path = Path(path or SEG_CHECKPOINT)
    if not path.is_file():
        raise FileNotFoundError(f"no segmentation checkpoint at {path}; train one with `entmin seg-train`")
    meta = checkpoint_metadata(path)
    model = SegUNet(meta.get("num_classes", NUM_SEG_CLASSES), meta.get("recipe", {}).get("width", 16))
    load_checkpoint(model, path, expected_sha256=meta["sha256"])
    return model.eval(), meta
