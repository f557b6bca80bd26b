"""CoOp-style prompt: ``[SOS] ctx_1 .. ctx_n <class name> . [EOS]`` with learnable, class-shared context vectors.

The context is initialised from the token embeddings of ``ctx_init`` ("a photo of a" in TPT), so before any
update the prompt *is* the hand-written zero-shot prompt "a photo of a <class>." (tested). Only ``ctx`` is a
parameter; the prefix/suffix embeddings and the CLIP model are constants.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .clip import CLIPLike

__all__ = ["PromptLearner"]


class PromptLearner(nn.Module):
    def __init__(self, clip: CLIPLike, classnames: list[str], ctx_init: str = "a photo of a") -> None:
        super().__init__()
        if not classnames:
            raise ValueError("classnames must not be empty")
        words = ctx_init.strip().split()
        if not words:
            raise ValueError("ctx_init must hold at least one word")
        self.clip, self.classnames = clip, list(classnames)
        with torch.no_grad():
            init_tokens = clip.tokenize([ctx_init])
            n_ctx = int((init_tokens[0] > 0).sum()) - 2          # minus [SOS] and [EOS]
            tokens = clip.tokenize([f"{ctx_init} {name}." for name in classnames])
            emb = clip.token_embedding(tokens)
            if not torch.equal(tokens[:, 1:1 + n_ctx], init_tokens[:, 1:1 + n_ctx].expand(len(tokens), -1)):
                raise ValueError(f"the tokenizer does not keep {ctx_init!r} as a prefix of the class prompts")
        self.n_ctx = n_ctx
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("prefix", emb[:, :1].detach().clone(), persistent=False)
        self.register_buffer("suffix", emb[:, 1 + n_ctx:].detach().clone(), persistent=False)
        self.register_buffer("ctx_init", emb[0, 1:1 + n_ctx].detach().clone(), persistent=False)
        self.ctx = nn.Parameter(self.ctx_init.clone())

    def set_context(self, ctx: torch.Tensor) -> None:
        """Start from learned context vectors (e.g. CoOp's) instead of the words of ``ctx_init``; ``reset``
        returns here from then on."""
        if ctx.shape != self.ctx_init.shape:
            raise ValueError(f"context of shape {tuple(ctx.shape)} given; this prompt has {tuple(self.ctx_init.shape)}")
        with torch.no_grad():
            self.ctx_init.copy_(ctx)
            self.ctx.copy_(ctx)

    def reset(self) -> None:
        with torch.no_grad():
            self.ctx.copy_(self.ctx_init)

    def forward(self) -> torch.Tensor:
        """L2-normalised text features of every class, (K, D), from the current context."""
        k = len(self.classnames)
        emb = torch.cat([self.prefix, self.ctx.unsqueeze(0).expand(k, -1, -1), self.suffix], dim=1)
        return F.normalize(self.clip.encode_text_embeddings(emb, self.tokens), dim=-1)
