"""Build times of the procedural body, its teeth and the skinning-weight grid (CPU); prints a table.

Usage: python benchmarks/body_models.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import torch


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (the best is reported)")
    args = parser.parse_args()

    from thgs.avatar.skinning_grid import SkinningGrid
    from thgs.body import teeth, toy

    torch.manual_seed(0)
    rows = []

    def build_toy():
        toy._build.cache_clear()
        return toy.load()

    rows.append(("toy body (uncached)", _best(build_toy, args.repeats)))
    body = toy.load()
    rows.append(("with_teeth(toy)", _best(lambda: teeth.with_teeth(body), args.repeats)))
    for res in (32, 64):
        rows.append((f"SkinningGrid {res}^3 (toy)", _best(lambda r=res: SkinningGrid.from_body(body, resolution=r),
                                                          args.repeats)))
    grid = SkinningGrid.from_body(body)
    pts = body.v_template[torch.randint(0, body.num_vertices, (100_000,))]
    with torch.no_grad():
        rows.append(("grid look-up, 100k points", _best(lambda: grid.weights(pts), args.repeats)))
    pose = torch.zeros(1, 55, 3)
    with torch.no_grad():
        rows.append(("toy forward (1 pose)", _best(lambda: body(pose), args.repeats)))

    print(f"toy: {body.num_vertices} vertices, {body.faces.shape[0]} faces, torch threads {torch.get_num_threads()}")
    print(f"{'what':32s} {'seconds':>10s}")
    for name, sec in rows:
        print(f"{name:32s} {sec:10.4f}")


if __name__ == "__main__":
    main()
