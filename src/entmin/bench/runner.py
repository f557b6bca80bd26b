"""Protocols: single-domain (reset before each corruption) and continual (no reset), over seeded streams.

The runner only wires data, model and adapter together and writes one store row per finished domain.
A seed fixes the order of each domain's stream (a permutation drawn from (seed, domain position)) and the
adapter's own randomness; the subset of images used with ``n_per_domain`` is the same for every seed.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..adapt import make_adapter
from ..data.cache import FMNISTC
from ..data.fashion_mnist import load_fashion_mnist
from ..data.formats import load_cifar10c, load_imagenetc
from ..models.zoo import load_model
from ..objectives import entropy
from ..utils import seed_everything
from .config import DATASET_CLASSES, RunConfig
from .store import ResultStore

__all__ = ["DataSource", "batch_bounds", "run_experiment"]


class DataSource:
    """Loads (images, labels) of one domain of the configured dataset."""

    def __init__(self, dataset: str = "fmnist", data_dir: str | None = None, cache_dir: str | None = None) -> None:
        self.dataset, self.data_dir = dataset, data_dir
        if dataset == "fmnist":
            self.fmnistc = FMNISTC(data_dir, cache_dir)
        elif not data_dir:
            raise ValueError(f"dataset {dataset!r} needs --data-dir pointing at its root folder")

    def load(self, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dataset == "fmnist":
            return self.fmnistc.load(corruption, severity)
        if self.dataset == "cifar10c":
            return load_cifar10c(self.data_dir, corruption, severity)
        return load_imagenetc(self.data_dir, corruption, severity)

    def clean_batches(self, n: int = 2000, batch_size: int = 64, seed: int = 0) -> list[torch.Tensor]:
        """Clean in-distribution batches (EATA's Fisher): Fashion-MNIST *training* images."""
        if self.dataset != "fmnist":
            raise ValueError("EATA needs clean in-distribution samples; only the built-in dataset provides them "
                             "in the runner (use the Python API with your own fisher_loader)")
        x, _ = load_fashion_mnist("train", self.data_dir)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return [x[idx[i:i + batch_size]] for i in range(0, len(idx), batch_size)]


SEARCH_FRACTION = 0.2


def domain_subset(n: int, split: str = "all", n_per_domain: int | None = None) -> torch.Tensor:
    """Indices of the images of a domain used by a run: a fixed permutation (seed 0, the same for every seed
    and method), cut into the 20% "search" part and the 80% "holdout" part, then capped at n_per_domain."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_search = round(SEARCH_FRACTION * n)
    if split == "search":
        perm = perm[:n_search]
    elif split == "holdout":
        perm = perm[n_search:]
    return perm[: n_per_domain or len(perm)]


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch boundaries; a trailing batch of one sample is merged into the previous one (BatchNorm needs 2)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


def _build_adapter(cfg: RunConfig, model: torch.nn.Module, source: DataSource, seed: int, device) -> Any:
    options: dict[str, Any] = dict(cfg.method_options)
    if cfg.method not in ("source", "bn"):
        options.setdefault("optimizer", {"name": cfg.optimizer, "lr": cfg.effective_lr, "momentum": cfg.momentum})
        options.setdefault("steps", cfg.steps)
        options.setdefault("bank_update", cfg.bank_update)
    if cfg.method == "eata":
        options.setdefault("fisher_loader", [b.to(device) for b in source.clean_batches(seed=seed)])
    return make_adapter(cfg.method, model, cfg.objective, objective_options=dict(cfg.objective_options) or None,
                        seed=seed, **options)


def _evaluate_domain(adapter, x: torch.Tensor, y: torch.Tensor, cfg: RunConfig, perm: torch.Tensor,
                     device: torch.device, num_classes: int) -> dict[str, Any]:
    correct = 0
    hist = torch.zeros(num_classes, dtype=torch.long)
    batch_acc, ent_sum, selected, recoveries = [], 0.0, 0, 0
    t0 = time.perf_counter()
    for lo, hi in batch_bounds(len(perm), cfg.batch_size):
        idx = perm[lo:hi]
        xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device)
        logits = adapter(xb)
        pred = logits.argmax(1)
        c = int((pred == yb).sum())
        correct += c
        batch_acc.append(round(c / (hi - lo), 4))
        hist += torch.bincount(pred.cpu(), minlength=num_classes)[:num_classes]
        diag = adapter.last_step
        # every adapter records the mean entropy of the logits it returns (and checked them); recompute only
        # for one that does not
        mean_ent = diag.get("entropy")
        ent_sum += (float(mean_ent) * (hi - lo) if mean_ent is not None
                    else float(entropy(logits.detach().float()).sum()))
        selected += int(diag.get("selected", 0))
        recoveries += int(bool(diag.get("recovered", False)))
    wall = time.perf_counter() - t0
    n = len(perm)
    return {"n": n, "correct": correct, "wall": wall,
            "metrics": {"pred_hist": hist.tolist(), "mean_entropy": ent_sum / n, "selected": selected,
                        "recoveries": recoveries, "batch_acc": batch_acc, "images_per_s": n / max(wall, 1e-9)}}


def run_experiment(cfg: RunConfig, seeds: Iterable[int], store: ResultStore, *, data_dir: str | None = None,
                   cache_dir: str | None = None, device: str | torch.device = "cpu",
                   model_loader: Callable[[], torch.nn.Module] | None = None,
                   progress: Callable[[str, int, str, float], None] | None = None) -> list[dict[str, Any]]:
    """Run ``cfg`` for each seed, skipping finished cells; returns the store rows of this config."""
    device = torch.device(device)
    store.register(cfg.hash, cfg.to_dict())
    source = DataSource(cfg.dataset, data_dir, cache_dir)
    domains = list(cfg.corruptions)
    for seed in seeds:
        done = store.done(cfg.hash, seed)
        if all(d in done for d in domains):
            continue
        seed_everything(seed)
        model = (model_loader() if model_loader
                 else load_model(cfg.model, cfg.weights, num_classes=DATASET_CLASSES[cfg.dataset])).to(device)
        adapter = _build_adapter(cfg, model, source, seed, device)
        start = 0
        if cfg.protocol == "continual":
            resumed = store.load_state(cfg.hash, seed)
            if resumed is not None and resumed[0] + 1 <= len(domains):
                adapter.import_state(resumed[1])
                start = resumed[0] + 1
        fixed_subset = None
        for pos in range(start, len(domains)):
            domain = domains[pos]
            if cfg.protocol == "single" and domain in done:
                continue
            x, y = source.load(domain, cfg.severity)
            if fixed_subset is None or len(fixed_subset) > len(x):
                fixed_subset = domain_subset(len(x), cfg.split, cfg.n_per_domain)
            order = torch.randperm(len(fixed_subset), generator=torch.Generator().manual_seed(seed * 1009 + pos))
            perm = fixed_subset[order]
            if cfg.protocol == "single":
                adapter.reset()
            res = _evaluate_domain(adapter, x, y, cfg, perm, device, adapter.num_classes)
            store.write_cell(cfg.hash, seed, domain, pos, res["n"], res["correct"], res["metrics"], res["wall"])
            if cfg.protocol == "continual":
                store.save_state(cfg.hash, seed, pos, adapter.export_state())
            if progress:
                progress(cfg.label, seed, domain, res["correct"] / res["n"])
        if cfg.protocol == "continual":
            store.drop_state(cfg.hash, seed)
    return store.cells(cfg.hash)


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean accuracy over domains per seed, then mean and std over seeds."""
    per_seed: dict[int, list[float]] = {}
    for r in rows:
        per_seed.setdefault(r["seed"], []).append(r["accuracy"])
    means = [sum(v) / len(v) for v in per_seed.values()]
    m = sum(means) / len(means) if means else float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / (len(means) - 1)) if len(means) > 1 else 0.0
    return {"mean": m, "std": sd, "seeds": len(means)}
