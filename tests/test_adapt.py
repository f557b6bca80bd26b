"""Adapter mechanics: parameter selection, bit-exact reset, filters, determinism, errors."""
import copy
import math

import pytest
import torch
from tiny_models import tiny_cnn, tiny_vit
from torch import nn

from entmin.adapt import ADAPTERS, make_adapter, patch_shuffle
from entmin.objectives import entropy

METHODS = ["tent", "eta", "eata", "sar", "deyo"]
OBJECTIVES = ["em", "dem", "adadem", "adadem_norm", "adadem_mec"]


def batches(n=4, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(bs, 1, 32, 32, generator=g) for _ in range(n)]


def build(method, model, objective="em", **kw):
    kw.setdefault("optimizer", {"lr": 0.05})
    if method == "eata":
        kw.setdefault("fisher_loader", batches(2, 8, seed=9))
    if method in ("eta", "eata", "sar"):
        kw.setdefault("e_margin", 10.0)  # keep samples so that updates really happen on random data
    if method == "eta" or method == "eata":
        kw.setdefault("d_margin", 2.0)
    if method == "deyo":
        kw.setdefault("ent_margin", 10.0)
        kw.setdefault("plpd_threshold", -1.0)
    return make_adapter(method, model, objective, **kw)


def state(adapter):
    return {"model": copy.deepcopy(adapter.model.state_dict()),
            "opt": copy.deepcopy(adapter.optimizer.state_dict()) if adapter.optimizer else None,
            "obj": copy.deepcopy(adapter.objective.state_dict())}


def assert_state_equal(a, b):
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["obj"]:
        assert torch.equal(a["obj"][k], b["obj"][k]), k
    if a["opt"] is not None:
        assert a["opt"]["state"].keys() == b["opt"]["state"].keys()
        for i in a["opt"]["state"]:
            for k, v in a["opt"]["state"][i].items():
                assert torch.equal(v, b["opt"]["state"][i][k])


@pytest.mark.parametrize("factory", [tiny_cnn, tiny_vit])
@pytest.mark.parametrize("method", METHODS)
def test_only_intended_parameters_change(factory, method):
    model = factory()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ad = build(method, model, "em")
    trainable = set(ad.trainable_parameter_names())
    norm_names = {f"{mn}.{pn}" for mn, m in model.named_modules()
                  if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) for pn, _ in m.named_parameters(recurse=False)}
    assert trainable and trainable <= norm_names
    for x in batches():
        ad(x)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "no parameter was updated"
    assert changed <= trainable
    if method in ("sar", "deyo") and factory is tiny_vit:  # top blocks and final norm frozen (official rule)
        assert not any(n.startswith(("blocks.3.", "norm.")) for n in trainable)
        assert any(n.startswith("blocks.0.") for n in trainable)


@pytest.mark.parametrize("factory", [tiny_cnn, tiny_vit])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_reset_restores_everything_bit_exactly(factory, method, objective):
    ad = build(method, factory(), objective)
    s0 = state(ad)
    xs = batches()
    first = [ad(x) for x in xs]
    assert ad.optimizer.state, "optimizer momentum was never created"
    if objective == "adadem":
        assert not torch.equal(ad.objective.bank, s0["obj"]["bank"]), "bank never moved"
    ad.reset()
    assert not ad.optimizer.state
    assert_state_equal(s0, state(ad))
    again = [ad(x) for x in xs]
    for a, b in zip(first, again):
        assert torch.equal(a, b)


def test_reset_clears_method_state():
    ad = build("eta", tiny_cnn())
    ad(batches(1)[0])
    assert ad.mean_probs is not None
    ad.reset()
    assert ad.mean_probs is None and ad.num_updates_final == 0
    sar = build("sar", tiny_cnn())
    sar(batches(1)[0])
    assert sar.ema is not None
    sar.reset()
    assert sar.ema is None


def test_episodic_resets_before_each_batch():
    ad = build("tent", tiny_cnn(), episodic=True)
    x1, x2 = batches(2)
    out1 = ad(x1)
    ad(x2)
    assert torch.equal(ad(x1), out1)


