"""``thgs render RUN --out OUT.mp4``: render a trained avatar (test split, new audio/motion/expression,
novel views) to an mp4 with sound."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from thgs.runs.config import Backend

if typing.TYPE_CHECKING:
    from thgs.animate.drive import DriveRequest

NAME = "render"
HELP = "render a trained avatar to a video (test split, new audio, motion, expressions, novel views)"
DESCRIPTION = ("Render the avatar in RUN (a run folder or its avatar.pt). Without driving inputs the subject's test "
               "split is rendered with its audio; --audio, --motion and --expression drive it with new inputs; "
               "--orbit and --yaw move the camera.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import typing

    from thgs.config import finite_float
    from thgs.runs.config import Mode

    parser.add_argument("run", type=Path, help="run folder (from `thgs train`) or an avatar/checkpoint .pt file")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    parser.add_argument("--data", type=Path, default=None,
                        help="subject folder for camera, background and test split (default: the training subject)")
    parser.add_argument("--audio", type=Path, default=None, help="speech audio (WAV, MP3, MP4 or any file with sound) to drive the face (speech model, SAAM) "
                             "and, without --motion, the body (replayed training motion); see docs/speech-driving.md")
    parser.add_argument("--motion", type=Path, default=None,
                        help="per-frame body poses: our params.npz format or an SMPL-X .npz (global_orient, body_pose, ...)")
    parser.add_argument("--expression", default=None,
                        help="fixed expression: name=value pairs (e.g. jaw_open=0.8,smile=0.3) or a .npy of [E] or [T, E]")
    parser.add_argument("--orbit", action="store_true", help="camera goes once round the avatar over the video")
    parser.add_argument("--yaw", type=finite_float, default=0.0,
                        help="turn the camera about the avatar by this many degrees")
    parser.add_argument("--frames", type=int, default=0, help="render at most this many frames (0: all)")
    parser.add_argument("--png-dir", type=Path, default=None, help="also write every frame as PNG into this folder")
    parser.add_argument("--mode", choices=typing.get_args(Mode), default=None, help="rasterization (default: as trained)")
    parser.add_argument("--backend", default="auto", choices=typing.get_args(Backend),
                        help="rasterizer backend (gsplat needs CUDA)")
    parser.add_argument("--surfels-3dgs", action="store_true",
                        help="2dgs avatars: draw the surfels with the 3DGS rasterizer (flat, third scale 0): faster "
                             "on a GPU, a small image difference (docs/benchmarks.md)")
    parser.add_argument("--batch", type=int, default=8,
                        help="frames posed and rasterized per call (one Animator call, one render_batch call)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--size", type=int, default=0, help="output height in pixels (0: the subject's)")


def drive_request(args: argparse.Namespace) -> "DriveRequest":
    """The :class:`thgs.animate.drive.DriveRequest` the render flags ask for."""
    from thgs.animate.drive import DriveRequest

    return DriveRequest(run=getattr(args, "run", None), size=args.size, audio=args.audio, motion=args.motion,
                        expression=args.expression, frames=args.frames, orbit=args.orbit, yaw=args.yaw)


def check_render_args(args: argparse.Namespace) -> None:
    """The numeric flags are finite and in range, the input files exist (before any work)."""
    import math

    from thgs.cli import UserError

    if not math.isfinite(args.yaw):
        raise UserError(f"--yaw {args.yaw}: must be a finite number of degrees")
    if args.frames < 0:
        raise UserError(f"--frames {args.frames}: must not be negative")
    if args.size < 0:
        raise UserError(f"--size {args.size}: must not be negative")
    if args.batch < 1:
        raise UserError(f"--batch {args.batch}: must be at least 1")
    for name, p in (("--audio", args.audio), ("--motion", args.motion)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{name} {p}: no such file")


def run(args: argparse.Namespace) -> int:
    from thgs.animate.drive import DriveError, build_drive
    from thgs.animate.render import render_frames, write_mp4
    from thgs.cli import UserError
    from thgs.runs.folder import open_run
    from thgs.runs.frames import subject_background

    if args.out.suffix.lower() != ".mp4":
        raise UserError(f"--out {args.out}: must end in .mp4")
    check_render_args(args)
    opened = open_run(args.run, args.data, args.device)
    model, cfg, subject = opened.model, opened.cfg, opened.subject
    try:
        drive = build_drive(drive_request(args), model, cfg, subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    background = subject_background(subject, cfg.background)
    mode = args.mode or cfg.render.mode
    from tqdm import tqdm

    bar = tqdm(total=len(drive), desc="render", unit="frame")
    frames = render_frames(model, drive, background, mode, args.backend, progress=lambda t: bar.update(1),
                           surfels_as_3dgs=bool(getattr(args, "surfels_3dgs", False)), batch=args.batch)
    try:
        write_mp4(args.out, frames, drive.fps, drive.clip, args.png_dir)
    finally:
        bar.close()
    print(f"video: {args.out} ({len(drive)} frames at {drive.fps:g} fps{', with audio' if drive.clip else ''})")
    return 0
