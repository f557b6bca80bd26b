"""Reproducible training of the built-in source models on clean Fashion-MNIST."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.fashion_mnist import load_fashion_mnist
from ..models.checkpoints import save_checkpoint
from ..models.small import build_model
from ..utils import seed_everything

__all__ = ["augment", "evaluate", "train_source"]

RECIPES = {
    "cnn": {"epochs": 6, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4},
    "vit": {"epochs": 5, "batch_size": 128, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random translation by up to 2 pixels (zero padding)."""
    n = x.shape[0]
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


def train_source(model_name: str, out: str | Path, *, seed: int = 0, epochs: int | None = None,
                 data_dir: str | None = None, device: str = "cpu", limit: int | None = None,
                 progress: Callable[[str], None] | None = None, command: str = "") -> dict:
    recipe = dict(RECIPES[model_name])
    if epochs is not None:
        recipe["epochs"] = epochs
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    xtr, ytr = load_fashion_mnist("train", data_dir)
    xte, yte = load_fashion_mnist("test", data_dir)
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    model = build_model(model_name).to(device)
    bs, n = recipe["batch_size"], len(xtr)
    steps = recipe["epochs"] * ((n + bs - 1) // bs)
    if recipe["optimizer"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=0.9, nesterov=True,
                              weight_decay=recipe["weight_decay"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.2)
    t0 = time.time()
    for epoch in range(recipe["epochs"]):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = augment(xtr[idx], g).to(device)
            loss = F.cross_entropy(model(xb), ytr[idx].to(device), label_smoothing=0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress:
            progress(f"{model_name} epoch {epoch + 1}/{recipe['epochs']} loss {loss.item():.3f} "
                     f"({time.time() - t0:.0f}s)")
    acc = evaluate(model, xte, yte, device=device)
    meta = {"arch": model_name, "num_classes": 10, "dataset": "fashion-mnist (Debian dataset-fashion-mnist), "
            "28x28 zero-padded to 32x32", "clean_test_accuracy": round(acc, 4), "seed": seed,
            "recipe": recipe, "train_seconds": round(time.time() - t0, 1), "torch": torch.__version__,
            "command": command or f"entmin train-source --model {model_name} --seed {seed}",
            "parameters": sum(p.numel() for p in model.parameters())}
    return save_checkpoint(model.cpu(), out, meta)