def test_identical_seeds_identical_results():
    outs = []
    for _ in range(2):
        ad = build("deyo", tiny_cnn(), "adadem", seed=5)
        outs.append(torch.cat([ad(x) for x in batches()]))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("factory", [tiny_cnn, tiny_vit])
@pytest.mark.parametrize("method", METHODS)
def test_export_import_state_continues_exactly(factory, method):
    """Every host's running state (EMA, moving mean, counters, AdaDEM bank, momentum, generator) survives an
    export into a fresh adapter: the continuation equals the uninterrupted run bit for bit."""
    xs = batches(6)
    kw = {"d_margin": 0.8} if method in ("eta", "eata") else {}  # the redundancy filter drops some batches here
    ref = build(method, factory(), "adadem", seed=3, **kw)
    ref_out = [ref(x) for x in xs]
    a = build(method, factory(), "adadem", seed=3, **kw)
    for x in xs[:3]:
        a(x)
    saved = copy.deepcopy(a.export_state())
    b = build(method, factory(), "adadem", seed=3, **kw)
    b.import_state(saved)
    assert repr(b.method_state()) == repr(a.method_state())
    assert_state_equal(state(a), state(b))
    for x, r in zip(xs[3:], ref_out[3:]):
        assert torch.equal(b(x), r)


def test_eta_filters_follow_the_formulas():
    ad = make_adapter("eta", tiny_cnn(), "em", optimizer={"lr": 1e-9})
    c = 10
    assert math.isclose(ad.e_margin, 0.4 * math.log(c))
    assert math.isclose(ad.d_margin, 0.05 * math.sqrt(1000 / c))
    logits = torch.tensor([[8.0] + [0.0] * 9,          # confident: H small -> reliable
                           [0.0] * 10,                 # uniform: H = ln 10 -> unreliable
                           [0.0] * 9 + [8.0]])
    ent = entropy(logits)
    reliable, final = ad.select(logits, ent)
    assert reliable.tolist() == [True, False, True]
    assert final.tolist() == [True, False, True]       # first batch: no redundancy filter
    assert torch.allclose(ad.mean_probs, logits[[0, 2]].softmax(1).mean(0))
    m = ad.mean_probs.clone()
    # second call: a sample whose prediction is parallel to the moving mean is redundant
    parallel = torch.log(m).unsqueeze(0)
    reliable2, final2 = ad.select(torch.cat([parallel, logits[:1]]), entropy(torch.cat([parallel, logits[:1]])))
    cos = torch.nn.functional.cosine_similarity(m.unsqueeze(0), torch.cat([parallel, logits[:1]]).softmax(1))
    expected = reliable2 & (cos.abs() < ad.d_margin)
    assert final2.tolist() == expected.tolist()


def test_eta_weights_and_no_step_without_samples():
    model = tiny_cnn()
    ad = make_adapter("eta", model, "em", e_margin=1e-6)
    before = copy.deepcopy(model.state_dict())
    ad(batches(1)[0])
    assert ad.last_step["selected"] == 0 and not ad.last_step["updated"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_sar_recovery_resets_model():
    ad = build("sar", tiny_cnn(), reset_constant=100.0)  # any EMA is below: recover after the first update
    s0 = state(ad)
    ad(batches(1)[0])
    assert ad.last_step["recovered"] and ad.num_recoveries == 1
    assert_state_equal(s0, state(ad))
    assert ad.ema is None


def test_sar_default_recovery_threshold_scales_with_classes():
    ad = make_adapter("sar", tiny_cnn())
    assert math.isclose(ad.reset_constant, 0.2 * math.log(10) / math.log(1000))


def test_deyo_plpd_selection():
    ad = make_adapter("deyo", tiny_cnn(), "em", ent_margin=10.0, plpd_threshold=0.0)
    x = batches(1)[0]
    ad(x)
    d = ad.last_step
    assert d["reliable"] == 16
    assert 0 < d["selected"] < 16  # threshold 0: the samples whose shuffled copy lost confidence pass, not all
    assert math.isclose(ad.ent_margin_e0, 0.4 * math.log(10))


def test_patch_shuffle_is_a_permutation_of_patches():
    x = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32)
    y = patch_shuffle(x, 4, torch.Generator().manual_seed(0))
    assert not torch.equal(x, y)
    for i in range(2):
        px = sorted(x[i, 0].unfold(0, 8, 8).unfold(1, 8, 8).reshape(16, 64).tolist())
        py = sorted(y[i, 0].unfold(0, 8, 8).unfold(1, 8, 8).reshape(16, 64).tolist())
        assert px == py


