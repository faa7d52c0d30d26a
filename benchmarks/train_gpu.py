"""GPU training benchmark: the fast preset and the vanilla baseline at 512 px, plus paper-preset speed.

Run on a machine with torch + CUDA + gsplat and thgs importable (``PYTHONPATH=src``)::

    python benchmarks/train_gpu.py [--body anny] [--size 512] [--seconds 20] [--paper-steps 300]

Steps: synthesise the subject (skipped when it already exists under the work folder), train ``fast`` and
``fast --vanilla`` (timed end to end, CUDA compilation of gsplat included in the first), evaluate both (test
PSNR/SSIM, mouth- and head-region PSNR, novel-view PSNR against the synthetic extra views), time a few
hundred steps of the ``paper`` preset, print a table and write ``$OUT/train_gpu.json`` when ``$OUT`` is set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body", default="anny", choices=("anny", "toy"))
    ap.add_argument("--size", type=int, default=512, help="image height of the synthetic subject")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic subject")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("OUT", "out")) / "bench_gpu",
                    help="work folder (subject and runs)")
    ap.add_argument("--fast-steps", type=int, default=0, help="override the fast preset's steps (0: keep)")
    ap.add_argument("--paper-steps", type=int, default=300, help="steps of the paper preset to time")
    ap.add_argument("--skip-vanilla", action="store_true")
    ap.add_argument("--skip-fast", action="store_true", help="train only the vanilla baseline")
    ap.add_argument("--skip-paper", action="store_true", help="do not time the paper preset")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrainConfig field of the fast/vanilla runs (repeatable)")
    ap.add_argument("--tag", default="", help="suffix of the run folders and result keys")
    args = ap.parse_args()

    import torch

    from thgs.data.subject import open_subject
    from thgs.synth.generate import SynthConfig, default_workers, generate
    from thgs.config import flat_names, get_path
    from thgs.runs.config import TrainConfig, preset, replace_flat
    from bench_subject import test_scores
    from thgs.runs.frames import load_audio_windows
    from thgs.train.trainer import Trainer

    if not torch.cuda.is_available():
        print("train_gpu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    device = "cuda"
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "size": args.size,
                     "body": args.body, "seconds": args.seconds, "tag": args.tag}

    t = time.perf_counter()
    subj_dir = work / f"subject_{args.body}_{args.size}"
    if not (subj_dir / "meta.json").exists():
        generate(subj_dir, SynthConfig(body=args.body, seconds=args.seconds, size=args.size), overwrite=True,
                 workers=default_workers())
    subject = open_subject(subj_dir)
    results["synth_s"] = time.perf_counter() - t

    fields = flat_names(TrainConfig)  # the settings by flag name (underscores)
    overrides: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields:
            print(f"--set: unknown TrainConfig setting {key!r}", file=sys.stderr)
            return 2
        kind = type(get_path(preset("fast"), fields[key]))
        overrides[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)

    def train_eval(name: str, **changes) -> dict:
        cfg = replace_flat(preset("fast"), device=device, progress=False, **changes, **overrides)
        if args.fast_steps:
            cfg = dataclasses.replace(cfg, steps=args.fast_steps)
        run = work / f"run_{name}{args.tag}"
        if run.exists():
            import shutil

            shutil.rmtree(run)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        tr = Trainer(cfg, subject, run)
        tr.train()
        torch.cuda.synchronize()
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        audio = load_audio_windows(subject, cfg)
        tr.model.eval()
        m = test_scores(tr.model, subject, tr.background, audio.to(device) if audio is not None else None,
                        cfg.render.mode, cfg.render.backend)
        m.pop("views")
        rec = {"steps": cfg.steps, "train_s": train_s, "eval_s": time.perf_counter() - t1,
               "num_gaussians": tr.model.num_gaussians, **m}
        # rendering speed of the trained avatar (model forward + rasterization), frames per second
        from thgs.animate.drive import subject_drive
        from thgs.animate.render import render_frame
        from thgs.runs.frames import subject_camera

        drive = subject_drive(subject, list(subject.split["test"]), subject_camera(subject),
                              audio.to(device) if audio is not None else None)
        for k in range(5):
            render_frame(tr.model, drive, k % len(drive), tr.background, cfg.render.mode, cfg.render.backend)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        n = min(100, len(drive))
        for k in range(n):
            render_frame(tr.model, drive, k, tr.background, cfg.render.mode, cfg.render.backend)
        torch.cuda.synchronize()
        rec["render_fps"] = n / (time.perf_counter() - t2)
        return rec

    if not args.skip_fast:
        results["fast"] = train_eval("fast")
    if not args.skip_vanilla:
        results["vanilla"] = train_eval("vanilla", vanilla=True)
    results["overrides"] = overrides

    if args.skip_paper:
        results["paper_steps_per_s"] = None
    else:
        paper_speed(args, subject, work, device, results)
    report(results)
    return 0


def paper_speed(args, subject, work, device, results) -> None:
    import torch

    from thgs.runs.config import preset, replace_flat
    from thgs.train.trainer import Trainer

    # steps/s of the paper preset: every module active (start steps moved to 0) to time the full model
    cfg = replace_flat(preset("paper"), device=device, progress=False, steps=args.paper_steps,
                              skinning_start=0, pose_start=0, expression_start=0, blendshapes_start=0, saam_start=0,
                              normal_start=0, checkpoint_every=10**9, densify_start=10**9)
    run = work / "run_paper_speed"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    tr = Trainer(cfg, subject, run)
    warm = min(20, args.paper_steps // 4)
    tr.train(stop_after=warm)
    torch.cuda.synchronize()
    t = time.perf_counter()
    tr.train(stop_after=args.paper_steps)
    torch.cuda.synchronize()
    results["paper_steps_per_s"] = (args.paper_steps - warm) / (time.perf_counter() - t)
    results["paper_num_gaussians"] = tr.model.num_gaussians


def report(results: dict) -> None:
    rows = [("run", "steps", "train s", "N", "test PSNR", "SSIM", "mouth PSNR", "novel PSNR", "render fps")]
    for name in ("fast", "vanilla"):
        r = results.get(name)
        if r:
            rows.append((name, str(r["steps"]), f"{r['train_s']:.0f}", str(r["num_gaussians"]), f"{r['test_psnr']:.2f}",
                         f"{r['test_ssim']:.4f}", f"{r['mouth_psnr']:.2f}" if r["mouth_psnr"] is not None else "-",
                         f"{r['novel_view_psnr']:.2f}" if r["novel_view_psnr"] is not None else "-",
                         f"{r['render_fps']:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    print(f"synth {results['synth_s']:.0f} s")
    if results.get("paper_steps_per_s"):
        print(f"paper preset {results['paper_steps_per_s']:.1f} steps/s ({results['paper_num_gaussians']} Gaussians)")
    if os.environ.get("OUT"):
        from thgs.utils.io import write_json

        write_json(Path(os.environ["OUT"]) / f"train_gpu{results.get('tag', '')}.json", results)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
