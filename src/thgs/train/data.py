"""Training data in memory: decoded frames (uint8), masks, body parameters and audio windows.

Frames are composited on the background colour with their mask once, when loaded, and kept as uint8
tensors; a step converts one frame to float. Frames without a person (:func:`select_frames`) are left out
of training and of evaluation, and counted. The sampler visits the training frames in a fresh random
order every epoch; its state (order, position, generator) is part of every checkpoint.
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


class FrameSampler:
    """Random order over ``frames``, reshuffled every epoch; deterministic given the seed."""

    def __init__(self, frames: list[int], seed: int) -> None:
        if not frames:
            raise ValueError("FrameSampler: no training frames")
        self.frames = list(frames)
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.position = 0

    def next(self) -> int:
        if self.position >= len(self.order):
            perm = torch.randperm(len(self.frames), generator=self.generator).tolist()
            self.order = [self.frames[i] for i in perm]
            self.position = 0
        f = self.order[self.position]
        self.position += 1
        return f

    def state_dict(self) -> dict:
        return {"frames": self.frames, "order": self.order, "position": self.position,
                "generator": self.generator.get_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.frames, self.order, self.position = list(sd["frames"]), list(sd["order"]), int(sd["position"])
        self.generator.set_state(sd["generator"])


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


class TrainingData:
    """Cached training frames of a subject at the training resolution.

    Frames without a person (``keypoints.npz`` field ``person`` False, or an empty mask) are left out and
    counted in ``selection`` (:class:`FrameSelection`). Every kept frame is composited through its mask on the
    background (the subject's colour, white when its ``background`` is null: section 5.1's
    ``img * mask + (1 - mask)``).

    Attributes: ``frames`` (kept subject frame indices), ``images`` uint8 [F, H, W, 3] (row k = frames[k]),
    ``masks`` uint8 [F, H, W] (255 = person) or None, ``camera`` (scaled), ``background`` [3], ``params``
    (all frames), ``audio`` [T, 8, 16, C] or None, ``selection``.
    """

    def __init__(self, subject: Any, frames: list[int], *, train_size: int = 0,
                 background: tuple[float, float, float] | None = None, audio: Tensor | None = None,
                 edge_band: int = 0, edge_band_weight: float = 0.0) -> None:
        self.subject = subject
        self.edge_band = int(edge_band)
        self.edge_band_weight = float(edge_band_weight)
        self.background = subject_background(subject, background)
        cam = subject_camera(subject)
        if train_size and train_size != cam.height:
            cam = cam.scaled(train_size / cam.height)
        self.camera = cam
        flags = person_flags(subject)
        has_masks = bool(getattr(subject, "has_masks", False))
        imgs, masks = [], []
        status: dict[str, list[int]] = {"ok": [], "no_person": [], "empty_mask": []}
        for i in frames:
            mask = subject.mask(i) if (has_masks and (flags is None or flags[i])) else None
            st = frame_status(flags, i, mask)
            status[st].append(i)
            if st != "ok":
                continue
            img = composite(np.asarray(subject.image(i)), mask, self.background)
            imgs.append(resize_uint8(img, cam.height, cam.width))
            if mask is not None:
                masks.append(resize_mask(mask, cam.height, cam.width))
        self.selection = FrameSelection(requested=len(frames), kept=status["ok"], no_person=status["no_person"],
                                        empty_mask=status["empty_mask"])
        if frames and not status["ok"]:
            raise ValueError(f"{getattr(subject, 'root', subject)}: none of the {len(frames)} requested frames holds a "
                             f"person ({len(status['no_person'])} marked without one in {KEYPOINTS_FILE}, "
                             f"{len(status['empty_mask'])} with an empty mask)")
        self.frames = list(status["ok"])
        self.images = torch.stack(imgs) if imgs else torch.zeros(0, cam.height, cam.width, 3, dtype=torch.uint8)
        self.masks = torch.stack(masks) if masks and len(masks) == len(imgs) else None
        self.row = {f: k for k, f in enumerate(self.frames)}
        self.params = FrameParams.from_subject(subject)
        self.audio = audio

    def image(self, frame: int, device: torch.device | str = "cpu") -> Tensor:
        """float [H, W, 3] in [0, 1] of subject frame ``frame``."""
        return self.images[self.row[frame]].to(device).float() / 255.0

    def pixel_weights(self, frame: int, device: torch.device | str = "cpu") -> Tensor | None:
        """[H, W, 1] reconstruction-loss weights of ``frame``: ``edge_band_weight`` within ``edge_band`` pixels
        of the mask's silhouette, 1 elsewhere; None (every pixel 1) without a band or without masks."""
        if self.edge_band <= 0 or self.masks is None:
            return None
        from thgs.avatar.losses import silhouette_weights

        return silhouette_weights(self.mask(frame, device), self.edge_band, self.edge_band_weight)

    def mask(self, frame: int, device: torch.device | str = "cpu") -> Tensor | None:
        """float [H, W, 1] in [0, 1] (1 = person) of subject frame ``frame``, or None without masks."""
        if self.masks is None:
            return None
        return self.masks[self.row[frame]].to(device).float()[..., None] / 255.0


__all__ = ["FrameParams", "FrameSampler", "FrameSelection", "KEYPOINTS_FILE", "TrainingData", "audio_neighbourhoods",
           "composite", "frame_inputs", "frame_status", "mask_is_empty", "person_flags", "resize_mask", "resize_uint8",
           "select_frames", "subject_background", "subject_camera"]
