"""B frames in one rasterizer call against one call per frame, on a CUDA GPU with gsplat.

For each rasterization (3DGS, true 2DGS, 2DGS surfels through the 3DGS rasterizer; colour only) and batch
size B, on B frames of a ``turning_batch`` scene (body-like surfels, each frame turned, shifted and scaled,
opacities and colours shared) seen by one camera per frame: ``render`` once per frame, ``render_batch`` once,
and gsplat called bare on the same batch (arguments prepared outside the timed call). Milliseconds and frames
per second per frame (CUDA events, median), and the largest pixel difference between the loop's and the one
call's images.

Usage (from the repository root, with gsplat installed; its CUDA kernels compile on first use):

    PYTHONPATH=src python benchmarks/batch_render_gpu.py [--n 36692] [--size 1280x720] [--batches 1,4,8,16]

Prints a markdown table (also written to $OUT/batch_render.md when $OUT is set). Exit status 2 when CUDA or
gsplat is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without an install

CASES = (("3dgs", "3dgs", False), ("2dgs", "2dgs", False), ("2dgs surfels as 3dgs", "2dgs", True))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bare_call(batch, cams, bg, mode: str, surfels: bool):
    """A closure calling gsplat directly on ``batch`` (contiguous [B, ...] tensors, cameras [B, 1, ...])."""
    import gsplat
    import torch

    B = len(batch)
    scales = batch.scales
    if surfels:
        scales = torch.cat([scales[..., :2], torch.zeros_like(scales[..., 2:])], -1)
    m, q, s = batch.means.contiguous(), batch.quats.contiguous(), scales.contiguous()
    o = batch.opacities[None].expand(B, -1).contiguous()
    c = batch.colors[None, None].expand(B, 1, *batch.colors.shape).contiguous()
    V = torch.stack([cam.world_to_cam for cam in cams]).cuda()[:, None].contiguous()
    K = torch.stack([cam.K for cam in cams]).cuda()[:, None].contiguous()
    bgs = bg[None, None].expand(B, 1, 3).contiguous()
    W, H = cams[0].width, cams[0].height
    common = dict(near_plane=cams[0].near, far_plane=cams[0].far, radius_clip=0.0, eps2d=0.3, packed=False,
                  backgrounds=bgs, render_mode="RGB", sh_degree=batch.sh_degree)
    if mode == "3dgs" or surfels:
        return lambda: gsplat.rasterization(m, q, s, o, c, V, K, W, H, rasterize_mode="classic", **common)
    return lambda: gsplat.rasterization_2dgs(m, q, s, o, c, V, K, W, H, **common)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=36692, help="Gaussians (default 36692, a trained avatar's count)")
    ap.add_argument("--size", default="1280x720", help="image WxH (default 1280x720)")
    ap.add_argument("--batches", default="1,4,8,16", help="batch sizes (default 1,4,8,16)")
    ap.add_argument("--sh-degree", type=int, default=1, help="SH degree of the colours (default 1; -1: RGB)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up calls per row (default 10)")
    ap.add_argument("--repeats", type=int, default=100, help="timed calls per row (default 100)")
    args = ap.parse_args()

    import torch

    from thgs.render.gsplat_backend import unavailable_reason

    reason = unavailable_reason()  # no CUDA GPU, gsplat missing, or its import's error
    if reason is not None:
        log(f"error: {reason}")
        return 2
    import gsplat
    from thgs.bench.timing import time_fn
    from thgs.render._scenes import ring_cameras, turning_batch
    from thgs.render.base import GaussianBatch, render, render_batch

    W, H = (int(v) for v in args.size.lower().split("x"))
    batches = [int(b) for b in args.batches.split(",")]
    sh = None if args.sh_degree < 0 else args.sh_degree
    bg = torch.ones(3, device="cuda")
    lines = [f"Device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; gsplat "
             f"{getattr(gsplat, '__version__', '?')}; python {platform.python_version()}", "",
             f"## {args.n} Gaussians at {W}x{H}, SH degree {sh if sh is not None else 'none (RGB)'}, colour only, "
             f"one camera per frame; median of {args.repeats} after {args.warmup} warm-up calls, per frame", "",
             "| rasterization | B | one render per frame (ms) | fps | one render_batch (ms) | fps | bare gsplat batch (ms) "
             "| fps | loop / one call | one call / bare | max pixel diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    log("gsplat compiles its CUDA kernels on the first call (about a minute on a cold machine) ...")
    for label, mode, surfels in CASES:
        for B in batches:
            cpu = turning_batch(args.n, B, seed=0, sh_degree=sh)
            batch = GaussianBatch(means=cpu.means.cuda(), quats=cpu.quats.cuda(), scales=cpu.scales.cuda(),
                                  opacities=cpu.opacities.cuda(), colors=cpu.colors.cuda(), sh_degree=sh)
            cams = [c.to("cuda") for c in ring_cameras(B, W, H)]

            def loop() -> list:
                return [render(batch.frame(b), cams[b], bg, mode=mode, backend="gsplat", outputs="rgb",
                               surfels_as_3dgs=surfels).rgb for b in range(B)]

            def one() -> torch.Tensor:
                return render_batch(batch, cams, bg, mode=mode, backend="gsplat", outputs="rgb",
                                    surfels_as_3dgs=surfels).rgb

            log(f"{label}, B={B} ...")
            diff = (torch.stack(loop()) - one()).abs().max().item()
            t_loop = time_fn(loop, "cuda", warmup=args.warmup, repeats=args.repeats).median / B
            t_one = time_fn(one, "cuda", warmup=args.warmup, repeats=args.repeats).median / B
            t_bare = time_fn(bare_call(batch, cams, bg, mode, surfels), "cuda", warmup=args.warmup,
                             repeats=args.repeats).median / B
            lines.append(f"| {label} | {B} | {t_loop:.3f} | {1000 / t_loop:.0f} | {t_one:.3f} | {1000 / t_one:.0f} | "
                         f"{t_bare:.3f} | {1000 / t_bare:.0f} | {t_loop / t_one:.2f}x | {t_one / t_bare:.2f}x | "
                         f"{diff:.1e} |")
            del batch, cams
            torch.cuda.empty_cache()
    text = "\n".join(lines) + "\n"
    print(text)
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "batch_render.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
