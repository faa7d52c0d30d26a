"""Robustness to mask errors at the silhouette: train on a subject whose masks bleed, score on the clean one.

    PYTHONPATH=src python benchmarks/mask_robustness.py SUBJECT [--bleed 3] [--bands 0,2] [--train-size 96]

From a synthetic SUBJECT (frames on white, exact masks) a "real-like" copy is written: every frame gets a
textured raw background behind the person (``background: null``) and the masks are dilated by ``--bleed``
pixels, as a segmentation that bleeds into the background. The avatar is trained on that copy (the trainer
composites through the bleeding masks, so a ring of raw background enters the training images) once per
silhouette band width in ``--bands`` (``edge_band``; band pixels weighted ``--band-weight``), and each is
evaluated against the CLEAN subject (test PSNR/SSIM, head and mouth PSNR, novel views). Prints a table;
writes ``$OUT/mask_robustness.json`` (or ``--work``/mask_robustness.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def corrupt_subject(src, out: Path, bleed: int, seed: int = 0) -> Path:
    """The real-like copy of ``src`` (an opened subject) at ``out`` (see the module docstring)."""
    import torch

    from thgs.data import write_subject

    H, W = src.height, src.width
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    rng = np.random.default_rng(seed)
    bg = np.stack([0.5 + 0.3 * np.sin(xx / 7.0), 0.4 + 0.3 * np.cos(yy / 5.0), 0.3 + 0.2 * np.sin((xx + yy) / 11.0)], -1)
    bg = (255 * np.clip(bg + 0.05 * rng.standard_normal(bg.shape), 0, 1)).astype(np.float32)
    frames, masks = [], []
    k = 2 * bleed + 1
    for i in range(src.num_frames):
        img = src.image(i).astype(np.float32)
        m = src.mask(i).astype(np.float32)[..., None] / 255.0
        frames.append(np.round(img * m + bg * (1 - m)).clip(0, 255).astype(np.uint8))
        t = torch.from_numpy(m[..., 0])[None, None]
        dil = torch.nn.functional.max_pool2d(t, k, stride=1, padding=bleed)[0, 0].numpy() if bleed > 0 else m[..., 0]
        masks.append((dil * 255).round().astype(np.uint8))
    p = src.params()
    return write_subject(out, frames=frames, masks=masks, fps=src.fps, camera=src.camera,
                         audio=src.audio_path(), params={k: p[k] for k in ("pose", "transl", "betas", "expression")},
                         body=src.body, split=src.split, background=None, name=out.name,
                         source=f"benchmark:mask_robustness(bleed={bleed})", overwrite=True, progress=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("subject", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--bleed", type=int, default=3, help="mask dilation in subject pixels")
    ap.add_argument("--bands", default="0,2", help="edge_band widths (training pixels) to compare")
    ap.add_argument("--band-weight", type=float, default=0.0)
    ap.add_argument("--train-size", type=int, default=0)
    ap.add_argument("--max-frames", type=int, default=25)
    ap.add_argument("--view-stride", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("OUT", "out")) / "mask_robustness")
    args = ap.parse_args()

    import torch

    from thgs.data.subject import open_subject
    from thgs.runs.config import preset, replace_flat
    from bench_subject import test_scores
    from thgs.runs.frames import load_audio_windows
    from thgs.train.trainer import Trainer

    clean = open_subject(args.subject)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    real_dir = work / f"bleed{args.bleed}"
    if not (real_dir / "meta.json").exists():
        corrupt_subject(clean, real_dir, args.bleed)
    real = open_subject(real_dir)
    results: dict = {"subject": str(args.subject), "bleed_px": args.bleed, "preset": args.preset,
                     "train_size": args.train_size, "band_weight": args.band_weight, "runs": {}}
    for band in [int(b) for b in args.bands.split(",") if b.strip()]:
        cfg = replace_flat(preset(args.preset), progress=False, train_size=args.train_size, edge_band=band,
                                  edge_band_weight=args.band_weight)
        t = time.perf_counter()
        tr = Trainer(cfg, real, work / f"band{band}")
        tr.train()
        train_s = time.perf_counter() - t
        model = tr.model.eval()
        audio = load_audio_windows(clean, cfg) if model.saam is not None else None
        ev = test_scores(model, clean, torch.ones(3), audio, cfg.render.mode, cfg.render.backend, args.max_frames,
                         args.view_stride)
        rec = {"edge_band": band, "train_s": train_s, "test_psnr": ev["test_psnr"], "test_ssim": ev["test_ssim"],
               "head_psnr": ev["head_psnr"], "mouth_psnr": ev["mouth_psnr"],
               "novel_view_psnr": ev["novel_view_psnr"], "num_gaussians": model.num_gaussians}
        results["runs"][f"band{band}"] = rec
        print(json.dumps(rec), file=sys.stderr)
        (work / "mask_robustness.json").write_text(json.dumps(results, indent=2))
    print(f"\nsubject {args.subject}, masks dilated by {args.bleed} px over a textured background, preset "
          f"{args.preset} at {args.train_size or clean.height} px, scored against the clean subject\n")
    print("| edge band (px) | test PSNR | test SSIM | head PSNR | mouth PSNR | novel-view PSNR | N | train s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results["runs"].values():
        print(f"| {r['edge_band']} | {r['test_psnr']:.2f} | {r['test_ssim']:.4f} | {r['head_psnr']:.2f} | "
              f"{r['mouth_psnr']:.2f} | {r['novel_view_psnr']:.2f} | {r['num_gaussians']} | {r['train_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
