"""Per-frame data of a subject, as the avatar and the renderer take it: camera, background, composited
frames, body parameters, audio windows, and which frames hold a person.

Used alike by training (:mod:`thgs.train.data`), driving (:mod:`thgs.animate`), the viewer and evaluation.
Frames without a person (:func:`select_frames`: ``keypoints.npz`` field ``person`` False, or an empty mask)
are left out of training and of evaluation, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.avatar.model import FrameInputs
from thgs.render.base import Camera


def subject_camera(subject: Any) -> Camera:
    """The subject's camera as a :class:`Camera` (accepts a Camera or a {K, world_to_cam} mapping)."""
    cam = subject.camera
    if isinstance(cam, Camera):
        return cam
    K = torch.as_tensor(np.asarray(cam["K"]), dtype=torch.float32)
    w2c = torch.as_tensor(np.asarray(cam["world_to_cam"]), dtype=torch.float32)
    return Camera(K, w2c, int(subject.width), int(subject.height))


def subject_background(subject: Any, override: tuple[float, float, float] | None = None) -> Tensor:
    """[3] float background colour in [0, 1] (override, else the subject's, else white)."""
    if override is not None:
        return torch.tensor(override, dtype=torch.float32)
    bg = getattr(subject, "background", None)
    if bg is None:
        return torch.ones(3)
    bg = torch.as_tensor(np.asarray(bg), dtype=torch.float32).flatten()
    return bg / 255.0 if bg.max() > 1.0 else bg


def composite(image: np.ndarray, mask: np.ndarray | None, background: Tensor) -> Tensor:
    """uint8 [H, W, 3] image and optional mask ([H, W] uint8/bool/float) -> uint8 [H, W, 3] on ``background``."""
    img = torch.from_numpy(np.array(image[..., :3], dtype=np.float32))
    if mask is not None:
        m = torch.from_numpy(np.asarray(mask, dtype=np.float32))
        if m.dim() == 3:
            m = m[..., 0]
        if m.max() > 1.0:
            m = m / 255.0
        img = img * m[..., None] + background * 255.0 * (1 - m[..., None])
    return img.round().clamp(0, 255).to(torch.uint8)


def resize_uint8(img: Tensor, height: int, width: int) -> Tensor:
    """Area-resample uint8 [H, W, 3] to [height, width, 3]."""
    if img.shape[:2] == (height, width):
        return img
    x = img.permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="area")
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)


KEYPOINTS_FILE = "keypoints.npz"
"""Per-frame detections a prepared subject may carry; its optional ``person`` [T] bool array marks the
frames where a person was found (layout of the keypoints themselves: :mod:`thgs.prepare.layout`)."""

MIN_PERSON_FRACTION = 1e-4
"""A mask counts as empty (no person in the frame) when fewer than this fraction of its pixels is >= 0.5."""


def person_flags(subject: Any) -> np.ndarray | None:
    """[T] bool from ``SUBJECT/keypoints.npz`` field ``person``, or None when the subject has none.

    Raises ValueError naming the file and field when the array is unreadable or has the wrong shape."""
    root = getattr(subject, "root", None)
    if root is None:
        return None
    from pathlib import Path

    path = Path(root) / KEYPOINTS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "person" not in z.files:
                return None
            flags = np.asarray(z["person"])
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read field 'person' ({exc})") from None
    T = int(subject.num_frames)
    if flags.shape != (T,) or flags.dtype.kind not in "bui":
        raise ValueError(f"{path}: field 'person' has shape {flags.shape} and dtype {flags.dtype}, "
                         f"expected ({T},) bool")
    return flags.astype(bool)


