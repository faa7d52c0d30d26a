"""``thgs prepare SUBJECT`` / ``thgs prepare VIDEO OUT``: masks, keypoints and the body fit of a raw video."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

NAME = "prepare"
HELP = "turn an ingested video into a trainable subject: person masks, 2D keypoints and the FMA body fit"
DESCRIPTION = (
    "Prepare SUBJECT (made by `thgs ingest`) for training, or ingest VIDEO into OUT and prepare it. Stages: "
    "detect (mediapipe holistic keypoints and selfie-segmentation masks, the 'prepare' extra), shots (cuts, "
    "zooms and person switches from keypoint jumps; the longest shot is kept), fit (calibration and the FMA "
    "body fit, Eq. 16-17 of the paper) and write (masks/, keypoints.npz, params.npz, prepare.json and "
    "meta.json, atomically). Each stage's output is cached in SUBJECT/prepare/ and reused by a later run "
    "(--redo to recompute). A contact sheet of annotated frames is written to SUBJECT/prepare/contact_sheet.png. "
    "See docs/prepare.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="SUBJECT|VIDEO", help="a subject folder, or a video file (then give OUT)")
    parser.add_argument("out", metavar="OUT", nargs="?", default=None,
                        help="with a VIDEO: the subject folder to ingest it into and prepare")
    parser.add_argument("--stages", default="detect,fit",
                        help="stages to run: 'detect,fit' (everything) or 'detect' (masks and keypoints, no body fit)")
    parser.add_argument("--redo", action="append", choices=("detect", "fit", "all"), default=[],
                        help="recompute this stage even when its cache is valid (repeatable)")
    parser.add_argument("--body", choices=("anny", "smplx"), default="anny",
                        help="body model to fit: anny (bundled, permissive) or smplx (needs the user's SMPL-X "
                             "model file: THGS_SMPLX_MODEL or ~/.cache/thgs/smplx/)")
    parser.add_argument("--device", default="auto", help="torch device for the fit: auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--overlay-video", action="store_true",
                        help="also write SUBJECT/prepare/overlay.mp4 (every frame annotated)")
    parser.add_argument("--sheet-frames", type=int, default=12, help="frames on the contact sheet")
    parser.add_argument("--size", type=int, default=None, metavar="HEIGHT",
                        help="with a VIDEO: ingest at this height in pixels (default: native)")
    parser.add_argument("--start", type=float, default=0.0, help="with a VIDEO: seconds to skip at the beginning")
    parser.add_argument("--max-seconds", type=float, default=None, help="with a VIDEO: keep at most this many seconds")
    add_stage_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """The --detect-*, --shots-* and --fit-* flags of the stages' options (shared with `thgs demo --video`)."""
    from thgs.config import add_dataclass_arguments
    from thgs.prepare.detect import DetectOptions
    from thgs.prepare.shots import ShotOptions

    add_dataclass_arguments(parser, DetectOptions, prefix="detect_")
    add_dataclass_arguments(parser, ShotOptions, prefix="shots_")
    fit_options = _fit_options_class()
    if fit_options is not None:
        add_dataclass_arguments(parser, fit_options, prefix="fit_")


def stage_config(args: argparse.Namespace, *, stages: tuple[str, ...], redo: frozenset[str], device: str,
                 progress: bool, overlay_video: bool = False, sheet_frames: int = 12):
    """A :class:`thgs.prepare.pipeline.PrepareConfig` from the flags of :func:`add_stage_arguments`."""
    from thgs.config import dataclass_from_namespace
    from thgs.prepare.detect import DetectOptions
    from thgs.prepare.pipeline import PrepareConfig
    from thgs.prepare.shots import ShotOptions

    fit_cls = _fit_options_class()
    fit_options = dataclass_from_namespace(args, fit_cls(), prefix="fit_") if fit_cls is not None else None
    return PrepareConfig(stages=stages, redo=redo, body=args.body, device=device,
                         detect=dataclass_from_namespace(args, DetectOptions(), prefix="detect_"),
                         shots=dataclass_from_namespace(args, ShotOptions(), prefix="shots_"), fit=fit_options,
                         overlay_video=overlay_video, sheet_frames=sheet_frames, progress=progress)


