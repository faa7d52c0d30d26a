"""Markdown tables of ``thgs bench`` results."""

from __future__ import annotations

from typing import Any

from thgs.utils.numbers import fmt_number

ANCHORS = (("THGS (paper, RTX 4090)", 155.0), ("GART (paper, RTX 4090)", 158.0),
           ("target (H100, whole frame)", 1000.0))
PART_LABELS = (("frame", "whole frame (animation + rasterization)"), ("animation", "animation (all of it)"),
               ("blendshapes", "  blend shapes + LEB"), ("saam", "  SAAM (mouth Gaussians)"),
               ("skinning", "  skinning (grid weights + LBS)"), ("rasterization", "rasterization only (floor)"),
               ("frame_fast", "whole frame, fast path (Animator + rasterization)"),
               ("animation_fast", "animation, fast path (Animator, eager)"),
               ("animation_graph", "animation, fast path (Animator, CUDA graph)"),
               ("rasterization_rgb", "rasterization only, colour only (thgs wrapper)"),
               ("frame_rgb", "whole frame, fast path, colour only"),
               ("frame_surfels_3dgs", "whole frame, fast path, colour only, surfels as 3DGS"),
               ("frame_recorded", "whole frame, animation + projection as one CUDA graph, then gsplat's draw"),
               ("animation_compiled_graph", "animation, fast path, compiled (CUDA graph)"),
               ("frame_recorded_compiled", "whole frame, compiled animation + projection as one CUDA graph, then "
                "gsplat's draw"))
FLOOR_LABELS = (("3dgs_rgb", "bare gsplat: 3DGS RGB"), ("3dgs_surfels_rgb", "bare gsplat: 3DGS RGB, flat surfels"),
                ("2dgs_rgb", "bare gsplat: 2DGS RGB"), ("2dgs_rgb_ed", "bare gsplat: 2DGS RGB+ED"))


def render_table(r: dict[str, Any]) -> str:
    """Table of one :func:`thgs.bench.speed.render_speed` result with the paper's anchors."""
    head = (f"Render speed on {r['device']} ({r['backend']}, {r['mode']}), {r['width']}x{r['height']}, "
            f"{r['num_gaussians']} Gaussians, SH degree {r['sh_degree']}; median of {r['repeats']} after "
            f"{r['warmup']} warm-up calls")
    lines = [head, "", "| part | ms | fps |", "| --- | ---: | ---: |"]
    for key, label in PART_LABELS:
        p = r["parts"].get(key)
        if p is not None:
            lines.append(f"| {label} | {fmt_number(p['ms'], 3)} | {fmt_number(p['fps'], 1)} |")
    b = r.get("batched")
    if b:
        lines.append(f"| batch of {b['batch']}: whole frame, per frame | {fmt_number(b['frame_ms'], 3)} | {fmt_number(b['fps'], 1)} |")
        lines.append(f"| batch of {b['batch']}: animation, per frame | {fmt_number(b['animation_ms'], 3)} | "
                     f"{fmt_number(1000.0 / b['animation_ms'] if b['animation_ms'] > 0 else float('inf'), 1)} |")
        if "fast_frame_ms" in b:
            how = "CUDA graph" if b.get("fast_graph") else "eager"
            lines.append(f"| batch of {b['batch']}: whole frame, fast path ({how}), per frame | "
                         f"{fmt_number(b['fast_frame_ms'], 3)} | {fmt_number(b['fast_fps'], 1)} |")
            lines.append(f"| batch of {b['batch']}: animation, fast path ({how}), per frame | "
                         f"{fmt_number(b['fast_animation_ms'], 3)} | "
                         f"{fmt_number(1000.0 / b['fast_animation_ms'] if b['fast_animation_ms'] > 0 else float('inf'), 1)} |")
        if "fast_rgb_frame_ms" in b:
            lines.append(f"| batch of {b['batch']}: whole frame, fast path, colour only"
                         f"{', surfels as 3DGS' if r['mode'] == '2dgs' else ''}, per frame | "
                         f"{fmt_number(b['fast_rgb_frame_ms'], 3)} | {fmt_number(b['fast_rgb_fps'], 1)} |")
        surf = ", surfels as 3DGS" if r["mode"] == "2dgs" else ""
        for key, label in (("one_call", "whole frame, one render_batch call"),
                           ("one_call_rgb", f"whole frame, one render_batch call, colour only{surf}"),
                           ("one_call_2dgs_rgb", "whole frame, one render_batch call, colour only, 2DGS"),
                           ("recorded", "whole frame, animation + projection as one CUDA graph, then gsplat's draw"),
                           ("recorded_compiled", "whole frame, compiled animation + projection as one CUDA graph, "
                            "then gsplat's draw")):
            if f"{key}_frame_ms" in b:
                lines.append(f"| batch of {b['batch']}: {label}, per frame | {fmt_number(b[key + '_frame_ms'], 3)} | "
                             f"{fmt_number(b[key + '_fps'], 1)} |")
    fl = r.get("gsplat_floor") or {}
    for key, label in FLOOR_LABELS:
        if key in fl:
            lines.append(f"| {label} | {fmt_number(fl[key], 3)} | {fmt_number(1000.0 / fl[key] if fl[key] > 0 else float('inf'), 1)} |")
    for key, label in (("3dgs_rgb_batched", "3DGS RGB"), ("2dgs_rgb_batched", "2DGS RGB")):
        if key in fl:
            v = fl[key]
            lines.append(f"| bare gsplat: {label}, batch of {fl['batch']}, per frame | {fmt_number(v, 3)} | "
                         f"{fmt_number(1000.0 / v if v > 0 else float('inf'), 1)} |")
    for label, fps in ANCHORS:
        lines.append(f"| {label} | {fmt_number(1000.0 / fps, 3)} | {fmt_number(fps, 0)} |")
    lines.append("")
    lines.append(f"Whole frame / rasterization floor: {fmt_number(r['frame_over_floor'], 2)}x")
    if "frame_fast_over_floor" in r:
        lines.append(f"Whole frame, fast path / rasterization floor: {fmt_number(r['frame_fast_over_floor'], 2)}x; "
                     f"animation speed-up of the fast path (eager): {fmt_number(r['animation_speedup'], 2)}x")
    for key, label in (("frame_rgb_over_gsplat", "whole frame, fast path, colour only / bare gsplat (same mode)"),
                       ("frame_surfels_over_gsplat", "whole frame, surfels as 3DGS / bare gsplat 3DGS RGB"),
                       ("batched_over_gsplat", "batched whole frame, one render_batch call, colour only / bare gsplat "
                        "batched 3DGS RGB, per frame"),
                       ("batched_loop_over_gsplat", "batched whole frame, one render per frame, colour only / bare "
                        "gsplat batched 3DGS RGB, per frame"),
                       ("frame_recorded_over_gsplat", "whole frame, recorded animation + projection / bare gsplat "
                        "3DGS RGB"),
                       ("batched_recorded_over_gsplat", "batched whole frame, recorded animation + projection / bare "
                        "gsplat batched 3DGS RGB, per frame"),
                       ("frame_recorded_compiled_over_gsplat", "whole frame, recorded compiled animation + "
                        "projection / bare gsplat 3DGS RGB"),
                       ("batched_recorded_compiled_over_gsplat", "batched whole frame, recorded compiled animation "
                        "+ projection / bare gsplat batched 3DGS RGB, per frame"),
                       ("batched_2dgs_over_gsplat", "batched whole frame, one render_batch call, 2DGS colour only / "
                        "bare gsplat batched 2DGS RGB, per frame")):
        if key in r:
            lines.append(f"{label}: {fmt_number(r[key], 2)}x")
    if r.get("compile_error"):
        lines.append(f"compiled animation not measured: {r['compile_error']}")
    if (r.get("gsplat_floor") or {}).get("error"):
        lines.append(f"bare gsplat floor not measured: {r['gsplat_floor']['error']}")
    return "\n".join(lines)


