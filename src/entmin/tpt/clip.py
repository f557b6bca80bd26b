"""The small interface TPT needs from a CLIP-style model, and its implementation for ``open_clip`` models.

TPT learns the *token embeddings* of the prompt's context words, so the text encoder must accept embeddings
rather than token ids; ``encode_text_embeddings(embeddings, tokens)`` is the text tower after its embedding
layer (``tokens`` only say where each prompt ends, for the end-of-text pooling).
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

__all__ = ["CLIPLike", "OpenCLIP", "class_text_features", "zero_shot_logits"]


class CLIPLike(Protocol):
    def encode_image(self, images: torch.Tensor) -> torch.Tensor: ...           # (N, D), not normalised
    def tokenize(self, texts: list[str]) -> torch.Tensor: ...                   # (K, L) int64
    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor: ...        # (K, L, E)
    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor: ...  # (K, D)
    def logit_scale(self) -> torch.Tensor: ...                                  # scalar, exp() applied


@torch.no_grad()
def class_text_features(clip: CLIPLike, classnames: list[str], templates: tuple[str, ...] = ("a photo of a {}.",)
                        ) -> torch.Tensor:
    """(K, D) normalised text features of the class names; several templates are averaged per class and the
    mean renormalised (CLIP's prompt ensemble)."""
    import torch.nn.functional as F

    feats = []
    for name in classnames:
        tokens = clip.tokenize([t.format(name) for t in templates])
        f = F.normalize(clip.encode_text_embeddings(clip.token_embedding(tokens), tokens), dim=-1)
        feats.append(F.normalize(f.mean(0), dim=-1))
    return torch.stack(feats)


def zero_shot_logits(clip: CLIPLike, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(N, K) CLIP logits: the scaled cosine similarity of the images' features with ``text_features`` (K, D,
    normalised)."""
    import torch.nn.functional as F

    return clip.logit_scale() * F.normalize(clip.encode_image(images), dim=-1) @ text_features.t()


class OpenCLIP(nn.Module):
    """:class:`CLIPLike` over an ``open_clip`` CLIP model and its tokenizer, e.g.::

        model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-16", pretrained="openai")
        clip = OpenCLIP(model, open_clip.get_tokenizer("ViT-B-16"))

    ``encode_text_embeddings`` repeats open_clip 3.x's ``CLIP.encode_text`` after the token embedding (positional
    embedding, transformer with the causal mask, final LayerNorm, pooling, projection); the tests check that it
    equals ``encode_text`` on the same tokens, so an open_clip change that breaks the copy fails there.
    """

    def __init__(self, model: nn.Module, tokenizer) -> None:
        super().__init__()
        for attr in ("token_embedding", "positional_embedding", "transformer", "ln_final", "encode_image"):
            if not hasattr(model, attr):
                raise ValueError(f"not an open_clip CLIP model with a text tower (no {attr!r}); models with a "
                                 "custom text tower (CustomTextCLIP) need their own CLIPLike adapter")
        self.model, self.tokenizer = model, tokenizer

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.token_embedding(tokens)

    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        m = self.model
        cast = m.transformer.get_cast_dtype()
        x = embeddings.to(cast) + m.positional_embedding.to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask)
        x = m.ln_final(x)
        x = text_global_pool(x, tokens, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection
        return x

    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()