def test_bank_update_selected_vs_all():
    x = batches(1)[0]
    a = build("eta", tiny_cnn(), "adadem", bank_update="all", e_margin=1e-6)
    a(x)  # nothing selected: 'all' still updates the bank
    assert not torch.all(a.objective.bank == 0.1)
    s = build("eta", tiny_cnn(), "adadem", bank_update="selected", e_margin=1e-6)
    s(x)
    assert torch.all(s.objective.bank == 0.1)


def test_custom_callable_objective():
    calls = []

    def my_loss(logits):
        calls.append(logits.shape)
        return entropy(logits) * 2

    ad = make_adapter("tent", tiny_cnn(), my_loss)
    ad(batches(1)[0])
    assert calls == [(16, 10)]


def test_errors():
    with pytest.raises(ValueError, match="unknown adaptation method"):
        make_adapter("tenet", tiny_cnn())
    with pytest.raises(ValueError, match="no normalisation layer"):
        make_adapter("tent", nn.Sequential(nn.Flatten(), nn.Linear(1024, 10)))
    with pytest.raises(ValueError, match="batch size 1"):
        make_adapter("tent", tiny_cnn())(torch.rand(1, 1, 32, 32))
    make_adapter("tent", tiny_vit())(torch.rand(1, 1, 32, 32))  # LayerNorm models take single images
    with pytest.raises(ValueError, match="fisher_loader"):
        make_adapter("eata", tiny_cnn())
    with pytest.raises(ValueError, match="lr"):
        make_adapter("tent", tiny_cnn(), optimizer={"lr": -1})
    with pytest.raises(ValueError, match="steps"):
        make_adapter("tent", tiny_cnn(), steps=0)
    with pytest.raises(ValueError, match="invalid option"):
        make_adapter("tent", tiny_cnn(), learning_rate=3)
    with pytest.raises(ValueError, match="unknown objective"):
        make_adapter("tent", tiny_cnn(), "entropyy")
    with pytest.raises(ValueError, match="NaN"):
        make_adapter("tent", nn.Sequential(tiny_cnn(), _NaN()))(torch.rand(4, 1, 32, 32))
    assert set(ADAPTERS) == {"source", "bn", "tent", "eta", "eata", "sar", "deyo"}


class _NaN(nn.Module):
    def forward(self, x):
        return x * float("nan")


@pytest.mark.parametrize("method", sorted(ADAPTERS))
@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_every_method_refuses_non_finite_logits(method, objective):
    """A model whose output turns NaN (a diverged adaptation, a broken input) must stop the run with a clear
    error in every host, also in those whose filters would otherwise drop every NaN sample silently."""
    model = nn.Sequential(tiny_cnn(), _NaN())
    kw = {"fisher_loader": [torch.rand(4, 1, 32, 32)]} if method == "eata" else {}
    with pytest.raises(ValueError, match="NaN"):
        build(method, model, objective, **kw)(torch.rand(4, 1, 32, 32))


