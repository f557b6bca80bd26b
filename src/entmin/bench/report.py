"""Everything a results store reports, written to a folder: the benchmark tables (Markdown, CSV) and their
figures, the DEM* table of `entmin search`, the tables of `entmin train`, and one self-contained report.html.
Computed from the store only."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..viz.bench import (
    plot_accuracy_heatmap,
    plot_class_distribution,
    plot_continual_stream,
    plot_per_corruption,
)
from .store import ResultStore
from .tables import build_table, dem_star_table_markdown, table_markdown, write_csv

__all__ = ["TRAINING_TASKS", "write_benchmark_report", "write_report"]

TRAINING_TASKS = ("supervised", "semi", "imbalanced")


def write_benchmark_report(rows: list[dict[str, Any]], out: Path, seeds: Iterable[int] | None = None) -> str:
    """Table (Markdown, CSV) and figures of benchmark cells; returns the Markdown table."""
    seeds = sorted(set(seeds)) if seeds is not None else None
    entries = build_table(rows, seeds)
    md = table_markdown(entries)
    (out / "table.md").write_text(md)
    write_csv(entries, out / "table.csv")
    rows = [r for r in rows if seeds is None or r["seed"] in seeds]
    for model, protocol in sorted({(e["model"], e["protocol"]) for e in entries}):
        es = [e for e in entries if e["model"] == model and e["protocol"] == protocol]
        tag = f"{model}_{protocol}".replace(":", "-").replace("/", "-")
        plot_per_corruption(es, out / f"per_corruption_{tag}.png", f"{model}, {protocol}")
        plot_accuracy_heatmap(es, out / f"heatmap_{tag}.png", f"{model}, {protocol}")
        hists = {}
        for e in es:
            if e["method"] in ("source", "tent") or e["objective"] in ("em", "adadem"):
                first = [r for r in rows if r["config_hash"] == e["hash"] and r["position"] == 0]
                if first:
                    label = e["method"] if e["method"] in ("source", "bn") else f"{e['method']}+{e['objective']}"
                    hists[label] = first[0]["metrics"]["pred_hist"]
        if hists:
            dom = es[0]["config"]["corruptions"][0]
            plot_class_distribution(hists, out / f"class_distribution_{tag}.png",
                                    f"predicted classes on {dom} ({model}, {protocol})")
        if protocol != "single":
            plot_continual_stream([r for r in rows if r["config"]["model"] == model
                                   and r["config"]["protocol"] == protocol],
                                  out / f"stream_{tag}.png", title=f"{model}, {protocol}")
    return md


def write_report(store: ResultStore, out: Path, hashes: set[str] | None = None,
                 seeds: Iterable[int] | None = None) -> str:
    """Every table and figure of ``store`` (or of the configurations ``hashes`` only) into ``out``; returns
    the Markdown of all tables. A store without any result is an error."""
    from ..search import DEM_STAR_KIND
    from ..training.report import training_table_markdown

    out.mkdir(parents=True, exist_ok=True)
    parts: list[str] = []
    rows = [r for r in store.cells() if hashes is None or r["config_hash"] in hashes]
    if rows:
        parts.append(write_benchmark_report(rows, out, seeds))
    if hashes is None:
        if stars := store.get_records(DEM_STAR_KIND):
            dem_md = dem_star_table_markdown(stars)
            (out / "dem_star.md").write_text(dem_md)
            parts.append("DEM* (TPE search of tau, alpha on a labelled 20%; accuracy on the other 80%)\n\n" + dem_md)
        if rl := store.get_records("rl"):
            from ..rl.report import rl_curves_figure, rl_table_markdown

            rl_md = rl_table_markdown(rl)
            (out / "rl_table.md").write_text(rl_md)
            rl_curves_figure(rl, out / "rl_curves.png")
            parts.append("PPO on MiniGrid: final evaluation return (deterministic policy, mean over episodes; "
                         "mean ± std over seeds)\n\n" + rl_md)
        if seg := store.get_records("seg"):
            from ..seg.report import seg_table_markdown

            seg_md = seg_table_markdown(seg)
            (out / "seg_table.md").write_text(seg_md)
            parts.append("Segmentation TTA on the corrupted scenes: mIoU (%)\n\n" + seg_md)
        if uda := store.get_records("seg-uda"):
            from ..seg.report import uda_maps_figure, uda_table_markdown

            sources = store.get_records("seg-uda-source")
            uda_md = uda_table_markdown(uda, sources)
            (out / "seg_uda_table.md").write_text(uda_md)
            uda_maps_figure(uda, sources, out)
            parts.append("Segmentation UDA (clean scenes -> target): target mIoU (%)\n\n" + uda_md)
        if tpt := store.get_records("tpt"):
            from ..tpt.report import tpt_table_markdown

            tpt_md = tpt_table_markdown(tpt)
            (out / "tpt_table.md").write_text(tpt_md)
            parts.append("Test-time prompt tuning of the CLIP-style model: accuracy (%)\n\n" + tpt_md)
        for task in TRAINING_TASKS:
            if recs := store.get_records(f"train:{task}"):
                md = training_table_markdown(recs)
                (out / f"train_{task}_table.md").write_text(md)
                parts.append(md)
    if not parts:
        raise DataError(f"no results in {store.path}")
    md = "\n".join(parts)
    from .html import write_html_report

    write_html_report(out, md, rows, store.path)
    return md
