"""A trained run opened for viewing or export: avatar, subject, driving sequence, camera, background.

Every problem with the user's input (missing run folder, unreadable checkpoint, missing subject, bad
motion or audio file) is raised as :class:`thgs.cli.UserError` naming the file, before any server starts
or any file is written.
"""

from __future__ import annotations

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


def open_session(run: Path, data: Path | None = None, audio: Path | None = None, motion: Path | None = None,
                 device: str = "auto", backend: str = "auto", frames: int = 0) -> AvatarSession:
    """Open ``run`` with the subject ``data`` (default: the training subject recorded in the run).

    ``audio`` / ``motion`` replace the test split as the driving sequence (as ``thgs render`` does);
    ``frames`` > 0 keeps only the first ``frames`` frames."""
    from thgs.animate.drive import DriveError, DriveRequest, build_drive
    from thgs.cli import UserError
    from thgs.errors import ThgsError, one_line
    from thgs.runs.folder import open_run
    from thgs.runs.frames import subject_background, subject_camera

    for name, p in (("--audio", audio), ("--motion", motion)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{name} {p}: no such file")
    try:
        opened = open_run(run, data, device)
    except ThgsError as exc:
        raise UserError(one_line(exc)) from None
    model, cfg, subject = opened.model, opened.cfg, opened.subject
    try:
        drive = build_drive(DriveRequest(run=run, audio=audio, motion=motion, frames=frames), model, cfg, subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    if len(drive) == 0:
        raise UserError(f"{opened.root}: the driving sequence has no frames (empty test split?)")
    return AvatarSession(path=opened.path, model=model, cfg=cfg, subject=subject, drive=drive,
                         camera=subject_camera(subject), background=subject_background(subject, cfg.background),
                         mode=str(cfg.render.mode), device=torch.device(opened.device), backend=backend,
                         trained_active={g: model.is_active(g) for g in model.active})


def with_speech(session: AvatarSession, audio: Path) -> AvatarSession:
    """The session driven by the speech file ``audio`` (face from the run's speech model, body replayed, as
    ``thgs render RUN --audio``); raises UserError for an unreadable file."""
    import dataclasses

    from thgs.animate.drive import DriveError, DriveRequest, build_drive
    from thgs.cli import UserError

    try:
        drive = build_drive(DriveRequest(run=session.path, audio=Path(audio)), session.model, session.cfg, session.subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    return dataclasses.replace(session, drive=drive, animator_cache=None)


__all__ = ["AvatarSession", "open_session", "with_speech"]
