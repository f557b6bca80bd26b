"""One self-contained ``report.html`` of a results store: every table, every figure (embedded as data URIs, so
the file opens offline and can be mailed), the full configuration of each row, the seeds, the machine and the
versions. Built from the Markdown tables and PNG figures that :mod:`entmin.bench.report` writes."""
from __future__ import annotations

import base64
import html
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

__all__ = ["write_html_report"]

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}td:first-child,th:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}details{margin:.5em 0}pre{background:#f8f8f8;
padding:.6em;overflow-x:auto;font-size:12px}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def _md_tables_to_html(md: str) -> str:
    """The Markdown that entmin writes (bold captions, pipe tables, bullet lines) as HTML."""
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
            continue
        flush()
        if line.strip():
            text = html.escape(line.strip())
            text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
            out.append(f"<p>{text}</p>")
    flush()
    return "\n".join(out)


def _machine() -> dict[str, Any]:
    import torch

    from .. import __version__

    return {"entmin": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "written": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_html_report(out: Path, markdown: str, rows: list[dict[str, Any]], store_path: Path) -> Path:
    """``out/report.html`` from the Markdown tables, the PNGs in ``out`` and the cells' configurations."""
    figures = "".join(
        f"<figure><img alt='{html.escape(p.stem)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption>{html.escape(p.stem)}</figcaption></figure>"
        for p in sorted(out.glob("*.png")))
    configs: dict[str, dict[str, Any]] = {}
    seeds: dict[str, set[int]] = {}
    for r in rows:
        configs[r["config_hash"]] = r["config"]
        seeds.setdefault(r["config_hash"], set()).add(r["seed"])
    conf_html = "".join(
        f"<details><summary>{html.escape(c['method'])}+{html.escape(c['objective'])} · {html.escape(c['model'])} · "
        f"{html.escape(c['protocol'])} · hash {h} · seeds {sorted(seeds[h])}</summary><pre>"
        f"{html.escape(json.dumps(c, indent=1, sort_keys=True))}</pre></details>" for h, c in sorted(configs.items()))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>entmin report</title><style>{_STYLE}</style>"
            f"</head><body><h1>entmin report</h1><p>store: <code>{html.escape(str(store_path))}</code></p>"
            f"<h2>Tables (accuracy %)</h2>{_md_tables_to_html(markdown)}<h2>Figures</h2>{figures}"
            f"<h2>Configurations</h2>{conf_html}<h2>Machine and versions</h2><pre>"
            f"{html.escape(json.dumps(_machine(), indent=1))}</pre></body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
