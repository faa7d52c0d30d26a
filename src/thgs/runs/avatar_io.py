"""A trained avatar on disk: the run folder's file names, building the avatar a config describes, the avatar
part of a checkpoint, and loading it back for driving, viewing, evaluation or more training.

Run folder layout::

    RUN/config.json          resolved config, versions, seed, subject
    RUN/metrics.jsonl        one JSON line every ``log_every`` steps (loss terms, PSNR, N, LRs, time)
    RUN/checkpoint.pt        latest checkpoint (atomic), resumable with ``thgs train --resume``
    RUN/avatar.pt            final model (same format as a checkpoint, written at the end)

A checkpoint is the avatar record of :func:`avatar_record` (format, version, config, model state, group
activity, body spec, frame and audio counts) plus what only training needs to continue (optimisers, RNG
states, sampler; :class:`thgs.train.trainer.Trainer`). It is read without running code from the file
(:mod:`thgs.runs.checkpoint`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from thgs.avatar.gaussians import InitOptions
from thgs.avatar.model import AvatarOptions, THGSAvatar
from thgs.config import replace_flat, to_dict
from thgs.runs.checkpoint import FORMAT, VERSION, CheckpointError, read_checkpoint
from thgs.runs.config import TrainConfig, config_from_dict

CHECKPOINT = "checkpoint.pt"
FINAL = "avatar.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


def avatar_options(cfg: TrainConfig) -> AvatarOptions:
    """The avatar options the config's model group asks for (ablation switches applied; the seed is the run's)."""
    m = cfg.model
    return AvatarOptions(
        leb=m.leb and not m.vanilla, saam=m.saam and not m.vanilla,
        use_expression=m.expr and not m.vanilla, use_audio=m.audio and not m.vanilla,
        joint_opt=m.joint_opt, skinning=m.skinning, grid_resolution=m.grid_resolution, grid_band=m.skin_band,
        fused_skinning=m.fused_skinning, hash_levels=m.hash_levels, hash_log2_table=m.hash_log2_table,
        init=InitOptions(sh_degree=m.sh_degree, opacity=m.init_opacity, seed=cfg.seed),
    )


def build_body(spec: Any, teeth: bool, where: str = "subject"):
    """The body model named by a subject's ``body`` spec ``{model, options}`` (with teeth when asked)."""
    from thgs.body.registry import load_body_model

    name = spec.get("model") if isinstance(spec, dict) else None
    if not name:
        raise ValueError(f"{where}: meta.json field 'body' names no body model")
    body = load_body_model(name, **(spec.get("options") or {}))
    if teeth:
        from thgs.body.teeth import with_teeth

        body = with_teeth(body)
    return body


def build_avatar(cfg: TrainConfig, body, num_frames: int, audio_channels: int) -> THGSAvatar:
    """A fresh avatar of the components ``cfg`` asks for on ``body``."""
    return THGSAvatar(body, avatar_options(cfg), num_frames=num_frames, audio_channels=audio_channels)


def avatar_record(model: THGSAvatar, cfg: TrainConfig, *, num_frames: int, audio_channels: int,
                  body_spec: Any) -> dict[str, Any]:
    """The fields of a checkpoint that describe the avatar itself (what :func:`load_avatar` reads back)."""
    return {"format": FORMAT, "version": VERSION, "config": to_dict(cfg), "num_gaussians": model.num_gaussians,
            "model": model.state_dict(), "active": {g: model.is_active(g) for g in model.active}, "audio_channels": int(audio_channels),
            "num_frames": int(num_frames), "body": {"spec": body_spec, "teeth": cfg.model.teeth}}


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The config a run was started with (``RUN/config.json``; the flat layout of older runs converted:
    :func:`thgs.runs.config.config_from_dict`)."""
    path = Path(run_dir) / CONFIG
    try:
        data = json.loads(path.read_text())
        return config_from_dict(data["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read field 'config' ({exc})") from None


def config_from_checkpoint(ckpt: dict, path: str | Path = "checkpoint") -> TrainConfig:
    """The config stored in a checkpoint (the flat layout of older ones converted); :class:`CheckpointError`
    naming ``path`` when it does not parse. A checkpoint whose skinning residual is dense ([J, R, R, R]:
    written before the sparse residual, or with ``skin_band`` -1) gets ``skin_band`` -1, so that it loads and
    resumes as it was trained."""
    try:
        cfg = config_from_dict(ckpt["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: field 'config' is not a thgs training config ({exc})") from None
    delta = ckpt.get("model", {}).get("skin_grid.delta") if isinstance(ckpt.get("model"), dict) else None
    if delta is not None and delta.dim() == 4 and cfg.model.skin_band != -1:
        cfg = replace_flat(cfg, skin_band=-1)
    return cfg


def subject_record(root: Any, run_dir: str | Path, name: Any = None) -> dict:
    """config.json's ``subject``: the folder as an absolute path and relative to the run folder."""
    if not root:
        return {"name": name, "root": "", "relative": None}
    absolute = Path(root).resolve()
    try:
        relative = os.path.relpath(absolute, Path(run_dir).resolve())
    except ValueError:  # another drive (Windows)
        relative = None
    return {"name": name, "root": str(absolute), "relative": relative}


def load_model_state(model: THGSAvatar, ckpt: dict, path: str | Path, device: Any = None) -> None:
    """Load a checkpoint's field ``model`` into ``model`` (on ``device``); :class:`CheckpointError` naming
    ``path`` when it does not fit."""
    state = ckpt["model"] if device is None else {k: v.to(device) for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: field 'model' does not fit the avatar its config describes "
                              f"({str(exc).strip().splitlines()[0]})") from None


def load_avatar(path: str | Path, subject: Any | None = None, device: str | torch.device = "cpu",
                body=None) -> tuple[THGSAvatar, TrainConfig, dict]:
    """Rebuild a trained avatar from a checkpoint (``avatar.pt`` or ``checkpoint.pt``).

    The file is read without running code from it (:func:`thgs.runs.checkpoint.read_checkpoint`); a file
    that is not a thgs checkpoint raises :class:`CheckpointError` naming it. The body model is rebuilt from
    the body spec stored in the checkpoint (or ``body``)."""
    path = Path(path)
    ckpt = read_checkpoint(path, map_location=device)
    cfg = config_from_checkpoint(ckpt, path)
    if body is None:
        spec = ckpt["body"].get("spec") if isinstance(ckpt["body"], dict) else None
        spec = spec or (getattr(subject, "body", None) if subject is not None else None)
        body = build_body(spec, bool(ckpt["body"].get("teeth", cfg.model.teeth)) if isinstance(ckpt["body"], dict)
                          else cfg.model.teeth, str(path))
    try:
        model = THGSAvatar(body, avatar_options(cfg), num_frames=int(ckpt["num_frames"]),
                           audio_channels=int(ckpt["audio_channels"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: fields 'num_frames'/'audio_channels'/'config' do not describe an avatar "
                              f"({exc})") from None
    load_model_state(model, ckpt, path)
    for g, a in dict(ckpt["active"]).items():
        if g in model.active:
            model.set_group_active(g, bool(a))
    model.to(device).eval()
    return model, cfg, ckpt


__all__ = ["CHECKPOINT", "CONFIG", "FINAL", "METRICS", "CheckpointError", "avatar_options", "avatar_record",
           "build_avatar", "build_body", "config_from_checkpoint", "load_avatar", "load_model_state",
           "read_run_config", "subject_record"]
