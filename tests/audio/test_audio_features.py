from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from thgs.audio import (AudioFeatureError, AudioFeatures, frame_features, load_precomputed, neighbourhood,
                        resample_windows, subject_features)
from thgs.audio import encoders as enc_mod
from thgs.io.audio_io import write_wav

SR = 16000


def _speechlike(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    x = env * (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t * (1 + 0.1 * t)))
    return (x + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_mel_shapes_and_options():
    x = _speechlike(1.0)
    f = frame_features((x, SR), 30, 30.0)
    assert isinstance(f, AudioFeatures)
    assert f.windows.shape == (30, 16, 64) and f.windows.dtype == np.float32
    assert f.dim == 64 and f.encoder == "mel" and f.fps == 30.0 and f.num_frames == 30
    assert np.isfinite(f.windows).all() and f.windows.std() > 0.1
    m = frame_features((x, SR), 25, 25.0, mfcc=13, n_mels=40)
    assert m.windows.shape == (25, 16, 13)
    assert f.tensor().shape == (30, 16, 64)


@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97])
@pytest.mark.parametrize("frame,u", [(0, 0.5), (7, 0.15), (20, 0.85), (33, 0.5)])
def test_click_peaks_in_its_frame(fps, frame, u):
    # a click anywhere inside a frame (here 15%..85% of the way through it) peaks in that frame
    t_click = (frame + u) / fps
    x = np.zeros(int(1.5 * SR), np.float32)
    x[int(round(t_click * SR))] = 1.0
    n = int(1.5 * fps)
    w = frame_features((x, SR), n, fps).windows
    energy = w[:, 7:9].mean(axis=(1, 2))
    assert int(energy.argmax()) == math.floor(t_click * fps)


def test_window_centre_tracks_frame_centre():
    # a click at the centre of frame 10 lands in the middle steps of that frame's window
    fps = 25.0
    x = np.zeros(SR, np.float32)
    x[int(round(10.5 / fps * SR))] = 1.0
    w = frame_features((x, SR), 25, fps).windows[10].mean(axis=1)
    assert int(w.argmax()) in (7, 8)


def test_resampling_and_stereo_match_mono_16k():
    x = _speechlike(1.0)
    ref = frame_features((x, SR), 30, 30.0).windows
    from thgs.io.audio_io import resample
    x44 = resample(x, SR, 44100)
    w44 = frame_features((x44, 44100), 30, 30.0).windows
    assert np.corrcoef(ref.ravel(), w44.ravel())[0, 1] > 0.98
    stereo = np.stack([x, x])
    ws = frame_features((stereo, SR), 30, 30.0).windows
    np.testing.assert_allclose(ws, ref, atol=1e-4)
    with pytest.raises(AudioFeatureError, match="channel"):
        frame_features((np.zeros((40, 40), np.float32), SR), 1, 30.0)


def test_wav_path_input(tmp_path):
    x = _speechlike(1.0)
    p = write_wav(tmp_path / "a.wav", x, SR)
    a = frame_features(p, 30, 30.0).windows
    b = frame_features((x, SR), 30, 30.0).windows
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999


def test_silence_is_finite():
    w = frame_features((np.zeros(SR, np.float32), SR), 30, 30.0).windows
    assert np.isfinite(w).all()
    w = frame_features((np.zeros(SR, np.float32), SR), 30, 30.0, normalize="none").windows
    assert np.isfinite(w).all()


def test_short_audio_rejected_or_padded():
    x = _speechlike(0.5)
    with pytest.raises(AudioFeatureError, match=r"0\.500 s.*1\.000 s"):
        frame_features((x, SR), 30, 30.0)
    w = frame_features((x, SR), 30, 30.0, pad_audio=True).windows
    assert w.shape == (30, 16, 64) and np.isfinite(w).all()
    # within one frame of the video's length is accepted without padding
    frame_features((x[: int(SR * (0.5 - 0.02))], SR), 15, 30.0)


def test_bad_requests():
    x = _speechlike(0.2)
    with pytest.raises(AudioFeatureError, match="unknown audio encoder 'nope'"):
        frame_features((x, SR), 3, 30.0, encoder="nope")
    with pytest.raises(AudioFeatureError, match="unknown option.*bands"):
        frame_features((x, SR), 3, 30.0, bands=3)
    with pytest.raises(AudioFeatureError, match="num_frames"):
        frame_features((x, SR), 0, 30.0)
    with pytest.raises(AudioFeatureError, match="NaN"):
        frame_features((np.full(100, np.nan, np.float32), SR), 1, 30.0)
    with pytest.raises(AudioFeatureError, match="no such audio file"):
        frame_features("/nonexistent/a.wav", 1, 30.0)


