"""Turn a video file into a thgs subject: upright frames at a constant rate, 16 kHz mono audio, a guessed
camera. Masks, keypoints and body parameters come later (the subject records that it lacks them).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from thgs.io.video import VideoError, iter_frames, output_size, probe_video, read_video_audio

FOCAL_FACTOR = 1.2
"""Guessed focal length in pixels = FOCAL_FACTOR x max(width, height): a 45-degree field of view across the
longer image side, typical of a phone or webcam framing a person. Recorded as an estimate in meta.json."""


AUTO_PAD_SECONDS = 0.2
"""Audio that ends at most this much before the last frame is padded with silence without asking: real
recordings often end their audio track a frame or two early (audio codec frame granularity)."""


def guess_camera(width: int, height: int, focal_factor: float = FOCAL_FACTOR) -> dict[str, Any]:
    """A pinhole camera at the world origin looking down +z (OpenCV): ``f = focal_factor * max(w, h)``,
    principal point at the image centre, ``estimated: True``."""
    f = float(focal_factor) * max(int(width), int(height))
    K = [[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]]
    return {"K": K, "world_to_cam": np.eye(4).tolist(), "width": int(width), "height": int(height),
            "estimated": True}


@dataclass(frozen=True)
class Clip:
    """Which part of a video becomes the subject, at what size and rate.

    ``start``: seconds skipped at the beginning; ``max_seconds``: at most this much is kept; ``height``:
    output height in pixels (width keeps the aspect ratio, rounded to even; None keeps the size); ``fps``:
    output frame rate (frames are selected, not blended; None keeps the video's average rate);
    ``pad_audio``: pad audio that ends before the video with silence, however short it is (by default only
    up to :data:`AUTO_PAD_SECONDS`; a larger gap is an error)."""

    start: float = 0.0
    max_seconds: float | None = None
    height: int | None = None
    fps: float | None = None
    pad_audio: bool = False


@dataclass(frozen=True)
class Tracked:
    """What a tracker found for the video: body ``params`` and ``body`` to store, ``expected_frames`` (the
    number of frames they describe; a video that decodes to another count is refused), and ``camera(width,
    height) -> camera dict`` for the output size (None: :func:`guess_camera`)."""

    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    expected_frames: int | None = None
    camera: Callable[[int, int], dict[str, Any]] | None = None


def ingest_video(video: str | os.PathLike, out_dir: str | os.PathLike, clip: Clip = Clip(), *,
                 tracked: Tracked = Tracked(), overwrite: bool = False, progress: bool = True,
                 name: str | None = None, source: str | None = None) -> Path:
    """Decode ``video`` into a new subject at ``out_dir`` (streamed frame by frame through
    :class:`thgs.data.writer.SubjectWriter`, so nothing partial is left on failure). The train/test split is
    :func:`thgs.data.format.video_split` (the paper's for videos of 60 s or more, else the last 20% held out).

    Args:
        clip: the part of the video, its output size and rate (:class:`Clip`).
        tracked: body parameters and camera from a tracker (:class:`Tracked`); none by default.
        source: the meta.json ``source`` text (default ``ingest:<file name>``).
    Raises:
        VideoError: unreadable video, no audio track, no frames, or a start past the end.
        thgs.data.format.SubjectError: the writer refused the result (e.g. audio shorter than the video).
    """
    from tqdm import tqdm

    from thgs.data.format import video_split
    from thgs.data.writer import SubjectWriter

    start, max_seconds, height, fps = clip.start, clip.max_seconds, clip.height, clip.fps
    expected_frames, camera = tracked.expected_frames, tracked.camera
    video, out_dir = Path(video), Path(out_dir)
    info = probe_video(video)
    if not info.has_audio:
        raise VideoError(f"{video}: has no audio track; a talking-avatar subject needs the speech "
                         "(add one, e.g. mux a WAV into the video, and ingest again)")
    if info.duration is not None and start >= info.duration:
        raise VideoError(f"{video}: --start {start:g} s is past the end of the video ({info.duration:.3f} s)")
    out_fps = float(fps) if fps else info.fps
    width, out_h = output_size(info.width, info.height, height)
    # Decode the audio first: a broken audio track fails before any frame is written.
    audio = read_video_audio(video, start=start, duration=max_seconds)
    expected = None
    if info.duration is not None:
        span = info.duration - start
        if max_seconds is not None:
            span = min(span, max_seconds)
        expected = max(1, int(math.ceil(span * out_fps - 1e-6)))
    source = source or f"ingest:{video.name}"
    extra = [f"start={start:g}s"] if start else []
    if max_seconds is not None:
        extra.append(f"max_seconds={max_seconds:g}")
    if fps:
        extra.append(f"fps={out_fps:g}")
    elif info.variable_rate:
        extra.append(f"variable frame rate resampled to {out_fps:g} fps")
    if extra:
        source += " (" + ", ".join(extra) + ")"
    writer = SubjectWriter(out_dir, fps=out_fps, width=width, height=out_h, overwrite=overwrite)
    with writer, tqdm(total=expected, desc=f"ingest {video.name}", unit="frame", disable=not progress,
                      leave=False) as bar:
        for frame in iter_frames(video, start=start, max_seconds=max_seconds, fps=fps, height=height):
            if expected_frames is not None and writer.num_frames >= expected_frames:
                raise VideoError(f"{video}: decodes to more than the {expected_frames} frames the parameters "
                                 "describe")
            writer.add_frame(frame.image)
            bar.update(1)
        if writer.num_frames == 0:
            raise VideoError(f"{video}: no frames decoded after --start {start:g} s")
        if expected_frames is not None and writer.num_frames != expected_frames:
            raise VideoError(f"{video}: decodes to {writer.num_frames} frames but the parameters describe "
                             f"{expected_frames}")
        n_audio = int(round(writer.num_frames / out_fps * 16000))
        audio = audio[:n_audio]
        if audio.size == 0:
            raise VideoError(f"{video}: the audio track holds no samples in the ingested span")
        short = (n_audio - audio.size) / 16000.0
        if short > 0:
            if short > AUTO_PAD_SECONDS and not clip.pad_audio:
                raise VideoError(f"{video}: the audio track lasts {audio.size / 16000:.3f} s but the "
                                 f"{writer.num_frames} frames last {n_audio / 16000:.3f} s; pass --pad-audio to "
                                 "pad the end with silence")
            audio = np.concatenate([audio, np.zeros(n_audio - audio.size, np.float32)])
            source += f" [audio end padded with {short:.3f} s of silence]"
        cam = camera(width, out_h) if camera is not None else guess_camera(width, out_h)
        return writer.finish(camera=cam, audio=(audio, 16000), name=name, source=source, params=tracked.params,
                             body=tracked.body, split=video_split(writer.num_frames, out_fps))
