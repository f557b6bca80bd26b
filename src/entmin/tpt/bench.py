"""The TPT benchmark: zero-shot, prompt ensemble, CoOp, TPT and TPT(CoOp) with any objective, on the clean and
corrupted Fashion-MNIST test images, into the results store, resumable per block of images.

One record ``tpt/<config hash>/<seed>/<split>/<block>`` per block (``block`` images). The hash covers only the
fields that change what a method computes (a zero-shot row does not depend on TPT's learning rate), the
weights' sha256, the data fingerprint (clean test and training images: CoOp's shots come from the latter) and
the corruption code. Episodes are independent (the prompt, the optimizer and, by default, AdaDEM's bank are
reset per image) and each image's augmentations are drawn from ``(seed, image index)``, so a block computed
after a restart is bit-identical to one computed in an uninterrupted run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from ..bench.store import ResultStore
from ..data.cache import FMNISTC
from ..data.corruptions import CORRUPTIONS
from ..data.fashion_mnist import data_fingerprint
from ..data.fingerprint import json_fingerprint, state_dict_sha256
from ..data.frost import corruption_code
from ..errors import UsageError
from ..objectives import OBJECTIVES
from .clip import CLIPLike, class_text_features, zero_shot_logits
from .coop import few_shot_indices, train_coop
from .mini_clip import ENSEMBLE_TEMPLATES
from .tpt import TPT

__all__ = ["AUGMENTS", "TPT_CODE_VERSION", "TPT_METHODS", "TPT_RECORD", "TPTConfig", "run_tpt"]

TPT_METHODS = ("zero-shot", "ensemble", "coop", "tpt", "tpt-coop")
TPT_RECORD = "tpt"
TPT_CODE_VERSION = 1   # bump when a change here or in tpt/ changes what a configuration computes
_TPT_FIELDS = ("objective", "tau", "alpha", "steps", "lr", "n_views", "selection", "augment")
AUGMENTS = ("crops", "augmix")
_COOP_FIELDS = ("coop_shots", "coop_steps", "coop_lr")


@dataclass(frozen=True)
class TPTConfig:
    method: str = "tpt"
    objective: str = "em"
    tau: float | None = None
    alpha: float | None = None
    steps: int = 1
    lr: float = 5e-3
    n_views: int = 63
    selection: float = 0.1
    augment: str = "crops"          # crops: random resized crops + flips (TPT on ImageNet); augmix (its other sets)
    severity: int = 5
    n_images: int = 1000
    offset: int = 0                 # first image of the fixed permutation: a search subset disjoint from the test one
    block: int = 100
    coop_shots: int = 16
    coop_steps: int = 300
    coop_lr: float = 5e-3
    weights_sha256: str = ""
    data_fingerprint: str = ""
    corruption_code: str = ""
    code_version: int = TPT_CODE_VERSION

    def __post_init__(self) -> None:
        if self.method not in TPT_METHODS:
            raise UsageError(f"unknown TPT method {self.method!r}: one of {', '.join(TPT_METHODS)}")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"unknown objective {self.objective!r}: one of {', '.join(OBJECTIVES)}")
        if (self.objective == "dem") != (self.tau is not None and self.alpha is not None):
            raise UsageError("objective dem needs tau and alpha, and only dem takes them")
        if self.augment not in AUGMENTS:
            raise UsageError(f"unknown augmentation {self.augment!r}: one of {', '.join(AUGMENTS)}")
        if self.offset < 0:
            raise UsageError(f"offset must be >= 0, got {self.offset}")
        if self.n_images < 1 or self.block < 1 or self.steps < 0 or self.n_views < 0 or not self.lr > 0:
            raise UsageError("n_images and block must be >= 1, steps and n_views >= 0, lr > 0")

    @property
    def tuned(self) -> bool:
        return self.method in ("tpt", "tpt-coop")

    @property
    def hash(self) -> str:
        d = asdict(self)
        for f in (() if self.tuned else _TPT_FIELDS) + (() if "coop" in self.method else _COOP_FIELDS):
            del d[f]
        for f, default in (("augment", "crops"), ("offset", 0)):   # added after the first stores: left out
            if d.get(f) == default:                                 # at their defaults, so old keys hold
                del d[f]
        return json_fingerprint(d)

    @property
    def label(self) -> str:
        base = {"zero-shot": "zero-shot", "ensemble": "ensemble", "coop": "CoOp", "tpt": "TPT",
                "tpt-coop": "TPT(CoOp)"}[self.method]
        if not self.tuned:
            return base
        obj = {"em": "", "adadem": "+AdaDEM"}.get(self.objective, f"+{self.objective.upper()}")
        if self.objective == "dem":
            obj = f"+DEM({self.tau:g}, {self.alpha:g})"
        where = f" [images {self.offset}-{self.offset + self.n_images}]" if self.offset else ""
        return base + obj + (" [AugMix]" if self.augment == "augmix" else "") + where


def _subset(n_total: int, n: int, offset: int = 0) -> torch.Tensor:
    """The evaluated images: positions ``offset .. offset + n`` of one fixed permutation, the same for every
    method, seed and split (``offset`` >= the test subset's size gives a disjoint subset, e.g. for a search)."""
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(0))[offset:offset + n]


