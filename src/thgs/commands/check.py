"""``thgs check DATA``: validate a subject folder and print every problem found."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

NAME = "check"
HELP = "validate a subject (any known layout) and print every problem found"
DESCRIPTION = (
    "Validate a subject: meta.json, frame and mask files, body parameters, audio length, split, audio "
    "features and extra views; every image and mask is decoded (with a progress bar on stderr), or only N "
    "evenly spaced frames with --sample N, in which case the output says so. Prints one problem per line "
    "(a corrupt frame names its file) and exits 1 if there is any, else prints a one-line summary and exits "
    "0. Warnings (no masks, no body parameters, no audio, estimated camera) do not fail the check."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, metavar="DATA", help="the subject folder")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="decode only N evenly spaced frames (first and last included) instead of every "
                             "image and mask; the output says that it sampled")
    parser.add_argument("--full", action="store_true",
                        help="decode every image and mask (the default; refused together with --sample)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report")


def summary(subject: Any) -> str:
    """One line: frames, size, fps, body, split sizes, and what else the subject holds."""
    body = subject.body
    body_text = "no body" if not body else (
        f"body {body.get('model')}" + (f" ({body['num_joints']} joints)" if body.get("num_joints") else ""))
    extras = []
    if getattr(subject, "has_masks", False):
        extras.append("masks")
    if getattr(subject, "has_audio", False):
        extras.append("audio")
    if subject.feature_names:
        extras.append("features " + "/".join(subject.feature_names))
    if getattr(subject, "views", None):
        extras.append(f"{len(subject.views)} views")
    split = subject.split
    return (f"{subject.num_frames} frames, {subject.width}x{subject.height}, {subject.fps:g} fps, {body_text}, "
            f"train {len(split.get('train', []))} / test {len(split.get('test', []))}"
            + (f"; {', '.join(extras)}" if extras else ""))


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.data import SubjectError, open_subject

    path: Path = args.data
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if args.sample is not None and args.sample < 1:
        raise UserError(f"--sample must be at least 1 frame, got {args.sample}")
    if args.sample is not None and args.full:
        raise UserError("--sample and --full contradict each other: choose one")
    subject = None
    warnings: list[str] = []
    sampled: str | None = None
    try:
        subject = open_subject(path, validate=False)
        if args.sample is not None and args.sample < subject.num_frames:
            sampled = (f"sampled: decoded the images and masks of {args.sample} of {subject.num_frames} frames "
                       "(--sample); the others were not decoded")
            problems = subject.problems(decode="sample", sample=args.sample, progress=not args.quiet)
        else:
            problems = subject.problems(decode="all", progress=not args.quiet)
        warnings = subject.warnings()
    except SubjectError as exc:
        problems = exc.problems
    if args.json:
        report = {"path": str(path), "ok": not problems, "problems": problems, "warnings": warnings,
                  "decoded": "sample" if sampled else "all", "sampled": sampled,
                  "summary": summary(subject) if subject is not None and not problems else None}
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 1 if problems else 0
    for w in warnings:
        print(f"warning: {w}")
    if sampled:
        print(sampled)
    if problems:
        for p in problems:
            print(p)
        print(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 1
    assert subject is not None
    print(f"ok: {summary(subject)}")
    return 0
