from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thgs.io.video import write_video


def make_frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Frame k: uniform grey level 10 + 8 k with a white 8x8 marker in the top-left corner."""
    out = []
    for k in range(n):
        img = np.full((h, w, 3), 10 + 8 * k, np.uint8)
        img[:8, :8] = 255
        out.append(img)
    return out


def tone(seconds: float, sr: int, channels: int = 1, click_at: float | None = None) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.1 * np.sin(2 * np.pi * 330 * t)
    if click_at is not None:
        i = int(round(click_at * sr))
        x[i:i + 8] = 0.95
    x = x.astype(np.float32)
    return np.stack([x] * channels) if channels > 1 else x


@pytest.fixture
def video_factory(tmp_path: Path):
    def make(name: str = "v.mp4", n: int = 12, fps: float = 10.0, audio_seconds: float | None = None,
             sr: int = 44100, channels: int = 2, rotation: int = 0, click_at: float | None = None,
             audio: bool = True, size: tuple[int, int] = (48, 64)) -> Path:
        frames = make_frames(n, *size)
        secs = n / fps if audio_seconds is None else audio_seconds
        a = (tone(secs, sr, channels, click_at), sr) if audio else None
        return write_video(tmp_path / name, frames, fps, audio=a, rotation=rotation)
    return make


def write_textured_video(path: Path, n: int = 40, fps: int = 25, faststart: bool = True, audio: bool = True) -> Path:
    """n noise frames (so every packet carries data) encoded with libx264 (mpeg4 when PyAV's FFmpeg lacks it),
    AAC audio; ``faststart`` puts the mp4 index before the media data (``movflags=faststart``)."""
    import av

    from thgs.io.video import pick_video_codec

    rng = np.random.default_rng(0)
    options = {"movflags": "faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream(pick_video_codec(), rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = None
        if audio:
            a = c.add_stream("aac" if path.suffix == ".mp4" else "pcm_s16le", rate=16000)
            a.layout = "mono"
        x = (0.1 * np.sin(2 * np.pi * 300 * np.arange(16000 * n // fps) / 16000) * 32767).astype(np.int16)
        per_frame = 16000 // fps
        for i in range(n):  # audio interleaved with the video, as recorders write it
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
            if a is not None:
                f = av.AudioFrame.from_ndarray(x[None, i * per_frame:(i + 1) * per_frame].copy(), format="s16",
                                               layout="mono")
                f.sample_rate, f.pts = 16000, i * per_frame
                for p in a.encode(f):
                    c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            for p in a.encode():
                c.mux(p)
    return path


def cut(path: Path, fraction: float, name: str) -> Path:
    """The first ``fraction`` of ``path``'s bytes, as a new file ``name`` beside it."""
    data = path.read_bytes()
    out = path.with_name(name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out
