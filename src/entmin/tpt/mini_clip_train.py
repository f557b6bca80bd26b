"""Contrastive training of :class:`MiniCLIP` on Fashion-MNIST images and template captions, and its checkpoint.

Each step pairs a batch of training images (random resized crops and flips, as CLIP's training augmentation)
with one caption per image, drawn from its class's captions. With ten classes a batch holds many pairs of the
same class, which plain InfoNCE would push apart as negatives; the targets are therefore spread uniformly over
the pairs of the same class (both directions, image->text and text->image), a standard fix for class-level
captions. The committed checkpoint (``models/checkpoints/mini_clip.pt`` + ``.json``) is reproduced by
``entmin tpt-train --seed 0``; its metadata records the data fingerprint, the recipe, the vocabulary and the
zero-shot accuracies.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.fashion_mnist import data_fingerprint, load_fashion_mnist
from ..models.checkpoints import CHECKPOINT_DIR, checkpoint_metadata, load_checkpoint, save_checkpoint
from .augment import batch_crops
from .clip import class_text_features, zero_shot_logits
from .mini_clip import CLASSNAMES, ENSEMBLE_TEMPLATES, MiniCLIP, build_vocabulary, captions

__all__ = ["CLIP_CHECKPOINT", "CLIPRecipe", "load_mini_clip", "train_mini_clip", "zero_shot_accuracy"]

CLIP_CHECKPOINT = CHECKPOINT_DIR / "mini_clip.pt"


@dataclass(frozen=True)
class CLIPRecipe:
    steps: int = 1000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    dim: int = 64
    width: int = 16
    crop_scale: float = 0.5        # smallest area fraction of the training crops


@torch.no_grad()
def zero_shot_accuracy(model: MiniCLIP, x: torch.Tensor, y: torch.Tensor, templates: tuple[str, ...],
                       batch_size: int = 1000) -> float:
    model.eval()
    text = class_text_features(model, list(CLASSNAMES), templates)
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((zero_shot_logits(model, x[i:i + batch_size], text).argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def train_mini_clip(recipe: CLIPRecipe = CLIPRecipe(), seed: int = 0, data_dir: str | Path | None = None,
                    progress: Callable[[str], None] | None = None) -> tuple[MiniCLIP, dict[str, Any]]:
    torch.manual_seed(seed)
    x, y = load_fashion_mnist("train", data_dir)
    model = MiniCLIP(build_vocabulary(), recipe.dim, recipe.width)
    caps = [c for name in CLASSNAMES for c in captions(name)]
    per_class = len(caps) // len(CLASSNAMES)
    tokens = model.tokenize(caps)                                   # (K * T, L): every caption, tokenised once
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        idx = torch.randint(len(x), (recipe.batch_size,), generator=g)
        yb = y[idx]
        cap = yb * per_class + torch.randint(per_class, (recipe.batch_size,), generator=g)
        img = F.normalize(model.encode_image(batch_crops(x[idx], g, recipe.crop_scale)), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)[cap]
        logits = model.logit_scale() * img @ txt.t()
        same = (yb[:, None] == yb[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean()
                      + torch.sum(-target * logits.t().log_softmax(1), 1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step + 1) % 100 == 0:
            progress(f"step {step + 1}/{recipe.steps} loss {loss.item():.3f}")
    model.eval()
    xt, yt = load_fashion_mnist("test", data_dir)
    info = {"arch": "mini_clip", "recipe": asdict(recipe), "seed": seed, "vocabulary": model.vocabulary,
            "context_length": model.context_length, "classnames": list(CLASSNAMES),
            "data_fingerprint": data_fingerprint(data_dir),
            "zero_shot_clean_accuracy": zero_shot_accuracy(model, xt, yt, ENSEMBLE_TEMPLATES[:1]),
            "ensemble_clean_accuracy": zero_shot_accuracy(model, xt, yt, ENSEMBLE_TEMPLATES),
            "torch": torch.__version__, "train_seconds": round(time.perf_counter() - t0, 1),
            "command": f"entmin tpt-train --seed {seed} --steps {recipe.steps}"}
    return model, info


def load_mini_clip(path: str | Path | None = None) -> tuple[MiniCLIP, dict[str, Any]]:
    """The committed (or given) MiniCLIP, checksum-verified, in eval mode, with its metadata."""
    path = Path(path or CLIP_CHECKPOINT)
    if not path.is_file():
        raise FileNotFoundError(f"no CLIP-style checkpoint at {path}; train one with `entmin tpt-train`")
    meta = checkpoint_metadata(path)
    r = meta.get("recipe", {})
    model = MiniCLIP(meta["vocabulary"], r.get("dim", 64), r.get("width", 16), meta.get("context_length", 24))
    load_checkpoint(model, path, expected_sha256=meta["sha256"])
    return model.eval(), meta


def save_mini_clip(model: MiniCLIP, info: dict[str, Any], path: str | Path = CLIP_CHECKPOINT) -> dict[str, Any]:
    return save_checkpoint(model, path, info)
