"""Render a :class:`Drive` with a trained avatar, write videos (with sound) and PNG frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from thgs.animate.drive import Drive
from thgs.avatar.inference import Animator
from thgs.avatar.model import THGSAvatar
from thgs.render.base import render, render_batch


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


BATCH = 8
"""Frames per Animator call and per rasterizer call in :func:`render_frames`."""


def _audio_shape(drive: Drive) -> tuple[int, int, int]:
    """The shape (W, T, C) of one frame's audio window of ``drive``; without audio (8, 16, 0), C = 0 standing for
    the avatar's audio encoder's channels."""
    return tuple(drive.audio.shape[1:]) if drive.audio is not None else (8, 16, 0)  # type: ignore[return-value]


def _frame_inputs(drive: Drive, start: int, stop: int, dev: torch.device) -> tuple:
    """Frames ``start`` .. ``stop - 1`` of ``drive`` as the Animator's batched inputs on ``dev``: pose,
    expression, audio windows (or None), translation."""
    sl = slice(start, stop)
    audio = drive.audio[sl].to(dev) if drive.audio is not None else None
    return drive.pose[sl].to(dev), drive.expression[sl].to(dev), audio, drive.transl[sl].to(dev)


def _cameras(drive: Drive, start: int, stop: int):
    """The cameras of frames ``start`` .. ``stop - 1``: one per frame, or the drive's one shared camera."""
    return [drive.camera(t) for t in range(start, stop)] if len(drive.cameras) > 1 else drive.cameras[0]


def drive_animator(model: THGSAvatar, drive: Drive, batch: int = 1) -> Animator:
    """The fast-path :class:`Animator` of ``model`` for the frames of ``drive`` (its betas; on CUDA a CUDA graph
    of ``batch`` frames). Drive frames carry no frame index, so the model's per-frame refinements never apply."""
    dev = next(model.state.parameters()).device
    anim = Animator.from_model(model, betas=drive.betas.to(dev))
    if dev.type == "cuda":
        anim.capture(batch=batch, audio_shape=_audio_shape(drive))
    return anim


@torch.no_grad()
def render_frame_batch(model: THGSAvatar, drive: Drive, start: int, stop: int, background: Tensor,
                       mode: str = "2dgs", backend: str = "auto", animator: Animator | None = None,
                       surfels_as_3dgs: bool = False) -> Tensor:
    """Frames ``start`` .. ``stop - 1`` of ``drive``: float [B, H, W, 3] in [0, 1], the images of
    :func:`render_frame` with ``animator`` for each frame, from one batched Animator call and one
    :func:`~thgs.render.base.render_batch` (colour only). ``animator``: built by :func:`drive_animator` (None:
    built here, with a CUDA graph of this batch size)."""
    if not 0 <= start < stop <= len(drive):
        raise ValueError(f"render_frame_batch: frames {start}..{stop - 1} are not within the drive's {len(drive)}")
    dev = next(model.state.parameters()).device
    if animator is None:
        animator = drive_animator(model, drive, batch=stop - start)
    batch = animator.animate(*_frame_inputs(drive, start, stop, dev))
    res = render_batch(batch, _cameras(drive, start, stop), background.to(dev), mode=mode,  # type: ignore[arg-type]
                       backend=backend, outputs="rgb", surfels_as_3dgs=surfels_as_3dgs)
    return res.rgb.clamp(0, 1)


def render_frames(model: THGSAvatar, drive: Drive, background: Tensor, mode: str = "2dgs", backend: str = "auto",
                  progress: Callable[[int], None] | None = None, surfels_as_3dgs: bool = False,
                  batch: int = BATCH) -> Iterator[np.ndarray]:
    """Yield uint8 [H, W, 3] frames of the whole drive in order, rendered ``batch`` at a time
    (:func:`render_frame_batch`; on CUDA the Animator replays a graph of that many frames, the last, shorter
    batch runs eagerly; where the 3DGS rasterizer draws them, ``surfels_as_3dgs`` or a 3dgs avatar, the full
    batches come from :class:`~thgs.animate.recorded.RecordedFrames`, the animation and projection recorded
    as one graph); ``progress(t)`` is called for each frame as it is yielded."""
    if batch < 1:
        raise ValueError(f"render_frames: batch must be >= 1, got {batch}")
    T = len(drive)
    if not T:
        return
    B = min(batch, T)
    animator = drive_animator(model, drive, batch=B)
    dev = next(model.state.parameters()).device
    drive = replace(drive, cameras=[c.to(dev) for c in drive.cameras])  # moved once, not once per batch
    background = background.to(dev)
    recorded = _recorded_frames(animator, drive, background, B, mode, backend, surfels_as_3dgs)
    for start in range(0, T, B):
        stop = min(start + B, T)
        if recorded is not None and stop - start == B:
            if len(drive.cameras) > 1:
                recorded.set_cameras(_cameras(drive, start, stop))
            images = to_uint8(recorded(*_frame_inputs(drive, start, stop, dev)).rgb.clamp(0, 1))
        else:
            images = to_uint8(render_frame_batch(model, drive, start, stop, background, mode, backend,
                                                 animator=animator, surfels_as_3dgs=surfels_as_3dgs))
        for k in range(stop - start):
            if progress is not None:
                progress(start + k)
            yield images[k]


def _recorded_frames(animator: Animator, drive: Drive, background: Tensor, batch: int, mode: str, backend: str,
                     surfels_as_3dgs: bool):
    """Where the frames are drawn by the 3DGS rasterizer (a 3dgs avatar, or 2DGS surfels drawn flat) on CUDA with
    gsplat: a recorded :class:`~thgs.animate.recorded.RecordedFrames` of ``batch`` frames (animation and projection
    in one CUDA graph); else None."""
    from thgs.animate.recorded import RecordedFrames

    if not (mode == "3dgs" or surfels_as_3dgs):
        return None
    frames = RecordedFrames(animator, _cameras(drive, 0, batch), background, batch=batch, mode=mode, backend=backend)
    return frames if frames.record(audio_shape=_audio_shape(drive)) else None


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


__all__ = ["BATCH", "drive_animator", "even_size", "render_frame", "render_frame_batch", "render_frames", "to_uint8",
           "write_mp4"]
