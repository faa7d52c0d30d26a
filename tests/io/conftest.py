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
