"""Test-time adaptation of a segmenter over corrupted scene domains, per-pixel objectives, into the store.

Hosts: ``source`` (no adaptation), ``bn`` (test-batch BatchNorm statistics) and ``tent`` (BN affine parameters,
the objective averaged over all pixels of the batch; with ``adadem`` the MEC bank is estimated over pixels).
The filtering hosts (ETA, EATA, SAR, DeYO) select *samples* by entropy and are not defined per pixel here;
they are refused with a clear message rather than run with a meaning nobody chose.

One record ``seg/<config hash>/<seed>/<position>`` per domain, written when the domain finishes; continual
streams also save the adapter's state after each domain, so a killed stream resumes where it stopped.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..adapt import make_adapter
from ..bench.store import ResultStore
from ..data.corruptions import CORRUPTIONS
from ..data.fingerprint import json_fingerprint
from ..errors import UsageError
from ..utils import seed_everything
from .metrics import SegMetrics
from .scenes import NUM_SEG_CLASSES, STYLE_SHIFTS, SceneData

__all__ = ["SEG_CODE_VERSION", "SEG_METHODS", "SEG_RECORD", "SegTTAConfig", "run_seg_tta"]

SEG_METHODS = ("source", "bn", "tent")
SEG_RECORD = "seg"
# bump when a change here or in the scenes' metrics changes what a run computes: it is part of the config hash
SEG_CODE_VERSION = 1


@dataclass(frozen=True)
class SegTTAConfig:
    method: str = "tent"
    objective: str = "em"
    protocol: str = "single"          # single: reset before each domain; continual: one stream
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    batch_size: int = 16
    n_per_domain: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    steps: int = 1
    weights_sha256: str = ""
    scenes_fingerprint: str = ""
    code_version: int = SEG_CODE_VERSION

    def __post_init__(self) -> None:
        if self.method not in SEG_METHODS:
            raise UsageError(f"segmentation TTA supports {', '.join(SEG_METHODS)}; {self.method!r} selects whole "
                             "samples by entropy and has no per-pixel definition here")
        if self.protocol not in ("single", "continual"):
            raise UsageError(f"protocol must be single or continual, got {self.protocol!r}")
        bad = [c for c in self.corruptions if c not in CORRUPTIONS and c not in ("clean", *STYLE_SHIFTS)]
        if bad:
            raise UsageError(f"unknown domain(s) {', '.join(bad)}: clean, {', '.join(STYLE_SHIFTS)} or one of "
                             f"{', '.join(CORRUPTIONS)}")

    @property
    def hash(self) -> str:
        d = asdict(self)
        if d["code_version"] == 1:   # version 1 stores were written before the field existed: same keys
            del d["code_version"]
        return json_fingerprint(d)

    @property
    def label(self) -> str:
        return self.method if self.method in ("source", "bn") else f"{self.method}+{self.objective}"


def _adapter(cfg: SegTTAConfig, model: torch.nn.Module, seed: int):
    objective = "em" if cfg.method in ("source", "bn") else cfg.objective
    return make_adapter(cfg.method, copy.deepcopy(model), objective, num_classes=NUM_SEG_CLASSES,
                        optimizer={"name": cfg.optimizer, "lr": cfg.lr}, steps=cfg.steps, seed=seed)


def run_seg_tta(cfg: SegTTAConfig, seed: int, store: ResultStore, model: torch.nn.Module, data: SceneData,
                progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every domain of the stream for one seed (the seed orders each domain's scenes); finished domains are
    read from the store, not recomputed."""
    h = cfg.hash
    key = f"{h}/{seed}"
    # this stream's stored records by position; read once (a recomputed position keeps its stored record)
    done = {int(k.rsplit("/", 1)[1]): v for k, v in store.get_records(SEG_RECORD).items() if k.startswith(key + "/")}
    n = len(cfg.corruptions)
    if len(done) == n:
        return [done[i] for i in range(n)]
    store.register(h, {"kind": "seg", **asdict(cfg)})
    seed_everything(seed)
    adapter = _adapter(cfg, model, seed)
    start = 0
    continual = cfg.protocol == "continual"
    if continual and (saved := store.load_state(h, seed)) is not None and saved[0] + 1 < n:
        adapter.import_state(saved[1])
        start = saved[0] + 1
    for pos in range(start, n):
        if pos in done and not (continual and pos + 1 < n):
            continue
        if not continual:
            adapter.reset()
        domain = cfg.corruptions[pos]
        x, y = data.split(domain, "test")
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + pos))[:cfg.n_per_domain]
        m = SegMetrics(NUM_SEG_CLASSES)
        t0 = time.perf_counter()
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            m.update(adapter(x[idx]), y[idx])
        # JSON-shaped (the corruptions a list), so that a record returned from here equals its stored copy
        rec = {"config_hash": h, "seed": seed, "position": pos, "domain": domain, "label": cfg.label,
               "config": {**asdict(cfg), "corruptions": list(cfg.corruptions)}, "n": len(order), "wall_seconds": time.perf_counter() - t0, **m.summary()}
        store.put_record(SEG_RECORD, f"{key}/{pos}", rec)
        done.setdefault(pos, rec)
        if continual and pos + 1 < n:
            store.save_state(h, seed, pos, adapter.export_state())
        if progress:
            progress(rec)
    store.drop_state(h, seed)
    return [done[i] for i in range(n)]
