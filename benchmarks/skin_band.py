"""How much of the skinning grid a sparse residual needs: the active fraction per band, and the data gradient
that falls outside it.

1. For the body's template at each ``--resolutions`` R and each ``--bands`` width: the active grid points
   (:func:`thgs.avatar.skinning_grid.active_cells`) as a fraction of R^3.
2. A short training of a subject (``--data``, or one synthesised under ``--work``) with a *dense* residual
   (``--skin-band -1``), every module on from step 0 (densification as the preset has it) and the TV term off,
   so that the residual's gradient is the data gradient alone: the grid points that receive a nonzero
   gradient in any step, and, per band, the fraction of them outside the active set (and of the gradient's
   L1 mass).

On a CPU (small)::

    PYTHONPATH=src python benchmarks/skin_band.py --device cpu --size 96 --seconds 2 --steps 60

Prints two markdown tables; writes ``$OUT/skin_band.json`` when ``$OUT`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench_subject import add_subject_arguments, subject_root


def active_fractions(body, resolutions: list[int], bands: list[int]) -> list[dict]:
    from thgs.avatar.skinning_grid import SkinningGrid

    rows = []
    for R in resolutions:
        for band in bands:
            g = SkinningGrid.from_body(body, resolution=R, band=band)
            rows.append({"resolution": R, "band": band, "active": g.num_active, "fraction": g.num_active / R ** 3})
    return rows


def gradient_outside(subject, body, args) -> tuple[dict, list[dict]]:
    import torch

    from thgs.avatar.skinning_grid import active_cells
    from thgs.runs.config import preset, replace_flat
    from thgs.train.trainer import Trainer

    cfg = replace_flat(preset(args.preset), device=args.device, progress=False, steps=args.steps,
                       log_every=10**9, checkpoint_every=10**9, grid_resolution=args.train_resolution, skin_band=-1,
                       skinning_tv_weight=0.0, pose_start=0, expression_start=0, skinning_start=0,
                       blendshapes_start=0, saam_start=0, init_colors=2)
    tr = Trainer(cfg, subject, args.work / "run_skin_band", body=body)
    sg = tr.model.skin_grid
    R = sg.resolution
    hit = torch.zeros(R ** 3, dtype=torch.bool, device=sg.delta.device)
    mass = torch.zeros(R ** 3, dtype=torch.float64, device=sg.delta.device)

    def record(p):
        g = p.grad.detach().reshape(p.shape[0], -1).abs().sum(0)
        hit.logical_or_(g > 0)
        mass.add_(g.double())

    sg.delta.requires_grad_(True)  # the trainer switches the group on at its start step (0)
    sg.delta.register_post_accumulate_grad_hook(record)
    for _ in range(args.steps):
        tr.train_step()
    v = body.v_template.detach().double().cpu().numpy()
    lo, hi = sg.lo.double().cpu().numpy(), sg.hi.double().cpu().numpy()
    hit, mass = hit.cpu(), mass.cpu()
    total_hit, total_mass = int(hit.sum()), float(mass.sum())
    rows = []
    for band in args.bands:
        inside = torch.zeros(R ** 3, dtype=torch.bool)
        inside[torch.from_numpy(active_cells(v, lo, hi, R, band))] = True
        rows.append({"band": band, "active_fraction": float(inside.float().mean()),
                     "hit_outside": int((hit & ~inside).sum()),
                     "hit_outside_fraction": float((hit & ~inside).sum()) / max(total_hit, 1),
                     "mass_outside_fraction": float(mass[~inside].sum()) / max(total_mass, 1e-30)})
    info = {"resolution": R, "steps": args.steps, "gaussians": tr.model.num_gaussians, "cells_hit": total_hit,
            "cells_hit_fraction": total_hit / R ** 3, "preset": args.preset}
    return info, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_subject_arguments(ap, "skin_band", "subject folder to train on (default: synthesise one)")
    ap.add_argument("--resolutions", default="32,64", help="grid resolutions of the active-fraction table")
    ap.add_argument("--bands", default="0,1,2,3,4", help="band widths (grid points)")
    ap.add_argument("--preset", default="cpu", help="training preset of the gradient measurement")
    ap.add_argument("--train-resolution", type=int, default=64, help="grid resolution of the training")
    ap.add_argument("--steps", type=int, default=60, help="training steps of the gradient measurement (0: skip)")
    args = ap.parse_args()
    args.bands = [int(b) for b in args.bands.split(",")]
    from thgs.runs.avatar_io import build_body

    subject = _open(subject_root(args, "skin_band.py")) if args.steps else None
    body = build_body(subject.body if subject is not None else {"model": args.body}, True)
    out: dict = {"active": active_fractions(body, [int(r) for r in args.resolutions.split(",")], args.bands)}
    print(f"## Active grid points of the {body.name if hasattr(body, 'name') else args.body} template (with teeth)\n")
    print("| R | band | active | fraction |\n| ---: | ---: | ---: | ---: |")
    for r in out["active"]:
        print(f"| {r['resolution']} | {r['band']} | {r['active']:,} | {100 * r['fraction']:.2f}% |")
    if args.steps:
        info, rows = gradient_outside(subject, body.to(args.device), args)
        out["gradient"] = {"info": info, "bands": rows}
        print(f"\n## Data gradient of a dense residual, {info['steps']} steps of preset {info['preset']} at "
              f"R={info['resolution']} ({info['gaussians']:,} Gaussians at the end): "
              f"{info['cells_hit']:,} grid points hit ({100 * info['cells_hit_fraction']:.2f}%)\n")
        print("| band | active | hit outside | of the hit points | of the gradient L1 |\n"
              "| ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['band']} | {100 * r['active_fraction']:.2f}% | {r['hit_outside']:,} | "
                  f"{100 * r['hit_outside_fraction']:.3f}% | {100 * r['mass_outside_fraction']:.4f}% |")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "skin_band.json").write_text(json.dumps(out, indent=1))
    return 0


def _open(root: Path):
    from thgs.data.subject import open_subject

    return open_subject(root)


if __name__ == "__main__":
    sys.exit(main())
