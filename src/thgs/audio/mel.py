"""Weight-free speech features: log-mel spectrogram and MFCC computed with torch (no downloads).

Conventions: 16 kHz mono input, Hann window of ``win_ms`` (25 ms), hop ``hop_ms`` (10 ms -> 100 Hz), the
STFT frames are centred, so step ``k`` describes the audio around time ``k * hop``.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters evenly spaced on the mel scale, each normalised to unit area in Hz
    (so bands of different widths carry comparable energy).

    Returns float32 ``[n_mels, n_fft // 2 + 1]``.
    """
    f_max = float(sample_rate) / 2.0 if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"mel filterbank needs 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None]) / np.maximum(upper - centre, 1e-9)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    fb *= 2.0 / np.maximum(upper - lower, 1e-9)
    return torch.from_numpy(fb.astype(np.float32))


def log_mel(samples: torch.Tensor, sample_rate: int = 16000, *, n_mels: int = 64, win_ms: float = 25.0,
            hop_ms: float = 10.0, f_min: float = 0.0, f_max: float | None = None,
            top_db: float = 80.0) -> torch.Tensor:
    """Log-mel power spectrogram in log10 units.

    Args:
        samples: float ``[N]`` mono.
    Returns:
        float32 ``[S, n_mels]`` with ``S = N // hop + 1``; values are clamped to at most ``top_db`` dB below
        the loudest bin, so silence gives finite values (never ``log(0)``).
    """
    win = int(round(sample_rate * win_ms / 1000.0))
    hop = int(round(sample_rate * hop_ms / 1000.0))
    if win < 2 or hop < 1:
        raise ValueError(f"window {win_ms} ms / hop {hop_ms} ms too short at {sample_rate} Hz")
    n_fft = 1 << max(1, math.ceil(math.log2(win)))
    x = samples.to(torch.float32).reshape(-1)
    if x.numel() < n_fft // 2 + 1:
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - x.numel()))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, dtype=torch.float32), center=True, pad_mode="constant",
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()  # [F, S]
    fb = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max)
    mel = fb @ power  # [n_mels, S]
    logm = torch.log10(mel.clamp_min(1e-10))
    logm = torch.maximum(logm, logm.max() - top_db / 10.0)
    return logm.T.contiguous()


def dct_ii(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II along the last axis keeping the first ``n_out`` coefficients: ``[..., M] -> [..., n_out]``."""
    m = x.shape[-1]
    if not 1 <= n_out <= m:
        raise ValueError(f"number of MFCC coefficients must be in 1..{m}, got {n_out}")
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(m, dtype=torch.float64)[None]
    basis = torch.cos(math.pi / m * (n + 0.5) * k) * math.sqrt(2.0 / m)
    basis[0] /= math.sqrt(2.0)
    return x @ basis.T.to(x.dtype)
