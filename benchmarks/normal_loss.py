"""The 2DGS normal-consistency loss (Eq. 21) on a subject: train with and without it, compare test and
novel-view PSNR.

    PYTHONPATH=src python benchmarks/normal_loss.py SUBJECT [--preset cpu] [--variants off,plain,fixed]

One shared run trains the preset up to its ``normal_start`` step without the loss (checkpoint); every variant
then resumes from that checkpoint to the preset's last step with its own normal-loss settings, so the
variants differ only in the loss after ``normal_start``. Each is evaluated on the test split (PSNR, SSIM,
mouth/head PSNR) and on the subject's ground-truth novel views. Prints a table; writes
``$OUT/normal_loss.json`` (or ``--work``/normal_loss.json).

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
    args = ap.parse_args()

    import torch

    from thgs.data.subject import open_subject
    from thgs.runs.config import preset, replace_flat
    from thgs.train.evaluate import evaluate_subject
    from thgs.runs.avatar_io import CHECKPOINT
    from thgs.runs.frames import load_audio_windows
    from thgs.train.trainer import Trainer

    subject = open_subject(args.subject)
    base = dataclasses.replace(preset(args.preset), progress=False, device=args.device, train_size=args.train_size)
    if args.normal_start:
        base = replace_flat(base, normal_start=args.normal_start)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    shared = work / "shared"
    t0 = time.perf_counter()
    if not (shared / CHECKPOINT).exists() or json.loads((shared / "stop.json").read_text())["step"] != base.loss.normal_start:
        tr = Trainer(replace_flat(base, normal_weight=0.0), subject, shared)
        tr.train(stop_after=base.loss.normal_start)
        (shared / "stop.json").write_text(json.dumps({"step": tr.step, "psnr": tr.last.get("psnr")}))
    print(f"shared run to step {base.loss.normal_start}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    results: dict = {"subject": str(args.subject), "preset": args.preset, "normal_start": base.loss.normal_start,
                     "steps": base.steps, "torch": torch.__version__, "variants": {}}
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        cfg = replace_flat(base, **variant(name))
        run = work / name
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(shared, run)
        t = time.perf_counter()
        tr = Trainer(cfg, subject, run, resume=True)
        psnrs: list[float] = []
        normals: list[float] = []
        tr.train(callback=lambda step, terms: (psnrs.append(terms["psnr"]),
                                               normals.append(terms.get("normal", float("nan")))))
        train_s = time.perf_counter() - t
        model = tr.model.eval()
        audio = load_audio_windows(subject, cfg) if model.saam is not None else None
        with torch.no_grad():
            ev = evaluate_subject(model, subject, tr.background, audio.to(tr.device) if audio is not None else None,
                                  mode=cfg.render.mode, backend=cfg.render.backend, max_frames=args.max_frames,
                                  view_stride=args.view_stride)
        tail = psnrs[-50:]
        rec = {"config": variant(name), "train_s": train_s, "train_psnr_last50": sum(tail) / len(tail),
               "train_psnr_min": min(psnrs), "normal_loss_last": normals[-1], "num_gaussians": tr.model.num_gaussians,
               "test_psnr": ev["test"]["psnr"], "test_ssim": ev["test"]["ssim"],
               "mouth_psnr": ev["test"].get("mouth", {}).get("psnr"), "head_psnr": ev["test"].get("head", {}).get("psnr"),
               "novel_view_psnr": ev.get("novel_view_psnr"), "novel_view_ssim": ev.get("novel_view_ssim"),
               "views": {k: v["psnr"] for k, v in (ev.get("novel_views") or {}).items()}}
        results["variants"][name] = rec
        print(f"{name}: {json.dumps(rec)}", file=sys.stderr)
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
