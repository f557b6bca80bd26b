"""TPT with a pluggable objective: the prompt starts as the zero-shot prompt, only the context changes, every
episode starts from scratch, the text features are computed once per step, EM is TPT's averaged entropy, and
the open_clip adapter equals open_clip's own text encoder."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from entmin.objectives import AdaDEM
from entmin.tpt import TPT, PromptLearner, confident_views, random_resized_crops

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat"]


class TinyCLIP(nn.Module):
    """A CLIPLike with a word-level tokenizer, a one-layer text transformer and a conv image tower."""

    def __init__(self, dim=16, vocab=64, length=12):
        super().__init__()
        self.vocab, self.length = {"<sos>": 1, "<eos>": vocab - 1}, length
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(length, dim) * 0.1)
        self.text = nn.TransformerEncoderLayer(dim, 2, 32, batch_first=True, dropout=0.0)
        self.proj = nn.Linear(dim, dim)
        self.image = nn.Sequential(nn.Conv2d(1, 8, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                   nn.Linear(32, dim))
        self.text_calls = 0

    def tokenize(self, texts):
        out = torch.zeros(len(texts), self.length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [1] + [self.vocab.setdefault(w, len(self.vocab)) for w in t.replace(".", " .").split()] + [63]
            out[i, :len(ids)] = torch.tensor(ids)
        return out

    def token_embedding(self, tokens):
        return self.emb(tokens)

    def encode_text_embeddings(self, embeddings, tokens):
        self.text_calls += 1
        x = self.text(embeddings + self.pos)
        return self.proj(x[torch.arange(len(x)), tokens.argmax(-1)])

    def encode_text(self, tokens):
        return self.encode_text_embeddings(self.token_embedding(tokens), tokens)

    def encode_image(self, images):
        return self.image(images)

    def logit_scale(self):
        return torch.tensor(100.0)


@pytest.fixture
def clip():
    torch.manual_seed(0)
    return TinyCLIP().eval()


def test_the_initial_prompt_is_the_zero_shot_prompt(clip):
    prompt = PromptLearner(clip, CLASSES)
    zero_shot = F.normalize(clip.encode_text(clip.tokenize([f"a photo of a {c}." for c in CLASSES])), dim=-1)
    assert prompt.n_ctx == 4
    assert torch.allclose(prompt(), zero_shot, atol=1e-6)


def test_zero_steps_is_zero_shot_clip(clip):
    img = torch.rand(1, 28, 28)
    tpt = TPT(clip, CLASSES, steps=0, n_views=7)
    out = tpt(img)
    with torch.no_grad():
        txt = F.normalize(clip.encode_text(clip.tokenize([f"a photo of a {c}." for c in CLASSES])), dim=-1)
        ref = 100.0 * F.normalize(clip.encode_image(img[None]), dim=-1) @ txt.t()
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_only_the_context_changes_and_every_episode_starts_from_scratch(clip, objective):
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    img = torch.rand(1, 28, 28)
    tpt = TPT(clip, CLASSES, objective, n_views=15, steps=2, lr=5e-2, seed=3)
    clip.text_calls = 0
    out1 = tpt(img)
    assert clip.text_calls == 2 + 1                       # once per step, once for the prediction
    assert not torch.equal(tpt.prompt.ctx, tpt.prompt.ctx_init)        # the context moved
    assert all(torch.equal(before[k], v) for k, v in clip.state_dict().items())   # nothing else did
    tpt.generator.manual_seed(3)                          # same views again
    out2 = tpt(img)
    assert torch.equal(out1, out2)                        # prompt, optimizer (and bank) were reset
    assert len(tpt.last["losses"]) == 2 and tpt.last["views"] == 16


def test_em_is_tpts_entropy_of_the_averaged_prediction(clip):
    """One step's gradient w.r.t. the context equals that of TPT's own avg_entropy (written out here)."""
    img = torch.rand(1, 28, 28)

    def distinct(image, n, g):   # views that really disagree, so that averaging probabilities matters
        return 4 * torch.rand(n, *image.shape, generator=g) - 1

    tpt = TPT(clip, CLASSES, "em", n_views=31, steps=1, lr=1.0, seed=5, augment=distinct)
    g = torch.Generator().manual_seed(5)
    views = torch.cat([img[None], distinct(img, 31, g)])
    with torch.no_grad():
        feats = F.normalize(clip.encode_image(views), dim=-1)
    ctx = tpt.prompt.ctx_init.clone().requires_grad_(True)
    tpt.prompt.ctx.data = ctx.data
    logits = 100.0 * feats @ tpt.prompt().t()
    # TPT's select_confident_samples + avg_entropy, verbatim in spirit: top 10% lowest entropy of 32 -> 3 views
    ent = -(logits.softmax(1) * logits.log_softmax(1)).sum(1)
    idx = torch.argsort(ent, descending=False)[: int(32 * 0.1)]
    out = logits[idx]
    out = out - out.logsumexp(dim=-1, keepdim=True)
    avg = out.logsumexp(dim=0) - math.log(out.shape[0])
    avg = torch.clamp(avg, min=torch.finfo(avg.dtype).min)
    ref_loss = -(avg * torch.exp(avg)).sum(dim=-1)
    (ref_grad,) = torch.autograd.grad(ref_loss, tpt.prompt.ctx)
    tpt.prompt.ctx.grad = None
    # AdamW's first step moves each coordinate by -lr * sign(grad) (plus weight decay): compare directions
    tpt(img)
    step = tpt.prompt.ctx.detach() - tpt.prompt.ctx_init * (1 - 1.0 * 0.01)
    assert torch.equal(torch.sign(step), -torch.sign(ref_grad)) and bool((step.abs() > 0.99).all())
    assert tpt.last["losses"][0] == pytest.approx(ref_loss.item(), rel=1e-6)
    geometric = (-(logits[idx].log_softmax(1).mean(0).softmax(0) * logits[idx].log_softmax(1).mean(0)
                   .log_softmax(0)).sum())
    assert abs(geometric.item() - ref_loss.item()) > 1e-3   # the check above can tell the two means apart


def test_confident_views_and_crops():
    logits = torch.tensor([[5.0, 0.0], [0.0, 0.0], [0.0, 9.0], [1.0, 0.0]])
    assert confident_views(logits, 0.5).tolist() == [2, 0]
    assert confident_views(logits, 0.01).tolist() == [2]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    img = torch.rand(3, 20, 24)
    a, b = random_resized_crops(img, 5, g1), random_resized_crops(img, 5, g2)
    assert a.shape == (5, 3, 20, 24) and torch.equal(a, b)


def test_the_bank_persists_across_images_only_when_asked(clip):
    imgs = torch.rand(3, 1, 28, 28)
    for persist, expected in ((False, 1), (True, 3)):
        tpt = TPT(clip, CLASSES, "adadem", n_views=7, steps=1, persist_bank=persist)
        for im in imgs:
            tpt(im)
        assert isinstance(tpt.objective, AdaDEM) and int(tpt.objective.num_updates) == expected


def test_bad_arguments():
    clip = TinyCLIP()
    with pytest.raises(ValueError, match="selection must lie in"):
        TPT(clip, CLASSES, selection=0)
    with pytest.raises(ValueError, match="unknown objective"):
        TPT(clip, CLASSES, "entropyy")
    with pytest.raises(ValueError, match="one image"):
        TPT(clip, CLASSES)(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="classnames must not be empty"):
        PromptLearner(clip, [])


def test_open_clip_adapter_equals_open_clips_text_encoder():
    from entmin.models.zoo import import_vision_library

    try:
        open_clip = import_vision_library("open_clip")   # it imports torchvision: through the CPU shim
    except ValueError as e:                              # UsageError (not installed) or DataError
        pytest.skip(f"vision extra missing: {e}")
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    from entmin.tpt import OpenCLIP

    torch.manual_seed(0)
    model = CLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=1, width=32, patch_size=8, image_size=32,
                                                        head_width=16),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)).eval()
    clip = OpenCLIP(model, open_clip.get_tokenizer("ViT-B-32"))
    tokens = clip.tokenize([f"a photo of a {c}." for c in CLASSES])
    with torch.no_grad():
        assert torch.allclose(clip.encode_text_embeddings(clip.token_embedding(tokens), tokens),
                              model.encode_text(tokens), atol=1e-6)
    tpt = TPT(clip, CLASSES, "adadem", n_views=7, steps=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = tpt(torch.rand(3, 32, 32))
    assert out.shape == (1, len(CLASSES))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="not an open_clip CLIP model"):
        OpenCLIP(nn.Linear(2, 2), None)
