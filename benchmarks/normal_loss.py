"""The 2DGS normal-consistency loss (Eq. 21) on a subject: train with and without it, compare test and
novel-view PSNR.

    PYTHONPATH=src python benchmarks/normal_loss.py SUBJECT [--preset cpu] [--variants off,plain,fixed]

One shared run trains the preset up to its ``normal_start`` step without the loss (checkpoint); every variant
then resumes from that checkpoint to the preset's last step with its own normal-loss settings, so the
variants differ only in the loss after ``normal_start``. Each is evaluated on the test split (PSNR, SSIM,
mouth/head PSNR) and on the subject's ground-truth novel views. Prints a table; writes
``$OUT/normal_loss.json`` (or ``--work``/normal_loss.json).

``--parallel`` trains the variants at once, one process each; a variant whose ``work/NAME/result.json``
exists is not trained again and one interrupted resumes from its last checkpoint, so the command can be
re-run after a stop. Train PSNR is logged every 10 steps (the mean of the last 5 logs is shown).

Variants (``--variants``): ``off`` (no normal loss), ``plain`` (weight 0.05, every pixel, gradient through
the depth normals: the loss as it was), ``interior`` (only pixels whose 3x3 neighbourhood is covered,
``normal_min_alpha`` 0.5), ``detach`` (no gradient through the depth normals), ``fixed`` (both), and
``fixed_w<w>`` (both with weight w).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

VARIANTS = {
    "off": dict(normal_weight=0.0),
    "plain": dict(normal_weight=0.05, normal_min_alpha=0.0, normal_detach_depth=False),
    "interior": dict(normal_weight=0.05, normal_min_alpha=0.5, normal_detach_depth=False),
    "detach": dict(normal_weight=0.05, normal_min_alpha=0.0, normal_detach_depth=True),
    "fixed": dict(normal_weight=0.05, normal_min_alpha=0.5, normal_detach_depth=True),
}


def variant(name: str) -> dict:
    if name in VARIANTS:
        return VARIANTS[name]
    if name.startswith("fixed_w"):
        return {**VARIANTS["fixed"], "normal_weight": float(name[len("fixed_w"):])}
    if name.startswith("plain_w"):
        return {**VARIANTS["plain"], "normal_weight": float(name[len("plain_w"):])}
    raise SystemExit(f"unknown variant {name!r}")


def train_variant(name: str, base, subject, work: Path, args: argparse.Namespace) -> dict:
    """Resume the shared run with variant ``name``'s settings to the last step, score it, write
    ``work/name/result.json``; a variant whose result exists is read back, one interrupted goes on from its
    own last checkpoint."""
    from bench_subject import test_scores

    from thgs.runs.config import replace_flat
    from thgs.runs.frames import load_audio_windows
    from thgs.train.trainer import Trainer

    run = work / name
    done = run / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    if not (run / "config.json").exists():
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(work / "shared", run)
    cfg = replace_flat(base, **variant(name), log_every=10)
    t = time.perf_counter()
    tr = Trainer(cfg, subject, run, resume=True)
    tr.train()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    logged = [r for r in logged if r.get("step", 0) > base.loss.normal_start]
    psnrs = [float(r["psnr"]) for r in logged if "psnr" in r]
    normals = [float(r.get("normal", float("nan"))) for r in logged]
    train_s = time.perf_counter() - t
    model = tr.model.eval()
    audio = load_audio_windows(subject, cfg) if model.saam is not None else None
    scores = test_scores(model, subject, tr.background, audio.to(tr.device) if audio is not None else None,
                         cfg.render.mode, cfg.render.backend, args.max_frames, args.view_stride)
    tail = psnrs[-5:] or [float("nan")]
    rec = {"config": variant(name), "train_s": train_s, "train_psnr_last50": sum(tail) / len(tail),
           "train_psnr_min": min(psnrs) if psnrs else float("nan"),
           "normal_loss_last": normals[-1] if normals else float("nan"), "num_gaussians": tr.model.num_gaussians,
           **scores}
    done.write_text(json.dumps(rec, indent=2))
    print(f"{name}: {json.dumps(rec)}", file=sys.stderr)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subject", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--variants", default="off,plain,fixed")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("OUT", "out")) / "normal_loss")
    ap.add_argument("--normal-start", type=int, default=0, help="override the preset's normal_start (0: keep)")
    ap.add_argument("--max-frames", type=int, default=25, help="test frames (and frames per view) to score")
    ap.add_argument("--view-stride", type=int, default=2, help="score every n-th frame of each novel view")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-size", type=int, default=0, help="training image height (0: the subject's)")
    ap.add_argument("--parallel", action="store_true",
                    help="train the variants at once, one process each (after the shared run)")
    ap.add_argument("--only", default="", help=argparse.SUPPRESS)  # one variant (a --parallel worker)
    args = ap.parse_args()

    import subprocess

    import torch

    from thgs.data.subject import open_subject
    from thgs.runs.avatar_io import CHECKPOINT
    from thgs.runs.config import preset, replace_flat
    from thgs.train.trainer import Trainer

    subject = open_subject(args.subject)
    base = dataclasses.replace(preset(args.preset), progress=False, device=args.device, train_size=args.train_size)
    if args.normal_start:
        base = replace_flat(base, normal_start=args.normal_start)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for name in names:
        variant(name)
    if args.only:
        train_variant(args.only, base, subject, work, args)
        return 0
    shared = work / "shared"
    t0 = time.perf_counter()
    stop = shared / "stop.json"
    if not stop.exists() or json.loads(stop.read_text())["step"] != base.loss.normal_start:
        tr = Trainer(replace_flat(base, normal_weight=0.0), subject, shared,
                     resume=(shared / CHECKPOINT).exists())
        tr.train(stop_after=base.loss.normal_start)
        stop.write_text(json.dumps({"step": tr.step, "psnr": tr.last.get("psnr")}))
    print(f"shared run to step {base.loss.normal_start}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    if args.parallel:
        argv = [a for a in sys.argv[1:] if a != "--parallel"]
        procs = {n: subprocess.Popen([sys.executable, __file__, *argv, "--only", n])
                 for n in names if not (work / n / "result.json").exists()}
        bad = [n for n, p in procs.items() if p.wait() != 0]
        if bad:
            print(f"normal_loss.py: variants failed: {', '.join(bad)}", file=sys.stderr)
            return 1
    results: dict = {"subject": str(args.subject), "preset": args.preset, "normal_start": base.loss.normal_start,
                     "steps": base.steps, "torch": torch.__version__,
                     "variants": {n: train_variant(n, base, subject, work, args) for n in names}}
    (work / "normal_loss.json").write_text(json.dumps(results, indent=2))

    print(f"\nsubject {args.subject}, preset {args.preset} ({base.steps} steps, normal loss from step "
          f"{base.loss.normal_start}), torch {torch.__version__}\n")
    print("| variant | train PSNR (last 50) | train PSNR min | test PSNR | test SSIM | mouth PSNR | head PSNR | "
          "novel-view PSNR | novel-view SSIM | N | train s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results["variants"].items():
        print(f"| {name} | {r['train_psnr_last50']:.2f} | {r['train_psnr_min']:.2f} | {r['test_psnr']:.2f} | "
              f"{r['test_ssim']:.4f} | {r['mouth_psnr']:.2f} | {r['head_psnr']:.2f} | {r['novel_view_psnr']:.2f} | "
              f"{r['novel_view_ssim']:.4f} | {r['num_gaussians']} | {r['train_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
