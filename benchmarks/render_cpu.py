"""CPU reference renderer timings: forward and forward+backward, 3DGS and 2DGS, a few sizes.

Usage (from the repository root):

    .venv/bin/python benchmarks/render_cpu.py [--threads 2] [--reps 7]

Prints a markdown table (median of ``--reps`` runs after one warm-up). Two seeded scenes:
``body``: Gaussians lying flat on an ellipsoid the size of a torso 2.5 m away (what an avatar looks
like to the renderer); ``cloud``: Gaussians scattered through a 1 m box 3 m away with random
orientations and 3 cm scales (much overlap, many opaque pixels).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without an install

import torch  # noqa: E402

from thgs.render._scenes import body_like, front_camera, random_cloud  # noqa: E402
from thgs.render.reference import ReferenceBackend  # noqa: E402

CASES = [  # (scene, Gaussians, width, height)
    ("body", 20_000, 128, 128),
    ("cloud", 20_000, 128, 128),
    ("body", 20_000, 256, 256),
    ("body", 100_000, 256, 256),
    ("body", 100_000, 512, 512),
]


def run_case(scene: str, n: int, width: int, height: int, mode: str, reps: int, device: str) -> dict:
    g = body_like(n, seed=0) if scene == "body" else random_cloud(n, seed=0)
    leaves = [t.to(device).requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    g = type(g)(*leaves)
    cam = front_camera(width, height).to(device)
    bg = torch.ones(3, device=device)
    be = ReferenceBackend()
    fwd, full = [], []
    for i in range(reps + 1):
        with torch.no_grad():
            t0 = time.perf_counter()
            be(g, cam, bg, mode)
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        r = be(g, cam, bg, mode)
        (r.rgb.sum() + r.depth.mean()).backward()
        t3 = time.perf_counter()
        for t in leaves:
            t.grad = None
        if i > 0:  # the first run warms up
            fwd.append(t1 - t0)
            full.append(t3 - t2)
    return {"fwd": statistics.median(fwd), "full": statistics.median(full), **r.extras}


def main() -> int:
    ap = argparse.ArgumentParser(description="Time the CPU reference Gaussian renderer.")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--reps", type=int, default=7, help="timed runs per case; the median is shown (default 7)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--quick", action="store_true", help="only the 128x128 cases")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu = platform.processor() or platform.machine()
    print(f"device: {args.device} ({cpu}, {os.cpu_count()} logical CPUs); torch {torch.__version__}; "
          f"torch threads: {torch.get_num_threads()}; median of {args.reps} runs; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print()
    print("| scene | Gaussians | image | mode | forward, no grad (ms) | forward+backward (ms) | candidate pairs | "
          "blended pairs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    cases = [c for c in CASES if not args.quick or c[2] == 128]
    for scene, n, w, h in cases:
        for mode in ("3dgs", "2dgs"):
            r = run_case(scene, n, w, h, mode, args.reps, args.device)
            print(f"| {scene} | {n:,} | {w}x{h} | {mode} | {r['fwd'] * 1e3:.0f} | {r['full'] * 1e3:.0f} | "
                  f"{r['candidate_pairs']:,} | {r['blended_pairs']:,} |", flush=True)
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
