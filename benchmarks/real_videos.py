"""Real-video results: every video of a folder through ``thgs demo --video`` (ingest, prepare, the full
model, evaluation, report), the ablation runs of Tables 6 and 8 trained on the same prepared subjects,
``thgs eval`` of each, then the tables (full vs vanilla per video, the ablations, Table 7's LMD before FMA,
after FMA and after the joint optimisation) and a contact sheet per video (ground truth | full | vanilla on a
few test frames, full frame, head and mouth, plus novel views of the full model).

    python benchmarks/real_videos.py VIDEOS_DIR --out out/real --preset fast --steps 2000 --jobs 6 \
        --ablations vanilla --more-ablations head_1:no_saam,no_leb,no_expr,no_audio

Phases (``--phase``, default all): prepare (``thgs demo --until subject``), train (every run at once: the
full model through ``thgs demo --until train``, the ablations through ``thgs train`` on the same subject), demo
(the full run's evaluation, videos and report), eval (the ablations), tables; each skips what is already done,
so the command can be re-run after an interruption. Prints the summary table at the end and writes
OUT/results.md and OUT/sheets/<video>.jpg.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FLAGS = {"vanilla": ["--vanilla"], "no_saam": ["--no-saam"], "no_leb": ["--no-leb"], "no_expr": ["--no-expr"],
         "no_audio": ["--no-audio"]}


def pool(jobs: list[tuple[str, list[str], Path]], workers: int) -> list[str]:
    """Run ``thgs ARGV`` for each (name, argv, log) with at most ``workers`` at once; returns the failed names."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, min(workers, len(jobs)))))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    queue, running, failed, t0 = list(jobs), {}, [], time.perf_counter()
    while queue or running:
        while queue and len(running) < workers:
            name, argv, log = queue.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = open(log, "w")
            print(f"[{time.perf_counter() - t0:6.0f} s] start {name}: thgs {shlex.join(argv)}", flush=True)
            running[name] = (subprocess.Popen([sys.executable, "-m", "thgs", *argv], stdout=fh,
                                              stderr=subprocess.STDOUT, env=env), fh)
        time.sleep(1.0)
        for name, (proc, fh) in list(running.items()):
            if proc.poll() is not None:
                fh.close()
                del running[name]
                print(f"[{time.perf_counter() - t0:6.0f} s] done  {name}: status {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(name)
    return failed


def warm_gsplat() -> None:
    """Compile gsplat's CUDA kernels once, before the parallel processes would all try to at the same time."""
    import torch

    if not torch.cuda.is_available():
        return
    try:
        import gsplat
    except ImportError:
        return
    t = time.perf_counter()
    d = torch.device("cuda")
    means = torch.zeros(1, 3, device=d)
    quats = torch.tensor([[1.0, 0, 0, 0]], device=d)
    scales = torch.full((1, 3), 0.1, device=d)
    K = torch.tensor([[[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]], device=d)
    view = torch.eye(4, device=d)[None]
    view[0, 2, 3] = 2.0
    gsplat.rasterization(means, quats, scales, torch.ones(1, device=d), torch.ones(1, 3, device=d), view, K, 64, 64)
    torch.cuda.synchronize()
    print(f"gsplat ready in {time.perf_counter() - t:.0f} s", flush=True)


def run_dirs(out: Path, name: str, ablations: list[str]) -> dict[str, Path]:
    dirs = {"full": out / name / "run"}
    dirs.update({a: out / name / "ablations" / a for a in ablations})
    return dirs


def demo_argv(v: Path, args: argparse.Namespace, until: str = "all") -> list[str]:
    """``thgs demo`` of one video with the benchmark's options, stopping after ``until``."""
    argv = ["demo", "--video", str(v), "--out", str(args.out / v.stem), "--preset", args.preset, "--quiet",
            "--until", until]
    argv += ["--steps", str(args.steps)] if args.steps else []
    argv += ["--size", str(args.size)] if args.size else []
    return argv + shlex.split(args.demo_args)


def phase_prepare(videos: list[Path], args: argparse.Namespace) -> list[str]:
    jobs = [(f"prepare {v.stem}", demo_argv(v, args, "subject"), args.out / "logs" / f"{v.stem}.prepare.log")
            for v in videos if not (args.out / v.stem / "subject.json").exists()]
    return pool(jobs, args.jobs)


def phase_demo(videos: list[Path], args: argparse.Namespace) -> list[str]:
    jobs = [(f"demo {v.stem}", demo_argv(v, args), args.out / "logs" / f"{v.stem}.demo.log")
            for v in videos if not (args.out / v.stem / "report.html").exists()]
    return pool(jobs, args.jobs)


def ablation_runs(videos: list[Path], plan: dict[str, list[str]], out: Path):
    """(video, ablation, run folder) of every ablation run (the full run is the demo's own)."""
    for v in videos:
        for abl, d in run_dirs(out, v.stem, plan[v.stem]).items():
            if abl != "full":
                yield v, abl, d


def phase_train(videos: list[Path], plan: dict[str, list[str]], args: argparse.Namespace) -> list[str]:
    """Every run's training at once: the full model through ``thgs demo --until train`` (so the demo phase
    reuses it), the ablations through ``thgs train`` on the same prepared subject."""
    jobs = [(f"train {v.stem}/full", demo_argv(v, args, "train"), args.out / "logs" / f"{v.stem}.full.train.log")
            for v in videos if not (args.out / v.stem / "run" / "avatar.pt").exists()]
    for v, abl, d in ablation_runs(videos, plan, args.out):
        if (d / "avatar.pt").exists():
            continue
        argv = ["train", str(args.out / v.stem / "subject"), "--out", str(d), "--preset", args.preset,
                "--no-progress", *FLAGS[abl]]
        argv += ["--schedule-steps", str(args.steps)] if args.steps else []
        argv += ["--resume"] if (d / "checkpoint.pt").exists() else []
        jobs.append((f"train {v.stem}/{abl}", argv, args.out / "logs" / f"{v.stem}.{abl}.train.log"))
    return pool(jobs, args.jobs)


def phase_eval(videos: list[Path], plan: dict[str, list[str]], args: argparse.Namespace) -> list[str]:
    jobs = []
    for v, abl, d in ablation_runs(videos, plan, args.out):
        m = d / "eval" / "metrics.json"
        if m.exists() and m.stat().st_mtime > (d / "avatar.pt").stat().st_mtime:
            continue
        argv = ["eval", str(d), "--lpips", "auto", "--no-progress", "--no-video", "--lipsync-landmarks"]
        jobs.append((f"eval {v.stem}/{abl}", argv, args.out / "logs" / f"{v.stem}.{abl}.eval.log"))
    return pool(jobs, args.jobs)


def _region(m: dict[str, Any], region: str, key: str) -> float:
    return float(m.get("test", {}).get(region, {}).get(key, float("nan")))


def _row(m: dict[str, Any]) -> dict[str, float]:
    lm = (m.get("lip_sync") or {}).get("landmarks") or {}
    return {"psnr": _region(m, "full", "psnr"), "ssim": _region(m, "full", "ssim"),
            "lpips_vgg": _region(m, "full", "lpips_vgg_x100"), "head_psnr": _region(m, "head", "psnr"),
            "head_lpips_vgg": _region(m, "head", "lpips_vgg_x100"), "mouth_psnr": _region(m, "mouth", "psnr"),
            "lip_lmd": float(lm.get("lip_lmd_px", float("nan"))),
            "open_corr": float(lm.get("opening_corr", float("nan")))}


def contact_sheet(name: str, dirs: dict[str, Path], out: Path, frames: int = 3) -> Path | None:
    """GT | full | vanilla on ``frames`` test frames (full, head, mouth) plus 4 orbit views of the full model."""
    import torch

    from thgs.animate.drive import subject_drive
    from thgs.animate.render import render_frame
    from thgs.data.subject import open_subject
    from thgs.evaluation.evaluate import ground_truth_image, scored_test_frames
    from thgs.evaluation.frames import frame_boxes
    from thgs.evaluation.sheets import grid, pick_evenly, region_rows
    from thgs.utils.io import write_image
    from thgs.runs.avatar_io import load_avatar
    from thgs.runs.frames import load_audio_windows, subject_background, subject_camera
    from thgs.utils.device import default_device

    device = default_device(None)
    subject = open_subject(dirs["full"].parent / "subject")
    test = scored_test_frames(subject)
    picks = [test[i] for i in pick_evenly(len(test), frames)]
    cam = subject_camera(subject)
    models = {}
    for abl in ("full", "vanilla"):
        if abl in dirs and (dirs[abl] / "avatar.pt").exists():
            model, cfg, _ = load_avatar(dirs[abl] / "avatar.pt", subject, device=device)
            audio = load_audio_windows(subject, cfg) if model.saam is not None else None
            models[abl] = (model, cfg, subject_drive(subject, picks, cam, audio))
    rows = []
    full_model, full_cfg, full_drive = models["full"]
    background = subject_background(subject, full_cfg.background)
    for t, f in enumerate(picks):
        renders = {abl: render_frame(m, d, t, background, c.render.mode, c.render.backend).cpu() for abl, (m, c, d) in models.items()}
        gt = ground_truth_image(subject, f, background)
        inp = full_drive.inputs(t)
        boxes = frame_boxes(full_model.body, inp.pose, inp.betas, inp.expression, inp.transl, cam)
        rows.append(region_rows(gt, renders, boxes, caption=f"{name} {f}"))
    orbit_png = dirs["full"].parent / "report" / "orbit.png"
    sheet = grid(rows, tile_height=160)
    if orbit_png.exists():
        import numpy as np
        from PIL import Image

        with Image.open(orbit_png) as im:
            orb = np.asarray(im.convert("RGB"))
        scale = sheet.shape[1] / orb.shape[1]
        orb = np.asarray(Image.fromarray(orb).resize((sheet.shape[1], max(1, round(orb.shape[0] * scale)))))
        sheet = np.concatenate([sheet, np.full((4, sheet.shape[1], 3), 255, np.uint8), orb], axis=0)
    del models
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return write_image(out / "sheets" / f"{name}.jpg", sheet)


def phase_tables(videos: list[Path], plan: dict[str, list[str]], args: argparse.Namespace) -> str:
    from thgs.data.subject import open_subject
    from thgs.evaluation.alignment import keypoint_alignment
    from thgs.runs.avatar_io import load_avatar
    from thgs.utils.device import default_device

    device = default_device(None)
    lines = ["| video | run | PSNR | SSIM | LPIPS-vgg x100 | head PSNR | head LPIPS-vgg x100 | mouth PSNR | "
             "lip LMD (px) | opening corr | train s |", "|" + "---|" * 11]
    gains, t7 = [], ["| video | frames | region | before FMA | after FMA | after FMA (train frames) | "
                     "after joint optimisation |", "|" + "---|" * 7]
    for v in videos:
        dirs = run_dirs(args.out, v.stem, plan[v.stem])
        rows = {}
        for abl, d in dirs.items():
            try:
                m = json.loads(((d.parent if abl == "full" else d) / "eval" / "metrics.json").read_text())
            except (OSError, ValueError):
                continue
            rows[abl] = _row(m)
            try:
                train_s = json.loads((d / "metrics.jsonl").read_text().splitlines()[-1])["time_s"]
            except (OSError, ValueError, IndexError, KeyError):
                train_s = float("nan")
            r = rows[abl]
            lines.append(f"| {v.stem} | {abl} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips_vgg']:.2f} | "
                         f"{r['head_psnr']:.2f} | {r['head_lpips_vgg']:.2f} | {r['mouth_psnr']:.2f} | "
                         f"{r['lip_lmd']:.2f} | {r['open_corr']:.3f} | {train_s:.0f} |")
        if "full" in rows and "vanilla" in rows:
            f, va = rows["full"], rows["vanilla"]
            gains.append(f"| {v.stem} | {100 * (1 - f['lpips_vgg'] / va['lpips_vgg']):+.1f}% | "
                         f"{100 * (1 - f['head_lpips_vgg'] / va['head_lpips_vgg']):+.1f}% | "
                         f"{f['mouth_psnr'] - va['mouth_psnr']:+.2f} dB | {va['lip_lmd'] - f['lip_lmd']:+.2f} px |")
        subject = open_subject(args.out / v.stem / "subject")
        model, _, _ = load_avatar(dirs["full"] / "avatar.pt", subject, device=device)
        al = keypoint_alignment(model, subject)
        del model
        for region in ("body", "face", "hands"):
            def cell(key: str) -> str:
                x = al.get(key, {}).get(region) if isinstance(al.get(key), dict) else None
                return f"{x:.2f}" if isinstance(x, (int, float)) and x == x else "-"

            t7.append(f"| {v.stem} | {al.get('frames', '-')} | {region} | {cell('before_fma')} | {cell('after_fma')} | "
                      f"{cell('after_fma_train')} | {cell('after_training')} |")
        if not args.no_sheets:
            contact_sheet(v.stem, dirs, args.out)
    text = ["## Per video and run (held-out test frames)", "", *lines, "",
            "## Full vs vanilla (LPIPS reduction: positive = full is better)", "",
            "| video | LPIPS-vgg frame | LPIPS-vgg head | mouth PSNR | lip LMD |", "|---|---|---|---|---|", *gains, "",
            "## Table 7: landmark distance (px)", "", *t7, ""]
    md = "\n".join(text)
    (args.out / "results.md").write_text(md)
    return md


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", type=Path, help="folder of videos (*.mp4) or one video")
    p.add_argument("--out", type=Path, default=Path("out/real"))
    p.add_argument("--preset", default="fast")
    p.add_argument("--steps", type=int, default=0,
                   help="train this many steps with the preset's schedule scaled to them (0: the preset's)")
    p.add_argument("--demo-args", default="", help="extra flags for every `thgs demo`, e.g. '--no-fit-bake-shape'")
    p.add_argument("--size", type=int, default=0, help="ingest height (0: the demo's default for the device)")
    p.add_argument("--jobs", type=int, default=4, help="processes at once")
    p.add_argument("--ablations", default="vanilla", help="ablation runs for every video (besides the full run)")
    p.add_argument("--more-ablations", default="", help="VIDEO:abl,abl;VIDEO:... extra ablations for some videos")
    p.add_argument("--phase", default="all", choices=("all", "prepare", "train", "demo", "eval", "tables"))
    p.add_argument("--no-sheets", action="store_true", help="no contact sheets")
    args = p.parse_args()
    videos = sorted(args.videos.glob("*.mp4")) if args.videos.is_dir() else [args.videos]
    base = [a for a in args.ablations.split(",") if a]
    plan = {v.stem: list(base) for v in videos}
    for spec in filter(None, args.more_ablations.split(";")):
        name, _, abls = spec.partition(":")
        if name in plan:
            plan[name] += [a for a in abls.split(",") if a and a not in plan[name]]
    for abls in plan.values():
        for a in abls:
            if a not in FLAGS:
                p.error(f"unknown ablation {a!r}; choose from {', '.join(FLAGS)}")
    failed: list[str] = []
    t0 = time.perf_counter()
    warm_gsplat()
    for phase, fn in (("prepare", phase_prepare), ("train", phase_train), ("demo", phase_demo),
                      ("eval", phase_eval)):
        if args.phase in ("all", phase):
            t = time.perf_counter()
            failed += fn(videos, args) if phase in ("prepare", "demo") else fn(videos, plan, args)
            print(f"phase {phase}: {time.perf_counter() - t:.0f} s", flush=True)
    if args.phase in ("all", "tables"):
        print(phase_tables(videos, plan, args))
    print(f"total {time.perf_counter() - t0:.0f} s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
