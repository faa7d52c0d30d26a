"""The renderer interface shared by every backend.

Conventions (the same as gsplat and OpenCV):
- camera looks down +z, x right, y down; ``K`` is [3, 3] pixels; ``world_to_cam`` is [4, 4].
- quaternions are (w, x, y, z), need not be normalised; ``scales`` are activated (positive, world units).
- 2D Gaussians (``mode="2dgs"``) use the first two scale components as the disk's axes; the third
  is ignored; the disk normal is the rotation's third column.
- ``colors`` is [N, 3] RGB or [N, K, 3] spherical-harmonic coefficients with K = (sh_degree + 1)^2.

:func:`render` draws one :class:`GaussianSet` from one camera; :func:`render_batch` draws B frames of the same
Gaussians (a :class:`GaussianBatch`: per-frame means, rotations and scales, shared opacities and colours) from
one camera each (or one shared), in one rasterizer call where the backend has a batched method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, TypeVar

import torch
from torch import Tensor

Mode = Literal["3dgs", "2dgs"]
Outputs = Literal["rgb", "depth", "full"]
"""What a render returns besides ``rgb`` and ``alpha``: ``"rgb"`` nothing more (the fastest: gsplat rasterizes
colour only), ``"depth"`` the depth map too, ``"full"`` depth and, for 2DGS, the splat and depth normals."""
OUTPUTS = ("rgb", "depth", "full")


@dataclass
class Camera:
    """A pinhole camera. ``K`` [3, 3]; ``world_to_cam`` [4, 4]; image ``width`` x ``height`` pixels."""

    K: Tensor
    world_to_cam: Tensor
    width: int
    height: int
    near: float = 0.01
    far: float = 100.0

    def to(self, device: torch.device | str) -> "Camera":
        return Camera(self.K.to(device), self.world_to_cam.to(device), self.width, self.height, self.near, self.far)

    @property
    def center(self) -> Tensor:
        """Camera centre in world coordinates, [3]."""
        R = self.world_to_cam[:3, :3]
        t = self.world_to_cam[:3, 3]
        return -R.T @ t

    def scaled(self, factor: float) -> "Camera":
        """The same view at ``factor`` times the resolution."""
        K = self.K.clone()
        K[:2] = K[:2] * factor
        return Camera(K, self.world_to_cam, max(1, round(self.width * factor)), max(1, round(self.height * factor)),
                      self.near, self.far)

    @staticmethod
    def look_at(eye: Tensor, target: Tensor, up: Tensor, fov_y_deg: float, width: int, height: int) -> "Camera":
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
        eye, target, up = (torch.as_tensor(x, dtype=torch.float32) for x in (eye, target, up))
        z = torch.nn.functional.normalize(target - eye, dim=0)
        x = torch.nn.functional.normalize(torch.cross(z, up, dim=0), dim=0)  # image right
        y = torch.cross(z, x, dim=0)  # image down
        R = torch.stack([x, y, z])  # rows: camera axes in world
        w2c = torch.eye(4)
        w2c[:3, :3] = R
        w2c[:3, 3] = -R @ eye
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)
        return Camera(K, w2c, width, height)


@dataclass
class GaussianSet:
    """Gaussians ready to render (world space, activated)."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] (w, x, y, z)
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N] in (0, 1)
    colors: Tensor  # [N, 3] or [N, K, 3]
    sh_degree: int | None = None  # None: colors are RGB

    def __len__(self) -> int:
        return self.means.shape[0]


