"""Deterministic image pairs for the LPIPS regression test and scripts/verify_lpips_against_jax.py.

Images are generated with numpy's legacy ``RandomState`` (its stream is frozen across numpy versions),
so the recorded reference values stay valid. Layout: [H, W, 3] float32 in [0, 1].
"""

from __future__ import annotations

import numpy as np


def _smooth_image(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """A smooth colourful image: a few random sinusoids per channel plus fine noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fy, fx = rs.uniform(0.5, 6.0, size=2) * 2 * np.pi / np.array([h, w])
            phase = rs.uniform(0, 2 * np.pi)
            img[..., c] += rs.uniform(0.2, 1.0) * np.sin(fy * y + fx * x + phase)
    img = (img - img.min()) / (img.max() - img.min())
    img = 0.8 * img + 0.1 + 0.03 * rs.standard_normal((h, w, 3))
    return np.clip(img, 0.0, 1.0)


def lpips_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, pred [H, W, 3], target [H, W, 3])] float32 in [0, 1]."""
    out = []
    rs = np.random.RandomState(1234)
    # 64x64: target vs. a noisy copy
    a = _smooth_image(rs, 64, 64)
    out.append(("noise_64x64", np.clip(a + 0.08 * rs.standard_normal(a.shape), 0, 1), a))
    # 96x128 (H x W): target vs. a copy shifted by 3 pixels and darkened
    a = _smooth_image(rs, 96, 128)
    b = np.roll(a, shift=(3, -2), axis=(0, 1)) * 0.9
    out.append(("shift_96x128", b, a))
    # 96x128: two unrelated images
    out.append(("unrelated_96x128", _smooth_image(rs, 96, 128), _smooth_image(rs, 96, 128)))
    # 80x48: a blocky (downsampled-then-upsampled) copy
    a = _smooth_image(rs, 80, 48)
    b = np.repeat(np.repeat(a[::4, ::4], 4, axis=0), 4, axis=1)
    out.append(("blocky_80x48", b, a))
    return [(n, p.astype(np.float32), t.astype(np.float32)) for n, p, t in out]
