"""``thgs demo``: end to end, from a synthetic subject (default) or from your own video (``--video FILE``):
subject, training, renders, evaluation and a report with pictures.

Every stage is skipped when its result is already in OUT (and the training resumes from its last
checkpoint), so re-running an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

NAME = "demo"
HELP = "end to end: a synthetic subject or your own video -> trained avatar, videos with sound, metrics, report"
DESCRIPTION = (
    "Without --video: synthesise the default subject (anny body, 20 s at 25 fps, 256 px high) into OUT/subject. "
    "With --video FILE: ingest FILE into OUT/subject and prepare it (masks, keypoints, the FMA body fit, as "
    "`thgs prepare` does; needs the 'prepare' extra). Then train (the cpu preset on a CPU, fast on a GPU) into "
    "OUT/run, evaluate the held-out test frames into OUT/eval (`thgs eval`'s files), render OUT/test.mp4 "
    "(test frames with sound) and OUT/orbit.mp4 (novel views), and write OUT/metrics.json and a report with "
    "pictures, OUT/report.html and OUT/report.md (ground truth | render | error for the full frame, head and "
    "mouth). Re-running continues an interrupted demo."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.commands.prepare import add_stage_arguments
    from thgs.config import finite_float

    parser.add_argument("--video", type=Path, default=None,
                        help="your own video of one person talking (with sound); default: a synthetic subject")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: out/demo, or out/demo-<video name> with --video)")
    parser.add_argument("--body", choices=("anny", "toy", "smplx"), default="anny",
                        help="body model: of the synthetic subject (anny, toy) or fitted to the video (anny, smplx)")
    parser.add_argument("--seconds", type=finite_float, default=None,
                        help="length: of the synthetic video (default 20), or keep at most this much of --video "
                             "(default: all of it)")
    parser.add_argument("--start", type=finite_float, default=0.0, help="with --video: seconds to skip first")
    parser.add_argument("--size", type=int, default=None,
                        help="image height in pixels (default: 256, or with --video 256 on a CPU and 512 on a GPU)")
    parser.add_argument("--preset", default=None, help="training preset (default: cpu on a CPU, fast on a GPU)")
    parser.add_argument("--steps", type=int, default=0,
                        help="train this many steps, the preset's whole schedule scaled to them (0: the preset's)")
    parser.add_argument("--orbit-frames", type=int, default=50, help="frames of the orbit video")
    parser.add_argument("--view-stride", type=int, default=4,
                        help="evaluate the novel views on every this-many-th test frame")
    parser.add_argument("--sheet-frames", type=int, default=4, help="test frames on the report's contact sheet")
    parser.add_argument("--lpips", default=None,
                        help="LPIPS networks of the evaluation: alex, vgg, 'alex,vgg', none, auto "
                             "(default: auto with --video, none for the synthetic subject)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--until", choices=("subject", "train", "all"), default="all",
                        help="stop after this stage: subject (made or prepared), train, or all (evaluation, videos, "
                             "report); a later run with the same options continues from there")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    group = parser.add_argument_group("preparing --video (the options of `thgs prepare`)")
    add_stage_arguments(group)


def _synthetic_subject(out: Path, args: argparse.Namespace):
    from thgs.data.subject import open_subject
    from thgs.synth.generate import SynthConfig, config_dict, default_workers, generate
    from thgs.utils.io import write_json

    cfg = SynthConfig(body=args.body, seconds=args.seconds or 20.0, size=args.size or 256)
    want = config_dict(cfg)
    root = out / "subject"
    stamp = out / "subject.json"
    if root.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == want:
                print(f"subject: reusing {root}")
                return open_subject(root)
        except ValueError:
            pass
    t = time.perf_counter()
    print(f"subject: synthesising {root} ({cfg.body}, {cfg.seconds:g} s, {cfg.size} px)")
    generate(root, cfg, overwrite=True, workers=default_workers())
    write_json(stamp, want)
    print(f"subject: done in {time.perf_counter() - t:.0f} s")
    return open_subject(root)


def _video_subject(out: Path, args: argparse.Namespace, device: str) -> Any:
    """Ingest and prepare ``args.video`` into OUT/subject (each stage reused when done); returns the
    opened subject."""
    from thgs.cli import UserError
    from thgs.commands.prepare import ingest_into, prepare_or_clean, stage_config
    from thgs.data.format import SubjectError
    from thgs.data.subject import open_subject
    from thgs.prepare.pipeline import STAGES, format_report
    from thgs.utils.io import write_json

    root = out / "subject"
    size = args.size or (512 if device.startswith("cuda") else 256)
    want = {"video": str(args.video.resolve()), "bytes": args.video.stat().st_size, "start": args.start,
            "seconds": args.seconds, "size": size, "body": args.body}
    stamp = out / "subject.json"
    try:
        if json.loads(stamp.read_text()).get("ingest") != want:
            raise ValueError
    except (OSError, ValueError, AttributeError):
        if root.exists():
            import shutil

            print(f"subject: {root} was made from other settings; re-ingesting")
            shutil.rmtree(root)
        stamp.unlink(missing_ok=True)
    t = time.perf_counter()
    print(f"subject: {args.video} -> {root} ({size} px high)")
    made = ingest_into(args.video, root, start=args.start, max_seconds=args.seconds, size=size,
                       progress=not args.quiet)
    config = stage_config(args, stages=STAGES, redo=frozenset(), device=device, progress=not args.quiet)
    report = prepare_or_clean(root, config, made)
    print(format_report(report))
    write_json(stamp, {"ingest": want})
    print(f"subject: prepared in {time.perf_counter() - t:.0f} s")
    try:
        return open_subject(root)
    except SubjectError as exc:
        raise UserError(str(exc)) from None


def _validate(args: argparse.Namespace) -> None:
    from thgs.cli import UserError

    if args.video is not None:
        if not args.video.is_file():
            raise UserError(f"--video {args.video}: no such file")
        if args.body == "toy":
            raise UserError("--body toy is only for the synthetic subject; fit --video with anny or smplx")
        from thgs.commands.prepare import check_body

        check_body(args.body)
        if args.seconds is not None and not args.seconds > 0:
            raise UserError(f"--seconds must be positive, got {args.seconds}")
        if not args.start >= 0:
            raise UserError(f"--start must be >= 0, got {args.start}")
    else:
        if args.body == "smplx":
            raise UserError("--body smplx is for fitting --video; the synthetic subject uses anny or toy")
        if args.seconds is not None and not args.seconds > 0.5:
            raise UserError(f"--seconds must be more than 0.5, got {args.seconds}")
    for flag, value, low in (("--size", args.size or 16, 16), ("--steps", args.steps, 0),
                             ("--orbit-frames", args.orbit_frames, 1), ("--view-stride", args.view_stride, 1),
                             ("--sheet-frames", args.sheet_frames, 1)):
        if value < low:
            raise UserError(f"{flag} must be >= {low}, got {value}")


def _train(out: Path, subject: Any, name: str, device: str, steps: int, progress: bool = True) -> Path:
    import dataclasses

    from thgs.cli import UserError
    from thgs.runs.avatar_io import CHECKPOINT, FINAL
    from thgs.runs.config import preset, scaled_steps
    from thgs.train.trainer import Trainer

    try:
        cfg = preset(name)
    except KeyError as exc:
        raise UserError(f"--preset: {exc.args[0]}") from None
    cfg = dataclasses.replace(scaled_steps(cfg, steps) if steps else cfg, device=device,
                              progress=cfg.progress and progress)
    run_dir = out / "run"
    if not (run_dir / FINAL).exists():
        resume = (run_dir / CHECKPOINT).exists()
        print(f"train: preset {name} on {device}, {cfg.steps} steps" + (" (resuming)" if resume else ""))
        trainer = Trainer(cfg, subject, run_dir, resume=resume)
        trainer.train()
        del trainer
    else:
        print(f"train: reusing {run_dir / FINAL}")
    return run_dir / FINAL


def _progress_bar(quiet: bool):
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(desc="eval", unit="frame", dynamic_ncols=True)

    def progress(stage: str, done: int, total: int) -> None:
        bar.set_description(f"eval {stage}", refresh=False)
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, progress


def _orbit(model: Any, subject: Any, frames: list[int], audio: Any, background: Any, cfg: Any, n: int):
    """The first ``n`` test frames seen from a camera circling the body; returns (frames, drive)."""
    import torch

    from thgs.animate.drive import orbit, subject_drive
    from thgs.animate.render import render_frames
    from thgs.runs.frames import subject_camera

    cam = subject_camera(subject)
    drive = subject_drive(subject, frames[:n], cam, audio)
    with torch.no_grad():
        b = model.body
        dev = b.v_template.device
        posed = b(drive.pose[:1].to(dev), drive.betas[None].to(dev), None, drive.transl[:1].to(dev)).vertices[0].cpu()
    center = (posed.min(0).values + posed.max(0).values) / 2
    drive.cameras = orbit(cam, center, -cam.world_to_cam[1, :3], len(drive))
    return list(render_frames(model, drive, background, cfg.render.mode, cfg.render.backend)), drive


def _command(args: argparse.Namespace, out: Path) -> str:
    """The command line that makes this demo again (the flags given, in canonical form)."""
    import shlex

    argv = ["thgs", "demo"]
    if args.video is not None:
        argv += ["--video", str(args.video)]
    argv += ["--out", str(out)]
    for flag, value, default in (("--body", args.body, "anny"), ("--seconds", args.seconds, None),
                                 ("--start", args.start, 0.0), ("--size", args.size, None),
                                 ("--preset", args.preset, None), ("--steps", args.steps, 0),
                                 ("--lpips", args.lpips, None), ("--device", args.device, "auto")):
        if value != default:
            argv += [flag, str(value)]
    return " ".join(shlex.quote(a) for a in argv)


def _compat_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The demo's headline figures: test PSNR/SSIM (full frame at the top, head and mouth inside) and the
    mean novel-view PSNR/SSIM."""
    test = summary["test"]
    full = test.get("full", {})
    out: dict[str, Any] = {"test": {"psnr": full.get("psnr"), "ssim": full.get("ssim"), "frames": test["frames"],
                                    "frame_selection": test.get("frame_selection")}}
    for region in ("head", "mouth"):
        if region in test:
            out["test"][region] = test[region]
    nv = summary.get("novel_view_mean")
    if nv:
        out["novel_view_psnr"], out["novel_view_ssim"] = nv["psnr"], nv["ssim"]
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from thgs.animate.render import to_uint8, write_mp4
    from thgs.cli import UserError
    from thgs.commands.eval import parse_lpips
    from thgs.evaluation.evaluate import EVAL_VIDEO, EvalOptions, scored_test_frames, write_eval
    from thgs.evaluation.run_report import Picture, RunReport, lipsync_table, quality_table, write_report
    from thgs.evaluation.sheets import grid, pick_evenly, region_rows
    from thgs.runs.avatar_io import load_avatar
    from thgs.runs.frames import load_audio_windows, subject_background
    from thgs.utils.device import default_device
    from thgs.runs.config import preset_for_device
    from thgs.utils.io import write_image, write_json

    _validate(args)
    try:
        device = default_device(None if args.device == "auto" else args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device}: {exc}") from None
    video = args.video is not None
    nets, lpips_note = parse_lpips(args.lpips or ("auto" if video else "none"))
    landmarks = False
    if video:
        from thgs.metrics.lipsync_landmarks import mediapipe_available

        landmarks = mediapipe_available()
    out: Path = args.out or (Path("out") / (f"demo-{args.video.stem}" if video else "demo"))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if video:
        subject = _video_subject(out, args, device)
    else:
        subject = _synthetic_subject(out, args)
    timings["subject_s"] = time.perf_counter() - t0
    if args.until == "subject":
        print(f"demo: stopped after the subject ({out / 'subject'})")
        return 0

    name = args.preset or preset_for_device(device)
    t = time.perf_counter()
    final = _train(out, subject, name, device, args.steps, progress=not args.quiet)
    timings["train_s"] = time.perf_counter() - t
    if args.until == "train":
        print(f"demo: stopped after training ({final})")
        return 0

    t = time.perf_counter()
    model, cfg, ckpt = load_avatar(final, subject, device=device)
    background = subject_background(subject, cfg.background)
    audio = load_audio_windows(subject, cfg) if model.saam is not None else None
    opts = EvalOptions(lpips_nets=nets, views=True, view_stride=args.view_stride, mode=cfg.render.mode,
                       backend=cfg.render.backend, lipsync_landmarks=landmarks)
    try:
        test = scored_test_frames(subject, opts)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"evaluate: {len(test)} test frames, novel views every {args.view_stride} frames")
    rendered: list = []
    chosen = set(pick_evenly(len(test), args.sheet_frames))
    sheet_rows: list = []

    def keep(t: int, pred: torch.Tensor, gt: torch.Tensor, boxes: dict) -> None:
        rendered.append(to_uint8(pred))
        if t in chosen:
            sheet_rows.append(region_rows(gt.cpu(), {"render": pred.cpu()}, boxes, caption=f"frame {test[t]}"))

    meta = {"run": str(out / "run"), "avatar": str(final), "subject": str(subject.root), "device": device,
            "preset": cfg.preset, "steps": int(ckpt.get("step", cfg.steps))}
    if lpips_note:
        meta["lpips_note"] = lpips_note
    bar, progress = _progress_bar(args.quiet)
    try:
        result = write_eval(out / "eval", model, subject, background, audio, opts, video=True, meta=meta,
                            progress=progress, on_test_frame=keep)
    finally:
        if bar is not None:
            bar.close()
    timings["eval_s"] = time.perf_counter() - t

    t = time.perf_counter()
    from thgs.animate.drive import subject_drive
    from thgs.runs.frames import subject_camera

    drive = subject_drive(subject, test, subject_camera(subject), audio)
    write_mp4(out / "test.mp4", rendered, drive.fps, drive.clip)
    orbit_frames, odrive = _orbit(model, subject, test, audio, background, cfg, min(args.orbit_frames, len(test)))
    write_mp4(out / "orbit.mp4", orbit_frames, odrive.fps, odrive.clip)
    pictures = out / "report"
    write_image(pictures / "test_regions.png", grid(sheet_rows))
    picks = pick_evenly(len(orbit_frames), 6)
    write_image(pictures / "orbit.png", grid([[(f"orbit {k + 1}/{len(orbit_frames)}", orbit_frames[k]) for k in picks]]))
    timings["render_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    summary = result.summary
    metrics = _compat_metrics(summary)
    headline = {"subject": str(subject.root), "source": str(args.video) if video else "synthetic",
                "preset": name, "steps": cfg.steps, "device": device, "num_gaussians": model.num_gaussians,
                "timings": timings, "eval": str(Path("eval") / "metrics.json"), **metrics}
    write_json(out / "metrics.json", headline)

    report = RunReport(title=f"thgs avatar of {args.video.name if video else 'the synthetic default subject'}")
    report.facts = {"source": str(args.video) if video else f"synthetic ({args.body})",
                    "frames": f"{subject.num_frames} at {subject.fps:g} fps, {subject.width}x{subject.height} px; "
                              f"{len(test)} held-out test frames scored",
                    "training": f"preset {name}, {cfg.steps} steps on {device}, {model.num_gaussians} Gaussians",
                    "time": ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items())}
    report.tables.append(quality_table(summary))
    lip = lipsync_table(summary)
    if lip is not None:
        report.tables.append(lip)
    report.pictures.append(Picture("report/test_regions.png",
                                   "Test frames: ground truth | render | error (full frame, head, mouth)"))
    report.pictures.append(Picture("report/orbit.png", "Novel views (orbit)"))
    if video:
        sheet = subject.root / "prepare" / "contact_sheet.png"
        if sheet.exists():
            import os

            report.pictures.append(Picture(os.path.relpath(sheet, out),
                                           "Preparation: masks, keypoints and the fitted body"))
    report.links = [("test frames with sound", "test.mp4"), ("orbit", "orbit.mp4"),
                    ("ground truth | render | error", f"eval/{EVAL_VIDEO}"), ("all metrics", "eval/metrics.json"),
                    ("per-frame metrics", "eval/frames.csv"), ("training config", "run/config.json")]
    if lpips_note:
        report.notes.append(lpips_note)
    report.commands = [_command(args, out)]
    md, page = write_report(out, report)

    test_m = metrics["test"]
    print(f"test PSNR {test_m['psnr']:.2f} dB, SSIM {test_m['ssim']:.4f}"
          + (f"; mouth PSNR {test_m['mouth']['psnr']:.2f} dB" if "mouth" in test_m else "")
          + (f"; novel-view PSNR {metrics['novel_view_psnr']:.2f} dB" if "novel_view_psnr" in metrics else ""))
    print(f"videos:  {out / 'test.mp4'}  {out / 'orbit.mp4'}")
    print(f"report:  {page}  {md}")
    print(f"metrics: {out / 'metrics.json'}")
    return 0
