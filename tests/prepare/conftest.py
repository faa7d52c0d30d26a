"""Fixtures for the prepare tests: the shipped real frame and small subjects made from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seated_woman_256x320.jpg"
FPS = 25.0


def person_frame() -> np.ndarray:
    """The shipped real frame (256 x 320 RGB, a seated woman; licence beside it)."""
    from PIL import Image

    with Image.open(FIXTURE) as im:
        return np.asarray(im.convert("RGB")).copy()


def write_test_subject(out: Path, frames: list[np.ndarray]) -> Path:
    """A subject as `thgs ingest` writes it (frames, silent audio, guessed camera), no masks or params."""
    from thgs.data.writer import write_subject
    from thgs.io.ingest import guess_camera

    H, W = frames[0].shape[:2]
    audio = np.zeros(int(np.ceil(len(frames) / FPS * 16000)), np.float32)
    return write_subject(out, frames=frames, fps=FPS, camera=guess_camera(W, H), audio=(audio, 16000),
                         source="ingest:test.mp4", progress=False)


def moving_person(n: int) -> list[np.ndarray]:
    """``n`` frames of the real frame shifted by a pixel each (a person who barely moves)."""
    img = person_frame()
    return [np.roll(img, k, axis=1) for k in range(n)]


@pytest.fixture
def mediapipe():
    return pytest.importorskip("mediapipe")
