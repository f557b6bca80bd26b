"""The two phases of entropy minimisation (Entropy Enigma, section 3): run EM (or AdaDEM) for many steps
on one corruption and record, every ``every`` steps, on a fixed evaluation subset: accuracy, the mean
distance of the test embeddings to the *source* class means (computed on clean data with true labels), and
a cluster-quality score (between-class / within-class scatter of the embeddings, grouped by predicted
label; higher = tighter clusters). Early EM pulls embeddings into clusters; later, clusters drift away
from the source class means and accuracy collapses.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..adapt import make_adapter

__all__ = ["cluster_score", "embedding_hook", "two_phase_run"]


def embedding_hook(model: nn.Module) -> tuple[list[torch.Tensor], Any]:
    """Capture the input of the model's last ``nn.Linear`` (the penultimate embedding) on each forward."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError("model has no nn.Linear head to read embeddings from")
    store: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda mod, inp, out: store.append(inp[0].detach()))
    return store, handle


def cluster_score(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Trace of the between-class scatter over the trace of the within-class scatter."""
    mu = emb.mean(0)
    between = within = 0.0
    for k in labels.unique():
        e = emb[labels == k]
        mk = e.mean(0)
        between += len(e) * float(((mk - mu) ** 2).sum())
        within += float(((e - mk) ** 2).sum())
    return between / max(within, 1e-12)


@torch.no_grad()
def _embed(adapter, x: torch.Tensor, device, store: list, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    store.clear()
    logits = torch.cat([adapter.model(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)])
    emb = torch.cat([s.cpu() for s in store])
    store.clear()
    return emb, logits


def two_phase_run(model_factory: Callable[[], nn.Module], clean: tuple[torch.Tensor, torch.Tensor],
                  shifted: tuple[torch.Tensor, torch.Tensor], *, objective: str = "em", steps: int = 600,
                  every: int = 20, lr: float = 1e-2, batch_size: int = 64, eval_size: int = 1000, seed: int = 0,
                  device: str | torch.device = "cpu") -> list[dict[str, float]]:
    g = torch.Generator().manual_seed(seed)
    model = model_factory().to(device)
    store, handle = embedding_hook(model)
    try:
        src = make_adapter("source", model)
        xc, yc = clean
        emb_c, _ = _embed(src, xc[:4000], device, store)
        means = torch.stack([emb_c[yc[:4000] == k].mean(0) for k in range(int(yc.max()) + 1)])
        model = model_factory().to(device)
        handle.remove()
        store, handle = embedding_hook(model)
        adapter = make_adapter("tent", model, objective, optimizer={"lr": lr}, seed=seed)
        xs, ys = shifted
        ev = torch.randperm(len(xs), generator=g)[:eval_size]
        xe, ye = xs[ev], ys[ev]
        scale = float((emb_c - means[yc[:4000]]).norm(dim=1).mean())
        out = []
        order, pos = torch.randperm(len(xs), generator=g), 0
        for step in range(steps + 1):
            if step % every == 0:
                emb, logits = _embed(adapter, xe, device, store)
                pred = logits.argmax(1)
                out.append({"step": step, "accuracy": float((pred == ye).float().mean()),
                            "distance_to_source_means": float((emb - means[ye]).norm(dim=1).mean()) / scale,
                            "cluster_score": cluster_score(emb, pred)})
            if step == steps:
                break
            if pos + batch_size > len(xs):
                order, pos = torch.randperm(len(xs), generator=g), 0
            adapter(xs[order[pos:pos + batch_size]].to(device))
            store.clear()
            pos += batch_size
        return out
    finally:
        handle.remove()