def test_steps_and_source_bn_do_not_train():
    model = tiny_cnn()
    before = copy.deepcopy(model.state_dict())
    src = make_adapter("source", model)
    src(batches(1)[0])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    bn = make_adapter("bn", tiny_cnn())
    assert bn.optimizer is None and not any(p.requires_grad for p in bn.model.parameters())
    multi = build("tent", tiny_cnn(), steps=3)
    multi(batches(1)[0])
    assert multi.optimizer.state[next(iter(multi.optimizer.state))]["momentum_buffer"] is not None


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("objective", ["em", "adadem"])
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_adapters_adapt_the_same_under_an_outer_no_grad(method, objective, context):
    """`with torch.no_grad(): adapter(x)` (the usual evaluation loop) and inference mode adapt exactly as in
    a grad context (entmin 0.1: a raw RuntimeError for Tent, ETA and SAR)."""
    xs = batches()
    ref = build(method, tiny_cnn(), objective)
    ref_out = [ref(x) for x in xs]
    ad = build(method, tiny_cnn(), objective)
    outer = torch.no_grad if context == "no_grad" else torch.inference_mode
    with outer():
        out = [ad(x.clone()) for x in xs]
    for a, b in zip(out, ref_out):
        assert torch.equal(a, b)
    assert_state_equal(state(ref), state(ad))


class _FailOnCall(nn.Module):
    """Wraps a model; the forward number ``fail_at`` (counted from 1) raises, or returns NaN logits."""

    def __init__(self, model, fail_at, mode="raise"):
        super().__init__()
        self.model, self.fail_at, self.mode, self.calls = model, fail_at, mode, 0

    def forward(self, x):
        self.calls += 1
        out = self.model(x)
        if self.calls == self.fail_at:
            if self.mode == "raise":
                raise RuntimeError("injected failure")
            return out * float("nan")
        return out


def _running(ad):
    import copy as _copy

    return _copy.deepcopy({"method": ad.method_state(), "obj": ad.objective.state_dict(),
                           "gen": ad.generator.get_state(), "model": ad.model.state_dict(),
                           "opt": ad.optimizer.state_dict()})


def _same(a, b):
    def eq(u, v):
        if isinstance(u, torch.Tensor):
            return torch.equal(u, v)
        if isinstance(u, dict):
            return u.keys() == v.keys() and all(eq(u[k], v[k]) for k in u)
        if isinstance(u, (list, tuple)):
            return len(u) == len(v) and all(eq(x, y) for x, y in zip(u, v))
        return u == v
    return eq(a, b)


@pytest.mark.parametrize("method, fail_at, mode", [
    ("eta", 3, "nan"), ("eata", 3, "nan"), ("deyo", 4, "raise"), ("deyo", 5, "nan"),
    ("sar", 4, "raise"), ("sar", 4, "nan"), ("tent", 2, "nan")])
def test_a_failing_batch_leaves_no_partial_state(method, fail_at, mode):
    """Forward 1..k are good batches; the failing call is inside the next batch (for SAR: its second,
    perturbed pass; for DeYO: the pass on the shuffled images). After the error the adapter is exactly as after
    the last good batch: method state, AdaDEM bank, generator, parameters (SAR's perturbation undone),
    optimizer, and no gradient left behind; the next batch then runs as if the failure never happened."""
    xs = batches(3)
    wrapped = _FailOnCall(tiny_cnn(), fail_at, mode)
    kw = {"fisher_loader": batches(2, 8, seed=9)} if method == "eata" else {}
    ad = build(method, wrapped, "adadem", **kw)
    wrapped.calls = 0
    per_batch = {"sar": 2, "deyo": 2}.get(method, 1)
    good = (fail_at - 1) // per_batch
    for x in xs[:good]:
        ad(x)
    snap = _running(ad)
    with pytest.raises((RuntimeError, ValueError)):
        ad(xs[good])
    assert _same(snap, _running(ad))
    assert all(p.grad is None for _, p in ad.params)
    ref = build(method, _FailOnCall(tiny_cnn(), 0), "adadem", **kw)
    for x in xs[:good]:
        ref(x)
    assert torch.equal(ad(xs[good]), ref(xs[good]))


