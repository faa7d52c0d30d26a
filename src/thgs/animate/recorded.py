"""Whole frames of a trained avatar at the lowest cost per frame: animation and projection recorded as one CUDA
graph, then gsplat's tile sort and rasterization.

:class:`RecordedFrames` draws B frames (colour only, 3DGS; a 2DGS avatar's surfels as flat 3D Gaussians,
:func:`thgs.render.base.flat_surfels`) for a fixed image size from the frame inputs. On CUDA with gsplat,
:meth:`RecordedFrames.record` captures the :class:`~thgs.avatar.inference.Animator`'s posing pass followed by
:func:`thgs.render.staged.project` (projection and view-dependent colours, static shapes) in one graph; a call
copies the inputs in, replays it, and runs :func:`thgs.render.staged.draw` (three gsplat calls, one host read of
the intersection count). The cameras are graph inputs too (:meth:`RecordedFrames.set_cameras`), so a moving
viewer camera of the same size replays the same graph. Elsewhere (the CPU, no gsplat) the same frames come from
``Animator.animate`` and :func:`~thgs.render.base.render_batch`, which is also what the images equal on the GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from thgs.avatar.inference import Animator, record_graph
from thgs.render import staged
from thgs.render.base import BatchRenderResult, Camera, GaussianBatch, batch_cameras, flat_surfels, render_batch
from thgs.render.reference import EPS2D


class RecordedFrames:
    """B colour-only frames of an :class:`Animator`'s avatar from one camera each (or one shared), at one size.

    Args:
        animator: the avatar's fast path (``Animator.from_model``).
        cameras: one shared :class:`Camera` or B of them, all of one size and near/far.
        background: [3] colour behind the avatar.
        batch: frames per call (B).
        mode: the avatar's Gaussians, "2dgs" (drawn as flat 3D Gaussians) or "3dgs".
        backend: the renderer of the unrecorded path (``render_batch``'s ``backend``).
    """

    def __init__(self, animator: Animator, cameras: Camera | list[Camera], background: Tensor, batch: int = 1,
                 mode: str = "2dgs", backend: str = "auto") -> None:
        if batch < 1:
            raise ValueError(f"RecordedFrames: batch must be >= 1, got {batch}")
        if mode not in ("2dgs", "3dgs"):
            raise ValueError(f"RecordedFrames: mode must be '2dgs' or '3dgs', got {mode!r}")
        self.animator = animator
        self.batch = batch
        self.mode = mode
        self.backend = backend
        dev = animator.device
        self.background = background.to(dev, torch.float32).reshape(3)
        cams = batch_cameras(cameras, batch, "RecordedFrames")
        self.width, self.height = cams[0].width, cams[0].height
        self.near, self.far = cams[0].near, cams[0].far
        self.viewmats = torch.zeros(batch, 1, 4, 4, device=dev)
        self.Ks = torch.zeros(batch, 1, 3, 3, device=dev)
        self.campos = torch.zeros(batch, 1, 3, device=dev)
        self.cameras: list[Camera] = []
        self.set_cameras(cams)
        self._graph: Any = None
        self._inputs: dict[str, Tensor | None] = {}
        self._projection: staged.Projection | None = None

    def set_cameras(self, cameras: Camera | list[Camera]) -> None:
        """Point the frames at new cameras (one shared or B) of the same size and near/far; a recorded graph
        reads them at its next replay."""
        cams = [c.to(self.animator.device) for c in batch_cameras(cameras, self.batch, "RecordedFrames")]
        c0 = cams[0]
        if (c0.width, c0.height, c0.near, c0.far) != (self.width, self.height, self.near, self.far):
            raise ValueError(f"RecordedFrames.set_cameras: cameras are {c0.width}x{c0.height} (near/far "
                             f"{c0.near}/{c0.far}); these frames are {self.width}x{self.height} "
                             f"({self.near}/{self.far})")
        for b in range(self.batch):
            c = cams[b] if len(cams) > 1 else c0
            self.viewmats[b, 0].copy_(c.world_to_cam)
            self.Ks[b, 0].copy_(c.K)
            self.campos[b, 0].copy_(c.center)
        self.cameras = cams

    @property
    def recorded(self) -> bool:
        """Whether calls replay a recorded graph (after a successful :meth:`record`)."""
        return self._graph is not None

    def _gaussians(self, batch: GaussianBatch) -> GaussianBatch:
        return flat_surfels(batch) if self.mode == "2dgs" else batch

    def _project(self, batch: GaussianBatch) -> staged.Projection:
        return staged.project(self._gaussians(batch), self.viewmats, self.Ks, self.campos, self.width,
                              self.height, self.near, self.far, EPS2D)

    def _staged(self) -> bool:
        from thgs.render import gsplat_backend

        return self.animator.device.type == "cuda" and self.backend in ("auto", "gsplat") and \
            gsplat_backend.is_available()

    @torch.no_grad()
    def record(self, audio_shape: tuple[int, int, int] = (8, 16, 0), warmup: int = 3, compile: bool = False) -> bool:
        """Record the animation and the projection of B frames as one CUDA graph (audio windows of
        ``audio_shape`` W, T, C when the avatar uses SAAM; C = 0: the encoder's channels; ``compile``: the
        compiled posing, :meth:`Animator.posing_function`). Returns False, and calls keep the unrecorded path,
        where gsplat cannot run (no CUDA GPU, not installed)."""
        if not self._staged():
            return False
        a = self.animator
        ins = a.static_inputs(self.batch, audio_shape)
        pose = a.posing_function(compile)

        def step() -> staged.Projection:
            return self._project(pose(ins["pose"], ins["expression"], ins["audio"], ins["transl"]))

        self._graph, self._projection = record_graph(step, a.device, warmup)
        self._inputs = ins
        return True

    @torch.no_grad()
    def __call__(self, pose: Tensor, expression: Tensor | None = None, audio: Tensor | None = None,
                 transl: Tensor | None = None) -> BatchRenderResult:
        """B frames (the Animator's inputs: pose [B, J, 3], expression [B, E] or None, audio [B, W, T, C] or
        None, transl [B, 3] or None) -> rgb [B, H, W, 3] and alpha [B, H, W, 1] (radii [B, N] on the staged
        path). A recorded graph is replayed when the inputs match what it recorded; its images are
        overwritten by the next call."""
        if pose.shape[0] != self.batch:
            raise ValueError(f"RecordedFrames: pose has {pose.shape[0]} frames, these frames take {self.batch}")
        a = self.animator
        if transl is None:
            transl = torch.zeros(self.batch, 3, dtype=pose.dtype, device=pose.device)
        if self._graph is not None and a.fits(self._inputs, expression, audio):
            a.check_inputs(pose, expression, audio, transl)
            a.load_inputs(self._inputs, pose, expression, audio, transl)
            self._graph.replay()
            p = self._projection
        elif self._staged():
            p = self._project(a.animate(pose, expression, audio, transl))
        else:
            return render_batch(a.animate(pose, expression, audio, transl), self.cameras, self.background,
                                mode=self.mode, backend=self.backend, outputs="rgb",  # type: ignore[arg-type]
                                surfels_as_3dgs=self.mode == "2dgs")
        assert p is not None
        from thgs.render.gsplat_backend import max_radii

        rgb, alpha = staged.draw(p, self.width, self.height, self.background.expand(self.batch, 1, 3))
        return BatchRenderResult(rgb=rgb, alpha=alpha, depth=None, radii=max_radii(p.radii[:, 0], 2))


__all__ = ["RecordedFrames"]
