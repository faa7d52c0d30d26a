"""A run folder opened for use: where its avatar file and its training subject are, and both loaded.

Every problem (no avatar file, no subject, a bad device, an unreadable checkpoint) is a :class:`RunError`
(a :class:`thgs.errors.ThgsError`) naming the file or flag, raised before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thgs.avatar.model import THGSAvatar
from thgs.errors import ThgsError
from thgs.runs.avatar_io import CHECKPOINT, CONFIG, FINAL, load_avatar
from thgs.runs.config import TrainConfig


class RunError(ThgsError, ValueError):
    """A run folder, its avatar or its subject cannot be used; the message names the file or flag."""


def find_avatar(run: Path) -> Path:
    """``run`` (a run folder or a .pt file) -> the checkpoint to load (``avatar.pt``, else ``checkpoint.pt``)."""
    run = Path(run)
    if run.is_file():
        return run
    for name in (FINAL, CHECKPOINT):
        if (run / name).is_file():
            return run / name
    raise RunError(f"{run}: no {FINAL} or {CHECKPOINT} (train first with `thgs train`)")


def run_folder(run: Path) -> Path:
    """The run folder of ``run`` (the folder itself, or the folder holding the .pt file)."""
    run = Path(run)
    return run if run.is_dir() else run.parent


def subject_candidates(run: Path) -> list[Path]:
    """Where the run's config.json says its training subject is, in the order tried: relative to the run
    folder (field ``subject.relative``), then the absolute path (``subject.root``; older runs recorded it
    relative to the directory they were trained in)."""
    run_dir = run_folder(run)
    try:
        rec = json.loads((run_dir / CONFIG).read_text())["subject"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(rec, dict):
        return []
    out = []
    if isinstance(rec.get("relative"), str) and rec["relative"]:
        out.append(run_dir / rec["relative"])
    if isinstance(rec.get("root"), str) and rec["root"]:
        out.append(Path(rec["root"]))
    return out


def training_subject_root(run: Path, data: Path | None = None) -> Path:
    """The subject folder to use with ``run``: ``data`` (``--data``) when given, else the first recorded
    location that exists (:func:`subject_candidates`). Raises :class:`RunError` saying to pass --data otherwise."""
    if data is not None:
        if not Path(data).is_dir():
            raise RunError(f"--data {data}: no such subject folder")
        return Path(data)
    found = subject_candidates(run)
    for cand in found:
        if cand.is_dir():
            return cand
    config = run_folder(run) / CONFIG
    if not found:
        raise RunError(f"{config}: records no training subject (field 'subject'); pass --data SUBJECT")
    raise RunError(f"{config}: training subject not found at {' or '.join(str(c) for c in found)}; "
                   "pass --data SUBJECT")


def resolve_device(device: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` -> the torch device to use; :class:`RunError` naming --device."""
    from thgs.utils.device import default_device

    try:
        return default_device(None if device == "auto" else device)
    except RuntimeError as exc:
        raise RunError(f"--device {device}: {exc}") from None


def load_run_avatar(path: Path, subject: Any | None = None, device: str = "cpu"
                    ) -> tuple[THGSAvatar, TrainConfig, dict]:
    """:func:`thgs.runs.avatar_io.load_avatar` with every failure a :class:`ThgsError` naming ``path``."""
    import pickle

    try:
        return load_avatar(path, subject, device=device)
    except ThgsError:  # a CheckpointError names the file and the problem already
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError, AttributeError) as exc:
        raise RunError(f"{path}: cannot load the avatar checkpoint ({type(exc).__name__}: {exc})") from None


@dataclass
class OpenedRun:
    """A run's avatar file ``path``, its subject folder ``root`` and opened ``subject``, and the loaded
    avatar (``model``, its config ``cfg``, the checkpoint dict ``ckpt``) on ``device``."""

    path: Path
    root: Path
    subject: Any
    model: THGSAvatar
    cfg: TrainConfig
    ckpt: dict
    device: str


def open_run(run: Path, data: Path | None = None, device: str = "auto") -> OpenedRun:
    """Find the avatar of ``run`` (a run folder or a .pt file), open its subject (``data``, else the training
    subject the run records) and load the avatar on ``device`` (``auto``: the default device)."""
    from thgs.data.subject import open_subject

    run = Path(run)
    if not run.exists():
        raise RunError(f"{run}: no such run folder or checkpoint")
    path = find_avatar(run)
    root = training_subject_root(run, data)
    subject = open_subject(root)
    dev = resolve_device(device)
    model, cfg, ckpt = load_run_avatar(path, subject, dev)
    return OpenedRun(path=path, root=root, subject=subject, model=model, cfg=cfg, ckpt=ckpt, device=dev)


__all__ = ["OpenedRun", "RunError", "find_avatar", "load_run_avatar", "open_run", "resolve_device", "run_folder",
           "subject_candidates", "training_subject_root"]