@pytest.mark.parametrize("method", ["tent", "sar", "deyo"])
def test_bf16_autocast_keeps_logits_objective_and_selection_in_float32(method):
    from entmin.models import load_source_model

    x = torch.rand(4, 16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = build(method, load_source_model("cnn"), "adadem")
    ad = build(method, load_source_model("cnn"), "adadem", precision="bf16")
    before = copy.deepcopy(ad.model.state_dict())
    for xb in x:
        a, b = ref(xb), ad(xb)
        assert b.dtype == torch.float32 and ad.last_step["entropy"] == pytest.approx(ref.last_step["entropy"], abs=0.05)
        assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.9
    assert any(not torch.equal(v, before[k]) for k, v in ad.model.state_dict().items())


def test_channels_last_and_compile_give_the_fp32_results(shifted_sample):
    """Other kernels, other rounding: the logits of a real batch agree with the default path to 1e-4 and the
    update of every parameter to 1% of its size (BatchNorm's backward reduces in another order)."""
    from entmin.models import load_source_model

    x = shifted_sample[0][:64]
    ref = build("eta", load_source_model("cnn"), "em", optimizer={"lr": 1e-3})
    out = ref(x)
    for opt in ({"channels_last": True}, {"compile": True}):
        ad = build("eta", load_source_model("cnn"), "em", optimizer={"lr": 1e-3}, **opt)
        torch.testing.assert_close(ad(x), out, atol=1e-4, rtol=1e-4)
        for (n, p), q, p0 in zip(ad.model.named_parameters(), ref.model.parameters(),
                                 load_source_model("cnn").parameters()):
            assert float((p - q).norm()) <= 0.01 * float((q - p0).norm()) + 1e-7, n
        assert set(ad.model.state_dict()) == set(ref.model.state_dict())  # names unchanged: reset/export work
        ad.reset()


def test_fp16_needs_a_one_pass_host():
    with pytest.raises(ValueError, match="fp16 needs a one-pass host"):
        build("sar", tiny_cnn(), precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        build("tent", tiny_cnn(), precision="fp8")


@pytest.mark.parametrize("method", ["tent", "deyo"])
def test_fp16_loss_scale_is_restored_by_reset_and_carried_by_export(method, loud_cnn):
    """fp16 (runs on a CPU too, so CI covers it): the GradScaler's scale is adapter state. A fresh scaler backs
    off from 2^16 by skipping the steps whose scaled gradients overflow; a reset or resumed adapter that kept
    another scale would update where the original skipped (entmin 0.2 kept it across reset/export)."""
    xs = list(torch.rand(6, 16, 1, 32, 32, generator=torch.Generator().manual_seed(0)))
    ad = build(method, loud_cnn(), "adadem", precision="fp16")
    s0 = ad.scaler.state_dict()
    first = [ad(x) for x in xs]
    assert all(o.dtype == torch.float32 for o in first)
    assert ad.scaler.get_scale() < s0["scale"], "no step overflowed: the test would not see a kept scale"
    ad.reset()
    skipped = []
    for x in xs:
        scale = ad.scaler.get_scale()
        ad(x)
        assert ad.last_step["loss_scale"] == scale
        skipped.append(ad.last_step["update_skipped"])
    assert skipped[0] and not skipped[-1]  # the first step overflowed at 2^16 and was reported as skipped
    assert any(not torch.equal(p, q) for p, q in zip(ad.model.parameters(), loud_cnn().parameters()))
    ad.reset()
    assert ad.scaler.state_dict() == s0
    for a, b in zip(first, [ad(x) for x in xs]):
        assert torch.equal(a, b)
    ad.reset()
    for x in xs[:3]:
        ad(x)
    saved = copy.deepcopy(ad.export_state())
    other = build(method, loud_cnn(), "adadem", precision="fp16")
    other.import_state(saved)
    assert other.scaler.state_dict() == ad.scaler.state_dict()
    for x, r in zip(xs[3:], first[3:]):
        assert torch.equal(other(x), r)
    with pytest.raises(ValueError, match="no fp16 loss scale"):
        other.import_state(build(method, loud_cnn(), "adadem").export_state())
