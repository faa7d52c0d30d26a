"""Projection of 3D Gaussians (EWA splatting) and 2D Gaussian disks (ray-splat transforms) to one camera.

Both follow gsplat 1.5.3's fused projection kernels detail for detail (culling rules, the +0.3 px
screen-space dilation, opacity-aware 3DGS radii, the 2DGS bounding box), so that the CPU reference
and the CUDA backend draw the same Gaussians. Everything here is differentiable with autograd except
the integer radii and the culling decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from thgs.core.rotations import quaternion_to_matrix

if TYPE_CHECKING:
    from thgs.render.base import Camera, GaussianSet

ALPHA_THRESHOLD = 1.0 / 255.0
"""A Gaussian contributes to a pixel only where its alpha is at least this."""

EXTEND_3DGS = 3.33
"""Bounding-box half-width in standard deviations (gsplat's ``extend``)."""

RADIUS_MAX = float(1 << 24)
"""Pixel radii are capped here (a Gaussian grazing the camera plane can project to any size)."""


@dataclass
class Projected:
    """The Gaussians that one camera draws, front to back.

    ``ids`` [V] int64 indices into the input set, sorted by camera depth (ties keep input order);
    ``means2d`` [V, 2] pixel positions (pixel centres lie at +0.5); ``depths`` [V] camera z;
    ``radii`` [V, 2] int64 bounding-box half-sizes in pixels (x, y); ``opacities`` [V];
    ``conics`` [V, 3] (3DGS) the inverse 2D covariance ``[[a, b], [b, c]]`` as (a, b, c);
    ``ray_transforms`` [V, 3, 3] (2DGS) rows of ``K [s0 r0, s1 r1, mu]`` in the camera frame, mapping
    disk coordinates (u, v, 1) to homogeneous pixels; ``normals`` [V, 3] (2DGS) disk normals in the
    camera frame, turned to face the camera.
    """

    ids: Tensor
    means2d: Tensor
    depths: Tensor
    radii: Tensor
    opacities: Tensor
    conics: Tensor | None = None
    ray_transforms: Tensor | None = None
    normals: Tensor | None = None


def _bbox_on_screen(means2d: Tensor, radii: Tensor, width: int, height: int) -> Tensor:
    """[V] bool: the box ``means2d +- radii`` overlaps the image (gsplat's test, strict inequalities)."""
    x, y = means2d[:, 0], means2d[:, 1]
    rx, ry = radii[:, 0].to(means2d.dtype), radii[:, 1].to(means2d.dtype)
    return (x + rx > 0) & (x - rx < width) & (y + ry > 0) & (y - ry < height)


def _world_to_camera(means: Tensor, quats: Tensor, scales: Tensor, world_to_cam: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Camera-frame centres [C, 3] and the scaled rotation axes R r_j s_j (each [C, 3])."""
    R = world_to_cam[:3, :3]
    m_c = means @ R.T + world_to_cam[:3, 3]
    rot = quaternion_to_matrix(quats)  # [C, 3, 3], columns are the Gaussian's axes
    axes = [(rot[:, :, j] @ R.T) * scales[:, j:j + 1] for j in range(3)]
    return m_c, axes


def _ewa(means: Tensor, quats: Tensor, scales: Tensor, world_to_cam: Tensor, K: Tensor, width: int, height: int,
         eps2d: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """means2d [C, 2], depth [C] and the dilated 2D covariance entries a, b, c [C] (gsplat's persp_proj)."""
    m_c, axes = _world_to_camera(means, quats, scales, world_to_cam)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y, z = m_c.unbind(-1)
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    rz = 1.0 / z
    tx = z * torch.minimum(torch.maximum(x * rz, -lim_x_neg), lim_x_pos)
    ty = z * torch.minimum(torch.maximum(y * rz, -lim_y_neg), lim_y_pos)
    j00, j02 = fx * rz, -fx * tx * rz * rz
    j11, j12 = fy * rz, -fy * ty * rz * rz
    # Sigma2D = sum_j (J a_j)(J a_j)^T for the scaled axes a_j, i.e. J R S S^T R^T J^T
    p = [j00 * a[:, 0] + j02 * a[:, 2] for a in axes]
    q = [j11 * a[:, 1] + j12 * a[:, 2] for a in axes]
    a = sum(u * u for u in p) + eps2d
    b = sum(u * v for u, v in zip(p, q))
    c = sum(v * v for v in q) + eps2d
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)
    return means2d, z, a, b, c


def _select_sorted(mask: Tensor, cand: Tensor, depths: Tensor) -> tuple[Tensor, Tensor]:
    """Indices into ``cand`` of the kept entries, sorted by depth (stable), and their ids."""
    keep = torch.nonzero(mask).squeeze(1)
    order = keep.index_select(0, torch.sort(depths.index_select(0, keep), stable=True).indices)
    return order, cand.index_select(0, order)


def _inputs(g: GaussianSet, camera: Camera) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, int, int,
                                                      float, float]:
    """``g``'s means, quats, scales, opacities; ``camera``'s world_to_cam and K in the means' dtype, its width,
    height, near and far planes."""
    dtype = g.means.dtype
    return (g.means, g.quats, g.scales, g.opacities, camera.world_to_cam.to(dtype), camera.K.to(dtype),
            camera.width, camera.height, camera.near, camera.far)


def project_3dgs(g: GaussianSet, camera: Camera, eps2d: float = 0.3, radius_clip: float = 0.0) -> Projected:
    """EWA projection of 3D Gaussians (``g``: ``means`` [N, 3], ``quats`` [N, 4] wxyz, ``scales`` [N, 3],
    ``opacities`` [N]) with ``camera``'s ``world_to_cam`` [4, 4], ``K`` [3, 3], size and near/far planes.

    Sigma = R S S^T R^T; Sigma2D = J W Sigma W^T J^T + eps2d I with the perspective Jacobian J whose
    x/z, y/z are clamped to 1.3x the field of view; culled: z outside [near, far], det <= 0,
    opacity < 1/255, a box that misses the image. Radius = ceil(e * sqrt(Sigma2D_ii)) with
    e = min(3.33, sqrt(2 ln(255 opacity))).
    """
    means, quats, scales, opacities, world_to_cam, K, width, height, near, far = _inputs(g, camera)
    with torch.no_grad():  # which Gaussians are drawn, and in which order
        w2c, Kd = world_to_cam.detach(), K.detach()
        z_all = means.detach() @ w2c[2, :3] + w2c[2, 3]
        cand = torch.nonzero((z_all >= near) & (z_all <= far)).squeeze(1)
        m2d, z, a, b, c = _ewa(means.detach().index_select(0, cand), quats.detach().index_select(0, cand),
                               scales.detach().index_select(0, cand), w2c, Kd, width, height, eps2d)
        op = opacities.detach().index_select(0, cand)
        ok = (a * c - b * b > 0) & (op >= ALPHA_THRESHOLD)
        extend = torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(EXTEND_3DGS)
        radii = torch.stack([torch.ceil(extend * torch.sqrt(a.clamp_min(0))),
                             torch.ceil(extend * torch.sqrt(c.clamp_min(0)))], -1).clamp_max(RADIUS_MAX)
        ok &= ~((radii[:, 0] <= radius_clip) & (radii[:, 1] <= radius_clip))
        ok &= _bbox_on_screen(m2d, radii, width, height)
        order, ids = _select_sorted(ok, cand, z)
    means2d, z, a, b, c = _ewa(means.index_select(0, ids), quats.index_select(0, ids), scales.index_select(0, ids),
                               world_to_cam, K, width, height, eps2d)
    det = a * c - b * b
    conics = torch.stack([c / det, -b / det, a / det], -1)
    return Projected(ids=ids, means2d=means2d, depths=z, radii=radii.index_select(0, order).long(),
                     opacities=opacities.index_select(0, ids), conics=conics)


def _disk(means: Tensor, quats: Tensor, scales: Tensor, world_to_cam: Tensor, K: Tensor
          ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Ray transforms [C, 3, 3] (rows M0, M1, M2 of K [s0 r0, s1 r1, mu]), the gsplat box centre [C, 2]
    and the denominator d [C] (0: degenerate), camera-frame normals [C, 3] and depths [C]."""
    m_c, axes = _world_to_camera(means, quats, scales, world_to_cam)
    cols = [axes[0], axes[1], m_c]  # columns of T_cam, each [C, 3]
    rows = [sum(K[i, k] * torch.stack([col[:, k] for col in cols], -1) for k in range(3)) for i in range(3)]
    T = torch.stack(rows, -2)  # [C, 3, 3]
    M0, M1, M2 = rows
    d = M2[:, 0] ** 2 + M2[:, 1] ** 2 - M2[:, 2] ** 2
    d_safe = torch.where(d != 0, d, torch.ones_like(d))
    mx = (M0[:, 0] * M2[:, 0] + M0[:, 1] * M2[:, 1] - M0[:, 2] * M2[:, 2]) / d_safe
    my = (M1[:, 0] * M2[:, 0] + M1[:, 1] * M2[:, 1] - M1[:, 2] * M2[:, 2]) / d_safe
    # the disk normal (third rotation axis, unscaled), turned towards the camera
    rot = quaternion_to_matrix(quats)
    normal = rot[:, :, 2] @ world_to_cam[:3, :3].T
    sign = torch.where((normal.detach() * m_c.detach()).sum(-1) < 0, 1.0, -1.0).to(normal.dtype)
    return T, torch.stack([mx, my], -1), d, normal * sign.unsqueeze(-1), m_c[:, 2]


def project_2dgs(g: GaussianSet, camera: Camera, radius_clip: float = 0.0) -> Projected:
    """Projection of 2D Gaussian disks ``g`` (axes ``scales[:, :2]`` along the rotation's first two
    columns) with ``camera``.

    The ray transform is ``T = K [s0 r0, s1 r1, mu]`` (camera frame); the box is gsplat's: the
    bounding box of the projected unit ellipse, scaled 3.33 times about its centre (which is also the
    ``means2d`` used by the screen-space filter). Culled: z outside (near, far), a degenerate conic, a
    box that misses the image.
    """
    means, quats, scales, opacities, world_to_cam, K, width, height, near, far = _inputs(g, camera)
    with torch.no_grad():  # which disks are drawn, and in which order
        w2c, Kd = world_to_cam.detach(), K.detach()
        z_all = means.detach() @ w2c[2, :3] + w2c[2, 3]
        cand = torch.nonzero((z_all > near) & (z_all < far)).squeeze(1)
        T, m2d, d, _, z = _disk(means.detach().index_select(0, cand), quats.detach().index_select(0, cand),
                                scales.detach().index_select(0, cand), w2c, Kd)
        d_safe = torch.where(d != 0, d, torch.ones_like(d))
        M0, M1 = T[:, 0], T[:, 1]
        hx = m2d[:, 0] ** 2 - (M0[:, 0] ** 2 + M0[:, 1] ** 2 - M0[:, 2] ** 2) / d_safe
        hy = m2d[:, 1] ** 2 - (M1[:, 0] ** 2 + M1[:, 1] ** 2 - M1[:, 2] ** 2) / d_safe
        radii = torch.stack([torch.ceil(EXTEND_3DGS * torch.sqrt(hx.clamp_min(1e-4))),
                             torch.ceil(EXTEND_3DGS * torch.sqrt(hy.clamp_min(1e-4)))], -1).clamp_max(RADIUS_MAX)
        ok = d != 0
        ok &= ~((radii[:, 0] <= radius_clip) & (radii[:, 1] <= radius_clip))
        ok &= _bbox_on_screen(m2d, radii, width, height)
        order, ids = _select_sorted(ok, cand, z)
    T, means2d, _, normals, z = _disk(means.index_select(0, ids), quats.index_select(0, ids),
                                      scales.index_select(0, ids), world_to_cam, K)
    return Projected(ids=ids, means2d=means2d, depths=z, radii=radii.index_select(0, order).long(),
                     opacities=opacities.index_select(0, ids), ray_transforms=T, normals=normals)


def camera_center(world_to_cam: Tensor) -> Tensor:
    """[3] camera centre in world coordinates of a [4, 4] world-to-camera matrix."""
    R = world_to_cam[:3, :3]
    return -R.T @ world_to_cam[:3, 3]


def filter_radius(opacity: Tensor) -> Tensor:
    """Pixel distance beyond which 2DGS's screen-space filter term exp(-|d|^2) * opacity < 1/255."""
    return torch.sqrt(torch.log(opacity.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))


def disk_extend(opacity: Tensor) -> Tensor:
    """Disk radius (in units of the scales) beyond which exp(-r^2 / 2) * opacity < 1/255, at most 3.33."""
    return torch.sqrt(2.0 * torch.log(opacity.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(EXTEND_3DGS)
