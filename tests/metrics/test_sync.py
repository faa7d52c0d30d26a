import math

import numpy as np
import pytest
import torch

from thgs.metrics.regions import Box
from thgs.metrics.sync import (envelope_sync, lip_metrics, mouth_opening, mouth_opening_signal, opening_error,
                               shifted_correlations, speech_envelope)

SKIN = torch.tensor([0.85, 0.65, 0.55])


def _smooth_signal(T, seed):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal(T + 20)
    k = np.hanning(7)
    return torch.from_numpy(np.convolve(x, k / k.sum(), mode="same")[10:10 + T]).float()


def _mouth_frame(opening: float, size=48):
    """A skin-coloured frame with a dark elliptical mouth whose height grows with ``opening`` (0..1)."""
    img = SKIN.expand(size, size, 3).clone()
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    a, b = size * 0.3, max(size * 0.25 * opening, 0.01)
    inside = ((x - size / 2) / a) ** 2 + ((y - size / 2) / b) ** 2 <= 1
    img[inside] = torch.tensor([0.15, 0.05, 0.05])
    return img


@pytest.mark.parametrize("k", [-7, 0, 4, 12])
def test_envelope_sync_recovers_a_planted_offset(k):
    T = 240
    env = _smooth_signal(T + 40, seed=1)
    mouth = torch.roll(env, k)[20:20 + T] + 0.05 * _smooth_signal(T, seed=2)  # mouth[t] = env[t - k]
    score = envelope_sync(mouth, env[20:20 + T], max_offset=15)
    assert score.offset == k
    assert score.peak > 0.9 and score.confidence > 0.5
    assert score.correlations.shape == (31,)


def test_shifted_correlations_sign_convention_and_errors():
    a = torch.arange(40.0) % 7
    v = torch.roll(a, 3)  # video lags audio by 3 frames
    c = shifted_correlations(v, a, max_offset=5)
    assert int(torch.argmax(torch.nan_to_num(c, nan=-2))) - 5 == 3
    with pytest.raises(ValueError, match="too few"):
        shifted_correlations(torch.zeros(20), torch.zeros(20), max_offset=15)
    with pytest.raises(ValueError, match="constant"):
        envelope_sync(torch.ones(60), torch.rand(60))


def test_speech_envelope_is_rms_per_frame():
    sr, fps = 16000, 25
    t = np.arange(sr) / sr  # 1 s
    audio = 0.5 * np.sin(2 * np.pi * 200 * t)
    audio[sr // 2:] = 0.0
    env = speech_envelope(audio, sr, fps)
    assert env.shape == (25,)
    assert torch.allclose(env[:12], torch.full((12,), 0.5 / math.sqrt(2)), atol=1e-3)
    assert torch.all(env[13:] == 0)
    longer = speech_envelope(torch.from_numpy(np.stack([audio, audio], 1)), sr, fps, num_frames=30)
    assert longer.shape == (30,) and torch.all(longer[25:] == 0)
    assert torch.allclose(longer[:25], env)


def test_mouth_opening_grows_with_the_dark_interior():
    closed = mouth_opening(_mouth_frame(0.0))
    assert closed.item() < 0.01
    vals = [mouth_opening(_mouth_frame(o)).item() for o in (0.2, 0.5, 1.0)]
    assert vals[0] < vals[1] < vals[2]
    # area of the ellipse relative to the crop
    assert vals[2] == pytest.approx(math.pi * 0.3 * 0.25, abs=0.02)
    bright = _mouth_frame(1.0)
    bright[20:28] = 1.0  # teeth-like bright band does not count as dark
    assert mouth_opening(bright).item() < vals[2]
    batch = mouth_opening(torch.stack([_mouth_frame(0.0), _mouth_frame(1.0)]))
    assert batch.shape == (2,) and batch[1] > batch[0]


def test_frames_and_audio_to_offset_end_to_end():
    """Render a mouth that follows the loudness k frames late and recover k from pixels and samples."""
    sr, fps, T, k = 16000, 25, 150, 5
    loud = _smooth_signal(T + k, seed=4)
    loud = (loud - loud.min()) / (loud.max() - loud.min())
    rs = np.random.RandomState(0)
    spf = sr // fps
    audio = np.concatenate([float(loud[t]) * rs.standard_normal(spf) for t in range(T)])
    frames = torch.stack([_mouth_frame(float(loud[max(t - k, 0)]), size=40) for t in range(T)])
    sig = mouth_opening_signal(frames, Box(0, 0, 40, 40))
    score = envelope_sync(sig, speech_envelope(audio, sr, fps, T))
    assert score.offset == k and score.peak > 0.8


def test_opening_error_and_lip_metrics():
    a = torch.tensor([0.0, 0.1, 0.3, 0.2])
    assert opening_error(a, a) == {"mae": 0.0, "corr": pytest.approx(1.0)}
    e = opening_error(a + 0.1, a)
    assert e["mae"] == pytest.approx(0.1) and e["corr"] == pytest.approx(1.0)
    assert opening_error(torch.ones(4), a)["corr"] == 0.0
    gt = torch.stack([_mouth_frame(o, 40) for o in (0.1, 0.6, 0.9, 0.3)])
    pred = torch.stack([_mouth_frame(o, 40) for o in (0.2, 0.5, 0.8, 0.4)])
    boxes = [Box(0, 0, 40, 40)] * 4
    m = lip_metrics(pred, gt, boxes, lpips_net=None)
    assert m["frames"] == 4 and 0 < m["opening_mae"] < 0.05 and m["opening_corr"] > 0.8
    assert math.isfinite(m["mouth_psnr"]) and m["mouth_ssim"] < 1
    same = lip_metrics(gt, gt, boxes, lpips_net=None)
    assert math.isinf(same["mouth_psnr"]) and same["opening_mae"] == 0.0
    with pytest.raises(ValueError, match="must match"):
        lip_metrics(pred, gt[:3], boxes, lpips_net=None)
