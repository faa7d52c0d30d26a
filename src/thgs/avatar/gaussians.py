"""Canonical Gaussians on the template (section 4.2) and the activations, in one place.

Initialisation (T-pose, canonical space):

- position: the template's rest vertices (teeth included when the body has them);
- rotation: columns ``[ux, uy, uz]`` with ``uz`` the vertex normal, ``uy`` a random direction made
  orthogonal to it and ``ux = uy x uz``; for 2DGS the disk normal (third column) is the surface normal;
- scale: ``sqrt(A_avg / pi)`` with ``A_avg`` the mean area of the faces around the vertex, clamped to
  ``[scale_min, scale_max]`` x the body height / 1.7 m;
- parent: the vertex each Gaussian was born on (Eq. 19), kept through densification.

Raw parameters are unconstrained: ``log_scales`` (exp), ``opacity_logits`` (sigmoid), ``quats``
(normalised), ``sh`` (degree-``d`` spherical-harmonic coefficients; RGB = SH_C0 * dc + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.avatar.state import GaussianState
from thgs.body.model import BodyModel
from thgs.core.mesh import mean_adjacent_face_area
from thgs.core.rotations import matrix_to_quaternion

SH_C0 = 0.28209479177387814
REFERENCE_HEIGHT_M = 1.7


def body_height(body: BodyModel) -> float:
    """Extent of the rest template along its up axis (metres for metric bodies)."""
    axis = {"x": 0, "y": 1, "z": 2}.get(body.up_axis, 1)
    v = body.v_template[:, axis]
    return float(v.max() - v.min())


def body_scale(body: BodyModel) -> float:
    """How much larger than a 1.7 m SMPL-X body this body is; distances quoted for SMPL-X-scale
    bodies in the paper (the 0.02 mouth margin, scale clamps) are multiplied by it."""
    return body_height(body) / REFERENCE_HEIGHT_M


def tangent_frames(normals: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Rotation matrices [N, 3, 3] whose columns are ``[uy x uz, uy, uz]`` with ``uz`` = ``normals`` [N, 3]
    and ``uy`` a random unit direction orthogonal to it."""
    uz = torch.nn.functional.normalize(normals, dim=-1)
    r = torch.randn(normals.shape, generator=generator, dtype=normals.dtype, device="cpu").to(normals.device)
    uy = r - (r * uz).sum(-1, keepdim=True) * uz
    # A random vector (nearly) parallel to the normal: use any perpendicular instead.
    bad = uy.norm(dim=-1) < 1e-6
    if bad.any():
        alt = torch.where(uz[bad, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]))
        uy[bad] = torch.cross(uz[bad], alt, dim=-1)
    uy = torch.nn.functional.normalize(uy, dim=-1)
    ux = torch.cross(uy, uz, dim=-1)
    return torch.stack([ux, uy, uz], dim=-1)


def num_sh_coeffs(degree: int) -> int:
    return (degree + 1) ** 2


@dataclass
class InitOptions:
    """How the canonical Gaussians start."""

    sh_degree: int = 0
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    opacity: float = 0.9
    scale_min: float = 1e-3  # metres at 1.7 m body height
    scale_max: float = 2e-2
    seed: int = 0