def _objective_options(cfg: TPTConfig) -> dict[str, Any]:
    return {"tau": cfg.tau, "alpha": cfg.alpha} if cfg.objective == "dem" else {}


class _Predictor:
    """Logits for images of one split under one configuration; built once per run (CoOp trains here)."""

    def __init__(self, cfg: TPTConfig, clip: CLIPLike, classnames: list[str], data: FMNISTC, seed: int) -> None:
        self.cfg, self.clip, self.seed = cfg, clip, seed
        context = None
        if "coop" in cfg.method:
            from ..data.fashion_mnist import load_fashion_mnist

            x, y = load_fashion_mnist("train", data.data_dir)
            idx = few_shot_indices(y, cfg.coop_shots, seed=0)
            context = train_coop(clip, classnames, x[idx], y[idx], steps=cfg.coop_steps, lr=cfg.coop_lr, seed=0)
        if cfg.tuned:
            from .augment import augmix_views

            self.tpt = TPT(clip, classnames, cfg.objective, n_views=cfg.n_views, selection=cfg.selection, lr=cfg.lr,
                           steps=cfg.steps, objective_options=_objective_options(cfg), context=context,
                           augment=augmix_views if cfg.augment == "augmix" else None)
        else:
            if context is not None:
                from .prompt import PromptLearner

                prompt = PromptLearner(clip, classnames)
                prompt.set_context(context)
                with torch.no_grad():
                    self.text = prompt()
            else:
                templates = ENSEMBLE_TEMPLATES if cfg.method == "ensemble" else ENSEMBLE_TEMPLATES[:1]
                self.text = class_text_features(clip, classnames, templates)

    def __call__(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if not self.cfg.tuned:
            with torch.no_grad():
                return zero_shot_logits(self.clip, images, self.text)
        out = []
        for img, i in zip(images, indices.tolist()):
            self.tpt.generator.manual_seed(self.seed * 1_000_003 + i)
            out.append(self.tpt(img))
        return torch.cat(out)


def run_tpt(cfg: TPTConfig, seed: int, splits: tuple[str, ...], store: ResultStore, clip: CLIPLike,
            classnames: list[str], data: FMNISTC, progress: Callable[[dict[str, Any]], None] | None = None
            ) -> list[dict[str, Any]]:
    """Every block of every split for one seed; blocks already in the store are read, not recomputed.

    The weights' hash (of ``clip``'s state dict), the data fingerprint and the corruption code are filled in here
    from the objects themselves, so a record cannot be keyed by what a caller believed it ran; the records hold
    the completed configuration."""
    if not isinstance(clip, torch.nn.Module):
        raise UsageError("the TPT benchmark keys results by the model's weights: pass an nn.Module CLIP adapter")
    cfg = replace(cfg, weights_sha256=state_dict_sha256(clip.state_dict()),
                  data_fingerprint=data_fingerprint(data.data_dir),
                  corruption_code=f"{corruption_code()}-seed{data.seed}")
    bad = [s for s in splits if s != "clean" and s not in CORRUPTIONS]
    if bad:
        raise UsageError(f"unknown split(s) {', '.join(bad)}: clean or one of {', '.join(CORRUPTIONS)}")
    h = cfg.hash
    key = f"{h}/{seed}"
    done = {k[len(key) + 1:]: v for k, v in store.get_records(TPT_RECORD).items() if k.startswith(key + "/")}
    n_blocks = -(-cfg.n_images // cfg.block)
    todo = [(s, b) for s in splits for b in range(n_blocks) if f"{s}/{b}" not in done]
    if todo:
        store.register(h, {"kind": TPT_RECORD, **asdict(cfg)})
        predict = _Predictor(cfg, clip, classnames, data, seed)
    for split in dict.fromkeys(s for s, _ in todo):
        x, y = data.load(split, cfg.severity)
        subset = _subset(len(x), cfg.n_images, cfg.offset)
        for s, b in todo:
            if s != split:
                continue
            idx = subset[b * cfg.block:(b + 1) * cfg.block]
            t0 = time.perf_counter()
            logits = predict(x[idx], idx)
            conf, pred = logits.softmax(1).max(1)
            rec = {"config_hash": h, "seed": seed, "split": split, "block": b, "label": cfg.label,
                   "config": asdict(cfg), "n": len(idx), "correct": int((pred == y[idx]).sum()),
                   "indices": idx.tolist(), "predictions": pred.tolist(), "confidences": conf.tolist(),
                   "wall_seconds": time.perf_counter() - t0}
            store.put_record(TPT_RECORD, f"{key}/{split}/{b}", rec)
            done[f"{split}/{b}"] = rec
            if progress:
                progress(rec)
    return [done[f"{s}/{b}"] for s in splits for b in range(n_blocks)]
