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


def test_scores(model, subject, background, audio, mode: str, backend: str, max_frames: int | None = None,
                view_stride: int = 1) -> dict:
    """PSNR/SSIM of the test split (frame; head and mouth PSNR) and of the novel views, without LPIPS, through
    the one evaluator (:func:`thgs.evaluation.evaluate.evaluate_avatar`); NaN where a region or view is absent."""
    import torch

    from thgs.evaluation.evaluate import EvalOptions, evaluate_avatar

    opts = EvalOptions(lpips_nets=(), max_frames=max_frames, view_stride=view_stride, mode=mode, backend=backend)
    with torch.no_grad():
        ev = evaluate_avatar(model, subject, background, audio, opts).summary
    test, nv, nan = ev["test"], ev.get("novel_view_mean") or {}, float("nan")
    return {"test_psnr": test["full"]["psnr"], "test_ssim": test["full"]["ssim"],
            "mouth_psnr": test.get("mouth", {}).get("psnr", nan), "head_psnr": test.get("head", {}).get("psnr", nan),
            "novel_view_psnr": nv.get("psnr", nan), "novel_view_ssim": nv.get("ssim", nan),
            "views": {k: v["psnr"] for k, v in (ev.get("novel_views") or {}).items()}}
