"""``thgs bench [RUN]``: render and training speed, as JSON and a markdown table."""

from __future__ import annotations

import argparse
import typing
import json
import sys
from pathlib import Path

from thgs.runs.config import Backend

NAME = "bench"
HELP = "measure render speed (per part, against the rasterization floor) and training speed"
DESCRIPTION = ("Time the avatar in RUN (or, without RUN, a freshly initialised avatar on the toy body with --gaussians "
               "Gaussians): the whole frame, each part of the animation and rasterization alone, at batch 1 and "
               "batched, with CUDA events (warm-up, median of many repeats); then training steps per second of "
               "each preset. On a GPU machine the CPU figures (demo size, cpu preset) follow. Defaults depend on "
               "the device: CUDA 1280x720, 100k Gaussians, presets fast,paper; CPU 455x256 (the demo size), "
               "20k Gaussians, presets cpu,smoke.")

DEFAULTS = {
    "cuda": dict(width=1280, height=720, gaussians=100_000, repeats=200, warmup=20, batch=8,
                 presets="fast,paper", train_steps=50, train_warmup=10, train_subject_size=512),
    "cpu": dict(width=455, height=256, gaussians=20_000, repeats=5, warmup=1, batch=2,
                presets="cpu,smoke", train_steps=5, train_warmup=1, train_subject_size=64),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import typing

    from thgs.runs.config import Mode

    parser.add_argument("run", type=Path, nargs="?", default=None,
                        help="run folder or avatar .pt to time (default: a fresh avatar)")
    parser.add_argument("--devices", default="auto",
                        help="comma-separated devices to measure on; auto: cuda then cpu on a GPU machine, else cpu")
    parser.add_argument("--body", default="toy", help="body model of the fresh avatar (toy, anny, smplx)")
    parser.add_argument("--gaussians", type=int, default=0, help="Gaussians of the fresh avatar (0: device default)")
    parser.add_argument("--width", type=int, default=0, help="image width (0: device default)")
    parser.add_argument("--height", type=int, default=0, help="image height (0: device default)")
    parser.add_argument("--repeats", type=int, default=0, help="timed repeats per part (0: device default)")
    parser.add_argument("--warmup", type=int, default=-1, help="untimed warm-up calls per part (-1: device default)")
    parser.add_argument("--batch", type=int, default=0, help="frames per batched call; 1 skips batching (0: default)")
    parser.add_argument("--mode", choices=typing.get_args(Mode), default=None, help="rasterization (default: as trained, "
                                                                              "2dgs for a fresh avatar)")
    parser.add_argument("--backend", default="auto", choices=typing.get_args(Backend),
                        help="rasterizer backend (gsplat needs CUDA)")
    parser.add_argument("--compile-animation", action="store_true",
                        help="CUDA: also time the recorded frames with the posing compiled (torch.compile; tens of "
                             "seconds to compile per batch size)")
    parser.add_argument("--render", action=argparse.BooleanOptionalAction, default=True, help="measure render speed")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=True, help="measure training speed")
    parser.add_argument("--presets", default="", help="comma-separated presets to time (default: per device)")
    parser.add_argument("--train-steps", type=int, default=0, help="timed training steps per preset (0: default)")
    parser.add_argument("--train-warmup", type=int, default=-1, help="untimed steps before them (-1: default)")
    parser.add_argument("--data", type=Path, default=None,
                        help="subject to train on (default: a 2 s synthetic toy subject made in a temporary folder)")
    parser.add_argument("--train-subject-size", type=int, default=0,
                        help="image height of that synthetic subject (0: device default)")
    parser.add_argument("--out", type=Path, default=None, help="folder for bench.json and bench.md")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the markdown table")


def _devices(spec: str) -> list[str]:
    import torch

    from thgs.cli import UserError

    if spec == "auto":
        return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    devs = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devs:
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--devices: {d} asked for, but torch sees no CUDA GPU")
        if not (d == "cpu" or d.startswith("cuda")):
            raise UserError(f"--devices: unknown device {d!r} (cpu, cuda, cuda:N)")
    return devs


def _setting(args: argparse.Namespace, name: str, device: str, unset) -> object:
    v = getattr(args, name)
    return DEFAULTS["cuda" if device.startswith("cuda") else "cpu"][name] if v == unset else v


