"""Objectives against the closed-form gradients of dem_spec.md 1.2, 1.4, 1.6 and the invariants of 1.8."""
import math
import warnings

import pytest
import torch

from entmin.objectives import DEM, AdaDEM, cadf, dem, em_surrogate, entropy, get_objective, gmc, update_mec_bank


def grad_of(fn, z):
    z = z.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(z).sum(), z)
    return g


@pytest.fixture
def z():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 7, generator=g, dtype=torch.float64) * 3


def test_entropy_value_and_decomposition(z):
    p = z.softmax(1)
    h_ref = -(p * p.log()).sum(1)
    torch.testing.assert_close(entropy(z), h_ref)
    torch.testing.assert_close(cadf(z) + gmc(z), h_ref)
    torch.testing.assert_close(gmc(z), torch.logsumexp(z, 1))


def test_closed_form_gradients(z):
    p = z.softmax(1)
    t = -(p * z).sum(1, keepdim=True)
    h = entropy(z).unsqueeze(1)
    torch.testing.assert_close(grad_of(cadf, z), -p * (z + t + 1))
    torch.testing.assert_close(grad_of(gmc, z), p)
    torch.testing.assert_close(grad_of(entropy, z), -p * (p.log() + h))
    torch.testing.assert_close(grad_of(em_surrogate, z), grad_of(entropy, z))
    assert torch.all(em_surrogate(z) == 0)
    # sums of the parts: -1, +1, 0
    torch.testing.assert_close(grad_of(cadf, z).sum(1), -torch.ones(32, dtype=z.dtype))
    torch.testing.assert_close(grad_of(entropy, z).sum(1), torch.zeros(32, dtype=z.dtype))


@pytest.mark.parametrize("tau,alpha", [(1.0, 1.0), (0.5, 0.7), (1.7, 0.0), (1.3, 1.5)])
def test_dem_gradient_closed_form(z, tau, alpha):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = grad_of(lambda x: dem(x, tau, alpha), z)
    p, q = z.softmax(1), (z / tau).softmax(1)
    t_tau = -(q * z).sum(1, keepdim=True)
    expected = -(q / tau) * (z + t_tau + tau) + alpha * p
    torch.testing.assert_close(g, expected)
    torch.testing.assert_close(g.sum(1), torch.full((32,), alpha - 1, dtype=z.dtype))


def test_dem_one_one_is_em(z):
    torch.testing.assert_close(dem(z, 1.0, 1.0), entropy(z))
    torch.testing.assert_close(grad_of(lambda x: dem(x), z), grad_of(entropy, z))
    torch.testing.assert_close(grad_of(DEM(1.0, 0.0), z), grad_of(cadf, z))