def prepare_or_clean(subject_dir: Path, config, made: bool) -> dict:
    """:func:`thgs.prepare.pipeline.prepare_subject`; on failure a subject this run ingested (``made``) is removed
    and the error becomes one :class:`UserError` line."""
    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.prepare.errors import PrepareError
    from thgs.prepare.pipeline import prepare_subject

    try:
        return prepare_subject(subject_dir, config)
    except (PrepareError, SubjectError) as exc:
        if made:
            shutil.rmtree(subject_dir, ignore_errors=True)
        raise UserError(str(exc)) from exc


def _fit_options_class() -> type | None:
    """The body fit's options class (its fields become --fit-* flags), or None when the fit is absent."""
    try:
        from thgs.prepare.fit import FitOptions
    except ImportError:
        return None
    return FitOptions


def _stages(text: str) -> tuple[str, ...]:
    from thgs.cli import UserError
    from thgs.prepare.pipeline import STAGES

    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts or any(p not in STAGES for p in parts) or "detect" not in parts:
        raise UserError(f"--stages must be 'detect,fit' or 'detect', got {text!r}")
    return tuple(s for s in STAGES if s in parts)


def check_body(body: str) -> None:
    from thgs.cli import UserError

    if body == "smplx":
        from thgs.body import smplx as smplx_body

        path, searched = smplx_body.find_model()
        if path is None:
            raise UserError("--body smplx needs an SMPL-X model file (SMPLX_NEUTRAL.npz from the SMPL-X "
                            f"site); none found (searched: {', '.join(searched)}); set {smplx_body.ENV_VAR} "
                            "or use --body anny")


def ingest_into(video: Path, out: Path, *, start: float = 0.0, max_seconds: float | None = None,
                size: int | None = None, progress: bool = True) -> bool:
    """Ingest ``video`` into ``out``; returns whether this run made ``out`` (False: resumed an earlier one)."""
    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.io.ingest import Clip, ingest_video
    from thgs.io.video import VideoError

    if out.exists() and any(out.iterdir()):
        try:
            meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if str(meta.get("source", "")).startswith(f"ingest:{video.name}"):
            print(f"{out}: already ingested from {video.name}; resuming")
            return False
        raise UserError(f"{out}: exists and is not a subject ingested from {video.name}; choose another OUT")
    if size is not None and size < 2:
        raise UserError(f"--size must be at least 2 pixels, got {size}")
    try:
        ingest_video(video, out, Clip(start=start, max_seconds=max_seconds, height=size), progress=progress)
    except (VideoError, SubjectError) as exc:
        raise UserError(str(exc)) from exc
    return True


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.prepare.pipeline import format_report
    from thgs.utils.device import default_device

    stages = _stages(args.stages)
    if args.sheet_frames < 1:
        raise UserError(f"--sheet-frames must be >= 1, got {args.sheet_frames}")
    src = Path(args.input)
    if not src.exists():
        raise UserError(f"{src}: no such subject folder or video file")
    if "fit" in stages:
        check_body(args.body)
    try:
        device = default_device(args.device)
    except RuntimeError as exc:
        raise UserError(f"--device: {exc}") from exc
    made = False
    if src.is_file():
        if args.out is None:
            raise UserError(f"{src} is a file: give the subject folder to make from it (thgs prepare VIDEO OUT)")
        subject_dir = Path(args.out)
        made = ingest_into(src, subject_dir, start=args.start, max_seconds=args.max_seconds, size=args.size,
                           progress=not args.quiet)
    else:
        if args.out is not None:
            raise UserError(f"{src} is a subject folder; OUT is only for a VIDEO input")
        subject_dir = src
    redo = frozenset(("detect", "fit") if "all" in args.redo else args.redo)
    config = stage_config(args, stages=stages, redo=redo, device=device, progress=not args.quiet,
                          overlay_video=args.overlay_video, sheet_frames=args.sheet_frames)
    report = prepare_or_clean(subject_dir, config, made)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        print(f"wrote {subject_dir}: masks/, keypoints.npz"
              + (", params.npz" if report.get("fit") else "") + ", prepare.json, meta.json; contact sheet "
              + ", ".join(report.get("overlays", [])))
    return 0
