"""Training objectives (section 4.6, Eq. 19-21, and the LEB constraint of section 5.2).

    L_total = (1 - l1) L_1 + l1 D-SSIM                       (Eq. 20, l1 = 0.2)
            + w_normal * L_normal   (from the refinement stage on)
            + 0.01 * L_vertex                                (Eq. 19)
            + 0.1 * ||dE||^2                                  (LEB constraint)

D-SSIM is ``1 - SSIM`` with the 11x11 Gaussian-window SSIM of :mod:`thgs.metrics.image`. The normal
loss is the 2DGS normal consistency ``1 - <n_splat, n_depth>`` weighted by the (detached) alpha.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.config import option
from thgs.metrics.image import ssim, ssim_map


def _weighted_mean(x: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of ``x`` [H, W, C], or its ``weight`` [H, W, 1]-weighted mean."""
    if weight is None:
        return x.mean()
    w = weight.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-12)


def l1_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean absolute error of [H, W, 3] images (scalar); ``weight`` [H, W, 1] weights the pixels."""
    return _weighted_mean((pred - target).abs(), weight)


def d_ssim(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """1 - SSIM of [H, W, 3] images in [0, 1] (scalar); with ``weight`` [H, W, 1] the SSIM map is averaged
    with those pixel weights."""
    if weight is None:
        return 1.0 - ssim(pred, target)
    return 1.0 - _weighted_mean(ssim_map(pred, target), weight)


def reconstruction_loss(pred: Tensor, target: Tensor, lambda_dssim: float = 0.2, weight: Tensor | None = None) -> Tensor:
    """Eq. 20: ``(1 - lambda) L1 + lambda D-SSIM`` for [H, W, 3] images (scalar), optionally pixel-weighted
    (``weight`` [H, W, 1], e.g. :func:`silhouette_weights`)."""
    loss = (1.0 - lambda_dssim) * l1_loss(pred, target, weight)
    if lambda_dssim > 0:
        loss = loss + lambda_dssim * d_ssim(pred, target, weight)
    return loss


def silhouette_band(mask: Tensor, width: int) -> Tensor:
    """[H, W, 1] bool: pixels within ``width`` pixels of the mask's silhouette (the binary mask >= 0.5
    dilated minus eroded by a (2 width + 1)^2 square). ``mask`` is [H, W, 1] or [H, W] in [0, 1]."""
    m = mask[..., 0] if mask.dim() == 3 else mask
    fg = (m >= 0.5).to(torch.float32)[None, None]
    k = 2 * int(width) + 1
    dil = torch.nn.functional.max_pool2d(fg, k, stride=1, padding=int(width))
    ero = -torch.nn.functional.max_pool2d(-fg, k, stride=1, padding=int(width))
    return (dil - ero > 0.5)[0, 0, ..., None]


def silhouette_weights(mask: Tensor, width: int, band_weight: float = 0.0) -> Tensor:
    """[H, W, 1] pixel weights: ``band_weight`` in the :func:`silhouette_band` of ``mask``, 1 elsewhere.

    Down-weights the pixels where a real video's mask is least trustworthy (hair, motion blur, a matting
    error of a few pixels), so the avatar is not pulled towards a wrong outline or the raw background."""
    band = silhouette_band(mask, width)
    return torch.where(band, torch.full_like(band, band_weight, dtype=torch.float32),
                       torch.ones_like(band, dtype=torch.float32))


def interior_mask(alpha: Tensor, min_alpha: float) -> Tensor:
    """[H, W, 1] float: 1 where every pixel of the 3x3 neighbourhood has ``alpha`` >= ``min_alpha``.

    The depth-derived normal of a pixel comes from central differences of its neighbours' depths, so it is
    meaningful only where all of them lie on the surface; at the silhouette one neighbour is background
    (depth 0) or a sliver of low coverage, and the difference is a jump, not a slope."""
    a = alpha.detach()[..., 0][None, None]
    low = -torch.nn.functional.max_pool2d(-a, 3, stride=1, padding=1)
    return (low[0, 0] >= min_alpha).to(alpha.dtype)[..., None]


def normal_consistency_loss(normals: Tensor, surf_normals: Tensor, alpha: Tensor, *, min_alpha: float = 0.0,
                            detach_surface: bool = False) -> Tensor:
    """2DGS normal consistency: mean over pixels of ``w * (1 - <n, n_surf>)`` with ``w`` the (detached) alpha.

    normals: [H, W, 3] alpha-blended splat normals; surf_normals: [H, W, 3] normals of the depth map (both in
    the camera frame, facing the camera); alpha: [H, W, 1]. ``min_alpha`` > 0 keeps only the pixels of
    :func:`interior_mask` (silhouette pixels out); ``detach_surface`` stops the gradient through the
    depth-derived normals: the term then turns the splats towards the surface the depth map shows (and still
    reaches positions and opacities through the blending weights of the splat normals), but no longer bends
    the depth map, i.e. the geometry and, through it, the pose, skinning and blend shapes, towards the splats.
    """
    surf = surf_normals.detach() if detach_surface else surf_normals
    err = 1.0 - (normals * surf).sum(-1, keepdim=True)
    w = alpha.detach()
    if min_alpha > 0:
        w = w * interior_mask(alpha, min_alpha)
    return (w * err).mean()


def vertex_loss(means: Tensor, parents: Tensor, margin: float = 0.0) -> Tensor:
    """Eq. 19: mean squared distance of each canonical Gaussian [N, 3] to its parent vertex [N, 3].

    With ``margin`` > 0 only the distance beyond ``margin`` counts (``max(0, d - margin)^2``): Gaussians may
    move that far from the body model's surface for free (hair, loose clothes), and are held as before
    beyond it."""
    if margin <= 0:
        return (means - parents).square().sum(-1).mean()
    d = (means - parents).square().sum(-1).clamp_min(1e-20).sqrt()
    return (d - margin).clamp_min(0).square().mean()


@dataclass
class LossWeights:
    """Weights of the terms of the total loss (Eq. 20-21) and the options of those terms: the ``loss`` group
    of :class:`thgs.runs.config.TrainConfig`, whose command-line flags keep the names below."""

    dssim: float = option(0.2, help="D-SSIM weight lambda_1 of Eq. 20", flag="lambda_dssim")
    normal: float = option(0.05, help="normal-consistency loss weight", flag="normal_weight")
    normal_start: int = option(7000, help="step the 2DGS normal-consistency loss starts (refinement stage)",
                               steps="start")
    # Both on by default: with every pixel and the gradient through the depth normals (0 and False, the loss
    # as first written) training collapses through gsplat at 512 px (docs/training.md, "The
    # normal-consistency loss"); the silhouette band is the main cause.
    normal_min_alpha: float = option(0.5, help="normal loss only where the 3x3 neighbourhood's coverage is at "
                                               "least this (0: every pixel, silhouette included)")
    normal_detach_depth: bool = option(True, help="no gradient through the depth-derived normals (the normal "
                                                  "loss turns the splats, it does not move the geometry)")
    vertex: float = option(0.01, help="vertex-to-parent loss weight lambda_2 (Eq. 19, 21)", flag="vertex_weight")
    # in metres for a 1.7 m body; step_losses reads it in the body's units (for_body)
    vertex_margin: float = option(0.0, help="distance (metres for a 1.7 m body, scaled by the body's height) a "
                                            "Gaussian may move from its parent vertex before the vertex loss "
                                            "counts it (hair, loose clothes); 0: Eq. 19 as written")
    edge_band: int = option(0, help="width in training pixels of the band around the mask's silhouette whose "
                                    "pixels the reconstruction loss down-weights (0: off; needs masks)")
    edge_band_weight: float = option(0.0, help="weight of the silhouette band's pixels in the reconstruction loss")
    leb: float = option(0.1, help="LEB L2 constraint weight (section 5.2)", flag="leb_weight")
    skinning_tv: float = option(1.0, help="total-variation weight on the skinning-grid residual (once it starts)",
                                flag="skinning_tv_weight")

    def for_body(self, scale: float) -> "LossWeights":
        """These weights with :attr:`vertex_margin` in the units of a body ``scale`` times the 1.7 m one
        (:func:`thgs.avatar.gaussians.body_scale`): what :func:`thgs.train.objective.step_losses` reads."""
        return dataclasses.replace(self, vertex_margin=self.vertex_margin * scale)


__all__ = ["LossWeights", "d_ssim", "interior_mask", "l1_loss", "normal_consistency_loss", "reconstruction_loss", "silhouette_band",
           "silhouette_weights", "vertex_loss"]
