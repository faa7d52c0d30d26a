"""Training speed with the fused grid skinning against per-point weights, measured in the same run.

Both variants compute the same blended transforms (``SkinningGrid.blend`` vs ``lbs.blend_transforms`` of
``SkinningGrid.weights``); this times whole training steps of each preset with ``fused_skinning`` on and off,
alternating the two so drift hits both, and prints a table::

    python benchmarks/train_skinning.py [--body anny] [--size 512] [--presets fast,paper] [--steps 50]

Without --data it synthesises a 2 s subject of --body in a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body", default="anny", choices=("anny", "toy"), help="body of the synthetic subject")
    ap.add_argument("--size", type=int, default=512, help="image height of the synthetic subject")
    ap.add_argument("--data", type=Path, default=None, help="train on this subject instead")
    ap.add_argument("--presets", default="fast,paper", help="comma-separated presets")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of fused / per-point")
    ap.add_argument("--device", default="auto", help="torch device")
    args = ap.parse_args()

    from thgs.bench.speed import train_speed
    from thgs.data.subject import open_subject
    from thgs.synth.generate import SynthConfig, generate
    from thgs.utils.device import default_device

    device = default_device(args.device)
    presets = [p for p in args.presets.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="thgs-skinbench-") as tmp:
        if args.data is not None:
            subject = open_subject(args.data)
        else:
            print(f"synthesising a 2 s {args.body} subject at {args.size} px", file=sys.stderr)
            generate(Path(tmp) / "subject", SynthConfig(body=args.body, seconds=2.0, size=args.size, views=()),
                     progress=False)
            subject = open_subject(Path(tmp) / "subject")
        rates: dict[tuple[str, bool], list[float]] = {}
        for r in range(args.rounds):
            for fused in (True, False) if r % 2 == 0 else (False, True):
                res = train_speed(subject, presets, args.steps, args.warmup, device, Path(tmp) / f"runs{r}{fused}",
                                  overrides={"fused_skinning": fused})
                for name, rec in res.items():
                    rates.setdefault((name, fused), []).append(rec["steps_per_s"])
    print(f"Training steps per second on {device} ({args.body if args.data is None else args.data}, "
          f"{args.steps} timed steps after {args.warmup}, best of {args.rounds})\n")
    print("| preset | per-point weights (steps/s) | fused grid (steps/s) | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name in presets:
        a, b = max(rates[(name, False)]), max(rates[(name, True)])
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
