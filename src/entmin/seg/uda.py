"""Unsupervised domain adaptation of the segmenter, ADVENT's two methods with the objective slot.

Starting from a source model, each step takes a labelled source batch (clean scenes) and an unlabelled target
batch (e.g. ``inverted`` scenes) and minimises

* ``minent``: CE(source) + lambda_ent * mean over target pixels of the objective. ADVENT's MinEnt uses the
  entropy normalised by log C; here the objective slot holds EM (that entropy), DEM or AdaDEM (the paper's rule:
  *replace* the EM term), each divided by log C so that lambda_ent means the same for all;
* ``advent``: CE(source) + lambda_adv * BCE(D(I_target), source) with a fully convolutional discriminator D on
  the weighted self-information maps I = -p log p (N, C, H, W), D trained to tell source from target maps; with
  an objective other than ``none``, lambda_ent * that objective on the target pixels is *added* (the paper's
  rule for AdvEnt: add AdaDEM);
* ``source``: CE(source) only, the same number of steps (the fine-tuning baseline).

Choices (the paper gives ADVENT's DeepLab-V2 settings only): Adam (lr 1e-4) for both networks from the committed
source model, lambda_ent = 0.1 and lambda_adv = 0.01 (scaled to this model's loss magnitudes; ADVENT's 1e-3
belongs to its SGD/DeepLab scale), 1,000 steps of 16 + 16 scenes. Training saves an exact checkpoint every
``checkpoint_every`` steps (models, optimizers, AdaDEM's bank, the data generator and torch's RNG) and a killed
run resumes from it to the same weights; the result is a record ``seg-uda/<config hash>/<seed>``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bench.store import ResultStore
from ..data.fingerprint import json_fingerprint, state_dict_sha256
from ..errors import UsageError
from ..objectives import get_objective
from .report import packed_maps
from .scenes import NUM_SEG_CLASSES, SceneData
from .train import evaluate

__all__ = ["UDA_METHODS", "UDA_RECORD", "Discriminator", "UDAConfig", "run_uda"]

UDA_METHODS = ("source", "minent", "advent")
UDA_RECORD = "seg-uda"


@dataclass(frozen=True)
class UDAConfig:
    method: str = "minent"
    objective: str = "em"                 # minent: em/dem/adadem; advent: none (plain AdvEnt) or one to add
    objective_options: tuple[tuple[str, Any], ...] = ()
    target: str = "inverted"
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    lr_disc: float = 1e-4
    lambda_ent: float = 0.1
    lambda_adv: float = 0.01
    checkpoint_every: int = 250
    weights_sha256: str = ""
    scenes_fingerprint: str = ""
    code_version: int = 1                 # bump when a change here changes what a run computes

    def __post_init__(self) -> None:
        if self.method not in UDA_METHODS:
            raise UsageError(f"unknown UDA method {self.method!r}; choose one of {', '.join(UDA_METHODS)}")
        if self.method == "minent" and self.objective == "none":
            raise UsageError("minent needs an objective (em, dem, adadem)")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise UsageError("steps, batch_size and checkpoint_every must be >= 1")

    @property
    def hash(self) -> str:
        return json_fingerprint(asdict(self))

    @property
    def label(self) -> str:
        if self.method == "source":
            return "source fine-tuning"
        opts = ", ".join(f"{k}={v:g}" for k, v in self.objective_options)
        obj = f"{self.objective}({opts})" if opts else self.objective
        if self.method == "minent":
            return "MinEnt" if self.objective == "em" else f"MinEnt+{obj}"
        return "AdvEnt" if self.objective == "none" else f"AdvEnt+{obj}"


class Discriminator(nn.Module):
    """ADVENT's fully convolutional discriminator (4x4 convolutions, stride 2, leaky ReLU), narrowed."""

    def __init__(self, num_classes: int = NUM_SEG_CLASSES, width: int = 16) -> None:
        super().__init__()
        layers, cin = [], num_classes
        for cout in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.net = nn.Sequential(*layers, nn.Conv2d(cin, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _self_information(logits: torch.Tensor) -> torch.Tensor:
    logp = logits.log_softmax(1)
    return -logp.exp() * logp / math.log(logits.shape[1])


def _bce(pred: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, label))


def run_uda(cfg: UDAConfig, seed: int, store: ResultStore, model: nn.Module, data: SceneData,
            progress=None) -> dict[str, Any]:
    """Train (or resume, or read) one UDA run and evaluate it on the target test scenes."""
    key = f"{cfg.hash}/{seed}"
    if (done := store.get_records(UDA_RECORD).get(key)) is not None:
        return done
    store.register(cfg.hash, {"kind": "seg-uda", **asdict(cfg)})
    xs, ys = data.split("clean", "train")
    xt, _ = data.split(cfg.target, "train")
    torch.manual_seed(seed)
    net = copy.deepcopy(model).train()
    disc = Discriminator() if cfg.method == "advent" else None
    use_obj = cfg.objective != "none" and cfg.method != "source"
    objective = get_objective(cfg.objective, num_classes=NUM_SEG_CLASSES,
                              **dict(cfg.objective_options)) if use_obj else None
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc, betas=(0.9, 0.99)) if disc is not None else None
    g = torch.Generator().manual_seed(seed)
    start = 0
    saved = store.load_state(cfg.hash, seed)
    if saved is not None and saved[1].get("config") == asdict(cfg):
        st = saved[1]
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        if disc is not None:
            disc.load_state_dict(st["disc"])
            opt_d.load_state_dict(st["opt_d"])
        if objective is not None:
            objective.load_state_dict(st["objective"])
        g.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        start = saved[0]
    log_c = math.log(NUM_SEG_CLASSES)
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        i_s = torch.randint(len(xs), (cfg.batch_size,), generator=g)
        i_t = torch.randint(len(xt), (cfg.batch_size,), generator=g)
        out_s, out_t = net(xs[i_s]), net(xt[i_t])
        loss = F.cross_entropy(out_s, ys[i_s])
        if objective is not None:
            loss = loss + cfg.lambda_ent * objective(out_t).mean() / log_c
        if disc is not None:
            for p in disc.parameters():
                p.requires_grad_(False)
            loss = loss + cfg.lambda_adv * _bce(disc(_self_information(out_t)), 1.0)   # fool D: "source"
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if disc is not None:
            for p in disc.parameters():
                p.requires_grad_(True)
            d_loss = (_bce(disc(_self_information(out_s.detach())), 1.0)
                      + _bce(disc(_self_information(out_t.detach())), 0.0)) / 2
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            state = {"config": asdict(cfg), "net": net.state_dict(), "opt": opt.state_dict(),
                     "generator": g.get_state(), "torch_rng": torch.get_rng_state()}
            if disc is not None:
                state.update(disc=disc.state_dict(), opt_d=opt_d.state_dict())
            if objective is not None:
                state["objective"] = objective.state_dict()
            store.save_state(cfg.hash, seed, step + 1, state)
            if progress:
                progress(step + 1)
    xe, ye = data.split(cfg.target, "test")
    metrics = evaluate(net, xe, ye)
    weights = state_dict_sha256(net.state_dict())
    rec = {"config_hash": cfg.hash, "seed": seed, "label": cfg.label, "config": asdict(cfg), "target": cfg.target,
           "resumed_from": start, "train_seconds": time.perf_counter() - t0, "weights_sha256": weights,
           "source_sha256": cfg.weights_sha256, "maps": packed_maps(net, xe), **metrics}
    store.put_record(UDA_RECORD, key, rec)
    store.drop_state(cfg.hash, seed)
    return rec
