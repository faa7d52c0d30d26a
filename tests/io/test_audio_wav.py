import wave

import numpy as np

from thgs.io import audio_io


def _write_wav(path, data, rate):
    pcm = (np.clip(data.T, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_pcm_wav_is_read_without_pyav_and_matches_pyav(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((2, 4000)) * 0.2).astype(np.float32)
    p = tmp_path / "a.wav"
    _write_wav(p, data, 22050)
    fast, sr = audio_io.read_audio(p, mono=False)
    assert sr == 22050 and fast.shape == (2, 4000)
    assert np.abs(fast - data).max() < 1e-4
    # the same through PyAV
    monkeypatch.setattr(audio_io, "_read_pcm_wav", lambda path: None)
    slow, sr2 = audio_io.read_audio(p, mono=False)
    assert sr2 == sr and np.allclose(slow, fast, atol=1e-6)
    mono, _ = audio_io.read_audio(p)
    assert np.allclose(mono, fast.mean(0), atol=1e-6)
