"""The ``reference`` backend: a pure-PyTorch Gaussian rasterizer for 3DGS and 2DGS on any device.

Differentiable with autograd w.r.t. means, quats, scales, opacities and colours (RGB or SH), and
pixel-for-pixel the same function as gsplat 1.5.3's ``rasterization`` / ``rasterization_2dgs`` with
packed=False, eps2d=0.3, radius_clip=0, rasterize_mode="classic", render_mode="RGB+ED" (see
:mod:`thgs.render._project` and :mod:`thgs.render._raster` for the details that make this hold).
"""

from __future__ import annotations

import torch
from torch import Tensor

from thgs.render._project import Projected, camera_center, project_2dgs, project_3dgs
from thgs.render._raster import composite
from thgs.render._sh import sh_degree_from_coeffs, sh_to_rgb
from thgs.render.base import Camera, GaussianSet, Mode, Outputs, RenderResult, register_backend

EPS2D = 0.3
"""Screen-space dilation added to the projected 3DGS covariance (gsplat's ``eps2d``)."""


def normals_from_depth(depth: Tensor, K: Tensor) -> Tensor:
    """Surface normals [H, W, 3] in the camera frame from a z-depth map ``depth`` [H, W, 1].

    Back-projects pixel centres, takes central differences along rows and columns and normalises
    their cross product (gsplat's ``depth_to_normal`` with an identity pose), so a surface facing
    the camera gets a normal towards it (negative z). The one-pixel border is zero.
    """
    H, W = depth.shape[0], depth.shape[1]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    xs = (torch.arange(W, device=depth.device, dtype=depth.dtype) + 0.5 - cx) / fx
    ys = (torch.arange(H, device=depth.device, dtype=depth.dtype) + 0.5 - cy) / fy
    dirs = torch.stack([xs.expand(H, W), ys[:, None].expand(H, W), torch.ones(H, W, dtype=depth.dtype,
                                                                                device=depth.device)], -1)
    pts = dirs * depth
    d_rows = pts[2:, 1:-1] - pts[:-2, 1:-1]
    d_cols = pts[1:-1, 2:] - pts[1:-1, :-2]
    n = torch.nn.functional.normalize(torch.cross(d_rows, d_cols, dim=-1), dim=-1)
    return torch.nn.functional.pad(n, (0, 0, 1, 1, 1, 1))


def gaussian_colors(g: GaussianSet, ids: Tensor, campos: Tensor) -> Tensor:
    """RGB [V, 3] of the Gaussians ``ids``: the colours themselves, or SH evaluated towards ``campos``."""
    if g.colors.dim() == 2:
        return g.colors[ids]
    degree = g.sh_degree if g.sh_degree is not None else sh_degree_from_coeffs(g.colors.shape[1])
    return sh_to_rgb(g.colors[ids], degree, g.means[ids] - campos)


def check_gaussians(g: GaussianSet) -> None:
    """Raise ValueError naming the field when ``g``'s tensors have inconsistent shapes."""
    N = g.means.shape[0]
    for name, t, shape in (("means", g.means, (N, 3)), ("quats", g.quats, (N, 4)), ("scales", g.scales, (N, 3)),
                           ("opacities", g.opacities, (N,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"GaussianSet.{name} has shape {tuple(t.shape)}, expected {shape}")
    c = g.colors
    if c.shape[0] != N or c.shape[-1] != 3 or c.dim() not in (2, 3):
        raise ValueError(f"GaussianSet.colors has shape {tuple(c.shape)}, expected [N, 3] or [N, K, 3]")
    if c.dim() == 2 and g.sh_degree is not None:
        raise ValueError(f"GaussianSet.sh_degree is {g.sh_degree} but colors is RGB [N, 3]; SH needs [N, K, 3]")
    if c.dim() == 3:
        if g.sh_degree is None:
            sh_degree_from_coeffs(c.shape[1])  # raises unless K = (d + 1)^2 with d <= 3
        elif not 0 <= g.sh_degree <= 3:
            raise ValueError(f"GaussianSet.sh_degree must be in 0..3, got {g.sh_degree}")
        elif (g.sh_degree + 1) ** 2 > c.shape[1]:
            raise ValueError(f"GaussianSet.sh_degree {g.sh_degree} needs {(g.sh_degree + 1) ** 2} coefficients, "
                             f"colors has {c.shape[1]}")


@register_backend("reference")
class ReferenceBackend:
    """Pure-PyTorch rasterizer (any device, autograd).

    ``pair_budget`` bounds the candidate (Gaussian, pixel) pairs handled in one depth-ordered chunk,
    i.e. peak memory; it never changes the image. Smaller chunks skip more work behind opaque pixels,
    larger ones have less per-chunk overhead. Default: 2^19 on CPU, 2^23 on GPUs.
    """

    name = "reference"

    def __init__(self, pair_budget: int | None = None, eps2d: float = EPS2D) -> None:
        if pair_budget is not None and pair_budget < 1:
            raise ValueError(f"pair_budget must be positive, got {pair_budget}")
        self.pair_budget = pair_budget
        self.eps2d = eps2d

    def project(self, g: GaussianSet, camera: Camera, mode: Mode) -> Projected:
        """Project ``g`` to ``camera``: the drawn Gaussians, front to back (see :class:`Projected`)."""
        if mode == "3dgs":
            return project_3dgs(g, camera, eps2d=self.eps2d)
        return project_2dgs(g, camera)

    def __call__(self, gaussians: GaussianSet, camera: Camera, background: Tensor, mode: Mode,
                 outputs: Outputs = "full") -> RenderResult:
        if mode not in ("3dgs", "2dgs"):
            raise ValueError(f"reference renderer: mode must be '3dgs' or '2dgs', got {mode!r}")
        check_gaussians(gaussians)
        g = gaussians
        N, dtype, dev = g.means.shape[0], g.means.dtype, g.means.device
        H, W = camera.height, camera.width
        p = self.project(g, camera, mode)

        # means2d for all N on the autograd path; after backward its .grad is d loss / d means2d
        means2d = torch.zeros(N, 2, dtype=dtype, device=dev).index_copy(0, p.ids, p.means2d)
        if means2d.requires_grad:
            means2d.retain_grad()
        p.means2d = means2d[p.ids]
        radii = torch.zeros(N, dtype=torch.int32, device=dev)
        radii[p.ids] = p.radii.amax(-1).to(torch.int32)

        rgb = gaussian_colors(g, p.ids, camera_center(camera.world_to_cam.to(dtype)))
        feats = [rgb.to(dtype)]  # blended features: colour, then depth and normals when asked for
        if outputs != "rgb":
            feats.append(p.depths.unsqueeze(-1))
        if mode == "2dgs" and outputs == "full":
            feats.append(p.normals)
        budget = self.pair_budget or (1 << 19 if dev.type == "cpu" else 1 << 23)
        acc, log_t, stats = composite(p, torch.cat(feats, -1), W, H, mode, pair_budget=budget)

        T = torch.exp(log_t).to(dtype).reshape(H, W, 1)
        alpha = 1.0 - T
        acc = acc.reshape(H, W, -1)
        image = acc[..., :3] + T * background.to(dtype)
        depth = acc[..., 3:4] / alpha.clamp_min(1e-10) if outputs != "rgb" else None
        normals = surf = None
        if mode == "2dgs" and outputs == "full":
            normals = acc[..., 4:7]
            surf = normals_from_depth(depth, camera.K.to(dtype))
        stats["visible"] = len(p.ids)
        return RenderResult(rgb=image, alpha=alpha, depth=depth, normals=normals, surf_normals=surf,
                            radii=radii, means2d=means2d, extras=stats)
