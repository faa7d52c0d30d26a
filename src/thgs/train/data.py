"""Training data in memory: decoded frames (uint8), masks, body parameters and audio windows.

Frames are composited on the background colour with their mask once, when loaded, and kept as uint8
tensors; a step converts one frame to float. Frames without a person (:func:`thgs.runs.frames.select_frames`)
are left out of training and counted. The sampler visits the training frames in a fresh random order every
epoch; its state (order, position, generator) is part of every checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.runs.frames import (KEYPOINTS_FILE, FrameParams, FrameSelection, composite, frame_status, person_flags,
                              resize_mask, resize_uint8, subject_background, subject_camera)


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


__all__ = ["FrameSampler", "TrainingData"]