def mask_is_empty(mask: np.ndarray, min_fraction: float = MIN_PERSON_FRACTION) -> bool:
    """True when fewer than ``min_fraction`` of the mask's pixels are foreground (>= 0.5, or >= 128 for uint8)."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    fg = (m >= 128) if m.dtype == np.uint8 else (m.astype(np.float32) >= 0.5)
    return int(fg.sum()) < max(1, int(np.ceil(min_fraction * m.size)))


@dataclass
class FrameSelection:
    """Which of some requested frames hold a person: ``kept`` (in the requested order), the frames the
    subject's ``keypoints.npz`` marks as without a person (``no_person``) and those whose mask is empty
    (``empty_mask``). Skipped frames never enter training or evaluation."""

    requested: int
    kept: list[int]
    no_person: list[int]
    empty_mask: list[int]

    @property
    def skipped(self) -> int:
        return len(self.no_person) + len(self.empty_mask)

    def summary(self) -> dict[str, Any]:
        return {"requested": self.requested, "kept": len(self.kept), "skipped_no_person": len(self.no_person),
                "skipped_empty_mask": len(self.empty_mask),
                "skipped_frames": sorted(self.no_person + self.empty_mask)[:50]}


def frame_status(flags: np.ndarray | None, frame: int, mask: np.ndarray | None) -> str:
    """"ok", "no_person" (``flags`` says so) or "empty_mask" for one frame."""
    if flags is not None and not flags[frame]:
        return "no_person"
    if mask is not None and mask_is_empty(mask):
        return "empty_mask"
    return "ok"


def select_frames(subject: Any, frames: list[int]) -> FrameSelection:
    """Drop from ``frames`` those without a person (see :class:`FrameSelection`); reads the masks."""
    flags = person_flags(subject)
    has_masks = bool(getattr(subject, "has_masks", False))
    out: dict[str, list[int]] = {"ok": [], "no_person": [], "empty_mask": []}
    for f in frames:
        skip_mask = flags is not None and not flags[f]
        out[frame_status(flags, f, subject.mask(f) if (has_masks and not skip_mask) else None)].append(f)
    return FrameSelection(requested=len(frames), kept=out["ok"], no_person=out["no_person"],
                          empty_mask=out["empty_mask"])


@dataclass
class FrameParams:
    """Per-frame body parameters as tensors: pose [T, J, 3], transl [T, 3], betas [S], expression [T, E]."""

    pose: Tensor
    transl: Tensor
    betas: Tensor
    expression: Tensor

    @staticmethod
    def from_subject(subject: Any) -> "FrameParams":
        p = subject.params()
        return FrameParams(
            pose=torch.as_tensor(np.asarray(p["pose"]), dtype=torch.float32),
            transl=torch.as_tensor(np.asarray(p["transl"]), dtype=torch.float32),
            betas=torch.as_tensor(np.asarray(p["betas"]), dtype=torch.float32).reshape(-1),
            expression=torch.as_tensor(np.asarray(p["expression"]), dtype=torch.float32),
        )

    def to(self, device: torch.device | str) -> "FrameParams":
        return FrameParams(self.pose.to(device), self.transl.to(device), self.betas.to(device),
                           self.expression.to(device))


def frame_inputs(params: FrameParams, audio: Tensor | None, index: int, refine: bool) -> FrameInputs:
    """The avatar's inputs for subject frame ``index``; ``audio`` is [T, 8, 16, C] or None."""
    return FrameInputs(pose=params.pose[index], transl=params.transl[index], betas=params.betas,
                       expression=params.expression[index],
                       audio_window=audio[index] if audio is not None else None,
                       frame_index=index if refine else None)


def audio_neighbourhoods(windows: Tensor, size: int = 8) -> Tensor:
    """[T, S, C] per-frame windows -> [T, size, S, C] (frames idx-4 .. idx+3, zero padded)."""
    from thgs.audio.features import neighbourhood

    return neighbourhood(windows, torch.arange(windows.shape[0]), size)


def resize_mask(mask: np.ndarray, height: int, width: int) -> Tensor:
    """A mask ([H, W] or [H, W, C]; bool, uint8 with 255 = person, or float in [0, 1]) -> uint8 [height, width]
    (255 = person), area-resampled."""
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))
    if m.dim() == 3:
        m = m[..., 0]
    if m.max() > 1.0:
        m = m / 255.0
    if tuple(m.shape) != (height, width):
        m = torch.nn.functional.interpolate(m[None, None], size=(height, width), mode="area")[0, 0]
    return (m * 255.0).round().clamp(0, 255).to(torch.uint8)


def load_audio_windows(subject: Any, cfg: Any) -> Tensor | None:
    """[T, 8, 16, C] neighbourhoods of the subject's audio features, or None (no audio, or the run config
    ``cfg`` (:class:`thgs.runs.config.TrainConfig`) trains without audio or without SAAM)."""
    if not cfg.model.has_saam:
        return None
    if not getattr(subject, "has_audio", False):
        return None
    from thgs.audio.features import subject_features

    feats = subject_features(subject, cfg.audio_encoder)
    return audio_neighbourhoods(feats.tensor())


__all__ = ["FrameParams", "FrameSelection", "KEYPOINTS_FILE", "MIN_PERSON_FRACTION", "audio_neighbourhoods", "composite",
           "frame_inputs", "frame_status", "load_audio_windows", "mask_is_empty", "person_flags", "resize_mask",
           "resize_uint8", "select_frames", "subject_background", "subject_camera"]
