"""Segmentation tables (TTA: mIoU per domain, mean over the stream; UDA: target mIoU; mean +- std over seeds) and
the figures of predicted maps (source-only vs adapted models on a few target scenes, as the paper's Fig. 7).

UDA records carry the predicted maps of the first few target test scenes (and the source-only record the scenes
and their truth), packed as bytes, so that the UDA figure is drawn from the store alone, like every table."""
from __future__ import annotations

import base64
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .scenes import BACKGROUND, NUM_SEG_CLASSES

__all__ = ["MAP_SCENES", "pack_uint8", "packed_maps", "seg_maps_figure", "seg_table_markdown", "uda_maps_figure",
           "uda_table_markdown", "unpack_uint8"]

MAP_SCENES = 4          # target test scenes whose predicted maps a UDA record keeps (for the figure)


def pack_uint8(t: torch.Tensor) -> dict[str, Any]:
    """A small uint8 tensor (label maps, or images quantised to 256 levels) as JSON-safe base64 with its shape."""
    a = t.detach().cpu().to(torch.uint8).numpy()
    return {"shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack_uint8(d: dict[str, Any]) -> torch.Tensor:
    a = np.frombuffer(base64.b64decode(d["b64"]), dtype=np.uint8).reshape(d["shape"])
    return torch.from_numpy(a.copy())


@torch.no_grad()
def packed_maps(model: torch.nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """The eval-mode predicted label maps of the first :data:`MAP_SCENES` images, packed for a record."""
    return pack_uint8(model.eval()(images[:MAP_SCENES]).argmax(1))


_UDA_ORDER = {"source fine-tuning": 0}          # first after the source-only row; the rest by label


def _lambdas(cfg: dict[str, Any]) -> tuple[str, str]:
    """The weights a UDA configuration used, "–" where its method has no such term."""
    lam_ent = f"{cfg['lambda_ent']:g}" if cfg["method"] != "source" and cfg["objective"] != "none" else "–"
    lam_adv = f"{cfg['lambda_adv']:g}" if cfg["method"] == "advent" else "–"
    return lam_ent, lam_adv


def uda_table_markdown(records: dict[str, dict[str, Any]], sources: dict[str, dict[str, Any]]) -> str:
    """Target mIoU and pixel accuracy per UDA configuration (mean +- std over seeds), after the source-only row."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records.values():
        groups[r["config_hash"]].append(r)
    lines = ["| target | method | steps | λ_ent | λ_adv | target mIoU | pixel accuracy |", "|---|---|---|---|---|---|---|"]
    for s in sources.values():
        lines.append(f"| {s['target']} | {s['label']} | – | – | – | {100 * s['miou']:.1f} | "
                     f"{100 * s['pixel_accuracy']:.1f} |")
    for recs in sorted(groups.values(), key=lambda rs: (rs[0]["target"], _UDA_ORDER.get(rs[0]["label"], 1),
                                                       rs[0]["label"], -rs[0]["config"]["lambda_ent"])):
        m = np.array([r["miou"] for r in recs])
        a = np.array([r["pixel_accuracy"] for r in recs])
        cfg = recs[0]["config"]
        lam_ent, lam_adv = _lambdas(cfg)     # rows differing only by a weight are told apart
        lines.append(f"| {recs[0]['target']} | {recs[0]['label']} | {cfg['steps']} | {lam_ent} | {lam_adv} | "
                     f"{100 * m.mean():.1f} ± {100 * m.std():.1f} (n={len(m)}) | {100 * a.mean():.1f} |")
    return "\n".join(lines) + "\n"


def _short(domain: str) -> str:
    return "".join(w[0] for w in domain.split("_")) if "_" in domain else domain[:5]


def seg_table_markdown(records: dict[str, dict[str, Any]]) -> str:
    """One row per configuration (host+objective, protocol): mean mIoU over its domains (mean +- std over
    seeds, n = seeds), then each domain's mIoU (mean over seeds); Δ vs the same host with EM where both ran."""
    groups: dict[str, dict[int, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for r in records.values():
        groups[r["config_hash"]][r["seed"]][r["position"]] = r
    rows, domains = [], None
    for cells in groups.values():
        complete = {s: v for s, v in cells.items()
                    if len(v) == len(next(iter(v.values()))["config"]["corruptions"])}
        if not complete:
            continue
        any_seed = next(iter(complete.values()))
        cfg = any_seed[0]["config"]
        doms = [any_seed[i]["domain"] for i in sorted(any_seed)]
        domains = domains or doms
        per_seed = [np.mean([v[i]["miou"] for i in v]) for v in complete.values()]
        per_dom = [np.mean([v[i]["miou"] for v in complete.values()]) for i in sorted(any_seed)]
        rows.append((cfg["protocol"], any_seed[0]["label"], cfg, per_seed, per_dom, doms))
    if not rows:
        return ""
    order = {"source": 0, "bn": 1}
    rows.sort(key=lambda r: (r[0], order.get(r[1], 2), r[2]["lr"], r[1]))
    em = {(r[0], r[1].split("+")[0], r[2]["lr"]): np.mean(r[3]) for r in rows if r[1].endswith("+em")}
    head = ["protocol", "method", "lr", "mean mIoU", "Δ vs EM"] + [_short(d) for d in domains]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for protocol, label, cfg, per_seed, per_dom, doms in rows:
        host = label.split("+")[0]
        base = em.get((protocol, host, cfg["lr"])) if "+" in label and not label.endswith("+em") else None
        lr = f"{cfg['lr']:g}" if host not in ("source", "bn") else "–"
        delta = f"{100 * (np.mean(per_seed) - base):+.1f}" if base is not None else "–"
        cells = [f"{100 * v:.1f}" for v in per_dom] if doms == domains else ["?"] * len(domains)
        mean = f"{100 * np.mean(per_seed):.1f} ± {100 * np.std(per_seed):.1f} (n={len(per_seed)})"
        lines.append("| " + " | ".join([protocol, label, lr, mean, delta, *cells]) + " |")
    return "\n".join(lines) + "\n"


def seg_maps_figure(images: torch.Tensor, truth: torch.Tensor, predictions: dict[str, torch.Tensor],
                    path: Path, title: str = "") -> Path:
    """Rows: scenes; columns: input, ground truth, then one predicted map per method."""
    from ..viz import pyplot, save

    plt = pyplot()
    cmap = plt.get_cmap("tab20", 20)
    n, cols = len(images), 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        panels = [("ground truth", truth[i])] + [(k, v[i]) for k, v in predictions.items()]
        for j, (name, m) in enumerate(panels, start=1):
            shown = np.ma.masked_where(m.numpy() == BACKGROUND, m.numpy())
            axes[i, j].imshow(np.zeros_like(m.numpy()), cmap="gray", vmin=0, vmax=1)
            axes[i, j].imshow(shown, cmap=cmap, vmin=0, vmax=NUM_SEG_CLASSES - 1, interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path)
    return path


def uda_maps_figure(records: dict[str, dict[str, Any]], sources: dict[str, dict[str, Any]], out: Path
                    ) -> list[Path]:
    """One figure per target: input, truth, the source model's maps and each UDA configuration's (its lowest
    seed), on the scenes the records keep; only records of the same source weights and scenes are paired,
    configurations sharing a label are titled with their weights, and records written before maps were kept are
    left out."""
    paths = []
    for src in sources.values():
        if "scenes" not in src or "maps" not in src:
            continue
        target = src["target"]
        by_config: dict[str, dict[str, Any]] = {}       # config hash -> its lowest seed's record
        for r in sorted(records.values(), key=lambda r: r["seed"]):
            if (r["target"] == target and "maps" in r and r.get("source_sha256") == src.get("sha256")
                    and r["config"]["scenes_fingerprint"] == src.get("scenes_fingerprint")):
                by_config.setdefault(r["config_hash"], r)
        if not by_config:
            continue
        chosen = sorted(by_config.values(), key=lambda r: (_UDA_ORDER.get(r["label"], 1), r["label"],
                                                            -r["config"]["lambda_ent"]))
        labels = [r["label"] for r in chosen]
        preds = {"source only": unpack_uint8(src["maps"]).long()}
        for r in chosen:   # two configurations under one label (another weight) say which weights they used
            title = r["label"] if labels.count(r["label"]) == 1 else \
                r["label"] + " (λ {}, {})".format(*_lambdas(r["config"]))
            preds[title] = unpack_uint8(r["maps"]).long()
        images = unpack_uint8(src["scenes"]).float() / 255.0
        paths.append(seg_maps_figure(images, unpack_uint8(src["truth"]).long(), preds,
                                     out / f"seg_uda_maps_{target}.png", title=f"UDA, clean -> {target}"))
    return paths
