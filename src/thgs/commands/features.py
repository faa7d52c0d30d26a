"""``thgs features DATA --encoder mel``: precompute a subject's per-frame audio features."""

from __future__ import annotations

import argparse
import json

NAME = "features"
HELP = "precompute per-frame audio features of a subject (stored in SUBJECT/features/ or the user cache)"
DESCRIPTION = (
    "Compute audio features aligned to the subject's frames ([T, 16, C] windows centred on each frame) and "
    "store them as SUBJECT/features/<encoder>.npy (thgs subjects) or in the user cache (~/.cache/thgs/audio, "
    "other layouts), so training reads them instead of recomputing. Encoders: mel (no weights), "
    "whisper-tiny (extra 'whisper'), wav2vec2 / hubert (extra 'hf', --option model=DIR of a local model)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="the subject folder (any layout open_subject knows)")
    parser.add_argument("--encoder", default="mel", help="mel, whisper-tiny, wav2vec2, hubert")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an encoder option, repeatable (e.g. n_mels=80, model=/path/to/model); values are "
                             "parsed as JSON when possible")
    parser.add_argument("--pad-audio", action="store_true",
                        help="pad audio shorter than the video with silence instead of failing")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: ~/.cache/thgs/audio)")


def _options(items: list[str]) -> dict:
    from thgs.cli import UserError

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from thgs.audio import AudioFeatureError, subject_features
    from thgs.cli import UserError
    from thgs.data import SubjectError, open_subject

    opts = _options(args.option)
    try:
        subject = open_subject(args.data)
        feats = subject_features(subject, args.encoder, cache_dir=args.cache_dir, pad_audio=args.pad_audio, **opts)
    except (AudioFeatureError, SubjectError) as exc:
        raise UserError(str(exc)) from exc
    w = feats.windows
    print(f"{args.data}: {args.encoder} features {tuple(w.shape)} (frames, steps, dims), "
          f"mean {w.mean():.4f}, std {w.std():.4f}")
    return 0
