"""``thgs render RUN --out OUT.mp4``: render a trained avatar (test split, new audio/motion/expression,
novel views) to an mp4 with sound."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from thgs.runs.config import Backend

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
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--size", type=int, default=0, help="output height in pixels (0: the subject's)")


def build_drive(args: argparse.Namespace, model, cfg, subject):
    """The driving sequence the flags ask for."""
    import numpy as np
    import torch

    from thgs.animate.drive import Drive, load_motion, orbit, parse_expression, rotate_camera, subject_drive
    from thgs.audio.features import frame_features
    from thgs.cli import UserError
    from thgs.runs.frames import audio_neighbourhoods, load_audio_windows, subject_camera

    cam = subject_camera(subject)
    if args.size:
        cam = cam.scaled(args.size / cam.height)
    body = model.body
    fps = float(subject.fps)
    p = subject.params()
    test = list(subject.split["test"]) or list(range(subject.num_frames))
    clip = None
    audio_win = None
    if args.audio is not None:
        from thgs.io.audio_io import AudioError, load_audio

        try:
            samples, sr = load_audio(args.audio)
        except AudioError as exc:
            raise UserError(str(exc)) from None
        clip = (np.asarray(samples, np.float32), int(sr))
    face = None
    if clip is not None:  # speech drives the face (and, without --motion, the body): thgs.animate.speech
        from thgs.animate.speech import run_speech_face, speech_drive, summary

        face = run_speech_face(getattr(args, "run", None), model, cfg, subject)
        if face is not None:
            print(summary(face))
    if args.motion is not None and clip is not None:
        m = load_motion(args.motion, body.num_joints, body.num_expressions)
        drive = speech_drive(model, subject, clip, cam, face=face, motion=m,
                             saam_encoder=cfg.audio_encoder if model.saam is not None else None)
    elif args.motion is not None:
        m = load_motion(args.motion, body.num_joints, body.num_expressions)
        T = int(m["pose"].shape[0])
        drive = Drive(pose=m["pose"], transl=m["transl"],
                      betas=m.get("betas", torch.as_tensor(np.asarray(p["betas"]), dtype=torch.float32).reshape(-1)),
                      expression=m.get("expression", torch.zeros(T, body.num_expressions)), fps=fps, cameras=[cam])
    elif clip is not None:
        drive = speech_drive(model, subject, clip, cam, face=face,
                             saam_encoder=cfg.audio_encoder if model.saam is not None else None)
    else:
        audio_all = load_audio_windows(subject, cfg) if model.saam is not None else None
        drive = subject_drive(subject, test, cam, audio_all)
        clip = drive.clip
    T = len(drive)
    if args.audio is not None and "speech" not in drive.extras:
        if model.saam is not None:
            feats = frame_features(args.audio, T, fps, encoder=cfg.audio_encoder, pad_audio=True)
            drive.audio = audio_neighbourhoods(feats.tensor())
        drive.clip = clip
    if args.expression:
        fixed = parse_expression(args.expression, body.expression_names, T)
        if "speech" in drive.extras:  # the named units only; speech keeps driving the others
            from thgs.animate.speech import override_units

            fixed = override_units(drive.expression, fixed, args.expression, body.expression_names)
        drive.expression = fixed
    if args.frames and args.frames < T:
        n = args.frames
        drive = Drive(pose=drive.pose[:n], transl=drive.transl[:n], betas=drive.betas, expression=drive.expression[:n],
                      fps=fps, cameras=drive.cameras[:n] if len(drive.cameras) > 1 else drive.cameras,
                      audio=drive.audio[:n] if drive.audio is not None else None,
                      clip=(drive.clip[0][: int(round(n / fps * drive.clip[1]))], drive.clip[1]) if drive.clip else None,
                      frames=drive.frames[:n] if drive.frames else None)
        T = n
    if args.orbit or args.yaw:
        with torch.no_grad():
            out = body(drive.pose[:1].to(body.v_template.device), drive.betas[None].to(body.v_template.device),
                       None, drive.transl[:1].to(body.v_template.device))
        v = out.vertices[0].cpu()
        center = (v.min(0).values + v.max(0).values) / 2
        up = -cam.world_to_cam[1, :3]  # image up, in world coordinates
        base = rotate_camera(cam, center, up, args.yaw) if args.yaw else cam
        drive.cameras = orbit(base, center, up, T) if args.orbit else [base]
    return drive


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
    for name, p in (("--audio", args.audio), ("--motion", args.motion)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{name} {p}: no such file")


def run(args: argparse.Namespace) -> int:
    from thgs.animate.drive import DriveError
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
        drive = build_drive(args, model, cfg, subject)
    except DriveError as exc:
        raise UserError(str(exc)) from None
    background = subject_background(subject, cfg.background)
    mode = args.mode or cfg.render.mode
    from tqdm import tqdm

    bar = tqdm(total=len(drive), desc="render", unit="frame")
    frames = render_frames(model, drive, background, mode, args.backend, progress=lambda t: bar.update(1),
                           surfels_as_3dgs=bool(getattr(args, "surfels_3dgs", False)))
    try:
        write_mp4(args.out, frames, drive.fps, drive.clip, args.png_dir)
    finally:
        bar.close()
    print(f"video: {args.out} ({len(drive)} frames at {drive.fps:g} fps{', with audio' if drive.clip else ''})")
    return 0