def _avatar(args: argparse.Namespace, device: str, gaussians: int):
    from thgs.cli import UserError

    if args.run is not None:
        from thgs.runs.folder import find_avatar, load_run_avatar

        model, cfg, _ = load_run_avatar(find_avatar(args.run), device=device)
        for g in model.active:  # inference runs every trained component
            if model.group_parameters(g):
                model.set_group_active(g, True)
        return model, cfg.render.mode, str(args.run)
    from thgs.bench.speed import fresh_avatar
    from thgs.body.registry import load_body_model
    from thgs.body.teeth import with_teeth

    try:
        body = with_teeth(load_body_model(args.body))
    except (KeyError, ValueError, RuntimeError, ImportError) as exc:
        raise UserError(f"--body {args.body}: {exc}") from None
    return fresh_avatar(body, gaussians).to(device), "2dgs", f"fresh {args.body} avatar, {gaussians} Gaussians"


def run(args: argparse.Namespace) -> int:
    import shlex
    import tempfile

    import torch

    from thgs import __version__
    from thgs.bench.speed import SpeedOptions, render_speed, train_speed
    from thgs.bench.table import bench_markdown
    from thgs.cli import UserError
    from thgs.runs.config import PRESETS
    from thgs.utils.io import write_json, write_text

    for name in ("gaussians", "width", "height", "repeats", "batch", "train_steps", "train_subject_size"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.run is not None and not args.run.exists():
        raise UserError(f"{args.run}: no such run folder or avatar file")
    devices = _devices(args.devices)
    for d in devices:
        presets = [p for p in str(_setting(args, "presets", d, "")).split(",") if p]
        bad = [p for p in presets if p not in PRESETS]
        if bad:
            raise UserError(f"--presets: unknown preset(s) {', '.join(bad)}; choose from {', '.join(PRESETS)}")
    if args.data is not None:
        from thgs.data.format import SubjectError
        from thgs.data.subject import open_subject

        try:
            open_subject(args.data)
        except SubjectError as exc:
            raise UserError(str(exc)) from None

    from thgs.utils.device import gsplat_status

    result: dict = {"command": "thgs bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1
                    and sys.argv[1] == "bench" else "thgs bench",
                    "versions": {"thgs": __version__, "torch": torch.__version__,
                                 "gsplat": gsplat_status().get("version")},
                    "devices": {}}
    if torch.cuda.is_available():
        result["versions"]["gpu"] = torch.cuda.get_device_name(0)
    for dev in devices:
        sec: dict = {}
        if args.render:
            n = int(_setting(args, "gaussians", dev, 0))
            model, trained_mode, label = _avatar(args, dev, n)
            result["avatar"] = label
            opts = SpeedOptions(width=int(_setting(args, "width", dev, 0)), height=int(_setting(args, "height", dev, 0)),
                                warmup=int(_setting(args, "warmup", dev, -1)), repeats=int(_setting(args, "repeats", dev, 0)),
                                batch=int(_setting(args, "batch", dev, 0)), mode=args.mode or trained_mode,
                                backend=args.backend, compile_animation=args.compile_animation)
            print(f"bench: render speed on {dev} ({opts.width}x{opts.height}, {model.num_gaussians} Gaussians)",
                  file=sys.stderr)
            try:
                sec["render"] = render_speed(model, opts, dev)
            except (RuntimeError, ValueError) as exc:
                sec["render_error"] = str(exc)
            del model
        if args.train:
            presets = [p for p in str(_setting(args, "presets", dev, "")).split(",") if p]
            steps = int(_setting(args, "train_steps", dev, 0))
            warm = int(_setting(args, "train_warmup", dev, -1))
            with tempfile.TemporaryDirectory(prefix="thgs-bench-") as tmp:
                from thgs.data.subject import open_subject

                if args.data is not None:
                    subject = open_subject(args.data)
                else:
                    from thgs.synth.generate import SynthConfig, generate

                    size = int(_setting(args, "train_subject_size", dev, 0))
                    print(f"bench: synthesising a 2 s toy subject at {size} px", file=sys.stderr)
                    generate(Path(tmp) / "subject", SynthConfig(body="toy", seconds=2.0, size=size, views=()),
                             progress=False)
                    subject = open_subject(Path(tmp) / "subject")
                print(f"bench: training speed on {dev} ({', '.join(presets)})", file=sys.stderr)
                try:
                    sec["train"] = train_speed(subject, presets, steps, warm, dev, Path(tmp) / "runs")
                except (RuntimeError, ValueError) as exc:
                    sec["train_error"] = str(exc)
        result["devices"][dev] = sec
    md = bench_markdown(result)
    if args.out is not None:
        write_json(args.out / "bench.json", result)
        write_text(args.out / "bench.md", md)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else md)
    return 0
