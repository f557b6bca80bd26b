"""Dense (per-pixel, per-token) objectives: values, gradients against closed forms, AdaDEM's bank over pixels,
masks. The references here work pixel by pixel with Python loops over classes; the library must not."""
import pytest
import torch

from entmin.objectives import AdaDEM, cadf, dem, entropy, get_objective, gmc, masked_mean, min_ent

torch.manual_seed(0)


def _pixels(z):
    """(N, C, *) -> list of per-pixel logit vectors, in (N, *) order."""
    return z.detach().movedim(1, -1).reshape(-1, z.shape[1])


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (3, 4, 7)])   # (N, C, H, W) per pixel, (N, C, L) per token
def test_em_dem_cadf_gmc_are_per_pixel_and_their_gradients_the_closed_forms(shape):
    z = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    rest = (shape[0], *shape[2:])
    for fn in (entropy, cadf, gmc, lambda x: dem(x, 1.3, 0.8)):
        out = fn(z)
        assert out.shape == rest
        assert torch.allclose(out.reshape(-1), fn(_pixels(z)), atol=1e-12)
    # EM: dH/dz_i = -p_i (log p_i + H) per pixel
    (g,) = torch.autograd.grad(entropy(z).sum(), z)
    p = torch.softmax(z.detach(), 1)
    h = -(p * p.log()).sum(1, keepdim=True)
    assert torch.allclose(g, -p * (p.log() + h), atol=1e-12)
    # DEM(tau, alpha): d/dz [-sum q z + alpha lse] = -q - (q/tau)(z - sum q z) + alpha p, q = softmax(z/tau)
    tau, alpha = 1.3, 0.8
    (g,) = torch.autograd.grad(dem(z, tau, alpha).sum(), z)
    q = torch.softmax(z.detach() / tau, 1)
    zq = (q * z.detach()).sum(1, keepdim=True)
    assert torch.allclose(g, -q - q / tau * (z.detach() - zq) + alpha * p, atol=1e-12)


def test_adadem_bank_over_valid_pixels_and_gradient_closed_form():
    n, c, h, w, pi = 3, 4, 5, 6, 0.1
    z = (2 * torch.randn(n, c, h, w, dtype=torch.float64)).requires_grad_(True)
    valid = torch.rand(n, h, w) > 0.3
    obj = AdaDEM(c, pi=pi)
    obj.bank = obj.bank.to(torch.float64)
    loss = obj(z, bank_mask=valid)
    assert loss.shape == (n, h, w)
    # reference bank: per class, the mean prediction of the valid pixels predicted as that class
    pix, m = _pixels(z), valid.reshape(-1)
    p = torch.softmax(pix, 1)
    k = p.argmax(1)
    bank = torch.full((c, c), 1.0 / c, dtype=torch.float64)
    for cls in range(c):
        sel = m & (k == cls)
        if sel.any():
            bank[cls] = (1 - pi) * bank[cls] + pi * p[sel].mean(0)
    assert torch.allclose(obj.bank, bank, atol=1e-12)
    # gradient per pixel: [a - p (z + T + 1)] / ||p (z + T + 1)||_1, a = bank[argmax]
    (g,) = torch.autograd.grad(loss.sum(), z)
    t = -(p * pix).sum(1, keepdim=True)
    reward = p * (pix + t + 1)
    closed = (bank[k] - reward) / reward.abs().sum(1, keepdim=True)
    assert torch.allclose(_pixels(g), closed, atol=1e-12)


def test_invalid_pixels_never_reach_the_bank_or_the_mean():
    z = torch.randn(2, 3, 4, 4)
    valid = torch.zeros(2, 4, 4, dtype=torch.bool)
    valid[0, :2] = True
    a, b = AdaDEM(3), AdaDEM(3)
    a(z, bank_mask=valid)
    z2 = z.clone()
    z2[~valid.unsqueeze(1).expand_as(z2)] = 50.0        # anything at the invalid pixels
    b(z2, bank_mask=valid)
    assert torch.equal(a.bank, b.bank)
    loss = entropy(z2)
    assert torch.allclose(masked_mean(loss, valid), entropy(z)[valid].mean())
    nothing = masked_mean(loss, torch.zeros_like(valid))
    assert nothing.item() == 0.0


def test_dense_errors_are_clear():
    z = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"pixel mask must be a bool tensor of shape \(2, 4, 4\)"):
        AdaDEM(3)(z, bank_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="4 classes but the objective was built for num_classes = 3"):
        AdaDEM(3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"must have shape \(N, C\), got"):
        min_ent(z, torch.zeros(2, dtype=torch.long))  # the supervised losses stay per sample
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        masked_mean(entropy(z), torch.ones(2, 4, 4))
    assert get_objective("adadem", num_classes=3)(z).shape == (2, 4, 4)
