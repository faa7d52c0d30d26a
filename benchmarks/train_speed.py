"""Training steps per second per preset, with the breakdown of a step and its host syncs and kernel launches.

Every module is active from the first step (pose, expression, skinning residual, LEB, SAAM) and densification
is off (no densification step is timed; the statistics are still gathered, as between two densifications).
On the GPU (the issue's setting)::

    PYTHONPATH=src python benchmarks/train_speed.py --data default512 --presets fast,paper --forward eager,graphs

with ``default512`` the default anny subject at 910x512 (``thgs synth default512 --size 512``); without
``--data`` (or when the folder does not exist) a subject is synthesised under ``--work`` (``--body``,
``--size``, ``--seconds``). On a CPU, tiny::

    PYTHONPATH=src python benchmarks/train_speed.py --device cpu --body toy --size 48 --seconds 1 \
        --presets cpu --steps 3 --warmup 1 --breakdown-steps 2 --profile-steps 1

Per preset it measures, on the same trainer:

- ``steps/s``: ``--steps`` steps after ``--warmup``, no synchronisation inside (what training runs at);
- the breakdown (``--breakdown-steps`` more steps, the device synchronised around each phase, so their sum
  is a little above the free-running step): forward (the avatar's pose-and-skin pass), raster (the render
  call), loss (every loss term, the trainer's ``losses``: ``train.objective.step_losses`` or its recording), backward, optimiser (both Adam steps) and the rest;
- with ``torch.profiler`` over ``--profile-steps`` steps: host syncs per step (``aten::item`` and
  ``aten::_local_scalar_dense`` events, the usual count of host syncs, and ``cudaStreamSynchronize`` /
  ``cudaDeviceSynchronize`` calls), kernel launches per step (``cudaLaunchKernel``-family runtime calls),
  host-to-device copies (``cudaMemcpyAsync``) and the GPU time of the kernels per step;
- ``host reads``: calls that read a device value on the host outside the rasterizer
  (:class:`thgs.utils.syncs.HostReads`), a count that also works on a CPU;
- the kernels that take the most GPU time per step (a second table).

``--skin-band`` runs each of those once per width of the skinning residual's band, in the same process
(``dense`` or ``-1``: the dense residual over the whole grid; ``default``: the preset's own), e.g.
``--skin-band dense,2`` for dense against the sparse default (``--skin-band=-1,2`` alike); the table gives the
residual's active grid points.

``--forward`` runs each preset once per way of running the avatar's forward pass, in the same process:
``eager``, ``graphs`` (recorded CUDA graphs, ``cuda_graphs=True``, the default on CUDA) and ``compile``
(``torch.compile``), so their ratio is measured on the same machine state.

Prints a markdown table; writes ``$OUT/train_speed.json`` when ``$OUT`` is set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench_subject import add_subject_arguments, subject_root, sync

ALL_ON = dict(pose_start=0, expression_start=0, skinning_start=0, blendshapes_start=0, saam_start=0,
              densify_start=10**9, densify_stop=10**9)
PHASES = ("forward", "raster", "loss", "backward", "optimiser", "other")


@contextmanager
def phase_timers(trainer, device: str, totals: dict[str, float]):
    """Time the phases of ``trainer.train_step`` (synchronising the device around each) into ``totals`` (s)."""
    import torch

    import thgs.train.trainer as T

    def timed(name, fn):
        def wrapper(*a, **k):
            sync(device)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync(device)
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0
            return out
        return wrapper

    saved_render = T.render
    saved_backward = torch.Tensor.backward
    opts = [o for o in (trainer.gauss_opt, trainer.module_opt) if o is not None]
    T.render = timed("raster", saved_render)
    saved_forward, saved_losses = trainer.forward, trainer.losses
    trainer.losses = timed("loss", saved_losses)
    trainer.forward = timed("forward", saved_forward)
    torch.Tensor.backward = timed("backward", saved_backward)
    for o in opts:
        o.step = timed("optimiser", o.step)
    try:
        yield
    finally:
        T.render = saved_render
        torch.Tensor.backward = saved_backward
        trainer.forward, trainer.losses = saved_forward, saved_losses
        for o in opts:
            del o.step


def profile_counts(trainer, device: str, steps: int) -> dict[str, float]:
    """Per-step counts of host syncs, kernel launches and copies, and kernel time, from ``torch.profiler``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    sync(device)
    with profile(activities=acts) as prof:
        for _ in range(steps):
            trainer.train_step()
        sync(device)
    counts: dict[str, int] = {}
    gpu_us = 0.0
    for ev in prof.key_averages():
        counts[ev.key] = counts.get(ev.key, 0) + int(ev.count)
    for ev in prof.events():
        if str(getattr(ev, "device_type", "")).endswith("CUDA"):
            gpu_us += float(getattr(ev, "self_device_time_total", getattr(ev, "self_cuda_time_total", 0.0)))

    def n(*names: str) -> float:
        return sum(v for k, v in counts.items() if k in names) / steps

    launches = sum(v for k, v in counts.items() if k.startswith(("cudaLaunchKernel", "cuLaunchKernel",
                                                                  "cudaLaunchCooperativeKernel"))) / steps
    kernels: dict[str, float] = {}  # the device's own events (kernels, copies), by name
    for ev in prof.events():
        if str(getattr(ev, "device_type", "")).endswith("CUDA"):
            us = float(getattr(ev, "self_device_time_total", getattr(ev, "self_cuda_time_total", 0.0)) or 0.0)
            kernels[ev.name] = kernels.get(ev.name, 0.0) + us / 1000.0 / steps
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:12]
    return {"item_events": n("aten::item", "aten::_local_scalar_dense"),
            "stream_syncs": n("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"),
            "kernel_launches": launches, "graph_launches": n("cudaGraphLaunch"),
            "memcpy": n("cudaMemcpyAsync", "cudaMemcpy"),
            "gpu_ms": gpu_us / 1000.0 / steps, "top_kernels_ms": [[k[:90], round(v, 4)] for k, v in top]}


