"""``thgs export RUN``: write a trained avatar's Gaussians as 3DGS PLY files (one frame, the canonical pose,
or a whole sequence)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "export a trained avatar as 3DGS PLY splats (a frame, the canonical pose, or a sequence)"
DESCRIPTION = ("Write the avatar in RUN as PLY files in the original 3DGS layout (x, y, z, normals, f_dc_*, f_rest_*, "
               "opacity logit, log scales, w-x-y-z quaternion; binary little-endian) that other 3DGS viewers read. "
               "--ply writes one file: the posed avatar of test frame --frame, or --canonical for the rest pose. "
               "--frames writes one file per frame of the test split (or of --motion / --audio) into a new folder. "
               "2D Gaussians get a third scale 1000 times smaller than their smaller axis.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder (from `thgs train`) or an avatar/checkpoint .pt file")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--ply", type=Path, default=None, help="write one .ply file")
    out.add_argument("--frames", type=Path, default=None,
                     help="write DIR/000000.ply ... for every frame (DIR must not exist or be empty)")
    parser.add_argument("--frame", type=int, default=None,
                        help="with --ply: index into the test split (or --motion/--audio sequence); default 0")
    parser.add_argument("--canonical", action="store_true", help="with --ply: the canonical (rest) pose")
    parser.add_argument("--data", type=Path, default=None, help="subject folder (default: the training subject)")
    parser.add_argument("--audio", type=Path, default=None, help="speech audio driving the mouth instead of the test split")
    parser.add_argument("--motion", type=Path, default=None,
                        help="per-frame body poses (our params.npz or an SMPL-X .npz) instead of the test split")
    parser.add_argument("--max-frames", type=int, default=0, help="with --frames: at most this many frames (0: all)")
    parser.add_argument("--sh-pad", type=int, default=3,
                        help="pad SH coefficients with zeros up to this degree (3: the layout every 3DGS viewer reads; "
                             "-1: write only the trained degree)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> None:
    from thgs.cli import UserError

    if args.ply is not None:
        if args.ply.suffix.lower() != ".ply":
            raise UserError(f"--ply {args.ply}: must end in .ply")
        if args.canonical and args.frame is not None:
            raise UserError("--canonical and --frame exclude each other")
        if args.canonical and (args.audio or args.motion):
            raise UserError("--canonical takes no --audio or --motion")
        if args.max_frames:
            raise UserError("--max-frames goes with --frames, not --ply")
    else:
        if args.canonical or args.frame is not None:
            raise UserError("--canonical and --frame go with --ply; --frames writes every frame")
        if args.frames.exists() and (not args.frames.is_dir() or any(args.frames.iterdir())):
            raise UserError(f"--frames {args.frames}: exists and is not an empty folder")
    if args.max_frames < 0:
        raise UserError(f"--max-frames {args.max_frames}: must not be negative")
    if args.sh_pad < -1 or args.sh_pad > 4:
        raise UserError(f"--sh-pad {args.sh_pad}: must be -1 (no padding) or a degree 0..4")


def run(args: argparse.Namespace) -> int:
    import torch

    from thgs.export.ply import splats_from_gaussians, write_gaussian_ply
    from thgs.viewer import core
    from thgs.viewer.session import open_session

    _check(args)
    session = open_session(args.run, data=args.data, audio=args.audio, motion=args.motion, device=args.device,
                           frames=args.max_frames)
    pad = None if args.sh_pad < 0 else args.sh_pad
    kind = "2dgs" if session.mode == "2dgs" else "3dgs"
    state = core.ViewerState(saam=session.has_saam, leb=session.has_leb)
    if args.ply is not None:
        if args.canonical:
            gs = canonical_gaussians(session)
            what = "canonical pose"
        else:
            t = 0 if args.frame is None else args.frame
            if not 0 <= t < session.num_frames:
                from thgs.cli import UserError

                raise UserError(f"--frame {t}: the sequence has frames 0..{session.num_frames - 1}")
            with torch.no_grad(), core.switches(session.model, state.saam, state.leb, session.trained_active):
                gs = session.model(core.state_inputs(session, state.with_(frame=t)))
            what = f"frame {t}" + (f" (subject frame {session.drive.frames[t]})" if session.drive.frames else "")
        write_gaussian_ply(args.ply, splats_from_gaussians(gs, kind), pad, comments=[f"thgs {what}"])
        print(f"ply: {args.ply} ({len(gs)} {kind} Gaussians, {what})")
        return 0

    from tqdm import tqdm

    from thgs.utils.io import atomic_dir

    T = session.num_frames
    with atomic_dir(args.frames) as tmp:
        for t in tqdm(range(T), desc="export", unit="frame", disable=args.no_progress):
            with torch.no_grad(), core.switches(session.model, state.saam, state.leb, session.trained_active):
                gs = session.model(core.state_inputs(session, state.with_(frame=t)))
            write_gaussian_ply(tmp / f"{t:06d}.ply", splats_from_gaussians(gs, kind), pad, comments=[f"thgs frame {t}"])
    print(f"frames: {args.frames} ({T} PLY files, {kind})")
    return 0


def canonical_gaussians(session):
    """The avatar in its rest pose (zero pose and translation, the subject's shape, neutral expression)."""
    import torch

    from thgs.avatar.model import FrameInputs

    model = session.model
    body = model.body
    dev = session.device
    inputs = FrameInputs(pose=torch.zeros(body.num_joints, 3, device=dev), transl=torch.zeros(3, device=dev),
                         betas=session.drive.betas.to(dev), expression=torch.zeros(body.num_expressions, device=dev),
                         audio_window=None, frame_index=None)
    with torch.no_grad():
        return model(inputs)
