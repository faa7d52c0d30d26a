"""Speed of ``thgs prepare`` end to end (detect, shots, calibrate + FMA fit, write) on one clip.

Usage:
    python benchmarks/prepare_speed.py FOLDER [--seconds 60] [--fps 30] [--height 720] [--device cpu|cuda]
    python benchmarks/prepare_speed.py --clip CLIP.mp4 [--device cuda]
    python benchmarks/prepare_speed.py FOLDER --seconds 60 --fps 25 --height 512 --width 288 --clip-only CLIP.mp4

With FOLDER, a clip of --seconds at --fps is made from the longest video in it (with --concat: from each
video in turn, longest first): its frames scaled to --height and centred on a 16:9 canvas (1280x720 at 720p),
played forward then backward (so that motion is continuous: no shot cut at the seams) and looped until the
clip is long enough; its audio is looped beside. ``--stages detect`` times detection alone. Prints one table: stage,
seconds, milliseconds per frame; the fit's own sub-stages are listed under it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def canvas(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (already ``height`` tall, or scaled here) centred on a black ``width`` x ``height`` canvas."""
    from PIL import Image

    h, w = image.shape[:2]
    if h != height:
        w = max(2, int(round(w * height / h)))
        image = np.asarray(Image.fromarray(image).resize((w, height), Image.BILINEAR))
        h = height
    if w > width:  # wider than the canvas: crop the middle
        x0 = (w - width) // 2
        return np.ascontiguousarray(image[:, x0:x0 + width])
    out = np.zeros((height, width, 3), np.uint8)
    x0 = (width - w) // 2
    out[:, x0:x0 + w] = image
    return out


def make_clip(folder: Path, out: Path, *, seconds: float, fps: float, height: int, concat: bool = False,
              width: int = 0) -> Path:
    """Write the benchmark clip (see the module docstring; ``width`` > 0: that canvas width instead of 16:9,
    e.g. the video's own aspect); returns ``out``."""
    from thgs.io.video import iter_frames, probe_video, read_video_audio, write_video

    videos = [p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
    if not videos:
        raise SystemExit(f"{folder}: no video files")
    videos.sort(key=lambda p: (-(probe_video(p).duration or 0.0), p.name))
    if not concat:
        videos = videos[:1]
    width = width if width > 0 else int(round(height * 16 / 9)) // 2 * 2
    total = int(round(seconds * fps))
    # the audio follows the frames: each video's track forward then backward, looped
    parts = [read_video_audio(v) for v in videos]
    track = np.concatenate([seg for part in parts for seg in (part, part[::-1])])
    n_samples = int(np.ceil(seconds * 16000)) + 1600
    audio = np.tile(track, n_samples // len(track) + 1)[:n_samples]

    def frames() -> Iterator[np.ndarray]:
        n = 0
        while True:
            for v in videos:  # one video's frames in memory at a time, at their own (scaled) size
                clip = [f.image for f in iter_frames(v, fps=fps, height=height)]
                for f in clip + clip[::-1]:
                    if n >= total:
                        return
                    yield canvas(f, width, height)
                    n += 1

    return write_video(out, frames(), fps, audio=(audio, 16000))


def run(clip: Path, work: Path, device: str, stages: tuple[str, ...], bake_shape: bool = True
        ) -> tuple[list[tuple[str, float, float | None]], int]:
    """Ingest and prepare ``clip``; rows of (stage, wall seconds, CPU seconds of every thread or None)."""
    from thgs.io.ingest import ingest_video
    from thgs.prepare.pipeline import PrepareConfig, prepare_subject

    subject = work / "subject"
    t0, c0 = time.perf_counter(), time.process_time()
    ingest_video(clip, subject, progress=True)
    rows: list[tuple[str, float, float | None]] = [("ingest", time.perf_counter() - t0, time.process_time() - c0)]
    t0, c0 = time.perf_counter(), time.process_time()
    from thgs.prepare.fit import FitOptions

    cfg = PrepareConfig(stages=stages, device=device, progress=True, fit=FitOptions(bake_shape=bake_shape))
    report = prepare_subject(subject, cfg)
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu = report.get("cpu_seconds", {})
    for k, v in report["seconds"].items():
        rows.append((k, float(v), cpu.get(k)))
    if report.get("fit"):
        for k, v in (report["fit"].get("stage_seconds") or {}).items():
            rows.append((f"  fit: {k}", float(v), None))
    rows.append(("prepare total", total, total_cpu))
    return rows, int(report["frames"]["total"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, help="folder of videos to make the clip from")
    parser.add_argument("--clip", type=Path, default=None, help="use this video as it is instead of making one")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=0, help="canvas width (0: 16:9 at --height)")
    parser.add_argument("--device", default="cpu", help="torch device of the fit (detection runs on the CPU)")
    parser.add_argument("--stages", default="detect,fit", help="'detect,fit' or 'detect'")
    parser.add_argument("--concat", action="store_true",
                        help="play every video of FOLDER in turn (shot cuts at the seams: prepare keeps the longest "
                             "shot) instead of looping the longest one")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--clip-only", type=Path, default=None, metavar="PATH",
                        help="write the clip made from FOLDER to PATH and stop (e.g. a 60 s clip for "
                             "`thgs demo --video PATH`, whose metrics.json times ingest+prepare, training and "
                             "evaluation)")
    parser.add_argument("--no-bake-shape", action="store_true",
                        help="keep the calibrated shape as coefficients of the cached shape basis instead of "
                             "converting an exact anny body (for a machine without the anny package)")
    args = parser.parse_args()
    if args.clip is None and args.folder is None:
        parser.error("give a FOLDER of videos or --clip")
    if args.clip_only is not None:
        if args.folder is None:
            parser.error("--clip-only needs a FOLDER of videos")
        t0 = time.perf_counter()
        clip = make_clip(args.folder, args.clip_only, seconds=args.seconds, fps=args.fps, height=args.height,
                         concat=args.concat, width=args.width)
        print(f"made {clip} ({args.seconds:g} s at {args.fps:g} fps, {args.height} px high) in "
              f"{time.perf_counter() - t0:.1f} s")
        return 0
    stages = tuple(s for s in ("detect", "fit") if s in args.stages.split(","))
    with tempfile.TemporaryDirectory(prefix="thgs-prepare-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = args.clip
        if clip is None:
            t0 = time.perf_counter()
            clip = make_clip(args.folder, work / "clip.mp4", seconds=args.seconds, fps=args.fps, height=args.height,
                             concat=args.concat, width=args.width)
            print(f"made {clip} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows, n = run(clip, work, args.device, stages, bake_shape=not args.no_bake_shape)
    import os

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nthgs prepare on {n} frames ({args.height}p clip), device {args.device}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    print(f"{'stage':24s} {'seconds':>9s} {'ms/frame':>9s} {'CPU s':>9s}")
    for name, secs, cpu in rows:
        print(f"{name:24s} {secs:9.1f} {1000 * secs / n:9.1f} " + (f"{cpu:9.1f}" if cpu is not None else f"{'':>9s}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
