"""``thgs synth OUT``: generate a synthetic talking-human subject whose ground truth is known exactly."""

from __future__ import annotations

import argparse
import time

NAME = "synth"
HELP = "generate a synthetic talking-human subject with known ground truth (no SMPL-X files or GPU needed)"
DESCRIPTION = (
    "Generate a synthetic subject: speech-like audio synthesised in code, a speaker whose mouth follows the "
    "audio and whose face, head, torso, arms and fingers move naturally, rendered by thgs's own mesh "
    "rasterizer from one static front camera, plus ground-truth novel views of the test frames. The result is "
    "a subject folder in thgs's format (check it with `thgs check OUT`) with the exact body parameters "
    "(params.npz) and truth.npz (mouth-shape coefficients, phone track, expression controls). "
    "See docs/synthetic-subject.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import finite_float

    parser.add_argument("out", metavar="OUT", help="subject folder to create")
    parser.add_argument("--body", choices=("anny", "toy"), default="anny",
                        help="body model: anny (permissive realistic body; first use converts it, ~1-2 min) "
                             "or toy (procedural, instant)")
    parser.add_argument("--seconds", type=finite_float, default=20.0, help="length of the video in seconds")
    parser.add_argument("--fps", type=finite_float, default=25.0, help="frame rate")
    parser.add_argument("--size", type=int, default=256,
                        help="image height in pixels; the width follows 16:9 landscape (or 9:16 with --portrait)")
    parser.add_argument("--portrait", action="store_true", help="9:16 portrait frames instead of 16:9 landscape")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same subject")
    parser.add_argument("--views", type=finite_float, nargs="*", default=[-30.0, -15.0, 15.0, 30.0], metavar="YAW",
                        help="novel-view yaws in degrees about the body's vertical axis (positive: toward the "
                             "body's left) rendered for the test frames; give none for no views")
    parser.add_argument("--supersample", type=int, default=2,
                        help="anti-aliasing: rasterize at this many times the resolution per axis")
    parser.add_argument("--workers", type=int, default=0,
                        help="rendering processes (0: one per CPU core, at most 8); the images do not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing subject")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.synth.generate import SynthConfig, default_workers, generate

    if args.seconds <= 0.5:
        raise UserError(f"--seconds must be more than 0.5, got {args.seconds}")
    if not (1 <= args.fps <= 240):
        raise UserError(f"--fps must lie in [1, 240], got {args.fps}")
    if round(args.seconds * args.fps) < 2:
        raise UserError(f"--seconds {args.seconds} at --fps {args.fps} gives fewer than 2 frames")
    if not (16 <= args.size <= 4096):
        raise UserError(f"--size must lie in [16, 4096] pixels, got {args.size}")
    if not (1 <= args.supersample <= 4):
        raise UserError(f"--supersample must be 1, 2, 3 or 4, got {args.supersample}")
    if any(not (-180 <= y <= 180) for y in args.views):
        raise UserError(f"--views: yaws must lie in [-180, 180] degrees, got {args.views}")
    if len({f"{y:g}" for y in args.views}) != len(args.views):
        raise UserError(f"--views: repeated yaw in {args.views}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise UserError(f"{out} exists and is not empty (pass --overwrite to replace a subject)")
    if args.body == "anny":
        from thgs.body import anny

        st = anny.status()
        if not st["available"] and not st["cached"]:
            raise UserError("--body anny: the anny body model is not installed (pip install 'thgs[anny]'); "
                            "or use --body toy")
        if not st["cached"] and not args.no_progress:
            print("converting the anny body model (first use only; about a minute or two)...", flush=True)
    cfg = SynthConfig(body=args.body, seconds=args.seconds, fps=args.fps, size=args.size, portrait=args.portrait,
                      seed=args.seed, views=tuple(args.views), supersample=args.supersample)
    torch.manual_seed(args.seed)
    t = time.perf_counter()
    try:
        path, timings = generate(out, cfg, overwrite=args.overwrite, progress=not args.no_progress,
                                 workers=default_workers(args.workers))
    except SubjectError as exc:
        raise UserError(str(exc)) from exc
    total = time.perf_counter() - t
    w, h = cfg.image_size()
    n = int(round(cfg.seconds * cfg.fps))
    print(f"wrote {path}: {n} frames {w}x{h} at {cfg.fps:g} fps, body {cfg.body}, "
          f"{len(cfg.views)} novel view(s) of the test frames, in {total:.1f} s "
          f"(render {timings.get('render', 0):.1f} s, write {timings.get('write', 0):.1f} s)")
    return 0
