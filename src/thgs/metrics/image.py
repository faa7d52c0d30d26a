"""Full-reference image metrics: PSNR and SSIM.

Layout: images are channels-last float tensors with values in [0, 1], either one image
``[H, W, C]`` or a batch ``[B, H, W, C]`` (C is 3 for RGB; any C >= 1 works). Every function returns
one value per image: a 0-d tensor for ``[H, W, C]`` input, ``[B]`` for a batch.

SSIM is the Gaussian-window SSIM of Wang et al. (2004) in the form the 3D Gaussian Splatting code
uses for both its loss and its evaluation: an 11x11 Gaussian window with sigma 1.5, applied per channel
as a "same"-size convolution with zero padding, constants C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with
L = 1, and the mean of the SSIM map over all pixels and channels. Everything is differentiable.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "psnr_from_mse", "mse", "ssim", "ssim_map", "gaussian_window"]


def _as_batch(x: Tensor, name: str) -> tuple[Tensor, bool]:
    """[H, W, C] or [B, H, W, C] -> ([B, H, W, C], was_single)."""
    if x.dim() == 3:
        return x[None], True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"{name} must be [H, W, C] or [B, H, W, C], got shape {tuple(x.shape)}")


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, bool]:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    p, single = _as_batch(pred, "pred")
    t, _ = _as_batch(target, "target")
    return p, t, single


def _mask_batch(mask: Tensor, shape: torch.Size) -> Tensor:
    """Broadcast a mask ([H, W], [H, W, 1], [B, H, W] or [B, H, W, 1]) to the batch ``shape`` [B, H, W, C]."""
    B, H, W, C = shape
    m = mask.to(torch.float32)
    if m.dim() >= 2 and m.shape[-1] == 1 and m.dim() in (3, 4) and m.shape[-3:-1] == (H, W):
        m = m[..., 0]
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3 or tuple(m.shape[-2:]) != (H, W) or m.shape[0] not in (1, B):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match images of shape [B={B}, {H}, {W}, {C}]")
    return m[..., None].expand(B, H, W, C)


def mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per image; with ``mask`` (nonzero = counted; weights allowed) only masked pixels.

    Args:
        pred, target: [H, W, C] or [B, H, W, C] in [0, 1].
        mask: optional [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1].
    Returns:
        0-d tensor or [B].
    """
    p, t, single = _check_pair(pred, target)
    err = (p - t) ** 2
    if mask is None:
        out = err.flatten(1).mean(1)
    else:
        m = _mask_batch(mask.to(p.device), p.shape).to(p.dtype)
        out = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-12)
    return out[0] if single else out


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``10 log10(1 / MSE)``.

    Identical images give ``inf``. With ``mask`` the MSE is taken over the masked pixels only (all channels).

    Args:
        pred, target: [H, W, C] or [B, H, W, C] in [0, 1].
        mask: optional [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1].
    Returns:
        0-d tensor or [B] (dB).
    """
    return -10.0 * torch.log10(mse(pred, target, mask))


def gaussian_window(window_size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """Normalised 1D Gaussian, [window_size], centred on the middle sample."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    x = torch.arange(window_size, dtype=torch.float64) - window_size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def _cached_window(window_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """:func:`gaussian_window` built once per (size, sigma, dtype, device): the SSIM of every training step
    reuses it instead of building it on the host and copying it to the device. Read-only."""
    return gaussian_window(window_size, sigma, dtype=dtype, device=device)


def _blur(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian blur with zero padding, 'same' size. x [N, C, H, W]; g [K]."""
    C = x.shape[1]
    K = g.shape[0]
    kx = g.view(1, 1, 1, K).expand(C, 1, 1, K)
    ky = g.view(1, 1, K, 1).expand(C, 1, K, 1)
    x = F.conv2d(x, kx, padding=(0, K // 2), groups=C)
    return F.conv2d(x, ky, padding=(K // 2, 0), groups=C)


def ssim_map(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM, same layout and size as the input ([H, W, C] or [B, H, W, C]).

    Local means, variances and covariance come from a Gaussian window (``window_size`` x
    ``window_size``, standard deviation ``sigma`` pixels) with zero padding at the border.
    """
    p, t, single = _check_pair(pred, target)
    B, H, W, C = p.shape
    dtype = p.dtype if p.dtype in (torch.float32, torch.float64) else torch.float32
    g = _cached_window(int(window_size), float(sigma), dtype, p.device)
    x = p.to(dtype).permute(0, 3, 1, 2)
    y = t.to(dtype).permute(0, 3, 1, 2)
    # one grouped convolution over the five moments
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), g)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(C, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = e_xx - mu_xx
    var_y = e_yy - mu_yy
    cov = e_xy - mu_xy
    c1 = 0.01**2
    c2 = 0.03**2
    smap = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    smap = smap.permute(0, 2, 3, 1)
    return smap[0] if single else smap


def ssim(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per image (differentiable). Identical images give exactly 1.

    Args:
        pred, target: [H, W, C] or [B, H, W, C] float in [0, 1].
        window_size: odd Gaussian window size in pixels (11 as in Wang et al. and 3DGS).
        sigma: Gaussian standard deviation in pixels (1.5).
    Returns:
        0-d tensor or [B].
    """
    smap = ssim_map(pred, target, window_size, sigma)
    if smap.dim() == 3:
        return smap.mean()
    return smap.flatten(1).mean(1)


def psnr_from_mse(value: float) -> float:
    """PSNR in dB of an MSE for images in [0, 1] (``inf`` for 0)."""
    return math.inf if value <= 0 else -10.0 * math.log10(value)