@dataclass
class GaussianBatch:
    """B frames (or views) of the same N Gaussians, ready to render with :func:`render_batch`.

    means [B, N, 3]; quats [B, N, 4] (w, x, y, z); scales [B, N, 3] (may be an expanded view of one [N, 3] when
    no frame changes them); opacities [N] and colors [N, 3] or [N, K, 3] shared by all frames; sh_degree as
    :class:`GaussianSet`. What :meth:`thgs.avatar.inference.Animator.animate` returns.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    sh_degree: int | None = None

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    def frame(self, b: int) -> GaussianSet:
        """Frame ``b`` as a renderable :class:`GaussianSet` (views, no copies)."""
        return GaussianSet(means=self.means[b], quats=self.quats[b], scales=self.scales[b], opacities=self.opacities,
                           colors=self.colors, sh_degree=self.sh_degree)

    @staticmethod
    def repeat(gaussians: GaussianSet, batch: int) -> "GaussianBatch":
        """``batch`` copies of one set as expanded views (no copies): many views of one pose."""
        if batch < 1:
            raise ValueError(f"GaussianBatch.repeat: batch must be >= 1, got {batch}")
        g = gaussians
        return GaussianBatch(means=g.means.expand(batch, -1, -1), quats=g.quats.expand(batch, -1, -1),
                             scales=g.scales.expand(batch, -1, -1), opacities=g.opacities, colors=g.colors,
                             sh_degree=g.sh_degree)


@dataclass
class RenderResult:
    """What every backend returns for one camera.

    rgb [H, W, 3]; alpha [H, W, 1]; depth [H, W, 1] (alpha-weighted expected depth, divided by alpha
    where alpha > 0; None when rendered with ``outputs="rgb"``); for 2DGS with ``outputs="full"`` also
    ``normals`` [H, W, 3] (alpha-blended splat normals, camera frame) and ``surf_normals`` [H, W, 3] (normals
    from the depth map, camera frame), which the 2DGS normal-consistency loss compares. ``radii`` [N] (pixels; 0 = not drawn) and ``means2d`` [N, 2]
    feed densification.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor | None
    normals: Tensor | None = None
    surf_normals: Tensor | None = None
    radii: Tensor | None = None
    means2d: Tensor | None = None
    extras: dict = field(default_factory=dict)


@dataclass
class BatchRenderResult:
    """What :func:`render_batch` returns for B frames: :class:`RenderResult`'s images with a leading frame axis.

    rgb [B, H, W, 3]; alpha [B, H, W, 1]; depth [B, H, W, 1] (None with ``outputs="rgb"``); for 2DGS with
    ``outputs="full"`` also ``normals`` and ``surf_normals`` [B, H, W, 3] (camera frame of each frame's camera);
    ``radii`` [B, N] (pixels; 0 = not drawn). No ``means2d``: densification renders one frame at a time.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor | None
    normals: Tensor | None = None
    surf_normals: Tensor | None = None
    radii: Tensor | None = None
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.rgb.shape[0]


class Backend(Protocol):
    """A rasterizer: ``backend(gaussians, camera, background, mode, outputs)`` draws one frame.

    A backend may also define ``render_batch(batch: GaussianBatch, cameras: list[Camera], background: Tensor,
    mode, outputs) -> BatchRenderResult`` (``cameras``: one per frame or one shared; ``background`` [3] or
    [B, 3]; inputs already checked by :func:`render_batch`); without it :func:`render_batch` draws frame by frame
    (:func:`render_each`)."""

    name: str

    def __call__(self, gaussians: GaussianSet, camera: Camera, background: Tensor, mode: Mode,
                 outputs: Outputs = "full") -> RenderResult: ...


_BACKENDS: dict[str, type] = {}


def register_backend(name: str):
    def deco(cls):
        _BACKENDS[name] = cls
        return cls

    return deco


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Backends usable on ``device`` (default: CUDA when present), fastest first."""
    from thgs.render import reference  # noqa: F401  (registers)

    names = []
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        try:
            from thgs.render import gsplat_backend  # noqa: F401

            if gsplat_backend.is_available():
                names.append("gsplat")
        except ImportError:
            pass
    names.append("reference")
    return names


def resolve_backend(name: str, device: torch.device | str | None = None) -> tuple[str, str | None]:
    """The backend ``name`` stands for on ``device`` and a note saying why ``auto`` fell back to the reference
    rasterizer on a CUDA device (gsplat missing or failing to import), else None."""
    if name != "auto":
        return name, None
    chosen = available_backends(device)[0]
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    note = None
    if dev.type == "cuda" and chosen != "gsplat":
        from thgs.render import gsplat_backend

        note = f"gsplat unavailable: {gsplat_backend.unavailable_reason()}"
    return chosen, note


_INSTANCES: dict[str, object] = {}


