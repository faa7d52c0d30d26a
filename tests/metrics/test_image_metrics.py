import math

import pytest
import torch
import torch.nn.functional as F

from thgs.metrics.image import gaussian_window, mse, psnr, ssim, ssim_map


def _images(seed=0, shape=(2, 40, 48, 3), noise=0.05):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    b = (a + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return a, b


def _ssim_direct(x, y, window=11, sigma=1.5):
    """Independent reference: one 2D Gaussian window, per-channel conv with zero padding (as 3DGS)."""
    g = gaussian_window(window, sigma, dtype=torch.float64)
    w2 = (g[:, None] @ g[None, :])[None, None].expand(3, 1, window, window)
    x = x.permute(0, 3, 1, 2).double()
    y = y.permute(0, 3, 1, 2).double()
    conv = lambda t: F.conv2d(t, w2, padding=window // 2, groups=3)  # noqa: E731
    mx, my = conv(x), conv(y)
    sxx, syy, sxy = conv(x * x) - mx**2, conv(y * y) - my**2, conv(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return m.mean(dim=(1, 2, 3))


def test_psnr_identical_is_inf_and_known_mse_gives_known_psnr():
    a, _ = _images()
    assert torch.isinf(psnr(a, a)).all()
    t = torch.full((8, 8, 3), 0.5)
    p = t + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(p, t).item() == pytest.approx(20.0, abs=1e-4)
    p2 = t.clone()
    p2[:4] += 0.2  # half the pixels off by 0.2: MSE 0.02
    assert psnr(p2, t).item() == pytest.approx(-10 * math.log10(0.02), abs=1e-4)


def test_psnr_batch_matches_single_and_mask_restricts_pixels():
    a, b = _images()
    batch = psnr(a, b)
    assert batch.shape == (2,)
    assert torch.allclose(batch, torch.stack([psnr(a[0], b[0]), psnr(a[1], b[1])]))
    t = torch.zeros(10, 10, 3)
    p = t.clone()
    p[:, 5:] = 0.5  # error only in the right half
    mask = torch.zeros(10, 10)
    mask[:, :5] = 1
    assert torch.isinf(psnr(p, t, mask))
    assert psnr(p, t, 1 - mask).item() == pytest.approx(-10 * math.log10(0.25), abs=1e-4)
    assert torch.allclose(psnr(p, t, mask[..., None]), psnr(p, t, mask))
    with pytest.raises(ValueError, match="mask"):
        psnr(p, t, torch.ones(9, 10))
    with pytest.raises(ValueError, match="same shape"):
        psnr(p, t[:5])
    assert mse(p, t).item() == pytest.approx(0.125)


def test_ssim_identical_is_one_symmetric_and_below_one_for_noise():
    a, b = _images()
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-6)
    s_ab, s_ba = ssim(a, b), ssim(b, a)
    assert torch.allclose(s_ab, s_ba, atol=1e-6)
    assert (s_ab < 0.999).all() and (s_ab > 0).all()
    noisier = ssim(*_images(noise=0.2))
    assert (noisier < s_ab).all()
    assert ssim(a[0], b[0]).dim() == 0


def test_ssim_matches_direct_2d_window_reference():
    a, b = _images(seed=3, shape=(2, 33, 27, 3), noise=0.1)
    assert torch.allclose(ssim(a.double(), b.double()), _ssim_direct(a, b), atol=1e-10)
    assert torch.allclose(ssim(a, b).double(), _ssim_direct(a, b), atol=1e-5)


def test_ssim_of_constant_images_matches_closed_form_in_the_interior():
    x = torch.full((1, 30, 30, 3), 0.6, dtype=torch.float64)
    y = torch.full((1, 30, 30, 3), 0.3, dtype=torch.float64)
    m = ssim_map(x, y)
    c1 = 0.01**2
    expect = (2 * 0.6 * 0.3 + c1) / (0.6**2 + 0.3**2 + c1)  # zero variances: the contrast term is 1
    assert torch.allclose(m[0, 5:-5, 5:-5], torch.full_like(m[0, 5:-5, 5:-5], expect), atol=1e-9)
    # float32 keeps to the same value within its cancellation error
    assert torch.allclose(ssim_map(x.float(), y.float())[0, 5:-5, 5:-5].double(), m[0, 5:-5, 5:-5], atol=5e-4)


def test_ssim_is_differentiable():
    a, b = _images(shape=(1, 24, 24, 3))
    p = b.clone().requires_grad_(True)
    loss = 1 - ssim(p, a).mean()
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # a small step against the gradient raises SSIM
    with torch.no_grad():
        assert ssim(p - 0.01 * p.grad / p.grad.abs().max(), a) > ssim(p, a)


def test_gaussian_window_and_argument_errors():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and abs(float(g.sum()) - 1) < 1e-6 and int(g.argmax()) == 5
    with pytest.raises(ValueError):
        gaussian_window(10)
    with pytest.raises(ValueError, match="\\[H, W, C\\]"):
        ssim(torch.rand(5, 5), torch.rand(5, 5))
