"""SAAM's hash-table gather: advanced indexing (``table[idx]``, backward index_put_ with accumulate) against
``table.index_select(0, idx)`` (backward index_add_, deterministic on the CPU), forward + backward.

Prints one row per (points, threads): milliseconds per step for each, and whether repeated backward passes
gave bit-identical table gradients. Run: ``python benchmarks/hash_gather.py [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import time

import torch


def _step(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, select: bool) -> torch.Tensor:
    table.grad = None
    rows = table.index_select(0, idx) if select else table[idx]
    (rows * w).sum().backward()
    return table.grad


def _measure(table, idx, w, select: bool, repeats: int, device: str) -> tuple[float, bool]:
    ref = _step(table, idx, w, select).clone()
    same = True
    for _ in range(3):
        same &= torch.equal(_step(table, idx, w, select), ref)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        _step(table, idx, w, select)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats * 1e3, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    levels, features, table_size = 12, 2, 2 ** 14
    print(f"{'points':>8} {'threads':>7} {'table[idx] ms':>14} {'same':>5} {'index_select ms':>16} {'same':>5}")
    for threads in sorted({1, 2, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        for points in (1_000, 10_000, 50_000):
            g = torch.Generator().manual_seed(0)
            table = torch.nn.Parameter(torch.empty(levels * table_size, features).uniform_(-1e-4, 1e-4, generator=g)
                                       .to(args.device))
            idx = torch.randint(0, levels * table_size, (points * levels * 4,), generator=g).to(args.device)
            w = torch.randn(idx.shape[0], features, generator=g).to(args.device)
            a, sa = _measure(table, idx, w, False, args.repeats, args.device)
            b, sb = _measure(table, idx, w, True, args.repeats, args.device)
            print(f"{points:>8} {threads:>7} {a:>14.2f} {str(sa):>5} {b:>16.2f} {str(sb):>5}")


if __name__ == "__main__":
    main()