def test_cache_hit_and_keys(tmp_path, monkeypatch):
    x = _speechlike(0.5)
    calls = []
    orig = enc_mod.MelEncoder.encode

    def counting(self, samples, valid):
        calls.append(1)
        return orig(self, samples, valid)

    monkeypatch.setattr(enc_mod.MelEncoder, "encode", counting)
    a = frame_features((x, SR), 15, 30.0, cache_dir=tmp_path)
    b = frame_features((x, SR), 15, 30.0, cache_dir=tmp_path, n_mels=64)  # explicit default: same key
    assert len(calls) == 1
    np.testing.assert_array_equal(a.windows, b.windows)
    c = frame_features((x, SR), 15, 30.0, cache_dir=tmp_path, n_mels=40)
    d = frame_features((x * 0.5, SR), 15, 30.0, cache_dir=tmp_path)
    assert len(calls) == 3 and c.dim == 40
    assert len(list(tmp_path.glob("mel-*.npy"))) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers
    del d


def test_neighbourhood():
    t, s, c = 10, 16, 3
    w = torch.arange(t, dtype=torch.float32)[:, None, None].expand(t, s, c) + 1.0
    n = neighbourhood(w, 5)
    assert n.shape == (8, s, c)
    assert n[:, 0, 0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]  # frames 1..8 (+1)
    b = neighbourhood(w, torch.tensor([0, 9]))
    assert b.shape == (2, 8, s, c)
    assert b[0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4]
    assert b[1, :, 0, 0].tolist() == [6, 7, 8, 9, 10, 0, 0, 0]
    assert neighbourhood(w, torch.tensor(3)).shape == (8, s, c)
    assert neighbourhood(w, 2, size=4)[:, 0, 0].tolist() == [1, 2, 3, 4]
    with pytest.raises(IndexError):
        neighbourhood(w, 10)


def test_precomputed(tmp_path):
    rng = np.random.default_rng(0)
    eo = rng.standard_normal((250, 16, 44)).astype(np.float32)  # 10 s at 25 fps
    p = tmp_path / "aud_eo.npy"
    np.save(p, eo)
    f = frame_features(None, 300, 30.0, encoder="precomputed", path=p)
    assert f.windows.shape == (300, 16, 44) and f.dim == 44
    np.testing.assert_allclose(f.windows[0], eo[0], atol=1e-6)
    np.testing.assert_allclose(f.windows[-1], eo[-1], atol=1e-6)
    g = load_precomputed(p, 300, 30.0, source_fps=25.0)
    np.testing.assert_allclose(g.windows, f.windows, atol=1e-5)
    with pytest.raises(AudioFeatureError, match="covers 10.000 s"):
        load_precomputed(p, 400, 30.0, source_fps=25.0)
    seq = tmp_path / "seq.npy"
    np.save(seq, rng.standard_normal((100, 8)).astype(np.float32))
    with pytest.raises(AudioFeatureError, match="source_fps"):
        load_precomputed(seq, 30, 30.0)
    assert load_precomputed(seq, 30, 30.0, source_fps=100.0).windows.shape == (30, 16, 8)
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(AudioFeatureError, match="bad.npy"):
        load_precomputed(tmp_path / "bad.npy", 3, 30.0)
    with pytest.raises(AudioFeatureError, match="path"):
        frame_features(None, 3, 30.0, encoder="precomputed")


def test_resample_windows_linear():
    a = np.arange(4, dtype=np.float32)[:, None]
    np.testing.assert_allclose(resample_windows(a, 8)[:, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])


def test_subject_features_write_and_reuse(tmp_path, monkeypatch):
    monkeypatch.setenv("THGS_CACHE_DIR", str(tmp_path / "cache"))
    from thgs.data.subject import open_subject
    from thgs.data.writer import write_subject

    x = _speechlike(1.0)
    root = write_subject(tmp_path / "subj", frames=[np.zeros((8, 8, 3), np.uint8)] * 30, fps=30.0,
                         camera={"K": [[10, 0, 4], [0, 10, 4], [0, 0, 1]], "world_to_cam": np.eye(4)},
                         audio=(x, SR), progress=False)
    subj = open_subject(root)
    a = subject_features(subj)
    assert (root / "features" / "mel.npy").is_file()
    assert "mel" in json.loads((root / "meta.json").read_text())["has"]["audio_features"]
    assert open_subject(root).problems() == []
    meta = json.loads((root / "features" / "mel.json").read_text())
    assert meta["num_frames"] == 30 and meta["options"]["n_mels"] == 64
    calls = []
    monkeypatch.setattr(enc_mod.MelEncoder, "encode", lambda *a, **k: calls.append(1))
    b = subject_features(subj)
    np.testing.assert_array_equal(a.windows, b.windows)
    assert not calls
    # other options do not overwrite the subject's file
    monkeypatch.undo()
    monkeypatch.setenv("THGS_CACHE_DIR", str(tmp_path / "cache"))
    c = subject_features(subj, n_mels=32)
    assert c.dim == 32 and np.load(root / "features" / "mel.npy").shape[-1] == 64
    # imported feature files are read by name
    np.save(root / "features" / "wav2vec2-eo.npy", np.ones((30, 16, 44), np.float32))
    d = subject_features(open_subject(root), encoder="wav2vec2-eo")
    assert d.windows.shape == (30, 16, 44) and d.encoder == "wav2vec2-eo"
    with pytest.raises(AudioFeatureError, match="not an encoder"):
        subject_features(subj, encoder="deepspeech")