def init_state(body: BodyModel, options: InitOptions | None = None) -> GaussianState:
    """Canonical Gaussians, one per template vertex. Returns a :class:`GaussianState` with parameters
    ``means`` [V, 3], ``quats`` [V, 4], ``log_scales`` [V, 3], ``opacity_logits`` [V], ``sh`` [V, K, 3] and
    buffers ``parent`` [V] long plus the densification statistics ``grad_accum`` [V], ``grad_count`` [V],
    ``max_radii`` [V]."""
    o = options or InitOptions()
    g = torch.Generator().manual_seed(o.seed)
    v = body.v_template.detach().float().cpu()
    n = body.vertex_normals.detach().float().cpu()
    V = v.shape[0]
    rot = tangent_frames(n, g)
    quats = matrix_to_quaternion(rot)
    s = body_scale(body)
    # Vertices used by no face (rare) get the median radius.
    area = mean_adjacent_face_area(v, body.faces.cpu())
    radius = torch.sqrt(area / math.pi)
    if (area <= 0).any():
        radius = torch.where(area > 0, radius, radius[area > 0].median() if (area > 0).any() else torch.tensor(o.scale_min))
    radius = radius.clamp(o.scale_min * s, o.scale_max * s)
    log_scales = torch.log(radius)[:, None].repeat(1, 3)
    opacity_logits = torch.full((V,), math.log(o.opacity / (1 - o.opacity)))
    sh = torch.zeros(V, num_sh_coeffs(o.sh_degree), 3)
    sh[:, 0] = (torch.tensor(o.color) - 0.5) / SH_C0
    return GaussianState(
        params={"means": v, "quats": quats, "log_scales": log_scales, "opacity_logits": opacity_logits, "sh": sh},
        buffers={"parent": torch.arange(V), "grad_accum": torch.zeros(V), "grad_count": torch.zeros(V),
                 "max_radii": torch.zeros(V)},
    )


# -- activations (the only place raw parameters are turned into renderable values) ------------
def activate_scales(log_scales: Tensor) -> Tensor:
    return torch.exp(log_scales)


def activate_opacities(logits: Tensor) -> Tensor:
    return torch.sigmoid(logits)


def sh_to_rgb_dc(sh: Tensor) -> Tensor:
    """Degree-0 colour of [N, K, 3] coefficients: [N, 3], clamped at 0 like 3DGS."""
    return (SH_C0 * sh[:, 0] + 0.5).clamp_min(0.0)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def teeth_vertex_indices(body: BodyModel) -> Tensor | None:
    """Indices of the teeth vertices if the body carries them (``with_teeth`` meta), else None."""
    meta = body.meta
    parts = []
    for key in ("upper_teeth_vertices", "lower_teeth_vertices"):
        if key in meta and meta[key] is not None:
            parts.append(torch.as_tensor(meta[key]).long().flatten())
    if parts:
        return torch.cat(parts)
    if "teeth_vertex_range" in meta and meta["teeth_vertex_range"] is not None:
        a, b = (int(x) for x in meta["teeth_vertex_range"])
        return torch.arange(a, b)
    return None


def mouth_box(body: BodyModel, margin: float = 0.02) -> Tensor:
    """The box that selects mouth Gaussians (section 4.4): [2, 3] (min, max) in the rest pose.

    The teeth's bounding box grown by ``margin`` x ``body_scale(body)`` (0.02 units for a 1.7 m body).
    A body without teeth uses the bounding box of its inner-lip vertices and mouth centre instead,
    grown the same way.
    """
    idx = teeth_vertex_indices(body)
    v = body.v_template.detach()
    if idx is not None and idx.numel():
        pts = v[idx.to(v.device)]
    else:
        m = body.mouth
        lips = torch.cat([m.upper_lip.flatten(), m.lower_lip.flatten()]).long().to(v.device)
        pts = torch.cat([v[lips], m.center.to(v)[None]], 0)
    grow = margin * body_scale(body)
    return torch.stack([pts.min(0).values - grow, pts.max(0).values + grow])


def in_box(points: Tensor, box: Tensor) -> Tensor:
    """points [N, 3], box [2, 3] -> [N] bool."""
    return ((points >= box[0]) & (points <= box[1])).all(-1)


__all__ = [
    "InitOptions", "SH_C0", "activate_opacities", "activate_scales", "body_height", "body_scale",
    "in_box", "init_state", "mouth_box", "num_sh_coeffs", "rgb_to_sh_dc", "sh_to_rgb_dc", "tangent_frames",
    "teeth_vertex_indices",
]
