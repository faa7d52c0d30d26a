"""Training data in memory: decoded frames (uint8), masks, body parameters and audio windows.

Frames are composited on the background colour with their mask once, when loaded, and kept as uint8
tensors; a step converts one frame to float. The sampler visits the training frames in a fresh random
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


class TrainingData:
    """Cached training frames of a subject at the training resolution.

    Attributes: ``frames`` (subject frame indices), ``images`` uint8 [F, H, W, 3] (row k = frames[k]),
    ``camera`` (scaled), ``background`` [3], ``params`` (all frames), ``audio`` [T, 8, 16, C] or None.
    """

    def __init__(self, subject: Any, frames: list[int], *, train_size: int = 0,
                 background: tuple[float, float, float] | None = None, audio: Tensor | None = None) -> None:
        self.subject = subject
        self.frames = list(frames)
        self.background = subject_background(subject, background)
        cam = subject_camera(subject)
        if train_size and train_size != cam.height:
            cam = cam.scaled(train_size / cam.height)
        self.camera = cam
        imgs = []
        for i in self.frames:
            mask = subject.mask(i) if getattr(subject, "has_masks", False) else None
            img = composite(np.asarray(subject.image(i)), mask, self.background)
            imgs.append(resize_uint8(img, cam.height, cam.width))
        self.images = torch.stack(imgs) if imgs else torch.zeros(0, cam.height, cam.width, 3, dtype=torch.uint8)
        self.row = {f: k for k, f in enumerate(self.frames)}
        self.params = FrameParams.from_subject(subject)
        self.audio = audio

    def image(self, frame: int, device: torch.device | str = "cpu") -> Tensor:
        """float [H, W, 3] in [0, 1] of subject frame ``frame``."""
        return self.images[self.row[frame]].to(device).float() / 255.0


__all__ = ["FrameParams", "FrameSampler", "TrainingData", "audio_neighbourhoods", "composite", "frame_inputs",
           "resize_uint8", "subject_background", "subject_camera"]
