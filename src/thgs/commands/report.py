"""``thgs report``: train (or reuse) the ablation runs, evaluate them and write the results tables."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

NAME = "report"
HELP = "run or read the ablations (vanilla, w/o SAAM, w/o LEB, w/o expr., w/o audio, full) and write the results tables"
DESCRIPTION = ("For each ablation, train RUNS/<name> with `thgs train` unless RUNS/<name>/avatar.pt exists, evaluate "
               "it with `thgs eval` unless RUNS/<name>/eval/metrics.json is newer than the avatar, and write the "
               "paper's Tables 3, 4 (style), 5/8 and 6 into --out between two marker lines (the rest of the file "
               "is kept). The commands that produced every number are listed in the output.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="subject folder (needed unless --only-read)")
    parser.add_argument("--runs", type=Path, default=Path("out/ablations"), help="folder of the ablation runs")
    parser.add_argument("--preset", default="fast", help="training preset of every ablation run")
    parser.add_argument("--steps", type=int, default=0, help="override the preset's step count (0: keep)")
    parser.add_argument("--only-read", action="store_true",
                        help="train and evaluate nothing: read the existing RUNS/<name>/eval/metrics.json")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"), help="markdown file to write")
    parser.add_argument("--ablations", default="",
                        help="comma-separated subset of vanilla,no_saam,no_leb,no_expr,no_audio,full (default: all)")
    parser.add_argument("--lpips", default="auto", help="LPIPS networks for `thgs eval` (alex, vgg, none, auto)")
    parser.add_argument("--syncnet-weights", type=Path, default=None, help="SyncNet weights for `thgs eval`")
    parser.add_argument("--max-frames", type=int, default=0, help="evaluate at most this many test frames (0: all)")
    parser.add_argument("--views", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the subject's novel views in `thgs eval`")
    parser.add_argument("--videos", action="store_true", help="let `thgs eval` write its side-by-side videos")
    parser.add_argument("--device", default="auto", help="torch device for training and evaluation")
    parser.add_argument("--train-args", default="", help="extra flags passed to every `thgs train`, e.g. '--seed 1'")
    parser.add_argument("--fps", action=argparse.BooleanOptionalAction, default=True,
                        help="show the evaluation's frame rate in Tables 3 and 5/8")
    parser.add_argument("--note", action="append", default=[], help="a line added to the report's notes (repeatable)")
    parser.add_argument("--train-only", action="store_true",
                        help="train the missing runs, then stop (no evaluation, no tables)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train this many ablations at once, each in its own process with its log in "
                             "RUNS/<name>.train.log (a GPU that one run leaves idle between small kernels "
                             "trains several at nearly the speed of one)")


def _cmd(argv: list[str]) -> str:
    return "thgs " + " ".join(shlex.quote(str(a)) for a in argv)


def _read_nets(result: Path) -> list[str]:
    """The LPIPS networks an existing ``metrics.json`` was scored with ([] when unreadable)."""
    try:
        return list(json.loads(result.read_text()).get("lpips_nets", []))
    except (OSError, ValueError):
        return []


def _resumable(argv: list[str], checkpoint: Path) -> list[str]:
    """``argv`` plus ``--resume`` when an interrupted run left ``checkpoint``."""
    return argv + (["--resume"] if checkpoint.is_file() else [])


def _train_parallel(argvs: dict[str, list[str]], runs: Path, jobs: int) -> None:
    """Run ``thgs <argv>`` for every ablation, at most ``jobs`` processes at a time, each logging to
    RUNS/<name>.train.log; raise UserError naming the failed runs and their logs."""
    import subprocess
    import sys
    import time

    from thgs.cli import UserError

    import os

    runs.mkdir(parents=True, exist_ok=True)
    # share the CPU cores between the processes (each would otherwise start one thread per core)
    threads = str(max(1, (os.cpu_count() or 1) // min(jobs, max(1, len(argvs)))))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    queue = list(argvs)
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    failed: list[str] = []
    t0 = time.perf_counter()
    try:
        while queue or running:
            while queue and len(running) < jobs:
                name = queue.pop(0)
                log = open(runs / f"{name}.train.log", "w")
                print(f"report: [{name}] {_cmd(argvs[name])} > {runs / (name + '.train.log')}", flush=True)
                running[name] = (subprocess.Popen([sys.executable, "-m", "thgs", *argvs[name]], stdout=log,
                                                  stderr=subprocess.STDOUT, env=env), log)
            time.sleep(0.5)
            for name, (proc, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()  # type: ignore[attr-defined]
                    del running[name]
                    print(f"report: [{name}] finished with status {proc.returncode} after "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
                    if proc.returncode != 0:
                        failed.append(name)
    finally:
        for proc, log in running.values():  # interrupted: stop the others; their checkpoints stay for --resume
            proc.terminate()
            proc.wait()
            log.close()  # type: ignore[attr-defined]
    if failed:
        raise UserError("training failed for " + ", ".join(f"{n} (see {runs / (n + '.train.log')})" for n in failed))


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError, main
    from thgs.commands.eval import parse_lpips
    from thgs.evaluation.evaluate import EVAL_JSON
    from thgs.evaluation.report import ABLATIONS, build_markdown, merge_into
    from thgs.runs.config import PRESETS
    from thgs.runs.avatar_io import CHECKPOINT, FINAL
    from thgs.utils.io import write_json, write_text

    names = [a.strip() for a in args.ablations.split(",") if a.strip()] or list(ABLATIONS)
    bad = [a for a in names if a not in ABLATIONS]
    if bad:
        raise UserError(f"--ablations: unknown {', '.join(bad)}; choose from {', '.join(ABLATIONS)}")
    if args.preset not in PRESETS:
        raise UserError(f"--preset: unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.steps < 0 or args.max_frames < 0:
        raise UserError("--steps and --max-frames must be >= 0")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be at least 1")
    parse_lpips(args.lpips)  # fails early on unknown networks / missing weights
    if args.out.exists() and not args.out.is_file():
        raise UserError(f"--out {args.out}: not a file")
    data = args.data
    if data is None and not args.only_read:
        raise UserError("--data SUBJECT is needed to train the ablation runs (or pass --only-read)")
    if data is not None:
        from thgs.data.format import SubjectError
        from thgs.data.subject import open_subject

        try:
            open_subject(data)
        except SubjectError as exc:
            raise UserError(str(exc)) from None
    extra = shlex.split(args.train_args)
    if args.only_read:
        missing = [str(args.runs / n / "eval" / EVAL_JSON) for n in names if not (args.runs / n / "eval" / EVAL_JSON).is_file()]
        if missing:
            raise UserError(f"--only-read: missing evaluation results {', '.join(missing)}")

    commands: list[str] = []
    metrics: dict[str, dict] = {}
    train_argvs: dict[str, list[str]] = {}
    for name in names:
        run_dir = args.runs / name
        train_argvs[name] = ["train", str(data) if data is not None else "SUBJECT", "--out", str(run_dir), "--preset",
                             args.preset, *(["--steps", str(args.steps)] if args.steps else []), "--device",
                             args.device, "--no-progress", *ABLATIONS[name][1], *extra]
    if not args.only_read and args.jobs > 1:
        pending = [n for n in names if not (args.runs / n / FINAL).is_file()]
        if len(pending) > 1:
            from thgs.utils.device import prepare_gsplat

            if prepare_gsplat(args.device):  # built here once, so the runs do not all compile it at once
                print("report: gsplat's CUDA kernels are loaded", flush=True)
        _train_parallel({n: _resumable(train_argvs[n], args.runs / n / CHECKPOINT) for n in pending}, args.runs,
                        args.jobs)
    if not args.only_read and args.train_only:
        for name in names:
            if not (args.runs / name / FINAL).is_file():
                argv = _resumable(train_argvs[name], args.runs / name / CHECKPOINT)
                print(f"report: {_cmd(argv)}", flush=True)
                if main(argv) != 0:
                    raise UserError(f"training the {name!r} ablation failed (see the message above)")
        print(f"report: trained {', '.join(names)} under {args.runs}")
        return 0
    wanted_nets = set(parse_lpips(args.lpips)[0])
    for name in names:
        run_dir = args.runs / name
        train_argv = train_argvs[name]
        eval_argv = ["eval", str(run_dir), "--lpips", args.lpips, "--device", args.device, "--no-progress",
                     *(["--max-frames", str(args.max_frames)] if args.max_frames else []),
                     *([] if args.views else ["--no-views"]), *([] if args.videos else ["--no-video"]),
                     *(["--syncnet-weights", str(args.syncnet_weights)] if args.syncnet_weights else [])]
        commands += [_cmd(train_argv), _cmd(eval_argv)]
        result = run_dir / "eval" / EVAL_JSON
        if not args.only_read:
            if not (run_dir / FINAL).is_file():
                argv = _resumable(train_argv, run_dir / CHECKPOINT)
                print(f"report: {_cmd(argv)}", flush=True)
                if main(argv) != 0:
                    raise UserError(f"training the {name!r} ablation failed (see the message above)")
            if (not result.is_file() or result.stat().st_mtime < (run_dir / FINAL).stat().st_mtime
                    or not wanted_nets <= set(_read_nets(result))):
                print(f"report: {_cmd(eval_argv)}", flush=True)
                if main(eval_argv) != 0:
                    raise UserError(f"evaluating the {name!r} ablation failed (see the message above)")
        try:
            metrics[name] = json.loads(result.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{result}: cannot read ({exc})") from None
    nets = [n for n in ("alex", "vgg") if all(n in m.get("lpips_nets", []) for m in metrics.values())]
    subject = str(data) if data is not None else str(next(iter(metrics.values())).get("subject", "?"))
    me = ["report", *(["--data", str(data)] if data is not None else []), "--runs", str(args.runs), "--preset",
          args.preset, *(["--steps", str(args.steps)] if args.steps else []), "--out", str(args.out),
          *(["--ablations", args.ablations] if args.ablations else []), "--lpips", args.lpips,
          *(["--max-frames", str(args.max_frames)] if args.max_frames else []), *([] if args.views else ["--no-views"]),
          *(["--train-args", args.train_args] if args.train_args else []), *(["--only-read"] if args.only_read else []),
          *([] if args.fps else ["--no-fps"])]
    notes = [f"Each run: preset `{args.preset}`" + (f", {args.steps} steps" if args.steps else "") + ".",
             "Table 3 of the paper drives both methods with silent audio and neutral expressions; here both are "
             "driven by the test split's own audio and expressions (the vanilla model ignores them).",
             "Regions: head and neck = projected head vertices and neck joint, mouth = projected inner lips "
             "(docs/metrics.md)."]
    if not args.fps:
        notes.append("No fps column: the frame rates `thgs eval` records are not a benchmark (several evaluations "
                     "may have shared the device); docs/benchmarks.md has the timed figures.")
    notes += args.note
    block = build_markdown(metrics, [_cmd(me)] + commands, subject, nets, notes, fps=args.fps)
    existing = args.out.read_text() if args.out.is_file() else ""
    write_text(args.out, merge_into(existing, block))
    write_json(args.runs / "report.json", {"ablations": metrics, "commands": commands, "lpips_nets": nets})
    print(f"report: wrote {args.out} and {args.runs / 'report.json'}")
    return 0