def test_dem_validation_and_warning():
    with pytest.raises(ValueError, match="tau"):
        DEM(tau=0.0)
    with pytest.raises(ValueError, match="tau"):
        dem(torch.randn(2, 3), tau=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        DEM(alpha=-0.1)
    with pytest.warns(RuntimeWarning, match="Prop. A.1"):
        DEM(tau=1.5, alpha=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DEM(tau=1.0, alpha=2.0)  # boundary tau = 2/alpha is valid


def _ada_expected(z, anchor, variant):
    p = z.softmax(1)
    t = -(p * z).sum(1, keepdim=True)
    reward = p * (z + t + 1)
    delta = reward.abs().sum(1, keepdim=True)
    if variant == "adadem":
        return (-reward + anchor) / delta
    if variant == "mec":
        return -reward + anchor
    if variant == "norm":
        h = -(p * p.log()).sum(1, keepdim=True)
        return -p * (p.log() + h) / delta
    if variant == "v":
        dv = (p * (z + t)).abs().sum(1, keepdim=True)
        return (-reward + anchor) / dv
    raise AssertionError


@pytest.mark.parametrize("variant", ["adadem", "mec", "norm", "v"])
def test_adadem_gradient_closed_form(z, variant):
    m = AdaDEM(7, variant=variant).double()
    bank_before = m.bank.clone()
    g = grad_of(m, z)
    k = z.softmax(1).argmax(1)
    bank = m.bank if variant != "norm" else bank_before  # bank updated before the loss is formed
    torch.testing.assert_close(g, _ada_expected(z, bank[k], variant))


def test_adadem_invariants(z):
    m = AdaDEM(7).double()
    for _ in range(3):
        g = grad_of(m, z + torch.randn_like(z))
    torch.testing.assert_close(g.sum(1), torch.zeros(32, dtype=z.dtype))  # shift invariant
    p = z.softmax(1)
    # CADF part of the AdaDEM gradient has unit L1 norm
    zz = z.detach()
    m2 = AdaDEM(7, variant="adadem").double()
    k = p.argmax(1)
    delta = (p * (zz + cadf(zz)[:, None] + 1)).abs().sum(1, keepdim=True)
    cadf_part = grad_of(m2, zz) - m2.bank[k] / delta
    torch.testing.assert_close(cadf_part.abs().sum(1), torch.ones(32, dtype=z.dtype))
    torch.testing.assert_close(m.bank.sum(1), torch.ones(7, dtype=z.dtype))
    assert torch.all(m.bank >= 0)
    # AdaDEM-Norm == EM gradient / delta
    mn = AdaDEM(7, variant="norm").double()
    delta = (p * (z + cadf(z)[:, None] + 1)).abs().sum(1, keepdim=True)
    torch.testing.assert_close(grad_of(mn, z), grad_of(entropy, z) / delta)
    assert torch.all(delta >= 1 - 1e-12)


def test_delta_is_detached(z):
    """A non-detached delta adds a term to the gradient; the implementation must match the detached form."""
    m = AdaDEM(7).double()
    g = grad_of(lambda x: m(x, update=False), z)
    a = torch.full_like(z, 1 / 7)

    def undetached(x):
        p = x.softmax(1)
        t = -(p * x).sum(1, keepdim=True)
        d = (p * (x + t + 1)).abs().sum(1, keepdim=True)
        return -(((p - a) / d) * x).sum(1)

    torch.testing.assert_close(g, _ada_expected(z, a, "adadem"))
    assert not torch.allclose(g, grad_of(undetached, z))


def slow_bank_update(bank, probs, pi):
    bank = bank.clone()
    k = probs.argmax(1)
    for c in range(bank.shape[0]):
        sel = k == c
        if sel.any():
            bank[c] = (1 - pi) * bank[c] + pi * probs[sel].mean(0)
    return bank


@pytest.mark.parametrize("pi", [1.0, 0.1, 0.01])
def test_bank_update_matches_loop(pi):
    g = torch.Generator().manual_seed(1)
    c = 13
    m = AdaDEM(c, pi=pi).double()
    ref = m.bank.clone()
    for step in range(5):
        logits = torch.randn(20, c, generator=g, dtype=torch.float64) * 2
        logits[:, :3] += 3  # make some classes absent
        ref = slow_bank_update(ref, logits.softmax(1), pi)
        m(logits)
        torch.testing.assert_close(m.bank, ref)
    assert int(m.num_updates) == 5


def test_bank_pi_one_and_absent_rows():
    m = AdaDEM(5, pi=1.0).double()
    logits = torch.tensor([[5.0, 0, 0, 0, 0], [4.0, 1, 0, 0, 0], [0, 0, 6.0, 0, 0]], dtype=torch.float64)
    m(logits)
    p = logits.softmax(1)
    torch.testing.assert_close(m.bank[0], p[:2].mean(0))
    torch.testing.assert_close(m.bank[2], p[2])
    torch.testing.assert_close(m.bank[[1, 3, 4]], torch.full((3, 5), 0.2, dtype=torch.float64))


def test_bank_mask_update_flag_reset_and_state_dict():
    m = AdaDEM(4)
    logits = torch.randn(8, 4)
    m(logits, update=False)
    assert torch.all(m.bank == 0.25)
    mask = torch.zeros(8, dtype=torch.bool)
    m(logits, bank_mask=mask)
    assert torch.all(m.bank == 0.25)
    mask[0] = True
    m(logits, bank_mask=mask)
    k = int(logits[0].argmax())
    torch.testing.assert_close(m.bank[k], 0.9 * torch.full((4,), 0.25) + 0.1 * logits[0].softmax(0))
    sd = m.state_dict()
    assert "bank" in sd
    m2 = AdaDEM(4)
    m2.load_state_dict(sd)
    assert torch.equal(m2.bank, m.bank)
    m.reset()
    assert torch.all(m.bank == 0.25) and int(m.num_updates) == 0


def test_empty_batch():
    m = AdaDEM(4)
    out = m(torch.empty(0, 4))
    assert out.shape == (0,)
    assert torch.all(m.bank == 0.25)
    for fn in (entropy, cadf, gmc, lambda x: dem(x, 1.2, 0.5)):
        assert fn(torch.empty(0, 4)).shape == (0,)


def test_bank_update_vectorised_at_1000_classes():
    bank = torch.full((1000, 1000), 1e-3)
    probs = torch.randn(64, 1000).softmax(1)
    ref = slow_bank_update(bank, probs, 0.1)
    update_mec_bank(bank, probs, probs.argmax(1), 0.1)
    torch.testing.assert_close(bank, ref)


@pytest.mark.parametrize("name", ["em", "dem", "adadem", "adadem_norm", "adadem_mec", "adadem_v", "cadf"])
def test_extreme_logits_finite(name):
    obj = get_objective(name, num_classes=6)
    z = torch.tensor([[1e4, -1e4, 0, 3, -3, 1e4], [-1e4] * 5 + [1e4]], requires_grad=True)
    loss = obj(z)
    (g,) = torch.autograd.grad(loss.sum(), z)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["em", "dem", "adadem"])
def test_half_precision(dtype, name):
    obj = get_objective(name, num_classes=5)
    z32 = torch.randn(16, 5) * 4
    z = z32.to(dtype).requires_grad_(True)
    out = obj(z)
    assert out.dtype == dtype
    (g,) = torch.autograd.grad(out.float().sum(), z)
    assert g.dtype == dtype and torch.isfinite(g).all()
    ref = get_objective(name, num_classes=5)(z32.to(dtype).float())
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("bad,msg", [
    (torch.tensor([[float("nan"), 1.0]]), "NaN"),
    (torch.tensor([[float("inf"), 1.0]]), "Inf"),
    (torch.randn(3), "shape"),
    (torch.randn(2, 1, 4, 4), "C >= 2"),  # dense logits are valid (tests/test_dense.py), one class is not
    (torch.randn(4, 1), "C >= 2"),
    (torch.ones(2, 3, dtype=torch.long), "floating"),
])
def test_bad_logits(bad, msg):
    for fn in (entropy, cadf, gmc, dem, AdaDEM(bad.shape[-1] if bad.dim() == 2 and bad.shape[-1] >= 2 else 3)):
        with pytest.raises(ValueError, match=msg):
            fn(bad)


def test_adadem_argument_errors():
    with pytest.raises(ValueError, match="num_classes"):
        AdaDEM(10)(torch.randn(4, 9))
    for pi in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="pi"):
            AdaDEM(10, pi=pi)
    with pytest.raises(ValueError, match="variant"):
        AdaDEM(10, variant="foo")
    with pytest.raises(ValueError, match="num_classes"):
        AdaDEM(1)
    with pytest.raises(ValueError, match="unknown objective"):
        get_objective("entropyy")
    with pytest.raises(ValueError, match="needs num_classes"):
        get_objective("adadem")
    with pytest.raises(ValueError, match="invalid option"):
        get_objective("dem", beta=3)


def test_gradcheck():
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(entropy, (z,))
    assert torch.autograd.gradcheck(lambda x: dem(x, 0.8, 1.3), (z,))
    assert torch.autograd.gradcheck(cadf, (z,))
    # AdaDEM with a frozen bank is a smooth function of z except through argmax/delta (constants): check
    # that autograd matches finite differences of the surrogate with those constants held fixed.
    m = AdaDEM(5, variant="mec").double()
    assert torch.autograd.gradcheck(lambda x: m(x, update=False), (z,))


def test_registry_names():
    assert get_objective("adadem", num_classes=3).variant == "adadem"
    assert get_objective("adadem-mec", num_classes=3).variant == "mec"
    assert isinstance(get_objective("dem", tau=1.2, alpha=0.3), DEM)
    f = get_objective(lambda x: x.sum(1))
    assert f(torch.ones(2, 3)).tolist() == [3.0, 3.0]
    assert math.isclose(float(get_objective("entropy")(torch.zeros(1, 4))), math.log(4), rel_tol=1e-6)
