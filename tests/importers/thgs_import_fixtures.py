from __future__ import annotations

from pathlib import Path

import numpy as np

FPS = 30


def _write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    from thgs.io.audio_io import write_wav

    write_wav(path, x, sr)


def make_talkingavatar(root: Path, *, segments: int = 2, n: int = 6, hands: int = 45, w: int = 32, h: int = 24,
                       avg_transl=(0.1, 0.2, -3.0), seed: int = 0, audio_sr: int = 44100) -> Path:
    """A TalkingAvatar subject folder with random values in the authors' names and shapes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    N = segments * n
    np.savez(root / "optimized_camera_params.npz", focal_length=np.array(40.0, np.float32),
             avg_transl=np.array(avg_transl, np.float32))
    f32 = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    np.savez(root / "poses_optimized.npz", betas=f32(1, 10), transl=f32(N, 3), global_orient=f32(N, 1, 3),
             body_pose=f32(N, 63), jaw_pose=f32(N, 3), leye_pose=f32(N, 3), reye_pose=f32(N, 3),
             left_hand_pose=f32(N, hands), right_hand_pose=f32(N, hands), expression=f32(N, 10))
    for k in range(segments):
        seg = root / f"Anna_output{k:03d}"
        for sub in ("image", "parsing_full_body", "face_mask"):
            (seg / sub).mkdir(parents=True)
        for j in range(n):
            img = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
            Image.fromarray(img).save(seg / "image" / f"{j:06d}.png")
            m = np.zeros((h, w, 3), np.uint8)
            m[4:20, 8:24] = 255
            Image.fromarray(m).save(seg / "parsing_full_body" / f"{j:06d}.png")
            np.savez(seg / "face_mask" / f"{j:06d}.npz", arr_0=rng.integers(0, 14, (2, h, w)).astype(np.uint8))
        t = np.arange(int(n / FPS * audio_sr)) / audio_sr
        _write_wav(seg / "aud.wav", (0.2 * np.sin(2 * np.pi * (200 + 100 * k) * t)).astype(np.float32), audio_sr)
        np.save(seg / "aud_eo.npy", rng.standard_normal((int(n / FPS * 25), 16, 44)).astype(np.float32))
        np.save(seg / "keypoints.npy", rng.standard_normal((n, 5, 3)).astype(np.float32))
    return root


def fake_smplx_file(path: Path, seed: int = 1) -> Path:
    """A random array set in the SMPL-X model file's layout for hands (hands_components*, hands_mean*)."""
    rng = np.random.default_rng(seed)
    np.savez(path, hands_componentsl=rng.standard_normal((45, 45)).astype(np.float32) * 0.1,
             hands_componentsr=rng.standard_normal((45, 45)).astype(np.float32) * 0.1,
             hands_meanl=rng.standard_normal(45).astype(np.float32) * 0.1,
             hands_meanr=rng.standard_normal(45).astype(np.float32) * 0.1)
    return path


def show_dict(n: int = 6, w: int = 32, h: int = 24, seed: int = 0, with_tensor: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    f32 = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    go = f32(n, 1, 3)
    go[:, 0, 0] += np.pi  # SHOW bodies are rotated ~180 degrees about x
    d = {"width": w, "height": h, "center": [w / 2.0, h / 2.0], "batch_size": n,
         "camera_transl": np.array([0.1, -0.2, 6.0], np.float32), "focal_length": np.array(50.0, np.float32),
         "expression": f32(n, 100), "jaw_pose": f32(n, 3), "betas": f32(1, 300), "global_orient": go,
         "transl": f32(n, 3), "left_hand_pose": f32(n, 12), "right_hand_pose": f32(n, 12), "leye_pose": f32(n, 3),
         "reye_pose": f32(n, 3), "pose_embedding": f32(n, 32), "mica_head_transl": f32(1, 3),
         "body_pose_axis": f32(n, 63), "speaker_name": "anna"}
    if with_tensor:
        import torch

        d["losses_to_log"] = {"all_loss": torch.tensor(3.5), "hands": torch.arange(4, dtype=torch.float32)}
    return d
