"""TPT: per test image, tune the prompt context on the image's augmented views, then predict the image.

Per image (episodic; dem_spec.md section 5 and Shu et al. 2022):
1. views: the image and ``n_views`` random resized crops with horizontal flips (TPT's ImageNet augmentation;
   pass ``augment=`` for another, e.g. AugMix);
2. image features of all views, once (the image encoder is frozen);
3. ``steps`` times: text features of all classes from the current prompt (once per step), logits of every view,
   the ``selection`` fraction of views with the lowest entropy, the log of their averaged probabilities
   ``log p̄``, and one AdamW step on ``objective(log p̄)`` (EM: the entropy of p̄, TPT's loss);
4. the prediction for the original image with the updated prompt; then the prompt and the optimizer's state are
   reset for the next image.

The paper leaves open whether AdaDEM's bank persists across test images; ``persist_bank`` chooses (default
``False``: reset with the prompt, every image is its own episode). The bank then holds one row update per
image from the averaged prediction.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import get_objective
from .clip import CLIPLike
from .prompt import PromptLearner

__all__ = ["TPT", "confident_views", "random_resized_crops"]


def random_resized_crops(image: torch.Tensor, n: int, g: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
                         ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """``n`` crops of ``image`` (C, H, W), each of a random area fraction in ``scale`` and aspect ratio in
    ``ratio`` (torchvision's RandomResizedCrop sampling; the whole image after ten failed draws), resized back to (H, W)
    bilinearly and flipped with probability 1/2. Drawn from ``g`` only."""
    h, w = image.shape[-2:]
    out = []
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(n):
        for _attempt in range(10):
            area = h * w * float(torch.empty(1).uniform_(*scale, generator=g))
            r = math.exp(float(torch.empty(1).uniform_(*log_r, generator=g)))
            cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
                left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
                break
        else:
            ch, cw = h, w
            top = left = 0
        crop = image[:, top:top + ch, left:left + cw].unsqueeze(0)
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0]
        if flip and bool(torch.rand(1, generator=g) < 0.5):
            crop = crop.flip(-1)
        out.append(crop)
    return torch.stack(out)


def confident_views(logits: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ``fraction`` of rows with the lowest prediction entropy (at least one), TPT's selection."""
    logp = logits.log_softmax(1)
    ent = -(logp.exp() * logp).sum(1)
    k = max(1, int(len(logits) * fraction))
    return ent.argsort()[:k]


class TPT(nn.Module):
    """Test-time prompt tuning of ``clip`` over ``classnames`` with an entmin objective.

    ``context`` starts every episode from given context vectors (CoOp's, for TPT(CoOp)) instead of ``ctx_init``.
    ``tpt(image)`` takes one image (C, H, W) (or (1, C, H, W)), already preprocessed for the model, and returns
    its logits (1, K) after the episode. ``last`` holds the episode's diagnostics (loss per step, selected views).
    """

    def __init__(self, clip: CLIPLike, classnames: list[str], objective: str = "em", *, n_views: int = 63,
                 selection: float = 0.1, lr: float = 5e-3, steps: int = 1, ctx_init: str = "a photo of a",
                 persist_bank: bool = False, augment: Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
                 | None = None, seed: int = 0, objective_options: dict[str, Any] | None = None,
                 context: torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        if not 0 < selection <= 1:
            raise ValueError(f"selection must lie in (0, 1], got {selection}")
        if not isinstance(n_views, int) or n_views < 0:
            raise ValueError(f"n_views must be an integer >= 0, got {n_views!r}")
        self.clip = clip
        for p in (clip.parameters() if isinstance(clip, nn.Module) else ()):
            p.requires_grad_(False)
        self.prompt = PromptLearner(clip, classnames, ctx_init)
        if context is not None:                      # e.g. CoOp's learned context: TPT(CoOp)
            self.prompt.set_context(context)
        self.objective = get_objective(objective, num_classes=len(classnames), **(objective_options or {}))
        self.n_views, self.selection, self.lr, self.steps = n_views, selection, lr, steps
        self.persist_bank = persist_bank
        self.augment = augment or random_resized_crops
        self.generator = torch.Generator().manual_seed(seed)
        self.last: dict[str, Any] = {}

    def reset(self) -> None:
        """Prompt back to its initialisation (and the objective's state unless ``persist_bank``)."""
        self.prompt.reset()
        if not self.persist_bank and hasattr(self.objective, "reset"):
            self.objective.reset()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() == 4 and image.shape[0] == 1:
            image = image[0]
        if image.dim() != 3:
            raise ValueError(f"TPT takes one image (C, H, W) or (1, C, H, W), got {tuple(image.shape)}")
        self.reset()
        opt = torch.optim.AdamW([self.prompt.ctx], lr=self.lr)   # fresh state: the episode starts from scratch
        views = torch.cat([image.unsqueeze(0), self.augment(image, self.n_views, self.generator)])
        with torch.no_grad():
            feats = F.normalize(self.clip.encode_image(views), dim=-1)
            scale = self.clip.logit_scale()
        losses = []
        for _ in range(self.steps):
            logits = scale * feats @ self.prompt().t()
            sel = confident_views(logits.detach(), self.selection)
            logp = logits[sel].log_softmax(1)
            avg_logp = torch.logsumexp(logp, 0) - math.log(len(sel))   # log of the averaged probabilities
            loss = self.objective(avg_logp.unsqueeze(0)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            out = scale * feats[:1] @ self.prompt().t()
        self.last = {"losses": losses, "views": len(views)}
        return out
