"""Each host's update rule against an independent few-line reference written from the spec
(shared/reference/tta_anchors.md section 2, with entmin's documented choices): parameters and predictions equal
after several batches on hand-made data where the filters keep some samples and drop others.

The references share nothing with entmin but torch: their own entropy, filters, weights, Fisher, SAM step,
EMA recovery, patch shuffle and AdaDEM (bank update, anchor, L1 normalisation).
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from entmin.adapt import make_adapter

C = 10
N_BATCHES = 6


def net(norm: str = "bn") -> nn.Module:
    """A small conv net whose confidences spread widely (large head), so entropy filters split batches."""
    torch.manual_seed(0)
    layer = nn.BatchNorm2d(6) if norm == "bn" else nn.GroupNorm(2, 6)
    m = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), layer, nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, C))
    with torch.no_grad():
        m[-1].weight.mul_(6.0)
    return m


def batches(n=N_BATCHES, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(bs, 1, 8, 8, generator=g) * torch.rand(bs, 1, 1, 1, generator=g) * 3 for _ in range(n)]


def H(z):
    return -(z.softmax(1) * z.log_softmax(1)).sum(1)


def norm_params(model):
    """Reference parameter selection: the affine parameters of the norm layers (tent's collect_params)."""
    return [p for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for p in m.parameters()]


def configure(model):
    """Reference configuration: eval mode, BatchNorm on the statistics of each test batch."""
    model = copy.deepcopy(model).eval()
    model.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
    for p in norm_params(model):
        p.requires_grad_(True)
    return model


class RefAdaDEM:
    """AdaDEM from its definition: bank row k <- (1 - pi) row k + pi * mean p of the samples predicted k (before
    the loss); L_n = (T(z) + sum_i a_i z_i) / delta_n with T = -sum softmax(z) z, the anchor a = bank[argmax p]
    and delta_n = ||p (z + T + 1)||_1 constants, whose gradient is [a_i - p_i (z_i + T + 1)] / delta_n."""

    def __init__(self, pi=0.1):
        self.bank, self.pi = torch.full((C, C), 1.0 / C), pi

    def __call__(self, z, update=True):
        p = z.detach().softmax(1)
        k = p.argmax(1)
        if update:
            for c in k.unique().tolist():
                self.bank[c] = (1 - self.pi) * self.bank[c] + self.pi * p[k == c].mean(0)
        t = -(p * z.detach()).sum(1, keepdim=True)
        delta = (p * (z.detach() + t + 1)).abs().sum(1)
        return (-(z.softmax(1) * z).sum(1) + (self.bank[k] * z).sum(1)) / delta


def objective(name):
    return (lambda z, update=True: H(z)) if name == "em" else RefAdaDEM()


def assert_same(adapter, ref_model, outs, ref_outs):
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    for (name, p), q in zip(adapter.model.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), atol=2e-5, rtol=1e-4, msg=name)


def split(kept, i=1):
    """The filters kept some samples and dropped others in at least half of the batches."""
    return sum(0 < k[i] < 16 for k in kept) >= len(kept) // 2


def _median_entropy(model_fn, xs):
    with torch.no_grad():
        return float(H(configure(model_fn())(xs[0])).median())


# ----- Tent -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("obj", ["em", "adadem"])
def test_tent_follows_its_rule(norm, obj):
    xs, lr = batches(), 0.05
    ad = make_adapter("tent", net(norm), obj, optimizer={"lr": lr})
    outs = [ad(x) for x in xs]
    model = configure(net(norm))
    opt = torch.optim.SGD(norm_params(model), lr=lr, momentum=0.9)
    loss_fn, ref = objective(obj), []
    for x in xs:
        z = model(x)
        loss_fn(z).mean().backward()
        opt.step()
        opt.zero_grad()
        ref.append(z.detach())
    assert_same(ad, model, outs, ref)


# ----- ETA / EATA -------------------------------------------------------------------------------------------
def ref_eta(model, xs, *, e0, eps, lr, obj="em", fisher=None, anchor=None, alpha=0.0, select=True, reweight=True):
    opt = torch.optim.SGD(norm_params(model), lr=lr, momentum=0.9)
    loss_fn, m, outs, kept = objective(obj), None, [], []
    for x in xs:
        z = model(x)
        e = H(z.detach())
        p = z.detach().softmax(1)
        s1 = e < e0
        s2 = s1 if m is None else s1 & (F.cosine_similarity(m[None], p, dim=1).abs() < eps)
        if not select:
            s2 = torch.ones_like(s1)
        if s2.any():
            new = p[s2].mean(0)
            m = new if m is None else 0.9 * m + 0.1 * new
        per = loss_fn(z)  # the bank sees every sample (bank_update="all")
        kept.append((int(s1.sum()), int(s2.sum())))
        if s2.any():
            loss = ((torch.exp(-(e - e0)) if reweight else 1.0) * per)[s2].mean()
            if fisher is not None:
                loss = loss + alpha * sum((f * (q - q0) ** 2).sum() for f, q, q0 in zip(fisher, norm_params(model),
                                                                                       anchor))
            loss.backward()
            opt.step()
        opt.zero_grad()
        outs.append(z.detach())
    return outs, kept


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("obj", ["em", "adadem"])
def test_eta_follows_its_rule(norm, obj):
    xs, lr = batches(), 0.05
    e0 = _median_entropy(lambda: net(norm), xs)
    eps = 0.9
    ad = make_adapter("eta", net(norm), obj, optimizer={"lr": lr}, e_margin=e0, d_margin=eps)
    outs = [ad(x) for x in xs]
    model = configure(net(norm))
    ref, kept = ref_eta(model, xs, e0=e0, eps=eps, lr=lr, obj=obj)
    assert split(kept), f"the filters must keep some samples and drop others: {kept}"
    assert any(k2 < k1 for k1, k2 in kept[1:]), f"the redundancy filter never acted: {kept}"
    assert_same(ad, model, outs, ref)


