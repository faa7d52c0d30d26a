"""Triangle-mesh helpers: normals, areas, neighbourhoods."""

from __future__ import annotations

import torch
from torch import Tensor


def face_normals(vertices: Tensor, faces: Tensor, normalize: bool = True) -> Tensor:
    """vertices [..., V, 3], faces [F, 3] -> [..., F, 3] (area-weighted when not normalised)."""
    v0, v1, v2 = (vertices[..., faces[:, i], :] for i in range(3))
    n = torch.cross(v1 - v0, v2 - v0, dim=-1)
    return torch.nn.functional.normalize(n, dim=-1) if normalize else n


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals: vertices [..., V, 3], faces [F, 3] -> [..., V, 3] unit."""
    fn = face_normals(vertices, faces, normalize=False)
    out = torch.zeros_like(vertices)
    for i in range(3):
        out.index_add_(-2, faces[:, i], fn)
    return torch.nn.functional.normalize(out, dim=-1)


def face_areas(vertices: Tensor, faces: Tensor) -> Tensor:
    """[V, 3], [F, 3] -> [F]."""
    return 0.5 * face_normals(vertices, faces, normalize=False).norm(dim=-1)


def mean_adjacent_face_area(vertices: Tensor, faces: Tensor) -> Tensor:
    """For each vertex, the mean area of the faces that use it: [V]. Isolated vertices get 0."""
    areas = face_areas(vertices, faces)
    total = torch.zeros(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    count = torch.zeros_like(total)
    for i in range(3):
        total.index_add_(0, faces[:, i], areas)
        count.index_add_(0, faces[:, i], torch.ones_like(areas))
    return total / count.clamp_min(1)
