"""DeYO (Lee et al., ICLR'24): entropy filter + Pseudo-Label Probability Difference (PLPD) under an
object-destroying augmentation, weighted by confidence and PLPD.

S1 = {H < 0.5 ln C}; x' = patch-shuffled x[S1]; PLPD = p(y_hat | x) - p(y_hat | x'); S2 = S1 & {PLPD > tau};
w = exp(-(H - 0.4 ln C)) + exp(PLPD) (each term optional); loss = mean_{S2} w * L_n; plain SGD step.
Fixed relative to the official code: ``reset()`` works; the wrapper always returns plain logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..objectives import entropy
from .base import Adapter
from .constants import deyo_entropy_threshold, reliability_threshold

__all__ = ["DeYO", "occlude", "patch_shuffle", "pixel_shuffle"]


def patch_shuffle(x: torch.Tensor, patch_len: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Split each image into a patch_len x patch_len grid and permute the patches (independently per image)."""
    n, c, h, w = x.shape
    hh, ww = math.ceil(h / patch_len) * patch_len, math.ceil(w / patch_len) * patch_len
    y = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False) if (hh, ww) != (h, w) else x
    ph, pw = hh // patch_len, ww // patch_len
    patches = y.reshape(n, c, patch_len, ph, patch_len, pw).permute(0, 2, 4, 1, 3, 5).reshape(
        n, patch_len * patch_len, c, ph, pw)
    perm = torch.rand(n, patch_len * patch_len, generator=generator).argsort(1).to(x.device)
    patches = patches[torch.arange(n, device=x.device).unsqueeze(1), perm]
    y = patches.reshape(n, patch_len, patch_len, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, hh, ww)
    return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False) if (hh, ww) != (h, w) else y


def pixel_shuffle(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random pixel permutation shared by the batch."""
    n, c, h, w = x.shape
    perm = torch.randperm(h * w, generator=generator).to(x.device)
    return x.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)


def occlude(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill the central half-size window with the per-image channel mean (the official 112 of 224)."""
    h, w = x.shape[-2:]
    y = x.clone()
    y[:, :, h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = x.mean((2, 3), keepdim=True)
    return y


_AUGS = {"patch": patch_shuffle, "pixel": pixel_shuffle, "occ": occlude}


class DeYO(Adapter):
    default_frozen = True

    def __init__(self, model, objective="em", *, ent_margin: float | None = None, ent_margin_e0: float | None = None,
                 plpd_threshold: float = 0.2, aug: str = "patch", patch_len: int = 4, reweight_ent: bool = True,
                 reweight_plpd: bool = True, **kwargs) -> None:
        super().__init__(model, objective, **kwargs)
        if aug not in _AUGS:
            raise ValueError(f"unknown DeYO augmentation {aug!r}; choose one of {sorted(_AUGS)}")
        if not isinstance(patch_len, int) or patch_len < 2:
            raise ValueError(f"patch_len must be an integer >= 2, got {patch_len!r}")
        c = self.num_classes
        self.ent_margin = float(ent_margin) if ent_margin is not None else deyo_entropy_threshold(c)
        self.ent_margin_e0 = float(ent_margin_e0) if ent_margin_e0 is not None else reliability_threshold(c)
        self.plpd_threshold = float(plpd_threshold)
        self.aug, self.patch_len = aug, patch_len
        self.reweight_ent, self.reweight_plpd = bool(reweight_ent), bool(reweight_plpd)

    def destroy(self, x: torch.Tensor) -> torch.Tensor:
        if self.aug == "patch":
            return patch_shuffle(x, self.patch_len, self.generator)
        return _AUGS[self.aug](x, generator=self.generator)

    def adapt_batch(self, x: torch.Tensor) -> torch.Tensor:
        assert self.optimizer is not None
        logits = self.net(x)
        ent = entropy(logits.detach())
        s1 = ent < self.ent_margin
        n1 = int(s1.sum())
        diag = {"n": x.shape[0], "entropy": ent.mean(), "reliable": n1, "selected": 0, "updated": False}
        if n1 == 0 or (self.uses_batch_stats and n1 < 2):
            return self.skip_update(logits, diag)
        with torch.no_grad():
            x_prime = self.destroy(x[s1].detach())
            probs_prime = self.net(x_prime).softmax(1)
            probs = logits.detach()[s1].softmax(1)
            yhat = probs.argmax(1, keepdim=True)
            plpd_s1 = (probs.gather(1, yhat) - probs_prime.gather(1, yhat)).squeeze(1)
            plpd = torch.zeros_like(ent)
            plpd[s1] = plpd_s1
            s2 = s1 & (plpd > self.plpd_threshold)
            weight = torch.zeros_like(ent)
            if self.reweight_ent:
                weight = weight + torch.exp(-(ent - self.ent_margin_e0))
            if self.reweight_plpd:
                weight = weight + torch.exp(plpd)
            if not (self.reweight_ent or self.reweight_plpd):
                weight = torch.ones_like(ent)
        n2 = int(s2.sum())
        diag.update(selected=n2, plpd=plpd_s1.mean())
        # Called before the no-update branch so that AdaDEM's bank (bank_update="all") sees every batch.
        per_sample = self.objective_loss(logits, s2)
        if n2 == 0:
            return self.skip_update(logits, diag)
        loss = (weight * per_sample)[s2].mean()
        self.step(loss)
        diag.update(loss=loss.detach(), updated=True)
        self._diag = diag
        return logits.detach()
