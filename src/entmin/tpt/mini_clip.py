"""A small CLIP-style model for Fashion-MNIST, trained here, so that TPT can be validated offline.

Real CLIP weights cannot be had on the project's machines; this model has the same *interface* (an image tower,
a text tower over token embeddings with causal attention and end-of-text pooling, a learned logit scale) and is
trained contrastively on Fashion-MNIST images paired with captions from several templates per class name
(:mod:`entmin.tpt.mini_clip_train`). The tokenizer is word-level over a closed vocabulary, stored with the
weights: a word-piece tokenizer would be more faithful but buys nothing at this vocabulary size.
"""
from __future__ import annotations

import math
import re

import torch
from torch import nn

__all__ = [
    "CLASSNAMES",
    "DESCRIPTIONS",
    "ENSEMBLE_TEMPLATES",
    "SPECIALS",
    "TRAIN_TEMPLATES",
    "MiniCLIP",
    "build_vocabulary",
    "captions",
]

# Fashion-MNIST's classes as words a caption would use (the dataset's own names are "T-shirt/top", "Ankle boot")
CLASSNAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
# generic templates: the training captions, and (the first seven) the prompt ensemble of zero-shot evaluation
ENSEMBLE_TEMPLATES = ("a photo of a {}.", "a black and white photo of the {}.", "a low resolution photo of a {}.",
                      "a centered photo of a {}.", "a photo of the small {}.", "a blurry photo of a {}.",
                      "an image of a {}.")
TRAIN_TEMPLATES = ENSEMBLE_TEMPLATES + ("a {} on a dark background.", "a grayscale picture of my {}.",
                                        "a photo of a {}, {}.")
# short descriptions used by the last template (a caption that says what the thing is, as web captions do)
DESCRIPTIONS = {"t-shirt": "a top with short sleeves", "trouser": "long pants with two legs",
                "pullover": "a warm top with long sleeves", "dress": "a long garment worn by women",
                "coat": "a heavy jacket with buttons", "sandal": "an open summer shoe with straps",
                "shirt": "a top with a collar and buttons", "sneaker": "a low sports shoe",
                "bag": "a bag with a handle to carry things", "ankle boot": "a shoe that covers the ankle"}
SPECIALS = ("<pad>", "<sos>", "<eos>", "<unk>")     # ids 0..3; padding must be 0 (PromptLearner counts tokens > 0)
_WORD = re.compile(r"[a-z0-9\-]+|[.,]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def captions(classname: str) -> list[str]:
    """Every training caption of one class."""
    out = []
    for t in TRAIN_TEMPLATES:
        out.append(t.format(classname, DESCRIPTIONS[classname]) if t.count("{}") == 2 else t.format(classname))
    return out


def build_vocabulary() -> list[str]:
    """The closed vocabulary: specials, then every word of the captions, class names and templates, sorted."""
    words = {w for c in CLASSNAMES for cap in captions(c) for w in _words(cap)}
    return list(SPECIALS) + sorted(words)


class MiniCLIP(nn.Module):
    """:class:`~entmin.tpt.clip.CLIPLike` for 1x32x32 images in [0, 1] (Fashion-MNIST padded, as everywhere in
    entmin). Image tower: a four-stage BatchNorm CNN; text tower: pre-norm transformer with a causal mask,
    pooled at the end-of-text token, as CLIP's."""

    def __init__(self, vocabulary: list[str], dim: int = 64, width: int = 32, context_length: int = 24,
                 layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        if list(vocabulary[:4]) != list(SPECIALS):
            raise ValueError(f"the vocabulary must start with {SPECIALS}")
        self.vocabulary = list(vocabulary)
        self._ids = {w: i for i, w in enumerate(self.vocabulary)}
        self.context_length = context_length
        chans = (width, 2 * width, 4 * width, 4 * width)
        stages, c_in = [], 1
        for i, c in enumerate(chans):
            stages += [nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            c_in = c
        self.visual = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, dim))
        self.token_embedding_table = nn.Embedding(len(self.vocabulary), dim)
        # CLIP's initialisation scale (std 0.02, not nn.Embedding's 1): TPT's default lr (5e-3) is a step size
        # relative to the token embeddings' scale, so the same lr means the same relative change as with CLIP
        nn.init.normal_(self.token_embedding_table.weight, std=0.02)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, dim) * 0.01)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(dim)
        self.text_projection = nn.Linear(dim, dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("attn_mask", mask, persistent=False)

    # --- CLIPLike ---------------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [1] + [self._ids.get(w, 3) for w in _words(text)] + [2]
            if len(ids) > self.context_length:
                raise ValueError(f"{text!r} has {len(ids)} tokens; the model's context holds {self.context_length}")
            out[i, :len(ids)] = torch.tensor(ids)
        return out

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding_table(tokens)

    def encode_text_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.transformer(embeddings + self.positional_embedding, mask=self.attn_mask, is_causal=True)
        x = self.ln_final(x)
        eot = (tokens == 2).int().argmax(-1)
        return self.text_projection(x[torch.arange(len(x)), eot])

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encode_text_embeddings(self.token_embedding(tokens), tokens)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual((images - 0.286) / 0.353)   # Fashion-MNIST's pixel mean and std

    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.clamp(max=math.log(100.0)).exp()
