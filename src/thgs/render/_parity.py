"""Reference-vs-gsplat comparison (images and gradients) and gsplat timings, shared by the CUDA parity
test and ``benchmarks/render_parity_gpu.py``."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from thgs.render._scenes import front_camera, random_cloud
from thgs.render.base import Camera, GaussianSet, Mode, get_backend

PSNR_MIN = 40.0
"""Images of the two backends must agree to at least this PSNR (dB)."""
COS_MIN = 0.99
"""Gradients w.r.t. the checked parameters must have at least this cosine similarity."""
CHECKED = ("means", "colors", "opacities")
PARAMS = ("means", "quats", "scales", "opacities", "colors")


def psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of two images (inf when identical)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two tensors seen as flat vectors (1.0 when both are zero)."""
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = a.norm().item(), b.norm().item()
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return (a @ b).item() / (na * nb)


@dataclass
class Parity:
    """One comparison: image PSNR, other channel agreement, gradient cosines, and the verdict."""

    label: str
    psnr_rgb: float
    psnr_alpha: float
    depth_mae: float  # mean |depth difference| where both alphas > 0.5
    psnr_normals: float | None
    cos: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.psnr_rgb >= PSNR_MIN and all(self.cos[k] >= COS_MIN for k in CHECKED)


def parity_scene(n: int, seed: int, sh_degree: int | None, device: str) -> GaussianSet:
    """``n`` random Gaussians 2-4 m in front of the camera, a few pixels wide at 256 x 256."""
    g = random_cloud(n, seed=seed, sh_degree=sh_degree, depth=3.0, spread=2.0, scale=0.02)
    return GaussianSet(*(t.to(device) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)),
                       sh_degree=sh_degree)


def _render_with_grads(backend: str, g: GaussianSet, cam: Camera, bg: Tensor, mode: Mode,
                       w_rgb: Tensor, w_alpha: Tensor):
    leaves = {k: getattr(g, k).detach().clone().requires_grad_(True) for k in PARAMS}
    gg = GaussianSet(**leaves, sh_degree=g.sh_degree)
    r = get_backend(backend, g.means.device)(gg, cam, bg, mode)
    loss = (r.rgb * w_rgb).sum() + (r.alpha * w_alpha).sum()
    loss.backward()
    return r, {k: v.grad for k, v in leaves.items()}


def compare(mode: Mode, n: int = 3000, width: int = 256, height: int = 256, seed: int = 0,
            sh_degree: int | None = None, device: str = "cuda") -> Parity:
    """Render one random scene with ``reference`` and ``gsplat`` and compare images and gradients of
    ``sum(rgb * W1) + sum(alpha * W2)`` (fixed random weights) w.r.t. every Gaussian parameter."""
    g = parity_scene(n, seed, sh_degree, device)
    cam = front_camera(width, height).to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    bg = torch.rand(3, generator=gen).to(device)
    w_rgb = torch.randn(height, width, 3, generator=gen).to(device)
    w_alpha = torch.randn(height, width, 1, generator=gen).to(device)
    ref, gref = _render_with_grads("reference", g, cam, bg, mode, w_rgb, w_alpha)
    gs, ggs = _render_with_grads("gsplat", g, cam, bg, mode, w_rgb, w_alpha)
    both = (ref.alpha > 0.5) & (gs.alpha > 0.5)
    depth_mae = (ref.depth - gs.depth).abs()[both].mean().item() if bool(both.any()) else 0.0
    psnr_n = None
    if mode == "2dgs":
        psnr_n = psnr((ref.normals + 1) / 2, (gs.normals + 1) / 2)
    label = f"{mode} {'rgb' if sh_degree is None else f'sh{sh_degree}'}"
    return Parity(label=label, psnr_rgb=psnr(ref.rgb, gs.rgb), psnr_alpha=psnr(ref.alpha, gs.alpha),
                  depth_mae=depth_mae, psnr_normals=psnr_n,
                  cos={k: cosine(gref[k], ggs[k]) for k in PARAMS})


def time_backend(backend: str, mode: Mode, n: int, width: int, height: int, reps: int = 20, warmup: int = 3,
                 seed: int = 0, device: str = "cuda") -> tuple[float, float]:
    """Median wall time (ms) of a forward and of a forward+backward render, CUDA-synchronised."""
    g = random_cloud(n, seed=seed, depth=3.0, spread=2.0, scale=0.01)
    leaves = {k: getattr(g, k).to(device).requires_grad_(True) for k in PARAMS}
    gg = GaussianSet(**leaves)
    cam = front_camera(width, height).to(device)
    bg = torch.ones(3, device=device)
    be = get_backend(backend, device)
    fwd, full = [], []
    for i in range(warmup + reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = be(gg, cam, bg, mode)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        r.rgb.sum().backward()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        for v in leaves.values():
            v.grad = None
        if i >= warmup:
            fwd.append((t1 - t0) * 1e3)
            full.append((t2 - t0) * 1e3)
    return statistics.median(fwd), statistics.median(full)
