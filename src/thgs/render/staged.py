"""Colour-only 3DGS frames through gsplat's stages, split where the host has to wait.

``gsplat.rasterization`` runs, in one Python call: the projection, the view-dependent colours, the tile
intersection (which reads the number of tile/Gaussian pairs back to the host to size its buffers), the tile
offsets and the rasterization. Here the first half, whose shapes never change, is :func:`project` (the
projection with gsplat's opacity-tightened radii, and the spherical-harmonic colours evaluated from each
camera's centre); the rest is :func:`draw`. :func:`project` has no host synchronisation, so it can be recorded
in a CUDA graph together with the animation that feeds it (:class:`thgs.animate.recorded.RecordedFrames`); only
:func:`draw`'s three gsplat calls run per frame from the host.

The settings are those of the ``gsplat`` backend (:mod:`thgs.render.gsplat_backend`) for ``outputs="rgb"``:
classic rasterization, ``eps2d`` 0.3, no radius clip, unpacked, 16-pixel tiles; the images are those of
``render_batch(..., mode="3dgs", outputs="rgb")``. Tensors carry gsplat's leading dimensions: B frames, one
camera each ([B, 1, ...]). CUDA only; the CPU draws the same frames through :func:`thgs.render.base.render_batch`
with the reference backend.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.render.base import GaussianBatch
from thgs.render.reference import EPS2D

TILE = 16


@dataclass
class Projection:
    """What :func:`project` gives :func:`draw` (B frames, one camera each, N Gaussians).

    means2d [B, 1, N, 2] pixels; conics [B, 1, N, 3] (upper triangle of the inverse 2D covariance); depths [B, 1, N];
    radii [B, 1, N, 2] (or [B, 1, N] with gsplat 1.4) int32, 0 where a Gaussian is culled; colors [B, 1, N, 3];
    opacities [B, 1, N]."""

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    colors: Tensor
    opacities: Tensor


def _projection_takes_opacities() -> bool:
    from gsplat.cuda._wrapper import fully_fused_projection

    return "opacities" in inspect.signature(fully_fused_projection).parameters


def project(batch: GaussianBatch, viewmats: Tensor, Ks: Tensor, campos: Tensor, width: int, height: int,
            near: float, far: float, eps2d: float = EPS2D) -> Projection:
    """Project B frames of 3D Gaussians (``batch``; 2DGS surfels first through
    :func:`thgs.render.base.flat_surfels`) with viewmats [B, 1, 4, 4], Ks [B, 1, 3, 3] and the camera centres
    campos [B, 1, 3] (world frame); colours from the shared RGB [N, 3] or SH coefficients [N, K, 3] (degree
    ``batch.sh_degree``) as gsplat evaluates them: ``max(SH(dir) + 0.5, 0)`` with ``dir`` from the camera centre
    to the Gaussian. Static shapes, no host synchronisation."""
    from gsplat.cuda._wrapper import fully_fused_projection, spherical_harmonics

    from thgs.render.gsplat_backend import gsplat_colors

    f32 = torch.float32
    B, N = batch.means.shape[:2]
    means = batch.means.to(f32)
    opacities = batch.opacities.to(f32).expand(B, N)
    if "v" not in _TAKES_OPACITIES:  # gsplat >= 1.5 tightens the radii with the opacities
        _TAKES_OPACITIES["v"] = _projection_takes_opacities()
    extra = {"opacities": opacities} if _TAKES_OPACITIES["v"] else {}
    radii, means2d, depths, conics, _ = fully_fused_projection(
        means, None, batch.quats.to(f32), batch.scales.to(f32), viewmats, Ks, width, height, eps2d=eps2d,
        near_plane=near, far_plane=far, radius_clip=0.0, packed=False, calc_compensations=False, **extra)
    colors, degree = gsplat_colors(batch)
    if degree is not None:  # SH coefficients [N, K, 3], evaluated per camera
        dirs = means[:, None] - campos[:, :, None]  # [B, 1, N, 3]
        visible = (radii > 0).all(-1) if radii.dim() == 4 else radii > 0
        shs = colors.expand(B, 1, *colors.shape)
        colors = torch.clamp_min(spherical_harmonics(degree, dirs, shs, masks=visible) + 0.5, 0.0)
    else:
        colors = colors.expand(B, 1, *colors.shape)
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii, colors=colors,
                      opacities=opacities[:, None])


_TAKES_OPACITIES: dict[str, bool] = {}


def draw(p: Projection, width: int, height: int, backgrounds: Tensor) -> tuple[Tensor, Tensor]:
    """Rasterize a :class:`Projection` of B frames at ``width`` x ``height`` over backgrounds [B, 1, 3]: the tile
    intersection (one host read of its size, inside gsplat), the tile offsets and the colour rasterization ->
    rgb [B, H, W, 3] and alpha [B, H, W, 1]."""
    from gsplat.cuda._wrapper import isect_offset_encode, isect_tiles, rasterize_to_pixels

    B = p.means2d.shape[0]
    tw, th = math.ceil(width / TILE), math.ceil(height / TILE)
    _, isect_ids, flatten_ids = isect_tiles(p.means2d, p.radii, p.depths, TILE, tw, th, packed=False, n_images=B)
    offsets = isect_offset_encode(isect_ids, B, tw, th).reshape(B, 1, th, tw)
    rgb, alpha = rasterize_to_pixels(p.means2d, p.conics, p.colors, p.opacities, width, height, TILE, offsets,
                                     flatten_ids, backgrounds=backgrounds)
    return rgb[:, 0], alpha[:, 0]


__all__ = ["Projection", "TILE", "draw", "project"]
