"""``thgs demo --out OUT``: synthesise the default subject, train, render and evaluate, end to end.

Every stage is skipped when its result is already in OUT (and the training resumes from its last
checkpoint), so re-running an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "demo"
HELP = "end-to-end demo: synthesise a subject, train an avatar, render videos with sound, evaluate"
DESCRIPTION = ("Synthesise the default subject (anny body, 20 s at 25 fps, 256 px high) into OUT/subject, train "
               "(the cpu preset on a CPU, fast on a GPU) into OUT/run, render OUT/test.mp4 (test split with sound) "
               "and OUT/orbit.mp4 (novel views), and write OUT/metrics.json. Re-running continues an interrupted demo.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import finite_float

    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--body", choices=("anny", "toy"), default="anny", help="body model of the synthetic subject")
    parser.add_argument("--seconds", type=finite_float, default=20.0, help="length of the synthetic video")
    parser.add_argument("--size", type=int, default=256, help="image height of the synthetic video in pixels")
    parser.add_argument("--preset", default=None, help="training preset (default: cpu on a CPU, fast on a GPU)")
    parser.add_argument("--steps", type=int, default=0, help="override the preset's number of steps (0: keep)")
    parser.add_argument("--orbit-frames", type=int, default=50, help="frames of the orbit video")
    parser.add_argument("--view-stride", type=int, default=4,
                        help="evaluate the novel views on every this-many-th test frame")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")


def _subject(out: Path, args: argparse.Namespace):
    from thgs.data.subject import open_subject
    from thgs.synth.generate import SynthConfig, config_dict, default_workers, generate
    from thgs.utils.io import write_json

    cfg = SynthConfig(body=args.body, seconds=args.seconds, size=args.size)
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
    print(f"subject: synthesising {root} ({args.body}, {args.seconds:g} s, {args.size} px)")
    generate(root, cfg, overwrite=True, workers=default_workers())
    write_json(stamp, want)
    print(f"subject: done in {time.perf_counter() - t:.0f} s")
    return open_subject(root)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from thgs.animate.drive import orbit, subject_drive
    from thgs.animate.render import render_frames, to_uint8, write_mp4
    from thgs.cli import UserError
    from thgs.train.config import preset
    from thgs.train.data import subject_background, subject_camera
    from thgs.train.evaluate import evaluate_subject
    from thgs.train.trainer import CHECKPOINT, FINAL, Trainer, load_audio_windows, load_avatar
    from thgs.utils.device import default_device
    from thgs.utils.io import write_json

    if not args.seconds > 0.5:
        raise UserError(f"--seconds must be more than 0.5, got {args.seconds}")
    for flag, value, low in (("--size", args.size, 16), ("--steps", args.steps, 0),
                             ("--orbit-frames", args.orbit_frames, 1), ("--view-stride", args.view_stride, 1)):
        if value < low:
            raise UserError(f"{flag} must be >= {low}, got {value}")
    try:
        device = default_device(None if args.device == "auto" else args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device}: {exc}") from None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    subject = _subject(out, args)
    timings["subject_s"] = time.perf_counter() - t0

    name = args.preset or ("fast" if device.startswith("cuda") else "cpu")
    try:
        cfg = preset(name)
    except KeyError as exc:
        raise UserError(f"--preset: {exc.args[0]}") from None
    cfg = dataclasses.replace(cfg, device=device, **({"steps": args.steps} if args.steps else {}))
    run_dir = out / "run"
    t = time.perf_counter()
    if not (run_dir / FINAL).exists():
        resume = (run_dir / CHECKPOINT).exists()
        print(f"train: preset {name} on {device}, {cfg.steps} steps" + (" (resuming)" if resume else ""))
        trainer = Trainer(cfg, subject, run_dir, resume=resume)
        trainer.train()
        del trainer
    else:
        print(f"train: reusing {run_dir / FINAL}")
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    model, cfg, _ = load_avatar(run_dir / FINAL, subject, device=device)
    background = subject_background(subject, cfg.background)
    audio = load_audio_windows(subject, cfg) if model.saam is not None else None
    cam = subject_camera(subject)
    test = list(subject.split["test"])
    print(f"evaluate: {len(test)} test frames, novel views every {args.view_stride} frames")
    rendered: list = []
    metrics = evaluate_subject(model, subject, background, audio, cfg.mode, cfg.backend, view_stride=args.view_stride,
                               on_test_frame=lambda _t, img: rendered.append(to_uint8(img)))
    timings["eval_s"] = time.perf_counter() - t
    t = time.perf_counter()
    drive = subject_drive(subject, test, cam, audio)
    write_mp4(out / "test.mp4", rendered, drive.fps, drive.clip)
    n = min(args.orbit_frames, len(test))
    odrive = subject_drive(subject, test[:n], cam, audio)
    with torch.no_grad():
        b = model.body
        posed = b(odrive.pose[:1].to(b.v_template.device), odrive.betas[None].to(b.v_template.device), None,
                  odrive.transl[:1].to(b.v_template.device)).vertices[0].cpu()
    center = (posed.min(0).values + posed.max(0).values) / 2
    odrive.cameras = orbit(cam, center, -cam.world_to_cam[1, :3], n)
    write_mp4(out / "orbit.mp4", render_frames(model, odrive, background, cfg.mode, cfg.backend), odrive.fps,
              odrive.clip)
    timings["render_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    result = {"subject": str(out / "subject"), "preset": name, "steps": cfg.steps, "device": device,
              "num_gaussians": model.num_gaussians, "timings": timings, **metrics}
    write_json(out / "metrics.json", result)
    print(f"test PSNR {metrics['test']['psnr']:.2f} dB, SSIM {metrics['test']['ssim']:.4f}"
          + (f"; mouth PSNR {metrics['test']['mouth']['psnr']:.2f} dB" if "mouth" in metrics["test"] else "")
          + (f"; novel-view PSNR {metrics['novel_view_psnr']:.2f} dB" if "novel_view_psnr" in metrics else ""))
    print(f"videos:  {out / 'test.mp4'}  {out / 'orbit.mp4'}")
    print(f"metrics: {out / 'metrics.json'}")
    return 0
