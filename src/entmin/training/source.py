"""Reproducible training of the built-in source models on a clean IDX dataset (Fashion-MNIST by default).

The recipe counts optimisation steps, not epochs, so it transfers to datasets of any size: the defaults are
the step counts of the committed checkpoints (6 and 5 epochs of 60,000 images at batch 128), which reproduce
them exactly on Fashion-MNIST, while a 4,000-image dataset gets as many updates instead of 15x fewer.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.fashion_mnist import data_fingerprint, load_fashion_mnist
from ..errors import UsageError
from ..models.checkpoints import save_checkpoint
from ..models.small import MODEL_NAMES, build_model
from ..utils import seed_everything

__all__ = ["AUGMENTATIONS", "SourceRecipe", "augment", "evaluate", "train_source"]

AUGMENTATIONS = ("none", "shift", "flip+shift")
# steps of the committed checkpoints: epochs x ceil(60000 / 128)
_STEPS = {"cnn": 6 * 469, "cnn_gn": 6 * 469, "vit": 5 * 469}
_OPT = {"cnn": ("sgd", 0.1, 5e-4), "cnn_gn": ("sgd", 0.1, 5e-4), "vit": ("adamw", 2e-3, 0.05)}


def _f(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class SourceRecipe:
    """How a built-in source model is trained (each field is an option of `entmin train-source`)."""

    model: str = _f("cnn", "built-in architecture", MODEL_NAMES)
    steps: int | None = _f(None, "optimisation steps (default: those of the committed checkpoint, 2814 cnn / "
                                 "2345 vit)")
    epochs: float | None = _f(None, "alternative to --steps: passes over the training set")
    batch_size: int = _f(128, "training batch size")
    lr: float | None = _f(None, "peak learning rate of the one-cycle schedule (default 0.1 cnn SGD / 2e-3 vit AdamW)")
    weight_decay: float | None = _f(None, "weight decay (default 5e-4 cnn / 0.05 vit)")
    augment: str = _f("flip+shift", "training augmentation: none, shift (random 2-pixel translation) or "
                                    "flip+shift (plus horizontal flips: wrong for digits or text)", AUGMENTATIONS)
    seed: int = _f(0, "seed of initialisation, order and augmentation")

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise UsageError(f"unknown built-in model {self.model!r}; choose one of {list(MODEL_NAMES)}")
        if self.augment not in AUGMENTATIONS:
            raise UsageError(f"augment must be one of {list(AUGMENTATIONS)}, got {self.augment!r}")
        if self.steps is not None and self.epochs is not None:
            raise UsageError("give --steps or --epochs, not both")
        for name in ("steps", "epochs", "batch_size", "lr"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise UsageError(f"{name} must be > 0, got {v}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def resolved(self, n_train: int) -> dict:
        """The recipe with every default filled in for a training set of ``n_train`` images."""
        opt, lr, wd = _OPT[self.model]
        per_epoch = math.ceil(n_train / self.batch_size)
        steps = self.steps or (max(1, round(self.epochs * per_epoch)) if self.epochs else _STEPS[self.model])
        return {"steps": int(steps), "batch_size": self.batch_size, "optimizer": opt, "lr": self.lr or lr,
                "weight_decay": wd if self.weight_decay is None else self.weight_decay, "augment": self.augment,
                "epochs": round(steps / per_epoch, 2)}


def augment(x: torch.Tensor, g: torch.Generator, kind: str = "flip+shift") -> torch.Tensor:
    """Random horizontal flip (``flip+shift``) and random translation by up to 2 pixels (zero padding)."""
    if kind == "none":
        return x
    n = x.shape[0]
    if kind == "flip+shift":
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()  # one shift per batch: cheap, enough here
    return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             device: str | torch.device = "cpu") -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


def train_source(recipe: SourceRecipe, out: str | Path, *, data_dir: str | None = None,
                 device: str | torch.device = "cpu", limit: int | None = None,
                 progress: Callable[[str], None] | None = None, command: str = "") -> dict:
    """Train ``recipe`` on the clean training split, evaluate on the test split, write the checkpoint and its
    metadata (recipe, clean accuracy, fingerprint of the training/test data, command)."""
    seed_everything(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    xtr, ytr = load_fashion_mnist("train", data_dir)
    xte, yte = load_fashion_mnist("test", data_dir)
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    num_classes = int(max(ytr.max(), yte.max())) + 1
    r = recipe.resolved(len(xtr))
    model = build_model(recipe.model, num_classes).to(device)
    bs, n = r["batch_size"], len(xtr)
    if r["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=r["lr"], momentum=0.9, nesterov=True,
                              weight_decay=r["weight_decay"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=r["steps"], pct_start=0.2)
    t0, step, epoch = time.time(), 0, 0
    report_every = max(1, r["steps"] // 10)
    while step < r["steps"]:
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = augment(xtr[idx], g, r["augment"]).to(device)
            loss = F.cross_entropy(model(xb), ytr[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if progress and step % report_every == 0:
                progress(f"{recipe.model} step {step}/{r['steps']} (epoch {epoch + 1}) loss {loss.item():.3f} "
                         f"({time.time() - t0:.0f}s)")
            if step == r["steps"]:
                break
        epoch += 1
    acc = evaluate(model, xte, yte, device=device)
    meta = {"arch": recipe.model, "num_classes": num_classes, "clean_test_accuracy": round(acc, 4),
            "seed": recipe.seed, "recipe": r, "train_seconds": round(time.time() - t0, 1), "torch": torch.__version__,
            "dataset": {"folder": str(data_dir) if data_dir else "default (Fashion-MNIST)",
                        "train_images": n, "test_images": len(xte), "limit": limit,
                        "fingerprint": data_fingerprint(data_dir)},
            "command": command or f"entmin train-source --model {recipe.model} --seed {recipe.seed}",
            "parameters": sum(p.numel() for p in model.parameters()), "options": asdict(recipe)}
    return save_checkpoint(model.cpu(), out, meta)
