"""Skinning weights of arbitrary points from a learnable voxel grid (paper sections 4.2, 4.5, Eq. 18).

A Gaussian is not a template vertex, so its skinning weights are looked up in a grid that covers the
template: ``resolution`` ^ 3 points spanning the template's bounding box, padded by ``padding`` of its
extent on every side. Each grid point holds the inverse-distance interpolation of the weights of its
``k`` = 3 nearest template vertices (paper 5.2), optionally smoothed by a few 3x3x3 box filters. A
learnable residual ``delta`` (zero at start) is added; a point's weights are the trilinear look-up of
``clamp_min(base + delta, 0)``, normalised to sum to one (Eq. 18).

Layout: ``base`` is [J, R, R, R] with the three spatial axes ordered (z, y, x), as
``torch.nn.functional.grid_sample`` expects for a (x, y, z) sampling grid. Points outside the box take
the weights of the nearest border cell.

The residual is dense (``delta`` [J, R, R, R], ``band=None``) or lives on an *active set* of M grid points
only (``band`` >= 0: ``delta`` [J, M], ``cells`` [M] their flat (z, y, x) indices): the corners of every
grid cell holding a template vertex, dilated by ``band`` grid points along each axis
(:func:`active_cells`). Outside the set the residual is zero. Since ``base`` >= 0,

    clamp_min(base + scatter(delta), 0) = base + scatter(c),   c = clamp_min(base_a + delta, 0) - base_a

with ``base_a`` the base on the active points, so a look-up is the dense look-up of the fixed ``base`` plus a
sparse trilinear look-up of ``c`` (:func:`sparse_trilinear`): nothing of size J * R^3 is built or
differentiated, and the gradient reaches only the [J, M] residual.
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


def active_cells(vertices: np.ndarray, lo: np.ndarray, hi: np.ndarray, resolution: int, band: int) -> np.ndarray:
    """The active set of a sparse residual: [M] sorted flat (z, y, x) indices of the grid points that are a
    corner of a grid cell holding one of ``vertices`` [V, 3], dilated by ``band`` grid points along each axis
    (a box of 2 * (band + 1) grid points per axis around each vertex, cut at the grid's border). Deterministic
    in its inputs."""
    if band < 0:
        raise ValueError(f"active_cells: band must be non-negative, got {band}")
    R = int(resolution)
    u = (np.asarray(vertices, np.float64) - lo) / (hi - lo) * (R - 1)
    i0 = np.clip(np.floor(u), 0, R - 2).astype(np.int64)  # the cell's lower corner, (x, y, z)
    lo_i, hi_i = np.clip(i0 - band, 0, R - 1), np.clip(i0 + 1 + band, 0, R - 1)
    # mark the box [lo_i, hi_i] of every vertex through a 3D prefix-sum of box corners
    diff = np.zeros((R + 1, R + 1, R + 1), dtype=np.int64)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                z = np.where(dz, hi_i[:, 2] + 1, lo_i[:, 2])
                y = np.where(dy, hi_i[:, 1] + 1, lo_i[:, 1])
                x = np.where(dx, hi_i[:, 0] + 1, lo_i[:, 0])
                np.add.at(diff, (z, y, x), (-1) ** (dz + dy + dx))
    occ = diff.cumsum(0).cumsum(1).cumsum(2)[:R, :R, :R] > 0
    return np.flatnonzero(occ.ravel()).astype(np.int64)


def _sample_coords(points: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``grid_sample`` coordinates (x, y, z) in [-1, 1] of points in the box ``lo``..``hi``."""
    return 2.0 * (points - lo) / (hi - lo) - 1.0


def sparse_trilinear(values: Tensor, slots: Tensor, resolution: int, lo: Tensor, hi: Tensor,
                     points: Tensor) -> Tensor:
    """Trilinear look-up of a grid that is zero outside an active set, as ``grid_sample`` (bilinear,
    ``align_corners=True``, border padding) of the dense grid would give, without building it.

    Args:
        values: [C, M] (shared) or [B, C, M] the values on the M active grid points.
        slots: [R^3] long, each grid point's column in ``values``, M for an inactive one.
        resolution: R. lo, hi: [3] the grid's box. points: [B, N, 3].
    Returns:
        [B, C, N]; differentiable in ``values`` and ``points``.
    """
    R = int(resolution)
    B, N = points.shape[0], points.shape[1]
    v = values if values.dim() == 3 else values[None]
    C = v.shape[1]
    v = torch.cat([v, v.new_zeros(v.shape[0], C, 1)], -1)  # column M: the inactive points' zero
    u = ((_sample_coords(points.to(v), lo, hi) + 1.0) * 0.5 * (R - 1)).clamp(0.0, R - 1)  # [B, N, 3] (x, y, z)
    i0 = u.detach().floor().clamp(max=R - 2)
    f = u - i0  # [B, N, 3]
    i0 = i0.long()
    low = (i0[..., 2] * R + i0[..., 1]) * R + i0[..., 0]  # [B, N] the cell's lower corner
    two = torch.arange(2, device=low.device)
    corner = (two[:, None, None] * (R * R) + two[None, :, None] * R + two[None, None, :]).reshape(8)  # (dz, dy, dx)
    s = slots[low[..., None] + corner]  # [B, N, 8] each corner's column
    fx, fy, fz = (torch.stack([1 - f[..., a], f[..., a]], -1) for a in range(3))  # [B, N, 2] per axis
    w = (fz[..., :, None, None] * fy[..., None, :, None] * fx[..., None, None, :]).reshape(B, N, 8)
    if v.shape[0] == 1:  # shared values: one gather (its backward adds in index order on the CPU)
        g = v[0].index_select(1, s.reshape(-1)).view(C, B, N, 8).transpose(0, 1)
    else:
        g = v.gather(2, s.reshape(B, 1, N * 8).expand(-1, C, -1)).view(B, C, N, 8)
    return (g * w[:, None]).sum(-1)


def blend_grid_transforms(grid: Tensor, lo: Tensor, hi: Tensor, eps: float, points: Tensor,
                          transforms: Tensor, residual: Tensor | None = None,
                          slots: Tensor | None = None) -> Tensor:
    """Per-point blended transforms ``sum_j w_j(p) T_j`` with Eq. 18's weights, in one grid look-up.

    Trilinear interpolation is linear in the cell values, so instead of sampling the J weight channels
    and blending J transforms per point, the J transforms are first contracted with the grid into a
    12-channel transform grid, one more channel holds the per-cell sum of the grid (Eq. 18's
    normaliser), and these 13 channels are sampled once. With ``s_j`` the sampled grid values and
    ``S = sum_j s_j``, ``w_j = (s_j + eps/J) / (S + eps)`` gives

        blended T = (sum_j s_j T_j + (eps/J) sum_j T_j) / (S + eps).

    Args:
        grid: [J, R, R, R] non-negative, unnormalised grid (``SkinningGrid.grid()``), axes (z, y, x); with a
            sparse residual, the base grid.
        lo, hi: [3] the grid's box; eps: Eq. 18's epsilon.
        points: [N, 3] or [B, N, 3] positions.
        transforms: [B, J, 4, 4] or [B, J, 3, 4] joint transforms (only the top 3 rows are used).
        residual, slots: a sparse residual [J, M] added to ``grid`` on its active points (``c`` of the module
            docstring) and each grid point's column in it ([R^3], M when inactive); its 13 contracted channels
            are looked up with :func:`sparse_trilinear`.
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
    g = _sample_coords(points.to(grid), lo, hi)  # (x, y, z) in [-1, 1]
    sampled = F.grid_sample(tgrid, g[:, None, None], mode="bilinear", padding_mode="border",
                            align_corners=True)[:, :, 0, 0]  # [B, 13, N]
    if residual is not None:
        assert slots is not None
        sampled = sampled + sparse_trilinear(torch.matmul(coeffs, residual.to(grid)), slots, R[0], lo, hi, points)
    num = sampled[:, :12] + (eps / J) * top.sum(1)[:, :, None]
    out = num / (sampled[:, 12:] + eps)  # [B, 12, N]
    return out.transpose(1, 2).reshape(B, -1, 3, 4)


def grid_weights(grid: Tensor, lo: Tensor, hi: Tensor, eps: float, points: Tensor, residual: Tensor | None = None,
                 slots: Tensor | None = None) -> Tensor:
    """Eq. 18's skinning weights of points [N, 3] or [B, N, 3] from ``grid`` [J, R, R, R] (non-negative,
    unnormalised; box ``lo``..``hi``): trilinear look-up, then ``(w_j + eps/J) / (sum_j w_j + eps)`` ->
    [N, J] or [B, N, J], rows summing to one. ``residual`` [J, M] and ``slots`` [R^3]: a sparse residual on
    ``grid`` (as :func:`blend_grid_transforms`)."""
    if points.shape[-1] != 3 or points.dim() not in (2, 3):
        raise ValueError(f"SkinningGrid.weights: points must be [N, 3] or [B, N, 3], got {tuple(points.shape)}")
    J = grid.shape[0]
    lead = points.shape[:-1]
    p = points.reshape(-1, 3).to(grid)
    g = _sample_coords(p, lo, hi)  # (x, y, z) in [-1, 1]
    sampled = F.grid_sample(grid[None], g.view(1, 1, 1, -1, 3), mode="bilinear", padding_mode="border",
                            align_corners=True)  # [1, J, 1, 1, P]
    w = sampled.view(J, -1)
    if residual is not None:
        assert slots is not None
        w = w + sparse_trilinear(residual.to(grid), slots, grid.shape[1], lo, hi, p[None])[0]
    w = w.t()
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
        band: None for a dense residual [J, R, R, R]; else the residual lives on the active set of
            :func:`active_cells` with this dilation (grid points) only: ``delta`` [J, M].
    """

    def __init__(self, vertices: Tensor, weights: Tensor, resolution: int = 64, padding: float = 0.1, k: int = 3,
                 smooth_iters: int = 0, eps: float = 1e-6, band: int | None = None) -> None:
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
        if band is not None and band < 0:
            raise ValueError(f"SkinningGrid: band must be None (dense) or non-negative, got {band}")
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
        self.band = band
        self.register_buffer("base", base.to(dev))
        self.register_buffer("lo", torch.from_numpy(lo).float().to(dev))
        self.register_buffer("hi", torch.from_numpy(hi).float().to(dev))
        if band is None:
            self.delta = nn.Parameter(torch.zeros(J, R, R, R, device=dev))
            return
        if bool((base < 0).any()):
            raise ValueError("SkinningGrid: a sparse residual needs non-negative base weights")
        cells = torch.from_numpy(active_cells(v, lo, hi, R, band))
        M = int(cells.numel())
        slots = torch.full((R ** 3,), M, dtype=torch.long)
        slots[cells] = torch.arange(M)
        self.register_buffer("cells", cells.to(dev))
        self.register_buffer("slots", slots.to(dev), persistent=False)
        self.register_buffer("tv_pairs", _tv_pairs(slots, R, M).to(dev), persistent=False)
        self.delta = nn.Parameter(torch.zeros(J, M, device=dev))

    @classmethod
    def from_body(cls, body: BodyModel, **kwargs) -> SkinningGrid:
        """Grid over a body's template vertices and skinning weights (keyword arguments as ``__init__``)."""
        return cls(body.v_template, body.lbs_weights, **kwargs)

    @property
    def sparse(self) -> bool:
        """Whether the residual lives on the active set only (``delta`` [J, M])."""
        return self.band is not None

    @property
    def num_active(self) -> int:
        """M: the grid points that carry a residual (R^3 when dense)."""
        return int(self.delta.shape[1]) if self.sparse else self.resolution ** 3

    def residual(self) -> Tensor:
        """The sparse residual's effect ``c = clamp_min(base_a + delta, 0) - base_a`` on the active points
        ([J, M]; ``base_a`` the base there): ``grid()`` is ``base`` plus ``c`` scattered onto them."""
        if not self.sparse:
            raise ValueError("SkinningGrid.residual: the residual is dense (band None)")
        base_a = self.base.view(self.num_joints, -1).index_select(1, self.cells)
        return (base_a + self.delta).clamp_min(0.0) - base_a

    def dense_delta(self) -> Tensor:
        """The residual as a dense [J, R, R, R] tensor (zero outside the active set)."""
        if not self.sparse:
            return self.delta
        J, R = self.num_joints, self.resolution
        return self.delta.new_zeros(J, R ** 3).index_copy(1, self.cells, self.delta).view(J, R, R, R)

    def grid(self) -> Tensor:
        """[J, R, R, R] non-negative, unnormalised grid values ``clamp_min(base + delta, 0)`` (the residual
        scattered when sparse)."""
        return (self.base + self.dense_delta()).clamp_min(0.0)

    def lookup(self, dense: bool = False) -> dict:
        """What the posing pass needs to look the grid up (:class:`thgs.avatar.posing.PoseConstants`' grid
        fields): dense (or ``dense``: a sparse residual scattered once, for a path that keeps the constants),
        ``grid()``; sparse, the fixed ``base`` with ``residual()`` and ``slots``."""
        common = dict(grid_lo=self.lo, grid_hi=self.hi, grid_eps=self.eps)
        if dense or not self.sparse:
            return dict(grid=self.grid(), grid_residual=None, grid_slots=None, **common)
        return dict(grid=self.base, grid_residual=self.residual(), grid_slots=self.slots, **common)

    def weights(self, points: Tensor) -> Tensor:
        """Skinning weights of points [N, 3] or [B, N, 3] -> [N, J] or [B, N, J]; non-negative, rows sum to 1."""
        k = self.lookup()
        return grid_weights(k["grid"], self.lo, self.hi, self.eps, points, k.get("grid_residual"),
                            k.get("grid_slots"))

    forward = weights

    def blend(self, points: Tensor, transforms: Tensor) -> Tensor:
        """Blended transforms of points [N, 3] or [B, N, 3] for joint transforms [B, J, 4, 4] (or [B, J, 3, 4]):
        [B, N, 3, 4], equal to the top rows of ``lbs.blend_transforms(self.weights(points), transforms)``
        (see :func:`blend_grid_transforms`)."""
        k = self.lookup()
        return blend_grid_transforms(k["grid"], self.lo, self.hi, self.eps, points, transforms,
                                     k.get("grid_residual"), k.get("grid_slots"))

    def tv_loss(self) -> Tensor:
        """Total variation of ``delta``: mean squared difference between neighbouring cells, summed over
        the three axes (0 at initialisation). Sparse: the same value as the dense residual that is zero
        outside the active set (a pair with an inactive neighbour counts, with that neighbour at zero)."""
        d = self.delta
        if self.sparse:
            dz = torch.cat([d, d.new_zeros(d.shape[0], 1)], 1)
            a, b = self.tv_pairs
            R = self.resolution
            return (dz.index_select(1, a) - dz.index_select(1, b)).pow(2).sum() / (d.shape[0] * (R - 1) * R * R)
        return ((d[:, 1:] - d[:, :-1]).pow(2).mean() + (d[:, :, 1:] - d[:, :, :-1]).pow(2).mean()
                + (d[..., 1:] - d[..., :-1]).pow(2).mean())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """A sparse grid also loads a dense residual [J, R, R, R] that is zero outside its active set (its
        active points gathered) and refuses one that is not; the stored active set must be its own."""
        key = prefix + "delta"
        if self.sparse and key in state_dict:
            stored = state_dict[key]
            J, R = self.num_joints, self.resolution
            if stored.dim() == 4 and tuple(stored.shape) == (J, R, R, R):
                flat = stored.reshape(J, -1)
                inside = torch.zeros(R ** 3, dtype=torch.bool, device=flat.device)
                inside[self.cells.to(flat.device)] = True
                if bool((flat[:, ~inside] != 0).any()):
                    error_msgs.append(f"{key}: a dense skinning residual that is nonzero outside the active set "
                                      f"(band {self.band}) cannot be loaded sparse; load it with a dense residual "
                                      "(skin_band -1)")
                    return
                state_dict = dict(state_dict)
                state_dict[key] = flat[:, self.cells.to(flat.device)]
                state_dict.setdefault(prefix + "cells", self.cells)
            cells = state_dict.get(prefix + "cells")
            if cells is not None and (cells.shape != self.cells.shape
                                      or not torch.equal(cells.to(self.cells.device), self.cells)):
                error_msgs.append(f"{prefix}cells: the stored active set of the skinning residual "
                                  f"({tuple(cells.shape)[0]} points) is not this grid's ({self.num_active})")
                return
        elif not self.sparse and key in state_dict and state_dict[key].dim() == 2:
            error_msgs.append(f"{key}: a sparse skinning residual {tuple(state_dict[key].shape)} cannot be loaded "
                              "into a dense grid")
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        band = "dense" if not self.sparse else f"band={self.band}, active={self.num_active}"
        return f"joints={self.num_joints}, resolution={self.resolution}, {band}"


def _tv_pairs(slots: Tensor, R: int, M: int) -> Tensor:
    """[2, P] the columns (M: the zero column) of every pair of neighbouring grid points, along each axis, of
    which at least one is active: the pairs of the dense total variation that can be nonzero."""
    s = slots.view(R, R, R)
    pairs = []
    for axis in range(3):
        a = s.narrow(axis, 0, R - 1).reshape(-1)
        b = s.narrow(axis, 1, R - 1).reshape(-1)
        keep = (a != M) | (b != M)
        pairs.append(torch.stack([a[keep], b[keep]]))
    return torch.cat(pairs, 1)


__all__ = ["SkinningGrid", "active_cells", "blend_grid_transforms", "grid_weights", "interpolate_vertex_weights",
           "sparse_trilinear"]
