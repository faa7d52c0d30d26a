"""``thgs train DATA --out RUN``: train a THGS avatar on a subject."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train"
HELP = "train a talking avatar on a subject folder"
DESCRIPTION = ("Train a THGS avatar on DATA (a subject folder) into RUN. Start from a named preset "
               "(--preset; without it: cpu on a CPU, fast on a GPU) and override single settings with the flags "
               "below. --resume continues the stopped (or finished) run in RUN with its own settings; of the flags, "
               "only --steps, --log-every, --checkpoint-every, --progress, --compile and --cuda-graphs may change, any other that differs "
               "from the run's setting is refused. Every setting is checked (finite, in range) before anything "
               "is written. Each setting's help ends with its value in the presets (paper, fast, cpu, smoke), or "
               "its one default when they agree.")
USAGE = "%(prog)s DATA --out RUN [--resume] [--preset {paper,fast,cpu,smoke}] [--SETTING VALUE ...]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import add_dataclass_arguments
    from thgs.runs.config import PRESETS, TrainConfig

    parser.add_argument("data", type=Path, help="subject folder (thgs format, e.g. written by `thgs synth`)")
    parser.add_argument("--out", type=Path, required=True, help="run folder for config, metrics and checkpoints")
    parser.add_argument("--schedule-steps", type=int, default=None, metavar="N",
                        help="train N steps with the preset's whole schedule (stage starts, densification, "
                             "logging and checkpoint intervals) scaled by N / the preset's steps; other flags "
                             "still apply on top (unlike --steps, which keeps the stage starts)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN/checkpoint.pt (an error when RUN holds none)")
    add_dataclass_arguments(parser, TrainConfig, bases={name: make() for name, make in PRESETS.items()},
                            title="training settings (TrainConfig)")


SAFE_ON_RESUME = ("steps", "log_every", "checkpoint_every", "progress", "compile", "cuda_graphs")
"""Settings ``--resume`` applies to a started run; any other changed flag is refused."""


def given_flags(args: argparse.Namespace) -> dict:
    """The TrainConfig settings the user set on the command line, by flat name (the flag with underscores),
    with their values."""
    from thgs.config import flat_names
    from thgs.runs.config import TrainConfig

    given = {}
    for name in flat_names(TrainConfig):
        v = getattr(args, f"cfg__{name}", None)
        if v is not None:
            given[name] = tuple(v) if isinstance(v, list) else v
    return given


def _device(name: str) -> str:
    from thgs.cli import UserError
    from thgs.utils.device import default_device

    try:
        return default_device(None if name == "auto" else name)
    except RuntimeError as exc:
        raise UserError(f"--device {name}: {exc}") from None


def resolve_config(args: argparse.Namespace):
    """The preset named on the command line (or the one fitting the device: cpu on a CPU, fast on a GPU) with
    the user's flags applied."""
    import dataclasses
    import sys

    from thgs.config import dataclass_from_namespace
    from thgs.runs.config import preset, preset_for_device

    name = getattr(args, "cfg__preset", None)
    if name is None:
        device = _device(getattr(args, "cfg__device", None) or "auto")
        name = preset_for_device(device)
        print(f"train: preset {name} (chosen for the {'GPU' if device.startswith('cuda') else 'CPU'}; "
              "--preset paper runs the paper's 150k-step schedule)", file=sys.stderr)
    base = preset(name)  # argparse offers only the named presets
    n = getattr(args, "schedule_steps", None)
    if n is not None:
        if n < 1:
            from thgs.cli import UserError

            raise UserError(f"--schedule-steps must be >= 1, got {n}")
        from thgs.runs.config import scaled_steps

        base = scaled_steps(base, n)
    cfg = dataclass_from_namespace(args, base)
    return dataclasses.replace(cfg, preset=name)


def resume_config(args: argparse.Namespace, ckpt: dict, ckpt_path: Path):
    """The stopped run's config with the safe changes (:data:`SAFE_ON_RESUME`) the flags ask for applied;
    :class:`UserError` naming every other flag that differs from the run's setting."""
    import sys

    from thgs.cli import UserError
    from thgs.config import flat_names, get_path, replace_flat
    from thgs.runs.avatar_io import config_from_checkpoint
    from thgs.runs.config import TrainConfig

    stored = config_from_checkpoint(ckpt, ckpt_path)
    paths = flat_names(TrainConfig)
    changed = {k: v for k, v in given_flags(args).items() if v != get_path(stored, paths[k])}
    refused = [k for k in changed if k not in SAFE_ON_RESUME]
    if refused:
        what = ", ".join(f"--{k.replace('_', '-')} (the run has {get_path(stored, paths[k])!r})" for k in refused)
        raise UserError(f"--resume {args.out}: cannot change {what} of a started run; only "
                        f"{', '.join('--' + k.replace('_', '-') for k in SAFE_ON_RESUME)} may change "
                        "(or start a new run with another --out)")
    step = int(ckpt["step"])
    if "steps" in changed and changed["steps"] < step:
        raise UserError(f"--steps {changed['steps']}: the run in {args.out} is already at step {step}")
    for k, v in changed.items():
        print(f"train: resume applies --{k.replace('_', '-')} {v} (was {get_path(stored, paths[k])})", file=sys.stderr)
    return replace_flat(stored, **changed)


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.data.subject import open_subject
    from thgs.runs.checkpoint import read_checkpoint
    from thgs.runs.config import validate_config
    from thgs.runs.avatar_io import CHECKPOINT, FINAL
    from thgs.train.trainer import Trainer

    out: Path = args.out
    ckpt = None
    if args.resume:
        if not out.is_dir():
            raise UserError(f"--resume {out}: no such run folder")
        if not (out / CHECKPOINT).is_file():
            raise UserError(f"--resume {out}: no {CHECKPOINT} to continue (the run stopped before its first "
                            "checkpoint: start it again without --resume)")
        ckpt = read_checkpoint(out / CHECKPOINT, map_location="cpu")
        cfg = resume_config(args, ckpt, out / CHECKPOINT)
    else:
        if out.exists() and (out / FINAL).exists():
            raise UserError(f"{out}: already holds a finished run ({FINAL}); choose another --out or pass --resume")
        if out.exists() and (out / CHECKPOINT).exists():
            raise UserError(f"{out}: holds a stopped run ({CHECKPOINT}); pass --resume to continue it")
        cfg = resolve_config(args)
    validate_config(cfg)
    _device(cfg.device)
    subject = open_subject(args.data)
    if not subject.has_params or subject.body is None:
        raise UserError(f"{args.data}: params.npz / meta.json field 'body' missing: training needs body parameters")
    try:
        trainer = Trainer(cfg, subject, out, resume=args.resume, checkpoint=ckpt)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"train: preset {cfg.preset}, {cfg.steps} steps on {trainer.device}, rasterizer {trainer.backend}"
          + (f" ({trainer.backend_note})" if trainer.backend_note else ""), flush=True)
    if trainer.step >= cfg.steps:
        print(f"{out}: already trained ({trainer.step} steps)")
        return 0
    terms = trainer.train()
    print(f"trained {trainer.step} steps: loss {terms.get('loss', float('nan')):.4f}, "
          f"train PSNR {terms.get('psnr', float('nan')):.2f} dB, {trainer.model.num_gaussians} Gaussians")
    print(f"avatar: {out / FINAL}")
    return 0
