"""A triangle-mesh rasterizer in torch on the CPU, independent of the Gaussian renderers.

Conventions (the same as :class:`thgs.render.base.Camera`, OpenCV): the camera looks down +z, x right,
y down; pixel (row i, column j) has its centre at image coordinates (j + 0.5, i + 0.5).

How it works, vectorised over all faces at once:

1. project the vertices, drop faces behind the near plane, degenerate faces and (optionally) back-facing
   faces that are allowed to be culled;
2. scan conversion in bulk: expand every face into (face, pixel row) pairs, intersect each row's line of
   pixel centres with the face's edges to get the span of covered centres (inclusive at both ends; each
   edge is evaluated from its lower end, so two faces sharing an edge agree bit for bit and leave no
   cracks), then expand the spans into (face, pixel) candidates (``repeat_interleave``), in chunks that
   bound memory;
3. interpolate 1/z (a plane in screen space) at each candidate's pixel centre;
4. z-buffer: pack the quantised depth and the face id into one int64 key and keep the minimum per pixel
   with ``scatter_reduce(amin)``: the nearest face wins and ties break deterministically by face id;
5. for each covered pixel recompute the winning face's barycentrics and make them perspective-correct
   (1/z is linear in screen space).

Anti-aliasing is supersampling: rasterize at ``s`` times the resolution (``Camera.scaled``) and average
``s x s`` blocks with :func:`downsample`; the averaged coverage is the foreground mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_FACE_BITS = 22  # up to 4M faces
_DEPTH_LEVELS = (1 << 30) - 1
_EMPTY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """The visible surface at every pixel.

    Attributes:
        face: [H, W] long index of the visible face, -1 where nothing is drawn.
        bary: [H, W, 3] perspective-correct barycentric weights of the face's three vertices (0 where empty).
        depth: [H, W] camera-space z of the visible point (0 where empty).
        front: [H, W] bool, True where the visible face is seen from its outside (counter-clockwise
            winding with outward normals), False for back faces and empty pixels.
    """

    face: Tensor
    bary: Tensor
    depth: Tensor
    front: Tensor

    @property
    def covered(self) -> Tensor:
        """[H, W] bool."""
        return self.face >= 0


def project(verts_cam: Tensor, K: Tensor) -> Tensor:
    """Camera-space points [V, 3] -> image coordinates [V, 2] (pixels)."""
    p = verts_cam @ K.T
    return p[:, :2] / p[:, 2:3].clamp_min(1e-12)


def rasterize(
    verts_cam: Tensor,
    faces: Tensor,
    K: Tensor,
    height: int,
    width: int,
    cullable: Tensor | None = None,
    near: float = 1e-3,
    chunk: int = 2_000_000,
) -> Fragments:
    """Rasterize one mesh seen by one pinhole camera.

    Args:
        verts_cam: [V, 3] float vertices in camera coordinates.
        faces: [F, 3] long triangles (counter-clockwise seen from outside).
        K: [3, 3] intrinsics in pixels.
        height, width: image size in pixels.
        cullable: [F] bool, faces that may be skipped when they face away from the camera (None: none are
            culled; back faces are then drawn and reported by ``Fragments.front``).
        near: faces with a vertex at z < near are not drawn.
        chunk: maximum number of (face, pixel) candidates evaluated at once (bounds memory).
    Returns:
        :class:`Fragments`.
    """
    if verts_cam.dim() != 2 or verts_cam.shape[1] != 3:
        raise ValueError(f"rasterize: verts_cam must be [V, 3], got {tuple(verts_cam.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"rasterize: faces must be [F, 3], got {tuple(faces.shape)}")
    dev = verts_cam.device
    verts_cam = verts_cam.float()
    H, W = int(height), int(width)
    xy = project(verts_cam, K.float())
    z = verts_cam[:, 2]

    tri = xy[faces]  # [F, 3, 2]
    tz = z[faces]  # [F, 3]
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    x1, y1 = tri[:, 1, 0], tri[:, 1, 1]
    x2, y2 = tri[:, 2, 0], tri[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    # The camera frame (x right, y down, z forward) is right-handed with y pointing down on screen, so a
    # face whose outward normal points at the camera has a negative signed area in image coordinates.
    front_face = area < 0
    keep = (tz.min(1).values > near) & (area.abs() > 1e-9)
    if cullable is not None:
        keep &= ~(cullable.to(dev) & ~front_face)
    ymin = tri[..., 1].min(1).values
    ymax = tri[..., 1].max(1).values
    i0 = torch.ceil(ymin - 0.5).clamp(0, H).long()
    i1 = torch.floor(ymax - 0.5).clamp(-1, H - 1).long()
    ny = (i1 - i0 + 1).clamp_min(0)
    keep &= ny > 0
    fids = torch.nonzero(keep).squeeze(1)

    # Edge functions as planes b_k(x, y) = A_k x + B_k y + C_k (already divided by the area), and the
    # plane of 1/z (linear in screen space).
    inv = 1.0 / area
    A = torch.stack([(y1 - y2), (y2 - y0), (y0 - y1)], 1) * inv[:, None]
    B = torch.stack([(x2 - x1), (x0 - x2), (x1 - x0)], 1) * inv[:, None]
    C = torch.stack([(x1 * y2 - x2 * y1), (x2 * y0 - x0 * y2), (x0 * y1 - x1 * y0)], 1) * inv[:, None]
    invz = 1.0 / tz.clamp_min(1e-12)
    coef = torch.cat([A, B, C, invz], 1)  # [F, 12]
    zplane = torch.stack([(A * invz).sum(1), (B * invz).sum(1), (C * invz).sum(1)], 1)  # [F, 3]

    # Each edge once, oriented from its lower-y end (ties: lower x) so that two faces sharing an edge
    # compute bit-identical crossings: no cracks and no double-counting beyond the z-test.
    edges = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        xa, ya, xb, yb = tri[:, a, 0], tri[:, a, 1], tri[:, b, 0], tri[:, b, 1]
        swap = (yb < ya) | ((yb == ya) & (xb < xa))
        lo_x, lo_y = torch.where(swap, xb, xa), torch.where(swap, yb, ya)
        hi_x, hi_y = torch.where(swap, xa, xb), torch.where(swap, ya, yb)
        slope = (hi_x - lo_x) / (hi_y - lo_y).clamp_min(1e-12)
        edges.append(torch.stack([lo_x, lo_y, hi_y, slope], 1))
    edge = torch.stack(edges, 1)  # [F, 3 edges, 4]

    zlo = float(z.min().clamp_min(near)) if z.numel() else near
    zhi = float(z.max()) if z.numel() else near + 1
    zscale = _DEPTH_LEVELS / max(zhi - zlo, 1e-6)

    zbuf = torch.full((H * W,), _EMPTY, dtype=torch.int64, device=dev)
    # Level 1: (face, row) pairs and the face's span of pixel centres on that row.
    rows_per = ny[fids]
    fr = torch.repeat_interleave(fids, rows_per)
    first = torch.cumsum(rows_per, 0) - rows_per
    row = i0[fr] + torch.arange(len(fr), device=dev) - torch.repeat_interleave(first, rows_per)
    cy = row.float() + 0.5
    e = edge[fr]  # [R, 3, 4]
    ok = (cy[:, None] >= e[..., 1]) & (cy[:, None] <= e[..., 2]) & (e[..., 2] > e[..., 1])
    xs = e[..., 0] + (cy[:, None] - e[..., 1]) * e[..., 3]
    big = torch.finfo(xs.dtype).max
    xl = torch.where(ok, xs, big).min(1).values
    xr = torch.where(ok, xs, -big).max(1).values
    c0 = torch.ceil(xl - 0.5).clamp(0, W)
    c1 = torch.floor(xr - 0.5).clamp(-1, W - 1)
    cnt = (c1 - c0 + 1).clamp_min(0).long()
    has = cnt > 0
    fr, row, c0, cnt = fr[has], row[has], c0[has].long(), cnt[has]
    # Level 2: pixels, in chunks of spans.
    csum = torch.cumsum(cnt, 0)
    start = 0
    while start < len(fr):
        base = int(csum[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(csum, torch.tensor(base + chunk, device=dev), right=True))
        stop = max(stop, start + 1)
        n = cnt[start:stop]
        span = torch.repeat_interleave(torch.arange(stop - start, device=dev), n)
        offs = torch.cumsum(n, 0) - n
        col = c0[start:stop][span] + torch.arange(int(n.sum()), device=dev) - offs[span]
        face = fr[start:stop][span]
        py = row[start:stop][span]
        zp = zplane[face]
        iz = zp[:, 0] * (col.float() + 0.5) + zp[:, 1] * (py.float() + 0.5) + zp[:, 2]
        dq = ((1.0 / iz - zlo) * zscale).clamp(0, _DEPTH_LEVELS).long()
        key = (dq << _FACE_BITS) | face
        zbuf.scatter_reduce_(0, py * W + col, key, reduce="amin", include_self=True)
        start = stop

    covered = zbuf != _EMPTY
    face_map = torch.full((H * W,), -1, dtype=torch.long, device=dev)
    bary = torch.zeros(H * W, 3, device=dev)
    depth_map = torch.zeros(H * W, device=dev)
    front = torch.zeros(H * W, dtype=torch.bool, device=dev)
    pix = torch.nonzero(covered).squeeze(1)
    if len(pix):
        face = zbuf[pix] & ((1 << _FACE_BITS) - 1)
        cx = (pix % W).float() + 0.5
        cy = torch.div(pix, W, rounding_mode="floor").float() + 0.5
        c = coef[face]
        b = (c[:, 0:3] * cx[:, None] + c[:, 3:6] * cy[:, None] + c[:, 6:9]).clamp_min(0)
        wz = b * c[:, 9:12]
        s = wz.sum(1, keepdim=True)
        face_map[pix] = face
        bary[pix] = wz / s
        depth_map[pix] = 1.0 / s[:, 0]
        front[pix] = front_face[face]
    return Fragments(face=face_map.view(H, W), bary=bary.view(H, W, 3), depth=depth_map.view(H, W),
                     front=front.view(H, W))


def interpolate(frags: Fragments, faces: Tensor, attrs: Tensor) -> Tensor:
    """Per-vertex attributes [V, C] -> values at the covered pixels [P, C] (row-major order of
    ``frags.covered``)."""
    cov = frags.covered
    f = frags.face[cov]
    w = frags.bary[cov]  # [P, 3]
    vals = attrs[faces[f]]  # [P, 3, C]
    return (vals * w[..., None]).sum(1)


def downsample(img: Tensor, factor: int) -> Tensor:
    """Average ``factor x factor`` blocks: [H*f, W*f, C] -> [H, W, C] (box filter)."""
    if factor == 1:
        return img
    out = None
    for dy in range(factor):
        for dx in range(factor):
            part = img[dy::factor, dx::factor]
            out = part.clone() if out is None else out.add_(part)
    assert out is not None
    return out.div_(factor * factor)
