"""``thgs train-speech RUN``: fit (or refit) the speech -> face model of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train-speech"
HELP = "fit the speech -> face model of a trained avatar (RUN/speech.npz; seconds)"
DESCRIPTION = ("Fit the per-subject audio -> expression model of the avatar in RUN from its subject's training span "
               "(tracked expressions plus the run's refinements; offset, context and weights chosen by "
               "cross-validation) and store it as RUN/speech.npz, which `thgs render --audio`, `thgs view --audio` "
               "and thgs.animate use. `thgs train` does this at its end; this command is for runs trained before "
               "or to refit. See docs/speech-driving.md.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder (from `thgs train`)")
    parser.add_argument("--data", type=Path, default=None, help="subject folder (default: the training subject)")
    parser.add_argument("--device", default="cpu", help="torch device to load the avatar on: cpu, cuda, auto")


def run(args: argparse.Namespace) -> int:
    from thgs.animate.speech import SpeechModelError, write_run_speech
    from thgs.cli import UserError
    from thgs.runs.folder import open_run

    if not args.run.is_dir():
        raise UserError(f"{args.run}: not a run folder")
    opened = open_run(args.run, args.data, args.device)
    model, cfg, subject, root = opened.model, opened.cfg, opened.subject, opened.root
    try:
        m = write_run_speech(args.run, model, subject, cfg)
    except SpeechModelError as exc:
        raise UserError(str(exc)) from None
    if m is None:
        raise UserError(f"{root}: nothing to fit a speech model on (see above)")
    return 0
