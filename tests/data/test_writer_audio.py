"""The writer stores the audio that thgs.io.audio_io decodes: one decoding and resampling path."""

import numpy as np
import pytest

from thgs.data import open_subject, write_subject
from thgs.data import writer as writer_module
from thgs.io.audio_io import read_audio, write_wav

T, H, W, FPS = 10, 16, 16, 25.0
CAMERA = {"K": [[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]], "world_to_cam": np.eye(4).tolist()}


def _tone(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    left = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 2900 * t)
    return np.stack([left, -0.5 * left]).astype(np.float32)


def _video_with_sound(path, sr: int, seconds: float):
    """A small mp4 (MPEG-4 video, AAC stereo sound), encoded with PyAV by thgs.io.video.write_video."""
    from thgs.io.video import write_video

    frames = [np.full((H, W, 3), 10 * k, np.uint8) for k in range(int(seconds * FPS))]
    return write_video(path, frames, FPS, audio=(_tone(sr, seconds), sr), codec="mpeg4")


def _written_audio(tmp_path, name, audio) -> np.ndarray:
    frames = [np.zeros((H, W, 3), np.uint8)] * T
    root = write_subject(tmp_path / name, frames=frames, fps=FPS, camera=CAMERA, audio=audio, progress=False)
    samples, sr = open_subject(root).audio()
    assert sr == 16000
    return samples


def _as_stored(x: np.ndarray) -> np.ndarray:
    """Float samples as audio.wav holds them (16-bit, scaled by 32767) and the subject reads them back."""
    return (np.clip(np.round(x.astype(np.float64) * 32767.0), -32768, 32767) / 32767.0).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_writer_stores_what_read_audio_decodes_from_a_wav(tmp_path, rate):
    path = write_wav(tmp_path / "speech.wav", _tone(rate, 0.5), rate)
    expected, sr = read_audio(path, sample_rate=16000)
    assert sr == 16000 and abs(len(expected) - 8000) <= 2
    np.testing.assert_array_equal(_written_audio(tmp_path, "wav", path), _as_stored(expected))


def test_writer_stores_what_read_audio_decodes_from_a_video(tmp_path):
    path = _video_with_sound(tmp_path / "clip.mp4", 44100, 0.6)
    expected, sr = read_audio(path, sample_rate=16000)
    assert sr == 16000 and np.abs(expected).max() > 0.1  # the sound is there, not silence
    np.testing.assert_array_equal(_written_audio(tmp_path, "mp4", path), _as_stored(expected))


def test_an_array_is_resampled_by_audio_io(tmp_path):
    from thgs.io.audio_io import resample

    x = _tone(22050, 0.5)[0]
    expected = resample(x, 22050, 16000)
    np.testing.assert_array_equal(_written_audio(tmp_path, "arr", (x, 22050)), _as_stored(expected))


def test_inputs_are_checked_once(tmp_path, monkeypatch):
    calls = []
    real = writer_module._prepare
    monkeypatch.setattr(writer_module, "_prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    count = []
    real_count = writer_module._count_problems
    monkeypatch.setattr(writer_module, "_count_problems", lambda *a, **k: count.append(1) or real_count(*a, **k))
    _written_audio(tmp_path, "list", (np.zeros(8000, np.float32), 16000))
    assert (len(calls), len(count)) == (1, 1)
    frames = iter([np.zeros((H, W, 3), np.uint8)] * T)  # not counted before it is written
    write_subject(tmp_path / "iter", frames=frames, fps=FPS, camera=CAMERA, progress=False)
    assert (len(calls), len(count)) == (2, 2)
