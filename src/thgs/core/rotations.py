"""Rotation math. Quaternions are (w, x, y, z), matching gsplat and the 3DGS PLY layout."""

from __future__ import annotations

import torch
from torch import Tensor


def axis_angle_to_matrix(aa: Tensor, eps: float = 1e-8) -> Tensor:
    """Rodrigues' formula: [..., 3] axis-angle -> [..., 3, 3] rotation matrices (smooth at 0)."""
    angle_sq = (aa * aa).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq + eps * eps)
    # sin(t)/t and (1-cos t)/t^2 with Taylor series near zero for exact gradients at 0.
    small = angle_sq < 1e-6
    a = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / (angle * angle))
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def skew(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """[..., 4] (w, x, y, z), any norm -> [..., 3, 3]."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1)
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(m: Tensor) -> Tensor:
    """[..., 3, 3] rotation -> [..., 4] unit quaternion (w >= 0), stable for every rotation."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Four candidate solutions, each well conditioned where its leading term is large.
    cand = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], dim=-2)  # [..., 4, 4]
    lead = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = lead.argmax(-1, keepdim=True)
    q = torch.gather(cand, -2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of [..., 4] quaternions (w, x, y, z)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def matrix_to_axis_angle(m: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 3] axis-angle (angle in [0, pi])."""
    q = matrix_to_quaternion(m)
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    scale = torch.where(s > 1e-8, angle / s.clamp_min(1e-12), 2.0 / q[..., :1].clamp_min(1e-12))
    return xyz * scale


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """[..., 6] two columns -> [..., 3, 3] via Gram-Schmidt (continuous rotation parameterisation)."""
    return _gram_schmidt(d6[..., :3], d6[..., 3:])


def _gram_schmidt(a1: Tensor, a2: Tensor) -> Tensor:
    """Columns a1, a2 [..., 3] -> the rotation [..., 3, 3] whose first column is along a1 and whose first two
    span the plane of a1 and a2."""
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def blended_rotation_quaternion(rot: Tensor) -> Tensor:
    """The rotation of a blended (not orthonormal) 3x3 block [..., 3, 3], as a unit quaternion [..., 4] (w x y
    z): Gram-Schmidt of its first two columns (the 6D parameterisation, :func:`rotation_6d_to_matrix`), then
    :func:`matrix_to_quaternion`. Linear blend skinning's per-point rotation (Eq. 7's ``polar``)."""
    # the columns copied out first: norms over strided columns are slow
    return matrix_to_quaternion(_gram_schmidt(rot[..., 0].contiguous(), rot[..., 1].contiguous()))


def normalize_quaternion(q: Tensor) -> Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
