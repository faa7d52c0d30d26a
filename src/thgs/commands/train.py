"""``thgs train DATA --out RUN``: train a THGS avatar on a subject."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train"
HELP = "train a talking avatar on a subject folder"
DESCRIPTION = ("Train a THGS avatar on DATA (a subject folder) into RUN. Start from a named preset "
               "(--preset) and override single settings with the flags below; --resume continues a stopped run.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thgs.config import add_dataclass_arguments
    from thgs.train.config import TrainConfig

    parser.add_argument("data", type=Path, help="subject folder (thgs format, e.g. written by `thgs synth`)")
    parser.add_argument("--out", type=Path, required=True, help="run folder for config, metrics and checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    add_dataclass_arguments(parser, TrainConfig)


def resolve_config(args: argparse.Namespace):
    """The preset named on the command line with the user's flags applied."""
    import dataclasses

    from thgs.config import dataclass_from_namespace
    from thgs.train.config import preset

    name = getattr(args, "cfg__preset", None) or "paper"
    try:
        base = preset(name)
    except KeyError as exc:
        from thgs.cli import UserError

        raise UserError(f"--preset: {exc.args[0]}") from None
    cfg = dataclass_from_namespace(args, base)
    return dataclasses.replace(cfg, preset=name)


def check_config(cfg) -> None:
    from thgs.cli import UserError

    if cfg.steps < 1:
        raise UserError(f"--steps must be >= 1, got {cfg.steps}")
    if cfg.mode not in ("2dgs", "3dgs"):
        raise UserError(f"--mode must be 2dgs or 3dgs, got {cfg.mode!r}")
    if cfg.skinning not in ("grid", "parent"):
        raise UserError(f"--skinning must be grid or parent, got {cfg.skinning!r}")
    if cfg.background is not None and (len(cfg.background) != 3 or not all(0 <= c <= 1 for c in cfg.background)):
        raise UserError(f"--background needs three values in [0, 1], got {cfg.background}")
    if cfg.train_size < 0:
        raise UserError(f"--train-size must be >= 0, got {cfg.train_size}")


def run(args: argparse.Namespace) -> int:
    from thgs.cli import UserError
    from thgs.data.format import SubjectError
    from thgs.data.subject import open_subject
    from thgs.train.trainer import CHECKPOINT, FINAL, Trainer

    cfg = resolve_config(args)
    check_config(cfg)
    try:
        subject = open_subject(args.data)
    except SubjectError as exc:
        raise UserError(str(exc)) from None
    if not subject.has_params or subject.body is None:
        raise UserError(f"{args.data}: params.npz / meta.json field 'body' missing: training needs body parameters")
    out: Path = args.out
    if out.exists() and (out / FINAL).exists() and not args.resume:
        raise UserError(f"{out}: already holds a finished run ({FINAL}); choose another --out or pass --resume")
    if out.exists() and (out / CHECKPOINT).exists() and not args.resume:
        raise UserError(f"{out}: holds a stopped run ({CHECKPOINT}); pass --resume to continue it")
    if args.resume and (out / CHECKPOINT).exists():
        from thgs.train.trainer import read_run_config

        cfg = read_run_config(out)
    try:
        trainer = Trainer(cfg, subject, out, resume=args.resume)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if trainer.step >= cfg.steps:
        print(f"{out}: already trained ({trainer.step} steps)")
        return 0
    terms = trainer.train()
    print(f"trained {trainer.step} steps: loss {terms.get('loss', float('nan')):.4f}, "
          f"train PSNR {terms.get('psnr', float('nan')):.2f} dB, {trainer.model.num_gaussians} Gaussians")
    print(f"avatar: {out / FINAL}")
    return 0
