"""Seeded synthetic Gaussian scenes for renderer tests, parity checks and benchmarks."""

from __future__ import annotations

import math

import torch

from thgs.render.base import Camera, GaussianBatch, GaussianSet


def random_cloud(n: int, seed: int = 0, sh_degree: int | None = None, dtype: torch.dtype = torch.float32,
                 depth: float = 3.0, spread: float = 1.0, scale: float = 0.03) -> GaussianSet:
    """``n`` Gaussians scattered in a box ``spread`` wide around (0, 0, ``depth``), random orientations,
    log-normal scales around ``scale``, opacities in (0.05, 1), colours in [0, 1] (or SH coefficients)."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * spread
    means[:, 2] += depth
    quats = torch.randn(n, 4, generator=gen)
    scales = scale * torch.exp(0.5 * torch.randn(n, 3, generator=gen))
    opac = 0.05 + 0.95 * torch.rand(n, generator=gen)
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=gen)
    else:
        colors = 0.3 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen)
        colors[:, 0] = (torch.rand(n, 3, generator=gen) - 0.5) / 0.28209479177387814
    return GaussianSet(means.to(dtype), quats.to(dtype), scales.to(dtype), opac.to(dtype), colors.to(dtype),
                       sh_degree=sh_degree)


def body_like(n: int, seed: int = 0, dtype: torch.dtype = torch.float32, sh_degree: int | None = None) -> GaussianSet:
    """``n`` surface-aligned Gaussians on an ellipsoid (semi-axes 0.3 x 0.8 x 0.2 m, like a torso seen
    from 2.5 m), sized so that they tile the surface: what an avatar looks like to the renderer."""
    gen = torch.Generator().manual_seed(seed)
    axes = torch.tensor([0.3, 0.8, 0.2])
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    means = d * axes
    normal = torch.nn.functional.normalize(d / axes, dim=-1)
    # rotation whose third column is the surface normal (flat Gaussians lying on the surface)
    helper = torch.where(normal[:, :1].abs() < 0.9, torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 1.0, 0]]))
    t1 = torch.nn.functional.normalize(torch.cross(helper, normal, dim=-1), dim=-1)
    t2 = torch.cross(normal, t1, dim=-1)
    Rm = torch.stack([t1, t2, normal], -1)
    from thgs.core.rotations import matrix_to_quaternion

    quats = matrix_to_quaternion(Rm)
    area = 4 * math.pi * ((0.3 * 0.8) ** 1.6 + (0.3 * 0.2) ** 1.6 + (0.8 * 0.2) ** 1.6) ** (1 / 1.6) / 3 ** (1 / 1.6)
    s = math.sqrt(area / n / math.pi) * 1.5
    scales = s * torch.exp(0.3 * torch.randn(n, 3, generator=gen))
    scales[:, 2] *= 0.1
    means[:, 2] += 2.5
    opac = 0.5 + 0.5 * torch.rand(n, generator=gen)
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=gen)
    else:
        colors = 0.2 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen)
    return GaussianSet(means.to(dtype), quats.to(dtype), scales.to(dtype), opac.to(dtype), colors.to(dtype),
                       sh_degree=sh_degree)


def front_camera(width: int, height: int, fov_y_deg: float = 45.0) -> Camera:
    """A camera at the origin looking down +z (image x right, y down)."""
    return Camera.look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, -1.0, 0.0]),
                          fov_y_deg, width, height)


def turning_batch(n: int, batch: int, seed: int = 0, sh_degree: int | None = None) -> GaussianBatch:
    """``batch`` frames of one :func:`body_like` set: frame b turned by 0.25 b rad about the vertical axis
    through its centre, shifted by (3, -2, 0) b cm and its scales grown by 10 b % (frames that differ, as an
    animation's do; opacities and colours shared)."""
    from thgs.core.rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_multiply

    g = body_like(n, seed=seed, sh_degree=sh_degree)
    centre = torch.tensor([0.0, 0.0, 2.5])
    turns = axis_angle_to_matrix(torch.tensor([[0.0, 0.25 * b, 0.0] for b in range(batch)]))  # [B, 3, 3]
    shift = torch.tensor([[0.03 * b, -0.02 * b, 0.0] for b in range(batch)])
    means = (g.means - centre) @ turns.transpose(1, 2) + centre + shift[:, None]
    quats = quaternion_multiply(matrix_to_quaternion(turns)[:, None], g.quats[None])
    scales = g.scales * (1.0 + 0.1 * torch.arange(batch, dtype=g.scales.dtype))[:, None, None]
    return GaussianBatch(means=means, quats=quats, scales=scales, opacities=g.opacities, colors=g.colors,
                         sh_degree=sh_degree)


def ring_cameras(batch: int, width: int, height: int) -> list[Camera]:
    """``batch`` cameras 20 cm apart along x (y down), all looking at the :func:`body_like` centre."""
    return [Camera.look_at(torch.tensor([0.2 * b - 0.2, 0.1, 0.0]), torch.tensor([0.0, 0.0, 2.5]),
                           torch.tensor([0.0, -1.0, 0.0]), 45.0, width, height) for b in range(batch)]