def train_table(device: str, t: dict[str, Any]) -> str:
    """Table of :func:`thgs.bench.speed.train_speed` results."""
    mem = any("peak_memory_gib" in v for v in t.values())
    lines = [f"Training speed on {device}", "",
             "| preset | image | steps/s | ms/step | preset steps | est. preset time | Gaussians at end"
             + (" | peak GPU memory (GiB) |" if mem else " |"),
             "| --- | --- | ---: | ---: | ---: | ---: | ---:" + (" | ---: |" if mem else " |")]
    for name, v in t.items():
        est = v["preset_time_s"]
        est_s = f"{est / 3600:.2f} h" if est >= 3600 else (f"{est / 60:.1f} min" if est >= 60 else f"{est:.1f} s")
        row = (f"| {name} | {v['image'][0]}x{v['image'][1]} | {fmt_number(v['steps_per_s'], 2)} | {fmt_number(v['ms_per_step'], 1)} | "
               f"{v['preset_steps']} | {est_s} | {v['num_gaussians_end']}")
        row += f" | {fmt_number(v['peak_memory_gib'], 2)} |" if mem else " |"
        lines.append(row)
    return "\n".join(lines)


def bench_markdown(result: dict[str, Any]) -> str:
    """The whole ``thgs bench`` result as markdown."""
    out = [f"## thgs bench ({result.get('avatar', '')})", "", f"Command: `{result.get('command', 'thgs bench')}`", ""]
    env = result.get("versions", {})
    if env:
        out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    for dev, sec in result.get("devices", {}).items():
        if "render" in sec:
            out += [render_table(sec["render"]), ""]
        if "train" in sec:
            out += [train_table(dev, sec["train"]), ""]
        for k in ("render_error", "train_error"):
            if k in sec:
                out += [f"{dev} {k.split('_')[0]}: failed ({sec[k]})", ""]
    return "\n".join(out).rstrip() + "\n"


__all__ = ["ANCHORS", "bench_markdown", "render_table", "train_table"]
