"""Skinning weights of arbitrary points from a learnable voxel grid (paper sections 4.2, 4.5, Eq. 18).

A Gaussian is not a template vertex, so its skinning weights are looked up in a grid that covers the
template: ``resolution`` ^ 3 points spanning the template's bounding box, padded by ``padding`` of its
extent on every side. Each grid point holds the inverse-distance interpolation of the weights of its
``k`` = 3 nearest template vertices (paper 5.2), optionally smoothed by a few 3x3x3 box filters. A
learnable residual ``delta`` (zero at start) is added; a point's weights are the trilinear look-up of
``clamp_min(base + delta, 0)``, normalised to sum to one (Eq. 18).

Layout: ``base`` and ``delta`` are [J, R, R, R] with the three spatial axes ordered (z, y, x), as
``torch.nn.functional.grid_sample`` expects for a (x, y, z) sampling grid. Points outside the box take
the weights of the nearest border cell.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thgs.body.model import BodyModel


def _grid_axes(lo: np.ndarray, hi: np.ndarray, resolution: int) -> list[np.ndarray]:
    return [np.linspace(lo[a], hi[a], resolution) for a in range(3)]


def interpolate_vertex_weights(points: np.ndarray, vertices: np.ndarray, weights: np.ndarray, k: int = 3,
                               eps: float = 1e-9) -> np.ndarray:
    """Inverse-distance interpolation of the weights of each point's k nearest vertices.

    Args:
        points [P, 3], vertices [V, 3], weights [V, J]. Returns [P, J] (float32), rows summing to one
        when the vertex weights do.
    """
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    k = max(1, min(k, len(vertices)))
    dist, idx = cKDTree(vertices).query(points, k=k, workers=-1)
    dist, idx = dist.reshape(len(points), k), idx.reshape(len(points), k)
    inv = 1.0 / (dist + eps)
    inv /= inv.sum(1, keepdims=True)
    P = len(points)
    interp = csr_matrix((inv.ravel(), idx.ravel(), np.arange(0, P * k + 1, k)), shape=(P, len(vertices)))
    return np.asarray(interp @ weights, dtype=np.float32)


def blend_grid_transforms(grid: Tensor, lo: Tensor, hi: Tensor, eps: float, points: Tensor,
                          transforms: Tensor) -> Tensor:
    """Per-point blended transforms ``sum_j w_j(p) T_j`` with Eq. 18's weights, in one grid look-up.

    Trilinear interpolation is linear in the cell values, so instead of sampling the J weight channels
    and blending J transforms per point, the J transforms are first contracted with the grid into a
    12-channel transform grid, one more channel holds the per-cell sum of the grid (Eq. 18's
    normaliser), and these 13 channels are sampled once. With ``s_j`` the sampled grid values and
    ``S = sum_j s_j``, ``w_j = (s_j + eps/J) / (S + eps)`` gives

        blended T = (sum_j s_j T_j + (eps/J) sum_j T_j) / (S + eps).

    Args:
        grid: [J, R, R, R] non-negative, unnormalised grid (``SkinningGrid.grid()``), axes (z, y, x).
        lo, hi: [3] the grid's box; eps: Eq. 18's epsilon.
        points: [N, 3] or [B, N, 3] positions.
        transforms: [B, J, 4, 4] or [B, J, 3, 4] joint transforms (only the top 3 rows are used).
    Returns:
        [B, N, 3, 4] the top three rows of each point's blended transform.
    """
    J = grid.shape[0]
    B = transforms.shape[0]
    if transforms.shape[1] != J or transforms.shape[-1] != 4 or transforms.shape[-2] not in (3, 4):
        raise ValueError(f"blend_grid_transforms: transforms must be [B, {J}, 4, 4] or [B, {J}, 3, 4], "
                         f"got {tuple(transforms.shape)}")
    if points.dim() == 2:
        points = points.expand(B, -1, -1)
    if points.dim() != 3 or points.shape[0] != B or points.shape[-1] != 3:
        raise ValueError(f"blend_grid_transforms: points must be [N, 3] or [{B}, N, 3], got {tuple(points.shape)}")
    R = grid.shape[1:]
    top = transforms[:, :, :3, :].reshape(B, J, 12).to(grid)
    # Rows 0..11: the transform entries; row 12: ones, whose contraction is the per-cell sum S.
    coeffs = torch.cat([top.transpose(1, 2), torch.ones(B, 1, J, dtype=grid.dtype, device=grid.device)], dim=1)
    tgrid = torch.matmul(coeffs, grid.reshape(J, -1)).view(B, 13, *R)  # [B, 13, R, R, R]
    g = 2.0 * (points.to(grid) - lo) / (hi - lo) - 1.0  # (x, y, z) in [-1, 1]
    sampled = F.grid_sample(tgrid, g[:, None, None], mode="bilinear", padding_mode="border",
                            align_corners=True)[:, :, 0, 0]  # [B, 13, N]
    num = sampled[:, :12] + (eps / J) * top.sum(1)[:, :, None]
    out = num / (sampled[:, 12:] + eps)  # [B, 12, N]
    return out.transpose(1, 2).reshape(B, -1, 3, 4)


def grid_weights(grid: Tensor, lo: Tensor, hi: Tensor, eps: float, points: Tensor) -> Tensor:
    """Eq. 18's skinning weights of points [N, 3] or [B, N, 3] from ``grid`` [J, R, R, R] (non-negative,
    unnormalised; box ``lo``..``hi``): trilinear look-up, then ``(w_j + eps/J) / (sum_j w_j + eps)`` ->
    [N, J] or [B, N, J], rows summing to one."""
    if points.shape[-1] != 3 or points.dim() not in (2, 3):
        raise ValueError(f"SkinningGrid.weights: points must be [N, 3] or [B, N, 3], got {tuple(points.shape)}")
    J = grid.shape[0]
    lead = points.shape[:-1]
    p = points.reshape(-1, 3).to(grid)
    g = 2.0 * (p - lo) / (hi - lo) - 1.0  # (x, y, z) in [-1, 1]
    sampled = F.grid_sample(grid[None], g.view(1, 1, 1, -1, 3), mode="bilinear", padding_mode="border",
                            align_corners=True)  # [1, J, 1, 1, P]
    w = sampled.view(J, -1).t()
    # Eq. 18; eps / J keeps the rows summing to one even where the grid is all zero
    w = (w + eps / J) / (w.sum(-1, keepdim=True) + eps)
    return w.reshape(*lead, J)


class SkinningGrid(nn.Module):
    """Learnable voxel grid of skinning weights.

    Args:
        vertices: [V, 3] template vertices (rest pose).
        weights: [V, J] their skinning weights.
        resolution: grid points per axis (R).
        padding: margin added on each side of the bounding box, as a fraction of its extent per axis.
        k: nearest template vertices interpolated per grid point.
        smooth_iters: number of 3x3x3 box-filter passes over the initial grid (0 = none).
        eps: added to the normaliser of Eq. 18.
    """

    def __init__(self, vertices: Tensor, weights: Tensor, resolution: int = 64, padding: float = 0.1, k: int = 3,
                 smooth_iters: int = 0, eps: float = 1e-6) -> None:
        super().__init__()
        if vertices.dim() != 2 or vertices.shape[1] != 3:
            raise ValueError(f"SkinningGrid: vertices must be [V, 3], got {tuple(vertices.shape)}")
        if weights.dim() != 2 or weights.shape[0] != vertices.shape[0]:
            raise ValueError(f"SkinningGrid: weights must be [V, J] with V = {vertices.shape[0]}, "
                             f"got {tuple(weights.shape)}")
        if resolution < 2:
            raise ValueError(f"SkinningGrid: resolution must be at least 2, got {resolution}")
        if padding < 0:
            raise ValueError(f"SkinningGrid: padding must be non-negative, got {padding}")
        v = vertices.detach().double().cpu().numpy()
        vmin, vmax = v.min(0), v.max(0)
        extent = np.maximum(vmax - vmin, 1e-6)
        lo, hi = vmin - padding * extent, vmax + padding * extent
        ax = _grid_axes(lo, hi, resolution)
        # points ordered (z, y, x) so that the reshaped grid is [Rz, Ry, Rx]
        zz, yy, xx = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
        pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1)
        vals = interpolate_vertex_weights(pts, v, weights.detach().double().cpu().numpy(), k=k)
        R, J = resolution, weights.shape[1]
        base = torch.from_numpy(vals).reshape(R, R, R, J).permute(3, 0, 1, 2).contiguous()
        for _ in range(smooth_iters):
            base = F.avg_pool3d(F.pad(base[None], (1, 1, 1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]
        dev = vertices.device
        self.resolution = R
        self.num_joints = J
        self.eps = float(eps)
        self.register_buffer("base", base.to(dev))
        self.register_buffer("lo", torch.from_numpy(lo).float().to(dev))
        self.register_buffer("hi", torch.from_numpy(hi).float().to(dev))
        self.delta = nn.Parameter(torch.zeros(J, R, R, R, device=dev))

    @classmethod
    def from_body(cls, body: BodyModel, **kwargs) -> SkinningGrid:
        """Grid over a body's template vertices and skinning weights (keyword arguments as ``__init__``)."""
        return cls(body.v_template, body.lbs_weights, **kwargs)

    def grid(self) -> Tensor:
        """[J, R, R, R] non-negative, unnormalised grid values ``clamp_min(base + delta, 0)``."""
        return (self.base + self.delta).clamp_min(0.0)

    def weights(self, points: Tensor) -> Tensor:
        """Skinning weights of points [N, 3] or [B, N, 3] -> [N, J] or [B, N, J]; non-negative, rows sum to 1."""
        return grid_weights(self.grid(), self.lo, self.hi, self.eps, points)

    forward = weights

    def blend(self, points: Tensor, transforms: Tensor) -> Tensor:
        """Blended transforms of points [N, 3] or [B, N, 3] for joint transforms [B, J, 4, 4] (or [B, J, 3, 4]):
        [B, N, 3, 4], equal to the top rows of ``lbs.blend_transforms(self.weights(points), transforms)``
        (see :func:`blend_grid_transforms`)."""
        return blend_grid_transforms(self.grid(), self.lo, self.hi, self.eps, points, transforms)

    def tv_loss(self) -> Tensor:
        """Total variation of ``delta``: mean squared difference between neighbouring cells, summed over
        the three axes (0 at initialisation)."""
        d = self.delta
        return ((d[:, 1:] - d[:, :-1]).pow(2).mean() + (d[:, :, 1:] - d[:, :, :-1]).pow(2).mean()
                + (d[..., 1:] - d[..., :-1]).pow(2).mean())

    def extra_repr(self) -> str:
        return f"joints={self.num_joints}, resolution={self.resolution}"


__all__ = ["SkinningGrid", "blend_grid_transforms", "grid_weights", "interpolate_vertex_weights"]
