"""Inputs for small subjects and ways to damage them, for the data-layer tests."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thgs.render.base import Camera

T, H, W, J, S, E = 12, 24, 32, 55, 10, 10
FPS = 25.0


def make_inputs(seed: int = 0, frames: int = T) -> dict[str, Any]:
    """Keyword arguments for write_subject: random frames/masks/params, a 440 Hz sine of the right length
    at 22.05 kHz (so the writer resamples), a look-at camera."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(frames)]
    masks = [(rng.random((H, W)) > 0.5).astype(np.uint8) * 255 for _ in range(frames)]
    params = {
        "pose": rng.normal(scale=0.2, size=(frames, J, 3)).astype(np.float32),
        "transl": rng.normal(size=(frames, 3)).astype(np.float32),
        "betas": rng.normal(size=S).astype(np.float32),
        "expression": rng.normal(size=(frames, E)).astype(np.float32),
        "keypoints": rng.random((frames, 5, 3)).astype(np.float32),
    }
    sr = 22050
    t = np.arange(int(round(frames / FPS * sr))) / sr
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    camera = Camera.look_at(torch.tensor([0.0, -0.2, -3.0]), torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]),
                            30.0, W, H)
    return dict(frames=images, fps=FPS, camera=camera, audio=(audio, sr), masks=masks, params=params,
                body=dict(model="toy", options={}), background=[1.0, 1.0, 1.0], source="test", progress=False)


def leftovers(parent: Path) -> list[str]:
    """Everything in ``parent`` (hidden staging folders included)."""
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def _rewrite_params(d: Path, **changes):
    with np.load(d / "params.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(d / "params.npz", **arrays)
    return arrays


def _meta(d: Path) -> dict:
    return json.loads((d / "meta.json").read_text())


def _set_meta(d: Path, meta: dict) -> None:
    (d / "meta.json").write_text(json.dumps(meta))


def break_subject(d: Path, case: str) -> None:
    """Damage a valid subject in one way."""
    if case == "missing_image":
        (d / "images" / "000005.png").unlink()
    elif case == "missing_mask":
        (d / "masks" / "000002.png").unlink()
    elif case == "extra_image":
        (d / "images" / "000000.png").rename(d / "images" / "000012.png")
    elif case == "params_frames":
        with np.load(d / "params.npz") as z:
            _rewrite_params(d, pose=z["pose"][:11])
    elif case == "nan_pose":
        with np.load(d / "params.npz") as z:
            pose = z["pose"].copy()
        pose[3, 7, 2] = np.nan
        _rewrite_params(d, pose=pose)
    elif case == "expression_shape":
        _rewrite_params(d, expression=np.zeros((T, 7), np.float32))
    elif case == "params_missing_field":
        with np.load(d / "params.npz") as z:
            arrays = {k: z[k] for k in z.files if k != "transl"}
        np.savez(d / "params.npz", **arrays)
    elif case == "params_missing":
        (d / "params.npz").unlink()
    elif case in ("audio_short", "audio_count"):
        with wave.open(str(d / "audio.wav")) as f:
            data = f.readframes(f.getnframes())
        n = int(16000 * (T - 2) / FPS)
        with wave.open(str(d / "audio.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes(data[: 2 * n])
        if case == "audio_short":
            meta = _meta(d)
            meta["audio"].update(num_samples=n, duration=n / 16000)
            _set_meta(d, meta)
    elif case == "audio_missing":
        (d / "audio.wav").unlink()
    elif case == "corrupt_png":
        p = d / "images" / f"{T - 1:06d}.png"  # the last frame is always in the decoded sample
        p.write_bytes(p.read_bytes()[:120])
    elif case == "garbage_png":
        (d / "images" / "000000.png").write_bytes(b"\x00garbage" * 50)
    elif case == "wrong_size_png":
        from PIL import Image

        Image.new("RGB", (10, 10)).save(d / "images" / "000000.png")
    elif case in ("missing_meta_key", "meta_type", "meta_split", "meta_version"):
        meta = _meta(d)
        if case == "missing_meta_key":
            del meta["fps"]
        elif case == "meta_type":
            meta["num_frames"] = "12"
        elif case == "meta_split":
            meta["split"]["test"].append(4)
        else:
            meta["version"] = 3
        _set_meta(d, meta)
    elif case == "meta_unparseable":
        (d / "meta.json").write_text("{not json")
    elif case == "features_frames":
        (d / "features").mkdir()
        np.save(d / "features" / "mel.npy", np.zeros((T - 3, 16, 4), np.float32))
    else:
        raise AssertionError(case)
