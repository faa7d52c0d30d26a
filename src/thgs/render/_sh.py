"""Real spherical harmonics up to degree 3 in the 3DGS convention (the layout of its ``f_dc``/``f_rest``).

The basis order and signs are those of the original 3DGS rasterizer and gsplat, so coefficients trained
with either render the same colours here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_SH_DEGREE = 3

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """K = (d + 1)^2 coefficients -> degree d; raises ValueError when K is not such a square or d > 3."""
    d = int(round(math.sqrt(num_coeffs))) - 1
    if (d + 1) ** 2 != num_coeffs or d < 0:
        raise ValueError(f"colors: {num_coeffs} SH coefficients per channel is not (degree + 1)^2")
    if d > MAX_SH_DEGREE:
        raise ValueError(f"colors: SH degree {d} > {MAX_SH_DEGREE} is not supported")
    return d


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Basis values for unit directions ``dirs`` [..., 3] -> [..., (degree + 1)^2]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    out = [torch.full_like(dirs[..., 0], _C0)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (2 * zz - xx - yy), _C2[3] * xz, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * xy * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def sh_to_rgb(coeffs: Tensor, degree: int, dirs: Tensor) -> Tensor:
    """View-dependent colour as in 3DGS: ``max(sum_k basis_k(dir) c_k + 0.5, 0)``.

    ``coeffs`` [N, K, 3] with K >= (degree + 1)^2 (extra bands are ignored); ``dirs`` [N, 3] view
    directions from the camera centre to the Gaussians (any length; normalised here). Returns [N, 3].
    """
    n = (degree + 1) ** 2
    if coeffs.shape[-2] < n:
        raise ValueError(f"colors: SH degree {degree} needs {n} coefficients, got {coeffs.shape[-2]}")
    d = torch.nn.functional.normalize(dirs, dim=-1)
    basis = sh_basis(degree, d)  # [N, n]
    rgb = (basis.unsqueeze(-1) * coeffs[..., :n, :]).sum(-2)
    return torch.clamp_min(rgb + 0.5, 0.0)