def get_backend(name: str = "auto", device: torch.device | str | None = None) -> Backend:
    if name == "auto":
        name = available_backends(device)[0]
    if name not in _BACKENDS:
        available_backends(device)  # import modules, which register themselves
        if name == "gsplat":
            from thgs.render import gsplat_backend  # noqa: F401
    if name not in _BACKENDS:
        raise ValueError(f"unknown render backend {name!r}; known: {sorted(_BACKENDS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BACKENDS[name]()
    return _INSTANCES[name]  # type: ignore[return-value]


_Gaussians = TypeVar("_Gaussians", GaussianSet, GaussianBatch)


def flat_surfels(gaussians: _Gaussians) -> _Gaussians:
    """2DGS surfels as 3D Gaussians with a zero third scale, for the 3DGS rasterizer (a :class:`GaussianSet`, or
    every frame of a :class:`GaussianBatch` at once; batch scales that are one expanded [N, 3] stay expanded).

    The same disks (the first two scales span them, the rotation's third column is their normal) drawn as
    flat ellipsoids: 3DGS projects each to a 2D Gaussian (plus the ``eps2d`` screen dilation) instead of
    intersecting the pixel ray with the disk, so the image differs slightly from true 2DGS, most at grazing
    angles (docs/benchmarks.md gives the PSNR between the two); gsplat's 3DGS kernels are about twice as fast."""
    s = gaussians.scales
    if isinstance(gaussians, GaussianBatch) and s.dim() == 3 and s.shape[0] > 1 and s.stride(0) == 0:
        return replace(gaussians, scales=_flat_scales(s[0]).expand_as(s))
    return replace(gaussians, scales=_flat_scales(s))


def _flat_scales(scales: Tensor) -> Tensor:
    """``scales`` [..., 3] with the third component zero."""
    return torch.cat([scales[..., :2], torch.zeros_like(scales[..., 2:])], -1)


def render(
    gaussians: GaussianSet,
    camera: Camera,
    background: Tensor | None = None,
    mode: Mode = "3dgs",
    backend: str = "auto",
    outputs: Outputs = "full",
    surfels_as_3dgs: bool = False,
) -> RenderResult:
    """Render ``gaussians`` from ``camera`` with the chosen backend (``auto``: gsplat on CUDA if present).

    ``outputs`` picks what is computed besides the colour (see :data:`Outputs`); ``surfels_as_3dgs`` (2DGS
    only, for inference) draws the surfels through the 3DGS rasterizer (:func:`flat_surfels`): no normals."""
    dev = gaussians.means.device
    N = gaussians.means.shape[0]
    for name, t, shape in (("means", gaussians.means, (N, 3)), ("quats", gaussians.quats, (N, 4)),
                           ("scales", gaussians.scales, (N, 3)), ("opacities", gaussians.opacities, (N,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"render: {name} has shape {tuple(t.shape)}, expected {shape}")
    if gaussians.colors.shape[0] != N or gaussians.colors.shape[-1] != 3:
        raise ValueError(f"render: colors has shape {tuple(gaussians.colors.shape)}, expected [N, 3] or [N, K, 3]")
    check_mode(mode, outputs, "render")
    if background is None:
        background = torch.zeros(3, device=dev)
    if surfels_as_3dgs and mode == "2dgs":
        gaussians, mode = flat_surfels(gaussians), "3dgs"
    return get_backend(backend, dev)(gaussians, camera.to(dev), background.to(dev), mode, outputs=outputs)


def check_mode(mode: str, outputs: str, where: str) -> None:
    """Raise ValueError naming the argument unless ``mode`` is 3dgs or 2dgs and ``outputs`` one of :data:`OUTPUTS`."""
    if mode not in ("3dgs", "2dgs"):
        raise ValueError(f"{where}: mode must be '3dgs' or '2dgs', got {mode!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"{where}: outputs must be one of {', '.join(OUTPUTS)}, got {outputs!r}")


def check_batch(batch: GaussianBatch, where: str = "render_batch") -> None:
    """Raise ValueError naming the field when ``batch``'s tensors have inconsistent shapes."""
    m = batch.means
    if m.dim() != 3 or m.shape[-1] != 3:
        raise ValueError(f"{where}: means has shape {tuple(m.shape)}, expected [B, N, 3]")
    B, N = m.shape[0], m.shape[1]
    if B < 1:
        raise ValueError(f"{where}: means has shape {tuple(m.shape)}, expected at least one frame")
    for name, t, shape in (("quats", batch.quats, (B, N, 4)), ("scales", batch.scales, (B, N, 3)),
                           ("opacities", batch.opacities, (N,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{where}: {name} has shape {tuple(t.shape)}, expected {shape}")
    c = batch.colors
    if c.dim() not in (2, 3) or c.shape[0] != N or c.shape[-1] != 3:
        raise ValueError(f"{where}: colors has shape {tuple(c.shape)}, expected [N, 3] or [N, K, 3] "
                         f"(shared by all frames, N = {N})")


def batch_cameras(cameras: Camera | list[Camera], batch: int, where: str = "render_batch") -> list[Camera]:
    """``cameras`` as a list of one shared camera or one per frame; ValueError unless there are 1 or ``batch``
    of them, all with the same image size and near/far planes (one rasterizer call draws them all)."""
    cams = [cameras] if isinstance(cameras, Camera) else list(cameras)
    if len(cams) not in (1, batch):
        raise ValueError(f"{where}: cameras has {len(cams)} entries, expected 1 (shared) or {batch} (one per frame)")
    c0 = cams[0]
    for i, c in enumerate(cams):
        if not isinstance(c, Camera):
            raise ValueError(f"{where}: cameras[{i}] is a {type(c).__name__}, expected a Camera")
        if (c.width, c.height) != (c0.width, c0.height):
            raise ValueError(f"{where}: cameras[{i}] is {c.width}x{c.height} but cameras[0] is "
                             f"{c0.width}x{c0.height}; all frames of a batch share the image size")
        if (c.near, c.far) != (c0.near, c0.far):
            raise ValueError(f"{where}: cameras[{i}] has near/far {c.near}/{c.far} but cameras[0] has "
                             f"{c0.near}/{c0.far}; all frames of a batch share them")
        if tuple(c.K.shape) != (3, 3) or tuple(c.world_to_cam.shape) != (4, 4):
            raise ValueError(f"{where}: cameras[{i}] has K {tuple(c.K.shape)} and world_to_cam "
                             f"{tuple(c.world_to_cam.shape)}, expected (3, 3) and (4, 4)")
    return cams


def stack_results(results: list[RenderResult]) -> BatchRenderResult:
    """Per-frame results stacked on a leading frame axis (their ``extras`` as ``extras["frames"]``)."""
    def stacked(name: str) -> Tensor | None:
        values = [getattr(r, name) for r in results]
        return None if values[0] is None else torch.stack(values)

    return BatchRenderResult(rgb=torch.stack([r.rgb for r in results]), alpha=torch.stack([r.alpha for r in results]),
                             depth=stacked("depth"), normals=stacked("normals"), surf_normals=stacked("surf_normals"),
                             radii=stacked("radii"), extras={"frames": [r.extras for r in results]})


def render_each(backend: Backend, batch: GaussianBatch, cameras: list[Camera], background: Tensor, mode: Mode,
                outputs: Outputs = "full") -> BatchRenderResult:
    """Frame by frame through ``backend``'s single-frame call, stacked: the batch of a backend without a batched
    method. ``cameras``: one shared or one per frame; ``background`` [3] or [B, 3]."""
    results = []
    for b in range(len(batch)):
        cam = cameras[b] if len(cameras) > 1 else cameras[0]
        bg = background[b] if background.dim() == 2 else background
        results.append(backend(batch.frame(b), cam, bg, mode, outputs=outputs))
    return stack_results(results)


def render_batch(
    gaussians: GaussianBatch,
    cameras: Camera | list[Camera],
    background: Tensor | None = None,
    mode: Mode = "3dgs",
    backend: str = "auto",
    outputs: Outputs = "rgb",
    surfels_as_3dgs: bool = False,
) -> BatchRenderResult:
    """Render B frames of ``gaussians``, frame b from ``cameras[b]`` (or every frame from one shared camera).

    The same images as :func:`render` of each :meth:`GaussianBatch.frame` (same ``mode``, ``outputs``,
    ``surfels_as_3dgs``), drawn in one rasterizer call by a backend with a batched method (gsplat), frame by
    frame otherwise (the reference backend). ``background``: [3] for every frame or [B, 3] (None: black).
    All frames share the image size. ``outputs`` defaults to colour only, what videos and viewers need."""
    check_batch(gaussians)
    B = len(gaussians)
    dev = gaussians.means.device
    cams = batch_cameras(cameras, B)
    check_mode(mode, outputs, "render_batch")
    if background is None:
        background = torch.zeros(3, device=dev)
    if tuple(background.shape) not in ((3,), (B, 3)):
        raise ValueError(f"render_batch: background has shape {tuple(background.shape)}, expected (3,) or ({B}, 3)")
    if surfels_as_3dgs and mode == "2dgs":
        gaussians, mode = flat_surfels(gaussians), "3dgs"
    be = get_backend(backend, dev)
    cams = [c.to(dev) for c in cams]
    batched = getattr(be, "render_batch", None)
    if batched is None:
        return render_each(be, gaussians, cams, background.to(dev), mode, outputs=outputs)
    return batched(gaussians, cams, background.to(dev), mode, outputs=outputs)
