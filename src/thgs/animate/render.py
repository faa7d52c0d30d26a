"""Render a :class:`Drive` with a trained avatar, write videos (with sound) and PNG frames."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from thgs.animate.drive import Drive
from thgs.avatar.inference import Animator
from thgs.avatar.model import THGSAvatar
from thgs.render.base import render


@torch.no_grad()
def render_frame(model: THGSAvatar, drive: Drive, t: int, background: Tensor, mode: str = "2dgs",
                 backend: str = "auto", animator: Animator | None = None, surfels_as_3dgs: bool = False) -> Tensor:
    """Frame ``t`` of ``drive``: float [H, W, 3] in [0, 1] (colour only is rasterized: no depth, no normals).

    Without ``animator`` the avatar is posed by ``model(drive.inputs(t))``; with one (built by
    :func:`drive_animator` for this model and drive) by the fast path, which gives the same Gaussians.
    ``surfels_as_3dgs`` draws 2DGS surfels through the 3DGS rasterizer (:func:`thgs.render.base.flat_surfels`)."""
    dev = next(model.state.parameters()).device
    inputs = drive.inputs(t)
    inputs = type(inputs)(**{k: (v.to(dev) if isinstance(v, Tensor) else v) for k, v in vars(inputs).items()})
    if animator is not None:
        gs = animator(inputs.pose, inputs.expression, inputs.audio_window, inputs.transl)
    else:
        gs = model(inputs)
    res = render(gs, drive.camera(t).to(dev), background.to(dev), mode=mode, backend=backend,  # type: ignore[arg-type]
                 outputs="rgb", surfels_as_3dgs=surfels_as_3dgs)
    return res.rgb.clamp(0, 1)


def drive_animator(model: THGSAvatar, drive: Drive) -> Animator:
    """The fast-path :class:`Animator` of ``model`` for the frames of ``drive`` (its betas; a CUDA graph of
    one frame on CUDA). Drive frames carry no frame index, so the model's per-frame refinements never apply."""
    dev = next(model.state.parameters()).device
    anim = Animator.from_model(model, betas=drive.betas.to(dev))
    if dev.type == "cuda":
        anim.capture(batch=1, audio_shape=tuple(drive.audio.shape[1:]) if drive.audio is not None else (8, 16, 0))
    return anim


def render_frames(model: THGSAvatar, drive: Drive, background: Tensor, mode: str = "2dgs", backend: str = "auto",
                  progress: Callable[[int], None] | None = None, surfels_as_3dgs: bool = False) -> Iterator[np.ndarray]:
    """Yield uint8 [H, W, 3] frames of the whole drive (posed by :func:`drive_animator`)."""
    animator = drive_animator(model, drive) if len(drive) else None
    for t in range(len(drive)):
        img = render_frame(model, drive, t, background, mode, backend, animator=animator,
                           surfels_as_3dgs=surfels_as_3dgs)
        if progress is not None:
            progress(t)
        yield to_uint8(img)


def to_uint8(img: Tensor) -> np.ndarray:
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def even_size(img: np.ndarray) -> np.ndarray:
    """Pad to even width and height (H.264 with yuv420p needs them) by repeating the last row/column."""
    h, w = img.shape[:2]
    if h % 2 or w % 2:
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return img


def write_mp4(path: str | Path, frames, fps: float, clip: tuple[np.ndarray, int] | None = None,
              png_dir: str | Path | None = None) -> Path:
    """H.264 (libx264, else mpeg4) + AAC mp4 written atomically; ``clip`` is the audio that starts with the
    first frame. With ``png_dir`` every frame is also saved as ``png_dir/000000.png`` (each atomically)."""
    from PIL import Image

    from thgs.io.video import write_video
    from thgs.utils.io import atomic_path

    def stream():
        for t, img in enumerate(frames):
            if png_dir is not None:
                with atomic_path(Path(png_dir) / f"{t:06d}.png") as tmp:
                    Image.fromarray(img).save(tmp)
            yield even_size(img)

    audio = None
    if clip is not None and len(clip[0]):
        audio = (np.asarray(clip[0], dtype=np.float32), int(clip[1]))
    return write_video(path, stream(), fps, audio=audio)


__all__ = ["drive_animator", "even_size", "render_frame", "render_frames", "to_uint8", "write_mp4"]
