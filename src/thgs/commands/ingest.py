"""``thgs ingest VIDEO OUT``: decode a talking-person video into a new subject folder."""

from __future__ import annotations

import argparse

NAME = "ingest"
HELP = "decode a video (H.264/HEVC, any rotation) into a subject: frames, 16 kHz audio, a guessed camera"
DESCRIPTION = (
    "Decode VIDEO into the subject folder OUT: upright RGB frames at a constant frame rate (the stream's "
    "rotation metadata is applied), its audio as 16 kHz mono WAV, and a pinhole camera guessed as "
    "focal = 1.2 x max(width, height) pixels with the principal point at the image centre (marked "
    "'estimated' in meta.json). The subject has no masks and no body parameters yet; `thgs check` lists "
    "them as warnings. Nothing is left behind on failure."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import finite_float

    parser.add_argument("video", help="input video file (anything PyAV/FFmpeg decodes, with an audio track)")
    parser.add_argument("out", help="output subject folder (must not exist unless --overwrite)")
    parser.add_argument("--start", type=finite_float, default=0.0, help="seconds to skip at the beginning")
    parser.add_argument("--max-seconds", type=finite_float, default=None, help="keep at most this many seconds")
    parser.add_argument("--size", type=int, default=None, metavar="HEIGHT",
                        help="output height in pixels (aspect kept, width rounded to even); default: native")
    parser.add_argument("--fps", type=finite_float, default=None,
                        help="output frame rate, by frame selection; default: the video's average rate")
    parser.add_argument("--pad-audio", action="store_true",
                        help="pad an audio track that ends before the video with silence (gaps up to 0.2 s are "
                             "padded anyway)")
    parser.add_argument("--name", default=None, help="subject name (default: the OUT folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing subject at OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.io.ingest import Clip, ingest_video
    from thgs.io.video import VideoError

    for flag, value, low in (("--start", args.start, 0.0), ("--max-seconds", args.max_seconds, None),
                             ("--fps", args.fps, None)):
        if value is not None and (value < 0 if low == 0.0 else value <= 0):
            raise UserError(f"{flag} must be {'>= 0' if low == 0.0 else '> 0'}, got {value:g}")
    if args.size is not None and args.size < 2:
        raise UserError(f"--size must be at least 2 pixels, got {args.size}")
    try:
        clip = Clip(start=args.start, max_seconds=args.max_seconds, height=args.size, fps=args.fps,
                    pad_audio=args.pad_audio)
        out = ingest_video(args.video, args.out, clip, overwrite=args.overwrite, progress=not args.quiet,
                           name=args.name)
    except (VideoError, SubjectError) as exc:
        raise UserError(str(exc)) from exc
    from thgs.data.subject import open_subject

    subj = open_subject(out)
    audio, sr = subj.audio()
    print(f"wrote {out}: {subj.num_frames} frames, {subj.width}x{subj.height} at {subj.fps:g} fps, "
          f"audio {len(audio) / sr:.3f} s")
    if "variable frame rate" in subj.meta.get("source", ""):
        print(f"  note: {args.video} has a variable frame rate; frames were placed on a constant "
              f"{subj.fps:g} fps grid (a dropped frame repeats the previous one) to keep lip sync")
    if "audio end padded" in subj.meta.get("source", ""):
        print("  note: " + subj.meta["source"].split("[", 1)[1].rstrip("]"))
    for w in subj.warnings():
        print(f"  note: {w}")
    return 0
