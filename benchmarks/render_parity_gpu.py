"""Reference renderer vs gsplat on a CUDA GPU: image PSNR and gradient cosines, then timings.

Usage (from the repository root, with gsplat installed; its CUDA kernels compile on first use):

    PYTHONPATH=src python benchmarks/render_parity_gpu.py

Prints markdown tables (also written to $OUT/parity.md when $OUT is set). Exit status: 0 when every
parity check passes, 1 when one fails, 2 when CUDA or gsplat is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without an install


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def raw_gsplat_times(mode: str, n: int, width: int, height: int, reps: int) -> tuple[float, float]:
    """Median ms of gsplat.rasterization(_2dgs) called directly (forward, forward+backward)."""
    import torch
    import gsplat

    from thgs.render._scenes import front_camera, random_cloud

    g = random_cloud(n, seed=0, depth=3.0, spread=2.0, scale=0.01)
    leaves = [t.cuda().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    cam = front_camera(width, height)
    viewmats, Ks = cam.world_to_cam.cuda()[None], cam.K.cuda()[None]
    fn = gsplat.rasterization if mode == "3dgs" else gsplat.rasterization_2dgs
    fwd, full = [], []
    for i in range(3 + reps):
        means, quats, scales, opac, colors = leaves
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(means, quats, scales, opac, colors[None], viewmats, Ks, width, height, packed=False)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        out[0].sum().backward()
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        for t in leaves:
            t.grad = None
        if i >= 3:
            fwd.append((t1 - t0) * 1e3)
            full.append((t2 - t0) * 1e3)
    return statistics.median(fwd), statistics.median(full)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="Gaussians in the parity scene (default 3000)")
    ap.add_argument("--size", type=int, default=256, help="parity image width = height (default 256)")
    ap.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    ap.add_argument("--timing-n", type=int, default=100_000, help="Gaussians for the timings (default 100000)")
    ap.add_argument("--timing-size", default="1280x720", help="timing image WxH (default 1280x720)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per row (default 20)")
    ap.add_argument("--skip-timing", action="store_true", help="only run the parity checks")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        log("error: torch is not importable")
        return 2
    if not torch.cuda.is_available():
        log("error: torch sees no CUDA GPU; this script compares against gsplat's CUDA rasterizer")
        return 2
    try:
        import gsplat
    except Exception as exc:  # noqa: BLE001 - report any import failure clearly
        log(f"error: gsplat is not importable ({exc}); install it (pip install 'gsplat>=1.4,<1.6')")
        return 2
    try:
        from thgs.render import _parity
    except Exception as exc:  # noqa: BLE001
        log(f"error: cannot import thgs from {Path(__file__).resolve().parents[1] / 'src'} ({exc})")
        return 2

    dev_name = torch.cuda.get_device_name(0)
    header = [f"Device: {dev_name}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
              f"gsplat {getattr(gsplat, '__version__', '?')}; python {platform.python_version()}", ""]
    log("gsplat compiles its CUDA kernels on the first call (about a minute on a cold machine) ...")

    rows, ok = [], True
    lines = header + [f"## Parity: reference vs gsplat ({args.n} random Gaussians, {args.size}x{args.size}, "
                      f"seed {args.seed})", "",
                      f"Pass: RGB PSNR >= {_parity.PSNR_MIN:.0f} dB and gradient cosine >= {_parity.COS_MIN} for "
                      f"{', '.join(_parity.CHECKED)} (quats and scales reported).", "",
                      "| case | PSNR rgb (dB) | PSNR alpha (dB) | depth MAE (alpha>0.5) | PSNR normals (dB) | "
                      + " | ".join(f"cos {k}" for k in _parity.PARAMS) + " | result |",
                      "|" + " --- |" * (6 + len(_parity.PARAMS))]
    for mode in ("3dgs", "2dgs"):
        for sh in (None, 3):
            label = f"{mode} {'rgb' if sh is None else f'sh{sh}'}"
            log(f"parity {label} ...")
            try:
                r = _parity.compare(mode, n=args.n, width=args.size, height=args.size, seed=args.seed, sh_degree=sh)
            except Exception:  # noqa: BLE001 - one failing case must not hide the others
                ok = False
                log(traceback.format_exc())
                lines.append(f"| {label} | error (see stderr) |" + " |" * (5 + len(_parity.PARAMS)))
                continue
            ok &= r.passed
            pn = "-" if r.psnr_normals is None else f"{r.psnr_normals:.1f}"
            lines.append(f"| {r.label} | {r.psnr_rgb:.1f} | {r.psnr_alpha:.1f} | {r.depth_mae:.2e} | {pn} | "
                         + " | ".join(f"{r.cos[k]:.5f}" for k in _parity.PARAMS)
                         + f" | {'pass' if r.passed else 'FAIL'} |")
            rows.append(r)

    if not args.skip_timing:
        W, H = (int(v) for v in args.timing_size.lower().split("x"))
        n = args.timing_n
        lines += ["", f"## Timings: {n} random Gaussians at {W}x{H}, RGB, one camera "
                      f"(median of {args.reps} after 3 warm-ups)", "",
                  "| renderer | mode | forward (ms) | forward+backward (ms) |", "| --- | --- | --- | --- |"]
        for mode in ("3dgs", "2dgs"):
            for name, fn in (("gsplat (direct call)", lambda m: raw_gsplat_times(m, n, W, H, args.reps)),
                             ("gsplat backend", lambda m: _parity.time_backend("gsplat", m, n, W, H, args.reps)),
                             ("reference (CUDA)", lambda m: _parity.time_backend("reference", m, n, W, H, 5, 1))):
                log(f"timing {name} {mode} ...")
                try:
                    f, fb = fn(mode)
                    lines.append(f"| {name} | {mode} | {f:.2f} | {fb:.2f} |")
                except Exception as exc:  # noqa: BLE001
                    log(traceback.format_exc())
                    lines.append(f"| {name} | {mode} | error: {type(exc).__name__} | |")
                torch.cuda.empty_cache()

    lines += ["", f"Overall: {'PASS' if ok else 'FAIL'}"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "parity.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".parity.md.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        log(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