@pytest.mark.parametrize(("select", "reweight"), [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("obj", ["em", "adadem"])
def test_eta_ablation_switches_follow_the_rule(select, reweight, obj):
    """ETA without its filters and/or its exp(E0 - H) weights (the host-ablation switches); with neither it is
    Tent's update, step for step."""
    xs, lr = batches(), 0.05
    e0 = _median_entropy(lambda: net("bn"), xs)
    ad = make_adapter("eta", net("bn"), obj, optimizer={"lr": lr}, e_margin=e0, d_margin=0.9, select=select,
                      reweight=reweight)
    outs = [ad(x) for x in xs]
    model = configure(net("bn"))
    ref, kept = ref_eta(model, xs, e0=e0, eps=0.9, lr=lr, obj=obj, select=select, reweight=reweight)
    assert_same(ad, model, outs, ref)
    if select:
        assert split(kept), f"the filters must keep some samples and drop others: {kept}"
    if not select and not reweight:
        tent = make_adapter("tent", net("bn"), obj, optimizer={"lr": lr})
        assert all(torch.equal(tent(x), o) for x, o in zip(xs, outs))


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_eata_follows_its_rule(norm):
    xs, lr, alpha = batches(), 0.05, 50.0
    clean = batches(3, 8, seed=5)
    e0 = _median_entropy(lambda: net(norm), xs)
    ad = make_adapter("eata", net(norm), "em", optimizer={"lr": lr}, e_margin=e0, d_margin=0.9,
                      fisher_loader=clean, fisher_alpha=alpha)
    outs = [ad(x) for x in xs]
    model = configure(net(norm))
    params = norm_params(model)
    fisher = [torch.zeros_like(q) for q in params]
    for x in clean:  # diagonal Fisher: CE against the model's own arg-max, squared batch gradient, mean over batches
        z = model(x)
        grads = torch.autograd.grad(F.cross_entropy(z, z.argmax(1)), params)
        fisher = [f + g ** 2 for f, g in zip(fisher, grads)]
    fisher = [f / len(clean) for f in fisher]
    anchor = [q.detach().clone() for q in params]
    ref, kept = ref_eta(model, xs, e0=e0, eps=0.9, lr=lr, fisher=fisher, anchor=anchor, alpha=alpha)
    assert split(kept), kept
    assert_same(ad, model, outs, ref)
    # the penalty matters: without it the parameters end elsewhere
    free = make_adapter("eta", net(norm), "em", optimizer={"lr": lr}, e_margin=e0, d_margin=0.9)
    for x in xs:
        free(x)
    assert not all(torch.allclose(a, b) for a, b in zip(free.model.parameters(), ad.model.parameters()))


# ----- SAR ------------------------------------------------------------------------------------------------
def ref_sar(model, xs, *, e0, lr, rho=0.05, reset_constant=-math.inf, obj="em"):
    params = norm_params(model)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    init_model, init_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    loss_fn, ema, outs, kept, emas, resets = objective(obj), None, [], [], [], 0
    for x in xs:
        z = model(x)
        s1 = H(z.detach()) < e0
        n2 = 0
        if s1.any():
            loss_fn(z)[s1].mean().backward()
            norm = torch.stack([q.grad.norm() for q in params]).norm()
            theta = [q.detach().clone() for q in params]
            with torch.no_grad():
                for q in params:
                    q.add_(rho * q.grad / (norm + 1e-12))
            opt.zero_grad()
            z2 = model(x)
            e2 = H(z2.detach())
            s2 = s1 & (e2 < e0)
            n2 = int(s2.sum())
            if n2:
                loss_fn(z2, update=False)[s2].mean().backward()
            with torch.no_grad():
                for q, t in zip(params, theta):
                    q.copy_(t)
            if n2:
                opt.step()
                v = float(e2[s2].mean())
                ema = v if ema is None else 0.9 * ema + 0.1 * v
            opt.zero_grad()
        kept.append((int(s1.sum()), n2))
        emas.append(ema)
        if ema is not None and ema < reset_constant:  # recovery: model and optimizer as at the start
            model.load_state_dict(init_model)
            opt.load_state_dict(copy.deepcopy(init_opt))
            ema, resets = None, resets + 1
        outs.append(z.detach())
    return outs, kept, emas, resets


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("obj", ["em", "adadem"])
def test_sar_follows_its_rule_including_the_sam_step(norm, obj):
    xs, lr = batches(), 0.05
    e0 = _median_entropy(lambda: net(norm), xs)
    ad = make_adapter("sar", net(norm), obj, optimizer={"lr": lr}, e_margin=e0, reset_constant=-1.0)
    outs = [ad(x) for x in xs]
    model = configure(net(norm))
    ref, kept, _, _ = ref_sar(model, xs, e0=e0, lr=lr, obj=obj)
    assert split(kept), kept
    assert any(k2 < k1 for k1, k2 in kept), f"the second (perturbed) filter never acted: {kept}"
    assert_same(ad, model, outs, ref)


def test_sar_ema_recovery_follows_its_rule():
    xs, lr = batches(10), 0.05
    e0 = _median_entropy(lambda: net("gn"), xs)
    _, _, emas, _ = ref_sar(configure(net("gn")), xs, e0=e0, lr=lr)
    threshold = sorted(e for e in emas if e is not None)[len(emas) // 2]  # crossed part-way through the stream
    ad = make_adapter("sar", net("gn"), "em", optimizer={"lr": lr}, e_margin=e0, reset_constant=threshold)
    outs = [ad(x) for x in xs]
    model = configure(net("gn"))
    ref, _, _, resets = ref_sar(model, xs, e0=e0, lr=lr, reset_constant=threshold)
    assert resets >= 1 and ad.num_recoveries == resets
    assert_same(ad, model, outs, ref)


# ----- DeYO ------------------------------------------------------------------------------------------------
def ref_patch_shuffle(x, g, grid=4):
    """Cut each image into grid x grid patches; new patch j of image i = old patch perm_i[j]."""
    n, _, h, w = x.shape
    ph, pw = h // grid, w // grid
    perm = torch.rand(n, grid * grid, generator=g).argsort(1)
    out = torch.empty_like(x)
    for i in range(n):
        for j in range(grid * grid):
            src = int(perm[i, j])
            r0, c0 = (j // grid) * ph, (j % grid) * pw
            r1, c1 = (src // grid) * ph, (src % grid) * pw
            out[i, :, r0:r0 + ph, c0:c0 + pw] = x[i, :, r1:r1 + ph, c1:c1 + pw]
    return out


def ref_deyo(model, xs, *, margin, e0, tau, lr, ent, plpd_w, seed):
    opt = torch.optim.SGD(norm_params(model), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    outs, kept = [], []
    for x in xs:
        z = model(x)
        e = H(z.detach())
        s1 = e < margin
        n2 = 0
        if s1.sum() >= 2:
            with torch.no_grad():
                pp = model(ref_patch_shuffle(x[s1], g)).softmax(1)
            p = z.detach()[s1].softmax(1)
            yhat = p.argmax(1, keepdim=True)
            plpd = torch.zeros(len(x))
            plpd[s1] = (p.gather(1, yhat) - pp.gather(1, yhat)).squeeze(1)
            s2 = s1 & (plpd > tau)
            w = (torch.exp(-(e - e0)) if ent else 0) + (torch.exp(plpd) if plpd_w else 0)
            n2 = int(s2.sum())
            if n2:
                (w * H(z))[s2].mean().backward()
                opt.step()
            opt.zero_grad()
        kept.append((int(s1.sum()), n2))
        outs.append(z.detach())
    return outs, kept


@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("weights", [(True, True), (True, False), (False, True)])
def test_deyo_follows_its_rule_with_plpd_and_weightings(norm, weights):
    xs, lr, seed = batches(), 0.05, 3
    margin = _median_entropy(lambda: net(norm), xs)
    e0, tau = 0.4 * math.log(C), 0.02
    ad = make_adapter("deyo", net(norm), "em", optimizer={"lr": lr}, ent_margin=margin, plpd_threshold=tau,
                      reweight_ent=weights[0], reweight_plpd=weights[1], seed=seed)
    outs = [ad(x) for x in xs]
    model = configure(net(norm))
    ref, kept = ref_deyo(model, xs, margin=margin, e0=e0, tau=tau, lr=lr, ent=weights[0], plpd_w=weights[1],
                         seed=seed)
    assert split(kept) and any(k1 < 16 for k1, _ in kept), f"the entropy filter never acted: {kept}"
    assert any(0 < k2 < k1 for k1, k2 in kept), f"the PLPD filter never split a batch: {kept}"
    assert_same(ad, model, outs, ref)
