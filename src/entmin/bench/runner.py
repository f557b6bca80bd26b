"""Evaluate an adapter on a stream and write one store cell per finished segment.

The runner resolves the configuration (its provenance: data fingerprint, weights sha256, corruption code),
builds the model and adapter per seed, and walks the stream's segments (:mod:`entmin.bench.streams`): it
resets the adapter where a segment asks for it, skips finished cells, and saves the adapter state after a
cell whenever the next segment continues from it, so a killed run resumes mid-stream to the identical table.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..adapt import make_adapter
from ..errors import UsageError
from ..models.zoo import load_model, restrict_head
from ..objectives import entropy
from ..utils import resolve_device, seed_everything
from .config import RunConfig
from .provenance import resolve
from .sources import DataSource
from .store import ResultStore
from .streams import Domain, Segment, Stream, batch_bounds, domain_subset, stream_domains

__all__ = ["DataSource", "batch_bounds", "domain_subset", "evaluate_segment", "run_experiment", "summarize"]


def _build_adapter(cfg: RunConfig, model: torch.nn.Module, source: DataSource, seed: int, device,
                   num_classes: int) -> Any:
    options: dict[str, Any] = dict(cfg.method_options)
    if cfg.method not in ("source", "bn"):
        options.setdefault("optimizer", {"name": cfg.optimizer, "lr": cfg.effective_lr, "momentum": cfg.momentum})
        options.setdefault("steps", cfg.steps)
        options.setdefault("bank_update", cfg.bank_update)
    options.update(precision=cfg.precision, channels_last=cfg.channels_last, compile=cfg.compile)
    if cfg.method == "eata":
        options.setdefault("fisher_loader", [b.to(device) for b in source.clean_batches(seed=seed)])
    return make_adapter(cfg.method, model, cfg.objective, objective_options=dict(cfg.objective_options) or None,
                        seed=seed, num_classes=num_classes, **options)


class _Domains:
    """The domains a run has opened (a mixed stream revisits all of them); at most ``keep`` at a time."""

    def __init__(self, source: DataSource, keep: int = 16) -> None:
        self.source, self.keep, self.data = source, keep, {}

    def __call__(self, domain: Domain):
        if domain not in self.data:
            if len(self.data) >= self.keep:
                self.data.pop(next(iter(self.data)))
            self.data[domain] = self.source.domain(*domain)
        return self.data[domain]


def _segment_batches(segment: Segment, load, batch_size: int):
    """(images, labels, runs) per batch; a segment of one domain is decoded ahead by its domain's loader."""
    batches = list(segment.batches(batch_size))
    doms = {d for runs in batches for d, _ in runs}
    if len(doms) == 1:
        data = load(next(iter(doms)))
        idx = [runs[0][1] for runs in batches]
        for runs, x in zip(batches, data.batches(idx)):
            yield x, data.labels[runs[0][1]], runs
        return
    for runs in batches:
        yield (torch.cat([load(d).images(i) for d, i in runs]), torch.cat([load(d).labels[i] for d, i in runs]),
               runs)


def evaluate_segment(adapter, segment: Segment, load: Callable[[Domain], Any], batch_size: int,
                     device: torch.device, num_classes: int) -> dict[str, Any]:
    """Run the adapter over the segment's batches; accuracy, per-batch accuracy, predicted-class histogram,
    per-class counts and hits (per-class recall, :func:`~entmin.bench.tables.per_class_recall`), mean entropy, samples selected by the host's filters, SAR recoveries (and per-domain counts when the
    segment mixes domains). uint8 images (decoded folders) become floats in [0, 1] on the device."""
    correct = 0
    hist = torch.zeros(num_classes, dtype=torch.long)
    true_hist = torch.zeros(num_classes, dtype=torch.long)
    hit_hist = torch.zeros(num_classes, dtype=torch.long)
    batch_acc, ent_sum, selected, recoveries, skipped = [], 0.0, 0, 0, 0
    per_domain: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for x, y, runs in _segment_batches(segment, load, batch_size):
        xb = x.to(device, non_blocking=True)
        if xb.dtype == torch.uint8:
            xb = xb.float().div_(255.0)
        yb = y.to(device)
        logits = adapter(xb)
        pred = logits.argmax(1)
        hit = pred == yb
        c = int(hit.sum())
        correct += c
        batch_acc.append(round(c / len(yb), 4))
        hist += torch.bincount(pred.cpu(), minlength=num_classes)[:num_classes]
        y_cpu = y.cpu()
        true_hist += torch.bincount(y_cpu, minlength=num_classes)[:num_classes]
        hit_hist += torch.bincount(y_cpu[hit.cpu()], minlength=num_classes)[:num_classes]
        if len(runs) > 1 or runs[0][0][0] != segment.domain:
            start = 0
            for (name, _sev), idx in runs:
                counts = per_domain.setdefault(name, [0, 0])
                counts[0] += len(idx)
                counts[1] += int(hit[start:start + len(idx)].sum())
                start += len(idx)
        diag = adapter.last_step
        # every adapter records the mean entropy of the logits it returns (and checked them); recompute only
        # for one that does not
        mean_ent = diag.get("entropy")
        ent_sum += (float(mean_ent) * len(yb) if mean_ent is not None
                    else float(entropy(logits.detach().float()).sum()))
        selected += int(diag.get("selected", 0))
        recoveries += int(bool(diag.get("recovered", False)))
        skipped += int(bool(diag.get("update_skipped", False)))
    wall = time.perf_counter() - t0
    n = len(segment)
    metrics = {"pred_hist": hist.tolist(), "class_counts": true_hist.tolist(), "class_correct": hit_hist.tolist(),
               "mean_entropy": ent_sum / n, "selected": selected,
               "recoveries": recoveries, "batch_acc": batch_acc, "images_per_s": n / max(wall, 1e-9)}
    if per_domain:
        metrics["domains"] = per_domain
    if getattr(adapter, "precision", "fp32") == "fp16":
        metrics["fp16_skipped_steps"] = skipped  # updates GradScaler dropped for overflowing gradients
    return {"n": n, "correct": correct, "wall": wall, "metrics": metrics}


