"""Training with entropy objectives on Fashion-MNIST (issue 7): supervised losses, semi-supervised learning
with EM vs AdaDEM (and FixMatch), and long-tailed (class-imbalanced) training sets.

How AdaDEM is plugged in (dem_spec.md section 5 leaves it open; our choices):
* "Ent. Min." = CE(labelled) + 0.3 * mean EM(unlabelled); "+AdaDEM" replaces that EM term by
  0.3 * mean AdaDEM(unlabelled) (same weight, App. B.2 rule "replace the EM term").
* FixMatch + AdaDEM adds 0.3 * mean AdaDEM on the *weak* view of the unlabelled batch (the view whose
  predictions are the pseudo-labels; the strong view already carries FixMatch's consistency loss).
* The MEC bank persists over training (one AdaDEM module per run), pi = 0.1.
* MIN-ENT / MIX-ENT: beta weights learnable (softplus-positive) in their own Adam parameter group (lr 1e-3).
Every run is one record in the results store (resumable: finished runs are skipped).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bench.store import ResultStore
from ..data.fashion_mnist import load_fashion_mnist
from ..models.small import build_model
from ..utils import atomic_torch_save, seed_everything
from .losses import SEMI_METHODS, SUPERVISED_LOSSES, StepLogits, TrainingLoss, build_loss
from .source import augment

__all__ = [
    "SEMI_METHODS",
    "SUPERVISED_LOSSES",
    "TrainConfig",
    "labelled_indices",
    "long_tail_indices",
    "per_class_f1",
    "run_training",
    "split_training_set",
    "train_loop",
]


@dataclass(frozen=True)
class TrainConfig:
    task: str = "supervised"            # supervised | semi | imbalanced
    loss: str = "ce"                    # supervised: one of SUPERVISED_LOSSES; semi/imbalanced: SEMI_METHODS
    model: str = "cnn"
    steps: int = 1500
    batch_size: int = 64
    unlabelled_ratio: int = 2           # unlabelled batch = ratio x batch_size
    lr: float = 0.05
    labels_per_class: int = 25          # semi-supervised
    imbalance_ratio: float = 100.0      # imbalanced: n_max / n_min
    n_train: int | None = None          # supervised: subset of the training set (None = all 60k)
    unsup_weight: float = 0.3
    threshold: float = 0.95             # FixMatch confidence threshold
    n_test: int | None = None           # evaluate on the first n test images (None = all 10,000)

    def __post_init__(self) -> None:
        if self.task not in ("supervised", "semi", "imbalanced"):
            raise ValueError(f"invalid field 'task': {self.task!r} (supervised, semi, imbalanced)")
        allowed = SUPERVISED_LOSSES if self.task == "supervised" else SEMI_METHODS
        if self.loss not in allowed:
            raise ValueError(f"invalid field 'loss': {self.loss!r} for task {self.task}; choose one of {allowed}")
        if self.steps < 1 or self.batch_size < 2 or not self.lr > 0:
            raise ValueError("steps >= 1, batch_size >= 2 and lr > 0 are required")
        if self.labels_per_class < 1 or self.imbalance_ratio < 1:
            raise ValueError("labels_per_class >= 1 and imbalance_ratio >= 1 are required")

    @property
    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def labelled_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = [torch.nonzero(labels == k).flatten() for k in range(int(labels.max()) + 1)]
    return torch.cat([i[torch.randperm(len(i), generator=g)[:per_class]] for i in idx])


def long_tail_indices(labels: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """n_k = n_max * ratio^(-k / (C - 1)) images of class k (class 0 the head, class C-1 the tail)."""
    g = torch.Generator().manual_seed(seed)
    c = int(labels.max()) + 1
    per = [torch.nonzero(labels == k).flatten() for k in range(c)]
    n_max = min(len(p) for p in per)
    out = []
    for k, p in enumerate(per):
        n_k = max(1, int(n_max * ratio ** (-k / (c - 1))))
        out.append(p[torch.randperm(len(p), generator=g)[:n_k]])
    return torch.cat(out)


def strong_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """FixMatch's strong view for grey 32x32 images: weak view + random contrast/brightness, Gaussian noise and
    a random 12x12 erased square (RandAugment/Cutout stand-ins that need no PIL)."""
    x = augment(x, g)
    n = x.shape[0]
    c = 0.4 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    b = 0.2 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    m = x.mean((2, 3), keepdim=True)
    x = ((x - m) * c + m + b + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ys, xs = torch.randint(0, 20, (2, n), generator=g)
    rows = torch.arange(32)
    mask = ((rows[None, :] >= ys[:, None]) & (rows[None, :] < ys[:, None] + 12))[:, :, None] & \
           ((rows[None, :] >= xs[:, None]) & (rows[None, :] < xs[:, None] + 12))[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)


def per_class_f1(pred: torch.Tensor, y: torch.Tensor, c: int) -> list[float]:
    f1 = []
    for k in range(c):
        tp = int(((pred == k) & (y == k)).sum())
        fp = int(((pred == k) & (y != k)).sum())
        fn = int(((pred != k) & (y == k)).sum())
        f1.append(2 * tp / max(1, 2 * tp + fp + fn))
    return f1


@torch.no_grad()
def _evaluate(model, x, y, device, num_classes: int) -> dict[str, Any]:
    model.eval()
    pred = torch.cat([model(x[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(x), 1000)])
    f1 = per_class_f1(pred, y, num_classes)
    return {"accuracy": float((pred == y).float().mean()), "macro_f1": float(np.mean(f1)), "per_class_f1": f1,
            "pred_hist": torch.bincount(pred, minlength=num_classes).tolist()}


def split_training_set(cfg: TrainConfig, labels: torch.Tensor, seed: int, g: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(labelled indices, unlabelled indices or None) of the training set for the config's task."""
    if cfg.task == "supervised":
        return torch.randperm(len(labels), generator=g)[: cfg.n_train or len(labels)], None
    if cfg.task == "semi":
        lab_idx = labelled_indices(labels, cfg.labels_per_class, seed)
        mask = torch.ones(len(labels), dtype=torch.bool)
        mask[lab_idx] = False
        return lab_idx, torch.nonzero(mask).flatten()
    # imbalanced: a long-tailed pool; 10% of it labelled, the rest unlabelled
    pool = long_tail_indices(labels, cfg.imbalance_ratio, seed)
    pool = pool[torch.randperm(len(pool), generator=g)]
    n_lab = max(10, len(pool) // 10)
    return pool[:n_lab], pool[n_lab:]


def train_loop(cfg: TrainConfig, model: torch.nn.Module, loss_fn: TrainingLoss, xtr: torch.Tensor,
               ytr: torch.Tensor, lab_idx: torch.Tensor, unl_idx: torch.Tensor | None, g: torch.Generator,
               device: torch.device, progress: Callable[[str], None] | None = None, seed: int = 0) -> None:
    """SGD (Nesterov, cosine schedule) on the config's loss; the loss's own parameters (betas) by Adam."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    extra = list(loss_fn.parameters())
    beta_opt = torch.optim.Adam(extra, lr=1e-3) if extra else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    for step in range(cfg.steps):
        model.train()
        b = lab_idx[torch.randint(0, len(lab_idx), (cfg.batch_size,), generator=g)]
        xl, yl = augment(xtr[b], g).to(device), ytr[b].to(device)
        if not loss_fn.unlabelled:
            out = StepLogits(model(xl), yl)
        else:
            u = unl_idx[torch.randint(0, len(unl_idx), (cfg.batch_size * cfg.unlabelled_ratio,), generator=g)]
            views = [xl, augment(xtr[u], g).to(device)]
            if loss_fn.strong_view:
                views.append(strong_augment(xtr[u], g).to(device))
            parts = model(torch.cat(views)).split([len(v) for v in views])
            out = StepLogits(parts[0], yl, parts[1], parts[2] if len(parts) > 2 else None)
        loss = loss_fn(out)
        opt.zero_grad(set_to_none=True)
        if beta_opt is not None:
            beta_opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if beta_opt is not None:
            beta_opt.step()
        sched.step()
        if progress and (step + 1) % max(1, cfg.steps // 5) == 0:
            progress(f"{cfg.task}/{cfg.loss} seed {seed}: step {step + 1}/{cfg.steps} loss {loss.item():.3f}")


def run_training(cfg: TrainConfig, seed: int, *, data_dir: str | None = None, device: str | torch.device = "cpu",
                 store: ResultStore | None = None, progress: Callable[[str], None] | None = None,
                 checkpoint_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one model; returns (and stores) test accuracy, macro-F1, per-class F1, predicted-class counts.

    With ``checkpoint_dir`` the trained weights are saved there (``<task>-<loss>-<sha1 of the config>-seed<k>.pt``,
    a plain state dict that ``torch.load(..., weights_only=True)`` reads) and the record names the file."""
    kind, key = f"train:{cfg.task}", f"{cfg.key}|seed={seed}"
    if store is not None and key in (done := store.get_records(kind)):
        return done[key]
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    xtr, ytr = load_fashion_mnist("train", data_dir)
    xte, yte = load_fashion_mnist("test", data_dir)
    if cfg.n_test:
        xte, yte = xte[: cfg.n_test], yte[: cfg.n_test]
    num_classes = int(max(ytr.max(), yte.max())) + 1
    lab_idx, unl_idx = split_training_set(cfg, ytr, seed, g)
    model = build_model(cfg.model, num_classes).to(device)
    loss_fn = build_loss(cfg.loss, num_classes, unsup_weight=cfg.unsup_weight, threshold=cfg.threshold).to(device)
    t0 = time.time()
    train_loop(cfg, model, loss_fn, xtr, ytr, lab_idx, unl_idx, g, device, progress, seed)
    res = _evaluate(model, xte, yte, device, num_classes)
    res.update(seed=seed, config=json.loads(cfg.key), seconds=round(time.time() - t0, 1),
               n_labelled=len(lab_idx), n_unlabelled=0 if unl_idx is None else len(unl_idx))
    if hasattr(loss_fn, "betas"):
        res["betas"] = [round(float(v), 4) for v in loss_fn.betas().detach()]
    if checkpoint_dir is not None:
        res["checkpoint"] = str(_save_weights(model, cfg, seed, Path(checkpoint_dir)))
    if store is not None:
        store.put_record(kind, key, res)
    return res


def _save_weights(model: torch.nn.Module, cfg: TrainConfig, seed: int, folder: Path) -> Path:
    digest = hashlib.sha1(cfg.key.encode()).hexdigest()[:10]
    path = folder / f"{cfg.task}-{cfg.loss}-{digest}-seed{seed}.pt"
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return path
