"""The ``gsplat`` backend: gsplat's CUDA rasterizers behind the common interface.

3DGS goes through ``gsplat.rasterization`` and 2DGS through ``gsplat.rasterization_2dgs``, both with
packed=False, eps2d=0.3, radius_clip=0, classic rasterization and render_mode="RGB+ED" (``"RGB"`` when only the
colour is asked for, ``outputs="rgb"``), which is what the ``reference`` backend reproduces. gsplat's 2DGS normals come back in the world frame; they are
turned into the camera frame here so both backends agree.

``RenderResult.means2d`` [N, 2] holds the projected centres; after ``backward()`` its ``.grad`` holds
d loss / d means2d (filled by a hook on gsplat's own tensor), as with the reference backend. For 2DGS,
gsplat's densification gradient tensor is also given as ``extras["gradient_2dgs"]`` [1, N, 2].

:meth:`GsplatBackend.render_batch` draws B frames of a :class:`~thgs.render.base.GaussianBatch` in one
``rasterization`` / ``rasterization_2dgs`` call: gsplat's leading batch dimension is the frame (B) and its camera
dimension holds one camera per frame (C = 1); the shared opacities, colours and a shared camera go in as
expanded views, so nothing is copied per frame on this side.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from thgs.render.base import (BatchRenderResult, Camera, GaussianBatch, GaussianSet, Mode, Outputs, RenderResult,
                              register_backend)
from thgs.render.reference import EPS2D, check_gaussians, normals_from_depth
from thgs.render._sh import sh_degree_from_coeffs


def unavailable_reason() -> str | None:
    """Why gsplat cannot rasterize here (no CUDA GPU, not installed, or the import's error), None when it can.

    The first import's failure is kept, so every caller reports the same reason."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    if "gsplat" not in _IMPORT_FAILURE:
        try:
            found = importlib.util.find_spec("gsplat") is not None
        except (ImportError, ValueError) as exc:
            found, _IMPORT_FAILURE["gsplat"] = True, f"{type(exc).__name__}: {exc}"
        if not found:
            _IMPORT_FAILURE["gsplat"] = "gsplat is not installed (pip install 'thgs[gpu]')"
        elif "gsplat" not in _IMPORT_FAILURE:
            try:
                import gsplat  # noqa: F401
            except Exception as exc:  # noqa: BLE001 - a broken install fails in many ways; the reason is reported
                text = str(exc).strip().splitlines()
                _IMPORT_FAILURE["gsplat"] = f"importing gsplat failed: {type(exc).__name__}: {text[0] if text else ''}"
            else:
                _IMPORT_FAILURE["gsplat"] = None
    return _IMPORT_FAILURE["gsplat"]


_IMPORT_FAILURE: dict[str, str | None] = {}


def is_available() -> bool:
    """True when gsplat is importable and torch sees a CUDA GPU (its kernels build on first use); when not,
    :func:`unavailable_reason` says why."""
    return unavailable_reason() is None


def _grad_proxy(source: Tensor) -> Tensor:
    """A detached [N, 2] copy of ``source`` [1, N, 2] whose ``.grad`` receives ``source``'s gradient."""
    proxy = source[0].detach()
    if source.requires_grad:
        def hook(grad: Tensor) -> None:
            proxy.grad = grad[0].clone() if proxy.grad is None else proxy.grad + grad[0]

        source.register_hook(hook)
    return proxy


def gsplat_colors(g: GaussianSet | GaussianBatch) -> tuple[Tensor, int | None]:
    """The shared colours as float32 ([N, 3] or SH [N, K, 3]) and the SH degree gsplat draws them with (None:
    RGB)."""
    colors = g.colors.to(torch.float32)
    if colors.dim() != 3:
        return colors, None
    return colors, g.sh_degree if g.sh_degree is not None else sh_degree_from_coeffs(colors.shape[1])


def max_radii(radii: Tensor, dims: int) -> Tensor:
    """gsplat's projected radii as one int32 radius per Gaussian: ``radii`` has ``dims`` dimensions (gsplat 1.4)
    or one more, per image axis (gsplat >= 1.5), of which the larger is kept."""
    return (radii.amax(-1) if radii.dim() > dims else radii).to(torch.int32)


@register_backend("gsplat")
class GsplatBackend:
    """gsplat 1.4/1.5 CUDA rasterization (float32 tensors on a CUDA device)."""

    name = "gsplat"

    def __init__(self, eps2d: float = EPS2D) -> None:
        self.eps2d = eps2d

    @staticmethod
    def _check(mode: Mode, device: torch.device) -> None:
        if mode not in ("3dgs", "2dgs"):
            raise ValueError(f"gsplat renderer: mode must be '3dgs' or '2dgs', got {mode!r}")
        if not is_available():
            raise RuntimeError(f"gsplat renderer: unavailable ({unavailable_reason()})")
        if device.type != "cuda":
            raise ValueError(f"gsplat renderer: Gaussians must be on a CUDA device, got {device}")

    def _rasterize(self, mode: Mode, geometry: tuple, colors: Tensor, sh_degree: int | None, cameras: tuple,
                   camera: Camera, background: Tensor, outputs: Outputs) -> tuple[Tensor, Tensor, Tensor | None, dict]:
        """One gsplat call with this backend's settings: ``geometry`` (means, quats, scales, opacities),
        ``cameras`` (viewmats, Ks), the image size and clipping planes of ``camera``. Returns (colour + depth
        channels, alphas, 2DGS world-frame normals or None, meta), with gsplat's leading dimensions."""
        import gsplat

        args = (*geometry, colors, *cameras, camera.width, camera.height)
        common = dict(near_plane=camera.near, far_plane=camera.far, radius_clip=0.0, eps2d=self.eps2d,
                      sh_degree=sh_degree, packed=False, backgrounds=background,
                      render_mode="RGB" if outputs == "rgb" else "RGB+ED")
        if mode == "3dgs":
            out, alphas, meta = gsplat.rasterization(*args, rasterize_mode="classic", **common)
            return out, alphas, None, meta
        out, alphas, normals_w, _, _, _, meta = gsplat.rasterization_2dgs(*args, **common)
        return out, alphas, normals_w, meta

    def __call__(self, gaussians: GaussianSet, camera: Camera, background: Tensor, mode: Mode,
                 outputs: Outputs = "full") -> RenderResult:
        self._check(mode, gaussians.means.device)
        check_gaussians(gaussians)
        g = gaussians
        dev = g.means.device
        f32 = torch.float32
        viewmats = camera.world_to_cam.to(dev, f32)[None]
        Ks = camera.K.to(dev, f32)[None]
        colors, sh_degree = gsplat_colors(g)
        out, alphas, normals_w, meta = self._rasterize(
            mode, (g.means.to(f32), g.quats.to(f32), g.scales.to(f32), g.opacities.to(f32)),
            colors[None], sh_degree, (viewmats, Ks), camera, background.to(dev, f32)[None], outputs)  # camera dim 1
        extras: dict = {}
        normals = surf = None
        if normals_w is not None:
            if outputs == "full":
                R = viewmats[0, :3, :3]
                normals = normals_w[0] @ R.T  # world -> camera frame
            extras["gradient_2dgs"] = meta["gradient_2dgs"]
        rgb = out[0, ..., :3]
        depth = out[0, ..., 3:4] if outputs != "rgb" else None
        if mode == "2dgs" and outputs == "full":
            surf = normals_from_depth(depth, Ks[0])
        return RenderResult(rgb=rgb, alpha=alphas[0], depth=depth, normals=normals, surf_normals=surf,
                            radii=max_radii(meta["radii"][0], 1), means2d=_grad_proxy(meta["means2d"]), extras=extras)

    def render_batch(self, batch: GaussianBatch, cameras: list[Camera], background: Tensor, mode: Mode,
                     outputs: Outputs = "full") -> BatchRenderResult:
        """B frames in one gsplat call (batch dimension B, camera dimension 1): the same images as :meth:`__call__`
        of each frame to float tolerance. ``cameras``: one shared (expanded) or one per frame (stacked), all of
        one image size and near/far; ``background`` [3] (expanded) or [B, 3]."""
        self._check(mode, batch.means.device)
        check_gaussians(batch.frame(0))  # the shared opacities and colours against the SH degree
        g = batch
        B, N = g.means.shape[0], g.means.shape[1]
        dev = g.means.device
        f32 = torch.float32
        cam0 = cameras[0]
        if len(cameras) == 1:
            viewmats = cam0.world_to_cam.to(dev, f32)[None, None].expand(B, 1, 4, 4)
            Ks = cam0.K.to(dev, f32)[None, None].expand(B, 1, 3, 3)
        else:
            viewmats = torch.stack([c.world_to_cam for c in cameras]).to(dev, f32)[:, None]
            Ks = torch.stack([c.K for c in cameras]).to(dev, f32)[:, None]
        colors, sh_degree = gsplat_colors(g)
        colors = colors.expand(B, 1, *colors.shape)  # the frame and camera dimensions: [B, 1, N, 3] / [B, 1, N, K, 3]
        bg = background.to(dev, f32)
        bg = bg.expand(B, 1, 3) if bg.dim() == 1 else bg[:, None]
        out, alphas, normals_w, meta = self._rasterize(
            mode, (g.means.to(f32), g.quats.to(f32), g.scales.to(f32), g.opacities.to(f32).expand(B, N)),
            colors, sh_degree, (viewmats, Ks), cam0, bg, outputs)
        extras: dict = {}
        normals = surf = None
        if normals_w is not None:
            if outputs == "full":
                R = viewmats[:, 0, :3, :3]  # [B, 3, 3]
                normals = torch.einsum("bhwj,bij->bhwi", normals_w[:, 0], R)  # world -> each camera's frame
            extras["gradient_2dgs"] = meta["gradient_2dgs"]
        rgb = out[:, 0, ..., :3]
        depth = out[:, 0, ..., 3:4] if outputs != "rgb" else None
        if mode == "2dgs" and outputs == "full":
            surf = torch.stack([normals_from_depth(depth[b], Ks[b, 0]) for b in range(B)])  # type: ignore[index]
        return BatchRenderResult(rgb=rgb, alpha=alphas[:, 0], depth=depth, normals=normals, surf_normals=surf,
                                 radii=max_radii(meta["radii"][:, 0], 2), extras=extras)
