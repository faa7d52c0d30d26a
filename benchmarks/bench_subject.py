"""What the training benchmarks share: the subject arguments (``--data`` or a synthesised one), the subject
itself, and a device synchronisation. Imported by the scripts beside it (``python benchmarks/NAME.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_subject_arguments(ap: argparse.ArgumentParser, work: str, data_help: str) -> None:
    """``--data``, ``--body``, ``--size``, ``--seconds``, ``--work`` (default ``$OUT/work`` or ``out/work``)
    and ``--device``."""
    ap.add_argument("--data", type=Path, default=None, help=data_help)
    ap.add_argument("--body", default="anny", choices=("anny", "toy"), help="body of a synthesised subject")
    ap.add_argument("--size", type=int, default=512, help="image height of a synthesised subject")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of a synthesised subject")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("OUT", "out")) / work)
    ap.add_argument("--device", default="cuda")


def subject_root(args: argparse.Namespace, script: str, views: tuple | None = None) -> Path:
    """``args.data`` when it holds a subject, else one synthesised once under ``args.work`` (``views``: its
    extra views, None for ``thgs synth``'s default)."""
    root = args.data
    if root is not None and (root / "meta.json").exists():
        return root
    from thgs.synth.generate import SynthConfig, default_workers, generate

    root = args.work / f"subject_{args.body}_{args.size}_{args.seconds:g}s"
    if not (root / "meta.json").exists():
        print(f"{script}: synthesising {root}", file=sys.stderr)
        extra = {} if views is None else {"views": views}
        generate(root, SynthConfig(body=args.body, seconds=args.seconds, size=args.size, **extra), overwrite=True,
                 workers=default_workers(), progress=False)
    return root


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