def run_experiment(cfg: RunConfig, seeds: Iterable[int], store: ResultStore, *, data_dir: str | None = None,
                   cache_dir: str | None = None, device: str | torch.device = "cpu",
                   model_loader: Callable[[], torch.nn.Module] | None = None,
                   progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``cfg`` for each seed, skipping finished cells; returns the store rows of the resolved config
    (whose hash includes the provenance found here; ``cfg`` may be resolved already, and must then match)."""
    device = resolve_device(device)  # "auto" is decided where the run executes (a Ray worker's own GPU)
    seeds = list(seeds)
    if not seeds:
        raise UsageError("no seeds given")
    for s in seeds:
        seed_everything(s)  # validates every seed before any compute
    source = DataSource(cfg.dataset, data_dir, cache_dir, cfg.class_list)
    cfg = resolve(cfg, data_dir, cache_dir, source)
    store.register(cfg.hash, cfg.to_dict())
    domains = stream_domains(cfg.corruptions, cfg.severity)
    for seed in seeds:
        stream = Stream(cfg.protocol, domains, cfg.batch_size, cfg.n_per_domain, cfg.split, seed, delta=cfg.delta,
                        slots=cfg.slots, rounds=cfg.rounds, imbalance=cfg.imbalance)
        segments = stream.segments(source)
        done = store.done(cfg.hash, seed)
        if all(s.position in done for s in segments):
            continue
        seed_everything(seed)
        model = (model_loader() if model_loader else load_model(
            cfg.model, cfg.weights, num_classes=cfg.num_classes or (1000 if source.head else source.num_classes)))
        if source.head is not None:
            restrict_head(model, source.head)
        model = model.to(device)
        adapter = _build_adapter(cfg, model, source, seed, device, cfg.num_classes or source.num_classes)
        start = 0
        resumed = store.load_state(cfg.hash, seed)
        if resumed is not None and resumed[0] + 1 <= len(segments):
            adapter.import_state(resumed[1])
            start = resumed[0] + 1
        load = _Domains(source)
        for i in range(start, len(segments)):
            seg = segments[i]
            continues = i + 1 < len(segments) and not segments[i + 1].reset  # the next cell needs this state
            if seg.position in done and not continues:
                continue
            if seg.reset:
                adapter.reset()
            res = evaluate_segment(adapter, seg, load, cfg.batch_size, device, adapter.num_classes)
            store.write_cell(cfg.hash, seed, seg.domain, seg.position, res["n"], res["correct"], res["metrics"],
                             res["wall"])
            if continues:
                store.save_state(cfg.hash, seed, seg.position, adapter.export_state())
            if progress:
                progress({"label": cfg.label, "model": cfg.model, "protocol": cfg.protocol, "seed": seed,
                          "domain": seg.domain, "position": seg.position, "accuracy": res["correct"] / res["n"],
                          "wall": res["wall"], "hash": cfg.hash})
        store.drop_state(cfg.hash, seed)
    return store.cells(cfg.hash)


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean accuracy over a stream's cells per seed, then mean and std over seeds."""
    per_seed: dict[int, list[float]] = {}
    for r in rows:
        per_seed.setdefault(r["seed"], []).append(r["accuracy"])
    means = [sum(v) / len(v) for v in per_seed.values()]
    m = sum(means) / len(means) if means else float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / (len(means) - 1)) if len(means) > 1 else 0.0
    return {"mean": m, "std": sd, "seeds": len(means)}
