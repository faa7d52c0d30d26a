"""Time to quality: test PSNR of a preset against wall-clock seconds of training.

Trains one run with the preset's schedule (or ``--steps N``, the whole schedule scaled to N steps) and, at
``--points`` evenly spaced steps, pauses the clock, scores the held-out test frames (full-frame PSNR, no
LPIPS; ``--eval-frames K`` scores only the first K at the intermediate points) and goes on. Evaluation
time is not counted. Prints a table (step, training seconds, steps/s, test PSNR) and the first training time
at which the test PSNR reached ``--target`` dB, if it did::

    PYTHONPATH=src python benchmarks/time_to_quality.py --data default512 --preset fast --target 35.9   # GPU
    PYTHONPATH=src python benchmarks/time_to_quality.py --device cpu --body toy --size 48 --seconds 2 \
        --preset smoke --points 3 --eval-frames 4                                                      # CPU, tiny

Without ``--data`` (or when it does not exist) the subject is synthesised under ``--work`` with ``thgs
synth``'s defaults (``--body``, ``--size``, ``--seconds``). Writes ``$OUT/time_to_quality.json`` when
``$OUT`` is set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from bench_subject import add_subject_arguments, subject_root, sync


def test_psnr(trainer, max_frames: int | None) -> float:
    """Full-frame test PSNR of the trainer's model now (the model is put back in training mode after)."""
    import torch

    from thgs.evaluation.evaluate import EvalOptions, evaluate_avatar
    from thgs.runs.frames import load_audio_windows, subject_background

    model, cfg = trainer.model, trainer.cfg
    background = subject_background(trainer.subject, cfg.background)
    audio = load_audio_windows(trainer.subject, cfg) if model.saam is not None else None
    opts = EvalOptions(lpips_nets=(), views=False, max_frames=max_frames, mode=cfg.render.mode,
                       backend=cfg.render.backend)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = evaluate_avatar(model, trainer.subject, background.to(trainer.device), audio, opts)
    finally:
        model.train(was_training)
    return float(result.summary["test"]["full"]["psnr"])


def run(args: argparse.Namespace, subject, work: Path) -> dict:
    from thgs.runs.config import preset, scaled_steps
    from thgs.train.trainer import Trainer

    cfg = preset(args.preset)
    cfg = scaled_steps(cfg, args.steps) if args.steps else cfg
    cfg = dataclasses.replace(cfg, device=args.device, progress=False, checkpoint_every=10**9)
    tr = Trainer(cfg, subject, work / f"run_{args.preset}_{cfg.steps}")
    points = sorted({max(1, round(cfg.steps * (i + 1) / args.points)) for i in range(args.points)})
    rows, clock = [], 0.0
    for end in points:
        sync(args.device)
        t0 = time.perf_counter()
        while tr.step < end:
            tr.train_step()
        sync(args.device)
        dt = time.perf_counter() - t0
        clock += dt
        last = end == points[-1]
        subset = args.eval_frames if args.eval_frames and not last else None
        psnr = test_psnr(tr, subset)
        rows.append({"step": end, "train_s": clock, "steps_per_s": (end - (rows[-1]["step"] if rows else 0)) / dt,
                     "test_psnr": psnr, "frames": f"first {subset}" if subset else "all",
                     "gaussians": tr.model.num_gaussians})
        print(f"step {end}: {clock:.1f} s, test PSNR {psnr:.2f} dB", file=sys.stderr, flush=True)
    tr.train()  # nothing left to train: writes the run's config, checkpoint and avatar.pt (for thgs view/eval)
    reached = next((r["train_s"] for r in rows if args.target and r["test_psnr"] >= args.target), None)
    return {"preset": args.preset, "steps": cfg.steps, "rows": rows, "target": args.target, "reached_s": reached}


def table(res: dict) -> str:
    lines = ["| step | training s | steps/s (since last) | Gaussians | test PSNR (dB) | test frames |",
             "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in res["rows"]:
        lines.append(f"| {r['step']} | {r['train_s']:.1f} | {r['steps_per_s']:.1f} | {r['gaussians']} | "
                     f"{r['test_psnr']:.2f} | {r['frames']} |")
    if res["target"]:
        lines.append("")
        lines.append(f"target {res['target']:.2f} dB: " + (f"reached after {res['reached_s']:.1f} s of training"
                                                            if res["reached_s"] is not None else "not reached"))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_subject_arguments(ap, "time_to_quality", "subject folder (e.g. default512)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--steps", type=int, default=0, help="the whole schedule scaled to this many steps (0: the preset's)")
    ap.add_argument("--points", type=int, default=8, help="evaluations, evenly spaced in steps")
    ap.add_argument("--eval-frames", type=int, default=0,
                    help="test frames scored at the intermediate points (0: all, as at the last point)")
    ap.add_argument("--target", type=float, default=0.0, help="test PSNR (dB) whose time to report (0: none)")
    args = ap.parse_args()

    import torch

    from thgs.data.subject import open_subject
    from thgs.runs.config import PRESETS

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("time_to_quality.py: --device cuda, but torch sees no CUDA GPU (use --device cpu)", file=sys.stderr)
        return 2
    if args.preset not in PRESETS or args.points < 1 or args.eval_frames < 0 or args.steps < 0:
        print(f"time_to_quality.py: unknown preset {args.preset!r}, or --points < 1, or --eval-frames/--steps < 0",
              file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    root = subject_root(args, "time_to_quality.py")
    res = run(args, open_subject(root), args.work)
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"Time to quality on {dev} (torch {torch.__version__}), subject {root}, preset {args.preset} "
          f"({res['steps']} steps); evaluation time not counted; {time.strftime('%Y-%m-%d')}\n")
    print(table(res))
    out = os.environ.get("OUT")
    if out:
        Path(out, "time_to_quality.json").write_text(json.dumps({"device": dev, "torch": torch.__version__,
                                                                  "subject": str(root), **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
