"""Pictures to judge a prepared subject by eye: a contact sheet (a grid of frames with the mask, the detected
keypoints, the fitted model's projected keypoints and its mesh outline) and an optional overlay video.

Colours: detected pose points red, left hand green, right hand blue, face yellow; the fitted model's
projected keypoints white crosses; the model's mesh outline cyan; the area outside the mask is dimmed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from thgs.prepare import layout

BLOCK_COLOURS = {"pose": (255, 60, 60), "left_hand": (60, 220, 60), "right_hand": (70, 120, 255),
                 "face": (255, 230, 40)}
MODEL_COLOUR = (255, 255, 255)
OUTLINE_COLOUR = (0, 230, 230)


def pick_frames(valid: np.ndarray, count: int) -> list[int]:
    """``count`` frames spread evenly over the valid ones (all frames when none is valid)."""
    pool = np.flatnonzero(valid) if valid.any() else np.arange(len(valid))
    if len(pool) <= count:
        return pool.tolist()
    idx = np.round(np.linspace(0, len(pool) - 1, count)).astype(int)
    return pool[idx].tolist()


def mesh_silhouettes(body_spec: dict[str, Any], fit: Any, frames: list[int], width: int, height: int,
                     scale: float) -> dict[int, np.ndarray] | None:
    """The fitted mesh's silhouette ``[h, w]`` bool per frame at ``scale`` times the video size, drawn from
    its projected triangles; None when the body model cannot be loaded."""
    import torch
    from PIL import Image, ImageDraw

    from thgs.body.registry import load_body_model

    try:
        opts = dict(body_spec.get("options", {}))
        model = load_body_model(body_spec["model"], **opts)
    except Exception:  # noqa: BLE001 - the outline is an extra; the sheet is drawn without it
        return None
    faces = model.faces.cpu().numpy()
    with torch.no_grad():
        out = model(torch.as_tensor(fit.pose[frames]), betas=torch.as_tensor(fit.betas)[None].expand(len(frames), -1),
                    expression=torch.as_tensor(fit.expression[frames]), transl=torch.as_tensor(fit.transl[frames]))
    V = out.vertices.cpu().numpy().astype(np.float64)
    M = np.asarray(fit.world_to_cam, np.float64)
    K = np.asarray(fit.K, np.float64)
    w, h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    result = {}
    for k, f in enumerate(frames):
        cam = V[k] @ M[:3, :3].T + M[:3, 3]
        z = np.maximum(cam[:, 2], 1e-6)
        uv = (cam[:, :2] / z[:, None]) * K[[0, 1], [0, 1]] + K[:2, 2]
        uv *= scale
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        front = cam[:, 2] > 1e-3
        for tri in faces:
            if front[tri].all():
                draw.polygon([tuple(p) for p in uv[tri]], fill=255)
        result[f] = np.asarray(img) > 0
    return result


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The boundary pixels of a bool mask."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=width)


def draw_frame(image: np.ndarray, mask: np.ndarray | None, kp2d: np.ndarray, model_kp2d: np.ndarray | None,
               silhouette: np.ndarray | None, scale: float, label: str) -> np.ndarray:
    """One annotated tile ``[h, w, 3]`` uint8 at ``scale`` times the frame's size."""
    from PIL import Image, ImageDraw

    H, W = image.shape[:2]
    w, h = max(1, int(round(W * scale))), max(1, int(round(H * scale)))
    img = Image.fromarray(image).resize((w, h), Image.BILINEAR)
    arr = np.asarray(img).astype(np.float32)
    if mask is not None:
        m = np.asarray(Image.fromarray(mask).resize((w, h), Image.BILINEAR), np.float32)[..., None] / 255.0
        arr = arr * (0.35 + 0.65 * m)
    if silhouette is not None:
        arr[outline(silhouette, 1)] = OUTLINE_COLOUR
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    r = max(1.0, 1.5 * scale * max(W, H) / 720.0)
    for name, sl in layout.BLOCKS.items():
        pts = kp2d[sl]
        rr = r * (0.6 if name == "face" else 1.0)
        for x, y, c in pts:
            if c > 0:
                draw.ellipse([x * scale - rr, y * scale - rr, x * scale + rr, y * scale + rr], fill=BLOCK_COLOURS[name])
    if model_kp2d is not None:
        d = 1.5 * r
        for (x, y), c in zip(model_kp2d, kp2d[:, 2]):
            if c > 0 and np.isfinite(x) and np.isfinite(y):
                X, Y = x * scale, y * scale
                draw.line([X - d, Y, X + d, Y], fill=MODEL_COLOUR)
                draw.line([X, Y - d, X, Y + d], fill=MODEL_COLOUR)
    draw.rectangle([0, 0, 7 * len(label) + 6, 14], fill=(0, 0, 0))
    draw.text((3, 2), label, fill=(255, 255, 255))
    return np.asarray(img)


def contact_sheet(subject: Any, det: Any, valid: np.ndarray, fit: Any, path: Path, *, frames: int = 12,
                  tile_width: int = 320, columns: int = 4) -> Path:
    """Write a grid of ``frames`` annotated frames to ``path`` (PNG, atomically); returns ``path``."""
    from thgs.utils.io import write_image

    chosen = pick_frames(valid, frames)
    W, H = subject.width, subject.height
    scale = min(1.0, tile_width / W)
    sil = None
    if fit is not None:
        sil = mesh_silhouettes(fit.body_spec, fit, chosen, W, H, scale)
    tiles = []
    for f in chosen:
        mask = _cached_mask(subject, f)
        tiles.append(draw_frame(subject.image(f), mask, det.kp2d[f], None if fit is None else fit.model_kp2d[f],
                                None if sil is None else sil.get(f), scale, f"frame {f}"))
    th, tw = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = t
    return write_image(path, sheet)


def _cached_mask(subject: Any, i: int) -> np.ndarray | None:
    """The mask the detect stage cached (``SUBJECT/prepare/masks``), before the subject holds it."""
    from PIL import Image

    from thgs.data.format import frame_file

    p = Path(subject.root) / "prepare" / "masks" / frame_file(i)
    if not p.is_file():
        return None
    with Image.open(p) as im:
        return np.asarray(im.convert("L"))


def overlay_video(subject: Any, det: Any, fit: Any, path: Path, *, progress: bool = True,
                  max_height: int = 720) -> Path:
    """Every frame annotated (mask, keypoints, model keypoints; no mesh outline), encoded to ``path``
    (H.264 when available) with the subject's audio; returns ``path``."""
    from tqdm import tqdm

    from thgs.io.video import write_video

    W, H = subject.width, subject.height
    scale = min(1.0, max_height / H)
    # even sizes for yuv420p
    scale = min(scale, (2 * int(W * scale / 2)) / W, (2 * int(H * scale / 2)) / H)

    def frames() -> Iterator[np.ndarray]:
        for i in tqdm(range(subject.num_frames), desc="overlay video", unit="frame", disable=not progress,
                      leave=False):
            t = draw_frame(subject.image(i), _cached_mask(subject, i), det.kp2d[i],
                           None if fit is None else fit.model_kp2d[i], None, scale, f"frame {i}")
            yield t[: t.shape[0] // 2 * 2, : t.shape[1] // 2 * 2]

    audio = subject.audio() if subject.has_audio else None
    return write_video(path, frames(), subject.fps, audio=audio)


__all__ = ["contact_sheet", "draw_frame", "mesh_silhouettes", "outline", "overlay_video", "pick_frames"]