def host_reads(trainer) -> int:
    """Host reads of one step outside the CPU rasterizer (:class:`thgs.utils.syncs.HostReads`)."""
    from thgs.utils.syncs import HostReads

    with HostReads() as reads:
        trainer.train_step()
    return sum(v for w, v in reads.where.items()
               if not w.startswith(("render/_raster.py", "render/_project.py", "render/reference.py")))


FORWARDS = {"eager": dict(cuda_graphs=False, compile=False), "graphs": dict(cuda_graphs=True, compile=False),
            "compile": dict(cuda_graphs=False, compile=True)}


def bench_preset(name: str, forward: str, subject, args, work: Path, band: int | None = None) -> dict:
    import torch

    from thgs.runs.config import preset, replace_flat
    from thgs.train.trainer import Trainer

    dev = args.device
    total = args.warmup + args.steps + args.breakdown_steps + args.profile_steps + 1
    cfg = replace_flat(preset(name), device=dev, progress=False, init_colors=min(preset(name).model.init_colors, 2),
                              steps=max(total, preset(name).steps), log_every=10**9, checkpoint_every=10**9,
                              train_size=args.train_size or preset(name).train_size, **ALL_ON)
    if args.backend:
        cfg = replace_flat(cfg, backend=args.backend)
    if band is not None:
        cfg = replace_flat(cfg, skin_band=band)
    cfg = dataclasses.replace(cfg, **FORWARDS[forward])
    tr = Trainer(cfg, subject, work / f"run_{name}_{forward}_band{cfg.model.skin_band}")
    for _ in range(args.warmup):
        tr.train_step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        tr.train_step()
    sync(dev)
    dt = time.perf_counter() - t0
    sg = tr.model.skin_grid
    rec: dict = {"preset": f"{name} ({forward}, {_band_name(cfg.model.skin_band)})",
                 "skin_cells": sg.num_active if sg is not None else 0, "image": f"{tr.camera.width}x{tr.camera.height}", "gaussians": tr.model.num_gaussians,
                 "mode": cfg.render.mode, "backend": tr.backend, "steps": args.steps, "steps_per_s": args.steps / dt,
                 "ms_per_step": 1000.0 * dt / args.steps}
    if args.breakdown_steps:
        totals: dict[str, float] = {}
        sync(dev)
        t1 = time.perf_counter()
        with phase_timers(tr, dev, totals):
            for _ in range(args.breakdown_steps):
                tr.train_step()
        sync(dev)
        whole = time.perf_counter() - t1
        totals["other"] = whole - sum(totals.values())
        rec["breakdown_ms"] = {k: 1000.0 * totals.get(k, 0.0) / args.breakdown_steps for k in PHASES}
    if args.profile_steps:
        rec["profile"] = profile_counts(tr, dev, args.profile_steps)
    rec["host_reads"] = host_reads(tr)
    if dev.startswith("cuda"):
        rec["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    recordings = getattr(tr.forward, "recordings", None)
    if recordings is not None:
        rec["recordings"] = recordings
    del tr
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    return rec


def _band_name(band: int) -> str:
    return "dense" if band < 0 else f"band {band}"


def table(rows: list[dict]) -> str:
    head = ("| preset | image | N | skin cells | mode | steps/s | ms/step | " + " | ".join(f"{p} ms" for p in PHASES)
            + " | item events/step | stream syncs/step | kernel launches/step | graph launches/step | memcpy/step "
              "| GPU ms/step | host reads/step |")
    lines = [head, "|" + " --- |" * 3 + " ---: | --- |" + " ---: |" * (len(PHASES) + 9)]
    for r in rows:
        b = r.get("breakdown_ms", {})
        p = r.get("profile", {})
        cells = [r["preset"], r["image"], str(r["gaussians"]), f"{r['skin_cells']:,}", r["mode"],
                 f"{r['steps_per_s']:.2f}",
                 f"{r['ms_per_step']:.2f}"] + [f"{b[k]:.2f}" if k in b else "-" for k in PHASES]
        cells += [f"{p[k]:.1f}" if k in p else "-" for k in ("item_events", "stream_syncs", "kernel_launches",
                                                             "graph_launches", "memcpy")]
        cells += [f"{p['gpu_ms']:.2f}" if p.get("gpu_ms") else "-", str(r["host_reads"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kernel_table(rows: list[dict]) -> str:
    """The kernels with the most GPU time per step, per row that was profiled."""
    lines = []
    for r in rows:
        top = r.get("profile", {}).get("top_kernels_ms")
        if top:
            lines += [f"\n{r['preset']}: GPU ms per step by kernel (top {len(top)})\n", "| kernel | ms/step |",
                      "| --- | ---: |"] + [f"| `{k}` | {v:.3f} |" for k, v in top]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_subject_arguments(ap, "train_speed", "subject folder (default512: the default subject)")
    ap.add_argument("--backend", default="", help="rasterizer (default: the preset's, auto)")
    ap.add_argument("--presets", default="fast", help="comma-separated presets")
    ap.add_argument("--train-size", type=int, default=0, help="training image height (0: the preset's)")
    ap.add_argument("--steps", type=int, default=200, help="timed free-running steps")
    ap.add_argument("--warmup", type=int, default=30, help="untimed steps first (gsplat builds on first use)")
    ap.add_argument("--breakdown-steps", type=int, default=50, help="steps timed phase by phase (0: skip)")
    ap.add_argument("--profile-steps", type=int, default=10, help="steps under torch.profiler (0: skip)")
    ap.add_argument("--forward", default="graphs",
                    help="comma-separated ways to run the avatar's forward pass: eager, graphs (CUDA graphs, the "
                         "default on CUDA), compile (torch.compile); on a CPU graphs is the eager pass")
    ap.add_argument("--skin-band", default="default",
                    help="comma-separated widths of the skinning residual's band, each run side by side: dense (or "
                         "-1), N >= 0 the grid points within N of the template's cells, default the preset's")
    args = ap.parse_args()

    import torch

    from thgs.data.subject import open_subject
    from thgs.runs.config import PRESETS

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("train_speed.py: --device cuda, but torch sees no CUDA GPU (use --device cpu)", file=sys.stderr)
        return 2
    presets = [p for p in args.presets.split(",") if p]
    forwards = [f for f in args.forward.split(",") if f]
    try:
        bands = [None if b == "default" else -1 if b == "dense" else int(b) for b in args.skin_band.split(",") if b]
    except ValueError:
        print(f"train_speed.py: --skin-band {args.skin_band!r}: give dense, default or integers >= -1", file=sys.stderr)
        return 2
    bad = [p for p in presets if p not in PRESETS] + [f for f in forwards if f not in FORWARDS]
    bad += [b for b in bands if b is not None and b < -1]
    if bad or args.steps < 1:
        print(f"train_speed.py: unknown preset(s) or forward(s) {bad} (forwards: {', '.join(FORWARDS)}) "
              f"or --steps < 1", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    root = subject_root(args, "train_speed.py", views=())
    subject = open_subject(root)
    rows = [bench_preset(p, f, subject, args, args.work, b) for p in presets for f in forwards for b in bands]
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"Training speed on {dev} (torch {torch.__version__}), subject {root}; every module on, densification "
          f"off; {args.steps} steps after {args.warmup}; breakdown over {args.breakdown_steps} synchronised steps; "
          f"profile over {args.profile_steps}; {time.strftime('%Y-%m-%d')}\n")
    print(table(rows))
    print(kernel_table(rows))
    out = os.environ.get("OUT")
    if out:
        Path(out, "train_speed.json").write_text(json.dumps({"device": dev, "torch": torch.__version__,
                                                             "subject": str(root), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
