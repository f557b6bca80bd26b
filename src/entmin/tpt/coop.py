"""CoOp (Zhou et al. 2022): class-shared prompt context learned by cross-entropy on a few labelled shots.

It serves as a baseline and as TPT(CoOp)'s starting point. The image tower is frozen, so the shots' features are
recomputed per step only because they are augmented (random resized crops and flips, as CoOp trains).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .augment import batch_crops
from .clip import CLIPLike
from .prompt import PromptLearner

__all__ = ["few_shot_indices", "train_coop"]


def few_shot_indices(labels: torch.Tensor, shots: int, seed: int = 0) -> torch.Tensor:
    """``shots`` indices per class, drawn without replacement by ``seed``; refuses classes with fewer."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < shots:
            raise ValueError(f"class {c} has {len(idx)} examples, fewer than {shots} shots")
        out.append(idx[torch.randperm(len(idx), generator=g)[:shots]])
    return torch.cat(out)


def train_coop(clip: CLIPLike, classnames: list[str], images: torch.Tensor, labels: torch.Tensor, *,
               steps: int = 300, lr: float = 5e-3, ctx_init: str = "a photo of a", seed: int = 0,
               crop_scale: float = 0.5) -> torch.Tensor:
    """Learned context vectors (n_ctx, E), initialised from ``ctx_init``; full-batch AdamW on the shots."""
    prompt = PromptLearner(clip, classnames, ctx_init)
    opt = torch.optim.AdamW([prompt.ctx], lr=lr)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        scale = clip.logit_scale()
    for _ in range(steps):
        with torch.no_grad():
            feats = F.normalize(clip.encode_image(batch_crops(images, g, crop_scale)), dim=-1)
        loss = F.cross_entropy(scale * feats @ prompt().t(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return prompt.ctx.detach().clone()
