"""``thgs import talkingavatar|show ...``: convert other tools' data into thgs subjects."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "import"
HELP = "convert a TalkingAvatar subject or a SHOW tracker fit (final_all.pkl) into a thgs subject"
DESCRIPTION = (
    "talkingavatar SRC OUT: copy a TalkingAvatar subject folder (segments <Name>_output000/...) into our format: "
    "frames composited on white, masks, concatenated audio, SMPL-X params, the wav2vec2 features as "
    "features/wav2vec2-eo.npy. (Training can also read SRC in place.)  "
    "show PKL --video VIDEO OUT: ingest VIDEO with the SHOW fit's SMPL-X params and camera; "
    "show PKL --into SUBJECT: add the fit's params and camera to an already ingested subject. "
    "SHOW hand poses are 12-component PCA: give your SMPL-X model file (--smplx-model) to convert them, or "
    "--keep-hand-pca."
)


def _hands(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smplx-model", default=None, metavar="PATH",
                   help="your SMPL-X model file (.npz/.pkl with hands_componentsl/r, hands_meanl/r) to turn hand "
                        "PCA coefficients into joint rotations; recorded as the body model path")
    p.add_argument("--keep-hand-pca", action="store_true",
                   help="without --smplx-model: keep hand PCA coefficients as params 'hand_pca' [T, 2, k] "
                        "and leave the fingers flat")
    p.add_argument("--overwrite", action="store_true", help="replace an existing subject at the output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import HelpFormatter

    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    ta = sub.add_parser("talkingavatar", help="a TalkingAvatar subject folder",
                        formatter_class=HelpFormatter,
                        description="Convert a TalkingAvatar subject folder into a thgs subject.")
    ta.add_argument("src", help="TalkingAvatar subject folder (optimized_camera_params.npz, poses_optimized.npz, "
                                "<Name>_output000/ ...)")
    ta.add_argument("out", help="output subject folder")
    _hands(ta)
    sh = sub.add_parser("show", help="a SHOW tracker fit (final_all.pkl)",
                        formatter_class=HelpFormatter,
                        description="Import SMPL-X params and the camera of a SHOW fit, with the frames and audio "
                                    "of its video (--video VIDEO OUT) or into an ingested subject (--into).")
    sh.add_argument("pkl", help="SHOW output pickle (final_all.pkl); read with a restricted unpickler")
    sh.add_argument("out", nargs="?", default=None, help="output subject folder (with --video)")
    sh.add_argument("--video", default=None, help="the video SHOW tracked (all of its frames, native rate)")
    sh.add_argument("--into", default=None, metavar="SUBJECT",
                    help="an existing subject (from `thgs ingest`) to add the params and camera to")
    sh.add_argument("--size", type=int, default=None, metavar="HEIGHT",
                    help="with --video: output height (the camera is scaled)")
    sh.add_argument("--stats", action="store_true", help="print per-field statistics of the pickle")
    _hands(sh)


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.importers.common import ImportProblem
    from thgs.io.video import VideoError

    try:
        if args.format == "talkingavatar":
            return _talkingavatar(args)
        return _show(args)
    except (ImportProblem, SubjectError, VideoError) as exc:
        raise UserError(str(exc)) from exc


def _talkingavatar(args: argparse.Namespace) -> int:
    from thgs.importers.talkingavatar import TalkingAvatarSubject, convert_talkingavatar

    src = TalkingAvatarSubject(args.src, smplx_model=args.smplx_model, keep_hand_pca=args.keep_hand_pca)
    out = convert_talkingavatar(src, args.out, overwrite=args.overwrite, progress=not args.quiet)
    _summary(out)
    for w in src.warnings():
        print(f"  note: {w}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.importers.show import field_stats, import_show_into, num_frames, read_show, show_camera, show_params
    from thgs.io.ingest import Clip, Tracked, ingest_video

    if (args.video is None) == (args.into is None):
        raise UserError("give either --video VIDEO OUT (a new subject) or --into SUBJECT (an ingested one)")
    if args.video is not None and args.out is None:
        raise UserError("--video needs the output subject folder OUT")
    if args.into is not None and args.out is not None:
        raise UserError("--into writes into SUBJECT; do not give OUT as well")
    data = read_show(args.pkl)
    if args.stats:
        for line in field_stats(data):
            print(line)
    where = Path(args.pkl).name
    params, body = show_params(data, smplx_model=args.smplx_model, keep_hand_pca=args.keep_hand_pca, where=where)
    if args.into is not None:
        out = import_show_into(args.into, data, params, body, progress=not args.quiet, where=where)
    else:
        tracked = Tracked(params=params, body=body, expected_frames=num_frames(data),
                          camera=lambda w, h: show_camera(data, w, h, where))
        out = ingest_video(args.video, args.out, Clip(height=args.size), tracked=tracked, overwrite=args.overwrite,
                           progress=not args.quiet, source=f"show:{where} + ingest:{Path(args.video).name}")
    _summary(out)
    return 0


def _summary(out: Path) -> None:
    from thgs.data.subject import open_subject

    s = open_subject(out)
    audio = s.audio()[0] if s.has_audio else None
    print(f"wrote {out}: {s.num_frames} frames, {s.width}x{s.height} at {s.fps:g} fps"
          + (f", audio {len(audio) / 16000:.3f} s" if audio is not None else "")
          + (f", body params ({s.body['model']})" if s.has_params and s.body else ""))
    for w in s.warnings():
        print(f"  note: {w}")
