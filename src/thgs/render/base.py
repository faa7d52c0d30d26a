"""The renderer interface shared by every backend.

Conventions (the same as gsplat and OpenCV):
- camera looks down +z, x right, y down; ``K`` is [3, 3] pixels; ``world_to_cam`` is [4, 4].
- quaternions are (w, x, y, z), need not be normalised; ``scales`` are activated (positive, world units).
- 2D Gaussians (``mode="2dgs"``) use the first two scale components as the disk's axes; the third
  is ignored; the disk normal is the rotation's third column.
- ``colors`` is [N, 3] RGB or [N, K, 3] spherical-harmonic coefficients with K = (sh_degree + 1)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

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


class Backend(Protocol):
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


def flat_surfels(gaussians: GaussianSet) -> GaussianSet:
    """2DGS surfels as 3D Gaussians with a zero third scale, for the 3DGS rasterizer.

    The same disks (the first two scales span them, the rotation's third column is their normal) drawn as
    flat ellipsoids: 3DGS projects each to a 2D Gaussian (plus the ``eps2d`` screen dilation) instead of
    intersecting the pixel ray with the disk, so the image differs slightly from true 2DGS, most at grazing
    angles (docs/benchmarks.md gives the PSNR between the two); gsplat's 3DGS kernels are about twice as fast."""
    scales = torch.cat([gaussians.scales[:, :2], torch.zeros_like(gaussians.scales[:, 2:])], -1)
    return GaussianSet(means=gaussians.means, quats=gaussians.quats, scales=scales, opacities=gaussians.opacities,
                       colors=gaussians.colors, sh_degree=gaussians.sh_degree)


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
    if mode not in ("3dgs", "2dgs"):
        raise ValueError(f"render: mode must be '3dgs' or '2dgs', got {mode!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"render: outputs must be one of {', '.join(OUTPUTS)}, got {outputs!r}")
    if background is None:
        background = torch.zeros(3, device=dev)
    if surfels_as_3dgs and mode == "2dgs":
        gaussians, mode = flat_surfels(gaussians), "3dgs"
    return get_backend(backend, dev)(gaussians, camera.to(dev), background.to(dev), mode, outputs=outputs)
