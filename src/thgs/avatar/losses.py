"""Training objectives (section 4.6, Eq. 19-21, and the LEB constraint of section 5.2).

    L_total = (1 - l1) L_1 + l1 D-SSIM                       (Eq. 20, l1 = 0.2)
            + w_normal * L_normal   (from the refinement stage on)
            + 0.01 * L_vertex                                (Eq. 19)
            + 0.1 * ||dE||^2                                  (LEB constraint)

D-SSIM is ``1 - SSIM`` with the 11x11 Gaussian-window SSIM of :mod:`thgs.metrics.image`. The normal
loss is the 2DGS normal consistency ``1 - <n_splat, n_depth>`` weighted by the (detached) alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.metrics.image import ssim


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error of [H, W, 3] images (scalar)."""
    return (pred - target).abs().mean()


def d_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM of [H, W, 3] images in [0, 1] (scalar)."""
    return 1.0 - ssim(pred, target)


def reconstruction_loss(pred: Tensor, target: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """Eq. 20: ``(1 - lambda) L1 + lambda D-SSIM`` for [H, W, 3] images (scalar)."""
    loss = (1.0 - lambda_dssim) * l1_loss(pred, target)
    if lambda_dssim > 0:
        loss = loss + lambda_dssim * d_ssim(pred, target)
    return loss


def normal_consistency_loss(normals: Tensor, surf_normals: Tensor, alpha: Tensor) -> Tensor:
    """2DGS normal consistency: mean over pixels of ``alpha * (1 - <n, n_surf>)``.

    normals, surf_normals: [H, W, 3] (camera frame); alpha: [H, W, 1] (detached here).
    """
    err = 1.0 - (normals * surf_normals).sum(-1, keepdim=True)
    return (alpha.detach() * err).mean()


def vertex_loss(means: Tensor, parents: Tensor) -> Tensor:
    """Eq. 19: mean squared distance of each canonical Gaussian [N, 3] to its parent vertex [N, 3]."""
    return (means - parents).square().sum(-1).mean()


@dataclass
class LossWeights:
    """Weights of the terms of the total loss."""

    dssim: float = 0.2  # lambda_1 of Eq. 20
    normal: float = 0.05  # 2DGS normal-consistency weight (applied from the refinement stage on)
    vertex: float = 0.01  # lambda_2 of Eq. 21
    leb: float = 0.1  # LEB L2 constraint (section 5.2)


__all__ = ["LossWeights", "d_ssim", "l1_loss", "normal_consistency_loss", "reconstruction_loss", "vertex_loss"]
