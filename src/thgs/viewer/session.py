"""A trained run opened for viewing or export: avatar, subject, driving sequence, camera, background.

Every problem with the user's input (missing run folder, unreadable checkpoint, missing subject, bad
motion or audio file) is raised as :class:`thgs.cli.UserError` naming the file, before any server starts
or any file is written.
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from thgs.animate.drive import Drive
from thgs.avatar.model import THGSAvatar
from thgs.render.base import Camera


@dataclass
class AvatarSession:
    """Everything the viewer and the exporter need from a run.

    ``drive`` holds T frames (the test split, or the --audio / --motion sequence); ``camera`` is the
    training camera; ``background`` [3] in [0, 1]; ``mode`` '2dgs' or '3dgs' (as trained)."""

    path: Path
    model: THGSAvatar
    cfg: Any
    subject: Any
    drive: Drive
    camera: Camera
    background: Tensor
    mode: str
    device: torch.device
    backend: str
    trained_active: dict[str, bool]
    surfels_as_3dgs: bool = False  # 2dgs: draw the surfels with the 3DGS rasterizer (faster, see render.base)
    animator_cache: Any = field(default=None, repr=False, compare=False)  # (key, Animator) of viewer.core

    @property
    def fps(self) -> float:
        return float(self.drive.fps)

    @property
    def num_frames(self) -> int:
        return len(self.drive)

    @property
    def duration(self) -> float:
        """Seconds of the sequence."""
        return self.num_frames / self.fps

    @property
    def expression_names(self) -> list[str]:
        return list(self.model.body.expression_names)

    @property
    def has_saam(self) -> bool:
        return self.model.saam is not None and self.drive.audio is not None

    @property
    def has_leb(self) -> bool:
        return self.model.leb is not None


def find_run_avatar(run: Path) -> Path:
    """``run`` (a run folder or a .pt file) -> the checkpoint to load (``avatar.pt``, else ``checkpoint.pt``)."""
    from thgs.cli import UserError
    from thgs.commands.render import find_avatar

    if not run.exists():
        raise UserError(f"{run}: no such run folder or checkpoint")
    return find_avatar(run)


def _load_checkpoint(path: Path, subject: Any, device: str):
    from thgs.cli import UserError
    from thgs.train.trainer import load_avatar

    from thgs.errors import ThgsError

    try:
        return load_avatar(path, subject, device=device)
    except ThgsError as exc:  # a CheckpointError names the file and the problem already
        raise UserError(str(exc)) from None
    except (ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError, AttributeError) as exc:
        raise UserError(f"{path}: cannot load the avatar checkpoint ({type(exc).__name__}: {exc})") from None


def open_session(run: Path, data: Path | None = None, audio: Path | None = None, motion: Path | None = None,
                 device: str = "auto", backend: str = "auto", frames: int = 0) -> AvatarSession:
    """Open ``run`` with the subject ``data`` (default: the training subject recorded in the run).

    ``audio`` / ``motion`` replace the test split as the driving sequence (as ``thgs render`` does);
    ``frames`` > 0 keeps only the first ``frames`` frames."""
    from thgs.animate.drive import DriveError
    from thgs.cli import UserError
    from thgs.commands.render import build_drive, training_subject_root
    from thgs.data.format import SubjectError
    from thgs.data.subject import open_subject
    from thgs.train.data import subject_background, subject_camera
    from thgs.utils.device import default_device

    path = find_run_avatar(run)
    root = training_subject_root(run, data)
    for name, p in (("--audio", audio), ("--motion", motion)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{name} {p}: no such file")
    try:
        subject = open_subject(root)
    except SubjectError as exc:
        raise UserError(str(exc)) from None
    try:
        dev = default_device(None if device == "auto" else device)
    except RuntimeError as exc:
        raise UserError(f"--device: {exc}") from None
    model, cfg, ckpt = _load_checkpoint(path, subject, dev)
    ns = argparse.Namespace(run=run, size=0, audio=audio, motion=motion, expression=None, frames=frames, orbit=False,
                            yaw=0.0)
    try:
        drive = build_drive(ns, model, cfg, subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    if len(drive) == 0:
        raise UserError(f"{root}: the driving sequence has no frames (empty test split?)")
    return AvatarSession(path=path, model=model, cfg=cfg, subject=subject, drive=drive, camera=subject_camera(subject),
                         background=subject_background(subject, cfg.background), mode=str(cfg.mode),
                         device=torch.device(dev), backend=backend, trained_active=dict(model.active))


def with_speech(session: AvatarSession, audio: Path) -> AvatarSession:
    """The session driven by the speech file ``audio`` (face from the run's speech model, body replayed, as
    ``thgs render RUN --audio``); raises UserError for an unreadable file."""
    import dataclasses

    from thgs.animate.drive import DriveError
    from thgs.cli import UserError
    from thgs.commands.render import build_drive

    ns = argparse.Namespace(run=session.path, size=0, audio=Path(audio), motion=None, expression=None, frames=0,
                            orbit=False, yaw=0.0)
    try:
        drive = build_drive(ns, session.model, session.cfg, session.subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    return dataclasses.replace(session, drive=drive, animator_cache=None)


__all__ = ["AvatarSession", "find_run_avatar", "open_session", "with_speech"]
