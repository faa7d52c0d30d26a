"""Render and training speed of an avatar: the whole frame, each part of the animation, and the
rasterization-only floor, measured in the same run on the same Gaussians.

Parts of one frame (the order of :meth:`thgs.avatar.model.THGSAvatar.forward_full`):

- ``blendshapes``: shape + expression (learnable, LEB) + pose-corrective offsets of the parent vertices;
- ``saam``: the mouth-box test and the Spatial Audio Attention Module on the mouth Gaussians;
- ``skinning``: voxel-grid weights, forward kinematics, blended transforms and their application;
- ``animation``: the whole forward (the three above plus activations), i.e. ``model(inputs)``;
- ``rasterization``: ``render`` of fixed posed Gaussians (the floor no avatar can beat);
- ``frame``: animation + rasterization, what one new video frame costs;
- ``animation_fast``: the same Gaussians from :class:`thgs.avatar.inference.Animator` (frame-independent
  work precomputed, kinematics by depth level, fused grid skinning), run eagerly;
- ``animation_graph`` (CUDA only): the Animator replaying its recorded CUDA graph (input copies included);
- ``frame_fast``: the Animator (graph on CUDA, else eager) + rasterization;
- ``frame_recorded`` (CUDA with gsplat): :class:`thgs.animate.recorded.RecordedFrames`, the animation and
  gsplat's projection replayed as one CUDA graph, then the tile sort and the rasterization (colour only, 3DGS;
  2DGS surfels drawn flat); ``batched``'s ``recorded_*`` figures the same for B frames;
- with ``compile_animation``: ``animation_compiled_graph`` and ``frame_recorded_compiled`` (and ``batched``'s
  ``recorded_compiled_*``), the same with the posing compiled (``Animator.posing_function(compile=True)``).

Each part is timed on its own (warm-up, many repeats, median), so the parts do not add up exactly to
the whole. ``batched`` poses B frames per call: SAAM runs frame by frame (its
module takes one frame), the posing runs once on [B, N] points (the model's own
:func:`thgs.avatar.posing.pose_batch`), and each frame is rasterized with its own ``render`` call; its ``fast_*``
figures do the same with the Animator's batched ``animate`` (one call for all B frames, a CUDA graph on CUDA);
its ``one_call_*`` figures draw the Animator's batch with one :func:`~thgs.render.base.render_batch` (one
rasterizer call for all B frames on gsplat; the reference backend still draws frame by frame), so
``fast_rgb_*`` against ``one_call_rgb_*`` is the gain of the batched rasterization alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from thgs.avatar import posing
from thgs.avatar.model import GROUPS, AvatarOptions, FrameInputs, THGSAvatar
from thgs.bench.timing import Timing, time_fn
from thgs.core import lbs
from thgs.render.base import Camera, GaussianSet, render, render_batch


@dataclass
class SpeedOptions:
    """width/height: image size; warmup/repeats: per timed part; batch: frames per batched call (0: skip);
    mode/backend: rasterization; compile_animation: also time the recorded paths with the posing compiled
    (``torch.compile``, CUDA only; tens of seconds per batch size)."""

    width: int = 1280
    height: int = 720
    warmup: int = 10
    repeats: int = 100
    batch: int = 8
    mode: str = "2dgs"
    backend: str = "auto"
    compile_animation: bool = False


def fresh_avatar(body: Any, num_gaussians: int, *, audio_channels: int = 44, sh_degree: int = 1, seed: int = 0,
                 grid_resolution: int = 64) -> THGSAvatar:
    """An untrained avatar with every component on (LEB, SAAM, voxel skinning) and ``num_gaussians``
    Gaussians: the initial ones on the body's vertices plus copies of random ones jittered by 2 mm (so the
    count matches a trained avatar's; the cost of a frame depends on the count, not on the values)."""
    from thgs.avatar.gaussians import InitOptions

    opts = AvatarOptions(init=InitOptions(sh_degree=sh_degree, seed=seed), grid_resolution=grid_resolution)
    model = THGSAvatar(body, opts, num_frames=0, audio_channels=audio_channels)
    n0 = model.num_gaussians
    if num_gaussians > n0:
        g = torch.Generator().manual_seed(seed)
        src = torch.randint(0, n0, (num_gaussians - n0,), generator=g)
        means = model.state["means"].detach()[src] + 0.002 * torch.randn(src.shape[0], 3, generator=g)
        model.state.append(src, overrides={"means": means})
    elif num_gaussians and num_gaussians < n0:
        model.state.select(torch.randperm(n0, generator=torch.Generator().manual_seed(seed))[:num_gaussians])
    model.refresh_mouth()  # the jittered copies: mouth Gaussians where they are now
    for grp in GROUPS:
        model.set_group_active(grp, True)
    return model.eval()


def frame_inputs_for(model: THGSAvatar, num: int, seed: int = 0) -> list[FrameInputs]:
    """``num`` plausible frames: small random joint rotations, random expressions and audio windows."""
    g = torch.Generator().manual_seed(seed)
    body = model.body
    dev = model.body.v_template.device
    C = _audio_channels(model)
    out = []
    for _ in range(num):
        out.append(FrameInputs(
            pose=(0.1 * torch.randn(body.num_joints, 3, generator=g)).to(dev),
            transl=torch.zeros(3, device=dev),
            betas=torch.zeros(body.num_betas, device=dev),
            expression=(0.5 * torch.randn(body.num_expressions, generator=g)).to(dev),
            audio_window=torch.randn(8, 16, C, generator=g).to(dev) if C else None))
    return out


def _audio_channels(model: THGSAvatar) -> int:
    """C of the audio windows the avatar's SAAM takes (0 without SAAM)."""
    return int(model.saam.audio.in_channels) if model.saam is not None else 0


@torch.no_grad()
def animate_batch(model: THGSAvatar, frames: list[FrameInputs]) -> list[GaussianSet]:
    """Pose B frames with one batched posing call (:func:`thgs.avatar.posing.pose_batch`, SAAM run frame by
    frame): the same Gaussians as ``model(frame)`` for each frame (no per-frame refinements; inference does
    not use them)."""
    f0 = frames[0]
    k = model.pose_constants(f0.betas, saam=model.saam_acts(f0))
    delta = None
    if k.mouth.numel():
        points = k.means.index_select(0, k.mouth)
        delta = torch.stack([model.saam.deltas(points, f.audio_window) for f in frames])  # [B, M, 10]
    pose = torch.stack([f.pose for f in frames])
    transl = torch.stack([f.transl for f in frames])
    expr = torch.stack([f.expression for f in frames]) if f0.expression is not None else None
    means, q, scales = posing.pose_batch(k, lbs.axis_angle_to_matrix(pose), expr, delta, transl)
    opacities, colors, sh_degree = model.appearance()
    return [GaussianSet(means=means[b], quats=q[b], scales=scales[b], opacities=opacities, colors=colors,
                        sh_degree=sh_degree) for b in range(len(frames))]


def _stacked(frames: list[FrameInputs]) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """Frames -> the Animator's batched inputs: pose [B, J, 3], expression [B, E], audio [B, 8, 16, C],
    transl [B, 3]."""
    f0 = frames[0]
    expr = torch.stack([f.expression for f in frames]) if f0.expression is not None else None
    audio = torch.stack([f.audio_window for f in frames]) if f0.audio_window is not None else None
    return torch.stack([f.pose for f in frames]), expr, audio, torch.stack([f.transl for f in frames])


def _audio_shape(frame: FrameInputs) -> tuple[int, int, int]:
    return tuple(frame.audio_window.shape) if frame.audio_window is not None else (8, 16, 0)  # type: ignore[return-value]


def bench_camera(model: THGSAvatar, width: int, height: int) -> Camera:
    """A frontal camera framing the whole rest-pose body at ``width`` x ``height`` (image up = body up)."""
    v = model.body.v_template.detach().cpu()
    lo, hi = v.min(0).values, v.max(0).values
    center = (lo + hi) / 2
    ext = hi - lo
    up_axis = int(torch.argmax(ext))  # the body's long axis
    up = torch.zeros(3)
    up[up_axis] = 1.0
    depth_axis = [i for i in range(3) if i != up_axis][int(torch.argmin(ext[[i for i in range(3) if i != up_axis]]))]
    fwd = torch.zeros(3)
    fwd[depth_axis] = 1.0
    fov = 30.0
    import math

    dist = 0.6 * float(ext[up_axis]) / math.tan(math.radians(fov / 2))
    return Camera.look_at(center + fwd * dist, center, up, fov, width, height)


def render_speed(model: THGSAvatar, opts: SpeedOptions, device: str) -> dict[str, Any]:
    """Time every part of a frame (see the module docstring) on ``device``; returns a JSON-ready dict with
    ``parts`` {name: Timing.as_dict()}, ``floor_ms``, ``frame_over_floor`` and the settings."""
    model = model.to(device).eval()
    cam = bench_camera(model, opts.width, opts.height).to(device)
    bg = torch.ones(3, device=device)
    frames = frame_inputs_for(model, max(1, opts.batch))
    f0 = frames[0]
    st = model.state
    mu, parent = st["means"], st["parent"]

    def t(fn) -> Timing:
        return time_fn(fn, device, warmup=opts.warmup, repeats=opts.repeats)

    parts: dict[str, Timing] = {}
    with torch.no_grad():
        parts["blendshapes"] = t(lambda: model.vertex_offsets(f0.pose, f0.betas, f0.expression)[parent])
        if model.saam is not None and f0.audio_window is not None:
            def saam() -> None:
                idx = model.mouth_indices()
                model.saam(mu[idx], f0.audio_window)

            parts["saam"] = t(saam)
        mu_e = (mu + model.vertex_offsets(f0.pose, f0.betas, f0.expression)[parent])[None]
        parts["skinning"] = t(lambda: model.skin(mu_e, st["quats"][None], f0.pose[None], f0.betas,
                                                 f0.expression[None] if f0.expression is not None else None,
                                                 f0.transl[None]))
        parts["animation"] = t(lambda: model(f0))
        gs = model(f0)
        parts["rasterization"] = t(lambda: render(gs, cam, bg, mode=opts.mode, backend=opts.backend))
        parts["frame"] = t(lambda: render(model(f0), cam, bg, mode=opts.mode, backend=opts.backend))
        # The fast path: the same Gaussians (tests/avatar/test_inference.py), precomputed and graph-ready.
        from thgs.avatar.inference import Animator

        anim = Animator.from_model(model, betas=f0.betas)
        one = _stacked(frames[:1])
        parts["animation_fast"] = t(lambda: anim.animate(*one))  # eager: nothing captured yet
        graph = anim.capture(batch=1, audio_shape=_audio_shape(frames[0]))
        if graph:
            parts["animation_graph"] = t(lambda: anim.animate(*one))
        parts["frame_fast"] = t(lambda: render(anim.animate(*one).frame(0), cam, bg, mode=opts.mode,
                                               backend=opts.backend))
        # colour only (no depth, no normals), and 2DGS surfels through the 3DGS rasterizer
        parts["rasterization_rgb"] = t(lambda: render(gs, cam, bg, mode=opts.mode, backend=opts.backend,
                                                      outputs="rgb"))
        parts["frame_rgb"] = t(lambda: render(anim.animate(*one).frame(0), cam, bg, mode=opts.mode,
                                              backend=opts.backend, outputs="rgb"))
        if opts.mode == "2dgs":
            parts["frame_surfels_3dgs"] = t(lambda: render(anim.animate(*one).frame(0), cam, bg, mode="2dgs",
                                                           backend=opts.backend, outputs="rgb", surfels_as_3dgs=True))
        # animation + projection recorded as one graph, then gsplat's tile sort and rasterization (CUDA + gsplat)
        from thgs.animate.recorded import RecordedFrames

        rec1 = RecordedFrames(anim, cam, bg, batch=1, mode=opts.mode, backend=opts.backend)
        if rec1.record(audio_shape=_audio_shape(frames[0])):
            parts["frame_recorded"] = t(lambda: rec1(*one))
        compiled: RecordedFrames | None = None
        compile_error = ""
        if opts.compile_animation and rec1.recorded:
            try:
                comp = Animator.from_model(model, betas=f0.betas)
                comp.capture(batch=1, audio_shape=_audio_shape(frames[0]), compile=True)
                parts["animation_compiled_graph"] = t(lambda: comp.animate(*one))
                compiled = RecordedFrames(comp, cam, bg, batch=1, mode=opts.mode, backend=opts.backend)
                compiled.record(audio_shape=_audio_shape(frames[0]), compile=True)
                parts["frame_recorded_compiled"] = t(lambda: compiled(*one))  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - a compiler failure is reported, the other rows stand
                compiled = None
                compile_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        floor_gsplat = gsplat_floor(gs, cam, bg, max(1, opts.batch), t)
        result: dict[str, Any] = {"parts": {k: v.as_dict() for k, v in parts.items()}}
        if opts.compile_animation and compiled is None and rec1.recorded:
            result["compile_error"] = compile_error
        if floor_gsplat:
            result["gsplat_floor"] = floor_gsplat
        if opts.batch > 1:
            def batched() -> None:
                for g in animate_batch(model, frames):
                    render(g, cam, bg, mode=opts.mode, backend=opts.backend)

            def batched_anim() -> None:
                animate_batch(model, frames)

            many = _stacked(frames)
            B = len(frames)
            if graph:
                anim.capture(batch=B, audio_shape=_audio_shape(frames[0]))

            def fast_batched() -> None:
                out = anim.animate(*many)
                for b in range(B):
                    render(out.frame(b), cam, bg, mode=opts.mode, backend=opts.backend)

            def fast_batched_rgb() -> None:
                out = anim.animate(*many)
                for b in range(B):
                    render(out.frame(b), cam, bg, mode=opts.mode, backend=opts.backend, outputs="rgb",
                           surfels_as_3dgs=opts.mode == "2dgs")

            def one_call() -> None:
                render_batch(anim.animate(*many), cam, bg, mode=opts.mode, backend=opts.backend,  # type: ignore[arg-type]
                             outputs="full")

            def one_call_rgb() -> None:
                render_batch(anim.animate(*many), cam, bg, mode=opts.mode, backend=opts.backend,  # type: ignore[arg-type]
                             outputs="rgb", surfels_as_3dgs=opts.mode == "2dgs")

            tb = t(batched)
            ta = t(batched_anim)
            fb = t(fast_batched)
            fa = t(lambda: anim.animate(*many))
            fr = t(fast_batched_rgb)
            oc = t(one_call)
            ocr = t(one_call_rgb)
            result["batched"] = {"batch": B, "frame_ms": tb.median / B, "fps": 1000.0 * B / tb.median,
                                 "animation_ms": ta.median / B, "call_ms": tb.median,
                                 **_per_frame("fast", fb, B),
                                 "fast_animation_ms": fa.median / B, "fast_call_ms": fb.median, "fast_graph": graph,
                                 **_per_frame("fast_rgb", fr, B), **_per_frame("one_call", oc, B),
                                 **_per_frame("one_call_rgb", ocr, B)}
            recB = RecordedFrames(anim, cam, bg, batch=B, mode=opts.mode, backend=opts.backend)
            if recB.record(audio_shape=_audio_shape(frames[0])):
                result["batched"].update(_per_frame("recorded", t(lambda: recB(*many)), B))
            if compiled is not None:
                compB = RecordedFrames(compiled.animator, cam, bg, batch=B, mode=opts.mode, backend=opts.backend)
                compB.record(audio_shape=_audio_shape(frames[0]), compile=True)
                result["batched"].update(_per_frame("recorded_compiled", t(lambda: compB(*many)), B))
            if opts.mode == "2dgs":  # true 2DGS, colour only, one call
                ocn = t(lambda: render_batch(anim.animate(*many), cam, bg, mode="2dgs", backend=opts.backend,
                                             outputs="rgb"))
                result["batched"].update(_per_frame("one_call_2dgs_rgb", ocn, B))
    floor = parts["rasterization"].median
    from thgs.render.base import available_backends

    result.update({
        "device": device, "backend": opts.backend if opts.backend != "auto" else available_backends(device)[0],
        "mode": opts.mode, "width": opts.width, "height": opts.height, "num_gaussians": int(model.num_gaussians),
        "sh_degree": model.sh_degree, "warmup": opts.warmup, "repeats": opts.repeats,
        "floor_ms": floor, "frame_over_floor": parts["frame"].median / floor if floor > 0 else float("nan"),
        "frame_fast_over_floor": parts["frame_fast"].median / floor if floor > 0 else float("nan"),
        **floor_ratios(result, opts.mode),
        "animation_speedup": (parts["animation"].median / parts["animation_fast"].median
                              if parts["animation_fast"].median > 0 else float("nan")),
        "components": {"leb": model.leb is not None, "saam": model.saam is not None,
                       "skinning": "grid" if model.skin_grid is not None else "parent",
                       "skin_cells": model.skin_grid.num_active if model.skin_grid is not None else 0},
    })
    return result


def _per_frame(name: str, timing: Timing, batch: int) -> dict[str, float]:
    """``{name}_frame_ms`` and ``{name}_fps`` of a call drawing ``batch`` frames."""
    return {f"{name}_frame_ms": timing.median / batch, f"{name}_fps": 1000.0 * batch / timing.median}


def _bare_inputs(gs: GaussianSet, cam: Camera, bg: Tensor, batch: int) -> tuple:
    """gsplat's arguments for ``gs`` seen by ``cam``, built once (outside the timed call): [N, ...] tensors,
    the camera dimension, and the same for ``batch`` copies ([B, N, ...], cameras [B, 1, ...])."""
    f32 = torch.float32
    colors = gs.colors.to(f32)
    sh = gs.sh_degree if colors.dim() == 3 else None
    single = (gs.means.float().contiguous(), gs.quats.float().contiguous(), gs.scales.float().contiguous(),
              gs.opacities.float().contiguous(), colors[None].contiguous(), cam.world_to_cam.float()[None],
              cam.K.float()[None])
    rep = lambda x: x[None].expand(batch, *x.shape).contiguous()  # noqa: E731
    many = (rep(single[0]), rep(single[1]), rep(single[2]), rep(single[3]), rep(colors), rep(single[5]),
            rep(single[6]))
    return single, many, sh, bg.float()[None]


def gsplat_floor(gs: GaussianSet, cam: Camera, bg: Tensor, batch: int, timer) -> dict[str, Any]:
    """The bare gsplat calls on the posed Gaussians ``gs`` (no thgs wrapper: arguments prepared outside the timed
    call), milliseconds per frame: ``3dgs_rgb`` (``rasterization``, render_mode RGB), ``2dgs_rgb`` and
    ``2dgs_rgb_ed`` (``rasterization_2dgs``, RGB and RGB+ED), ``3dgs_rgb_batched`` and ``2dgs_rgb_batched``
    (``batch`` frames in one call, per frame). The floor a whole frame is compared with; empty when gsplat cannot run (no CUDA GPU)."""
    from thgs.render import gsplat_backend

    if gs.means.device.type != "cuda" or not gsplat_backend.is_available():
        return {}
    import gsplat

    (m, q, s, o, c, V, K), many, sh, bgs = _bare_inputs(gs, cam, bg, batch)
    W, H = cam.width, cam.height
    common = dict(near_plane=cam.near, far_plane=cam.far, radius_clip=0.0, sh_degree=sh, packed=False)
    flat = torch.cat([s[:, :2], torch.zeros_like(s[:, 2:])], -1)
    try:
        out: dict[str, Any] = {
            "3dgs_rgb": timer(lambda: gsplat.rasterization(m, q, s, o, c, V, K, W, H, backgrounds=bgs,
                                                           render_mode="RGB", **common)).median,
            "3dgs_surfels_rgb": timer(lambda: gsplat.rasterization(m, q, flat, o, c, V, K, W, H, backgrounds=bgs,
                                                                   render_mode="RGB", **common)).median,
            "2dgs_rgb": timer(lambda: gsplat.rasterization_2dgs(m, q, s, o, c, V, K, W, H, backgrounds=bgs,
                                                                render_mode="RGB", **common)).median,
            "2dgs_rgb_ed": timer(lambda: gsplat.rasterization_2dgs(m, q, s, o, c, V, K, W, H, backgrounds=bgs,
                                                                   render_mode="RGB+ED", **common)).median,
        }
    except (RuntimeError, ValueError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if batch > 1:
        bm, bq, bs, bo, bc, bV, bK = many
        bbg = bgs[None].expand(batch, 1, 3).contiguous()
        try:
            ms = timer(lambda: gsplat.rasterization(bm, bq, bs, bo, bc[:, None], bV, bK, W, H, backgrounds=bbg,
                                                    render_mode="RGB", **common)).median
            out["3dgs_rgb_batched"] = ms / batch
            ms = timer(lambda: gsplat.rasterization_2dgs(bm, bq, bs, bo, bc[:, None], bV, bK, W, H, backgrounds=bbg,
                                                         render_mode="RGB", **common)).median
            out["2dgs_rgb_batched"] = ms / batch
        except (RuntimeError, ValueError, TypeError, AssertionError) as exc:  # a gsplat without batch dimensions
            out["batched_error"] = f"{type(exc).__name__}: {exc}"
    out["batch"] = batch
    return out


def floor_ratios(result: dict[str, Any], mode: str) -> dict[str, float]:
    """Whole frame over the bare gsplat floor of the same rasterization, when that floor was measured:
    ``frame_rgb_over_gsplat`` (fast path, colour only, true ``mode``), ``frame_surfels_over_gsplat`` (2DGS surfels
    through the 3DGS rasterizer against bare 3DGS RGB), ``batched_over_gsplat`` (per frame, the Animator's batch
    drawn by one ``render_batch``, colour only, against bare 3DGS RGB batched), ``batched_loop_over_gsplat`` (the
    same batch drawn by one ``render`` per frame) and ``batched_2dgs_over_gsplat`` (one call in true 2DGS against
    bare 2DGS RGB batched)."""
    fl = result.get("gsplat_floor") or {}
    parts = result.get("parts", {})
    out: dict[str, float] = {}
    base = fl.get("2dgs_rgb" if mode == "2dgs" else "3dgs_rgb")
    if base and "frame_rgb" in parts:
        out["frame_rgb_over_gsplat"] = parts["frame_rgb"]["ms"] / base
    if fl.get("3dgs_rgb") and "frame_surfels_3dgs" in parts:
        out["frame_surfels_over_gsplat"] = parts["frame_surfels_3dgs"]["ms"] / fl["3dgs_rgb"]
    b = result.get("batched") or {}
    if fl.get("3dgs_rgb_batched"):
        if "one_call_rgb_frame_ms" in b:
            out["batched_over_gsplat"] = b["one_call_rgb_frame_ms"] / fl["3dgs_rgb_batched"]
        if "fast_rgb_frame_ms" in b:
            out["batched_loop_over_gsplat"] = b["fast_rgb_frame_ms"] / fl["3dgs_rgb_batched"]
    if fl.get("3dgs_rgb") and "frame_recorded" in parts:
        out["frame_recorded_over_gsplat"] = parts["frame_recorded"]["ms"] / fl["3dgs_rgb"]
    if fl.get("3dgs_rgb") and "frame_recorded_compiled" in parts:
        out["frame_recorded_compiled_over_gsplat"] = parts["frame_recorded_compiled"]["ms"] / fl["3dgs_rgb"]
    if fl.get("3dgs_rgb_batched") and "recorded_compiled_frame_ms" in b:
        out["batched_recorded_compiled_over_gsplat"] = b["recorded_compiled_frame_ms"] / fl["3dgs_rgb_batched"]
    if fl.get("3dgs_rgb_batched") and "recorded_frame_ms" in b:
        out["batched_recorded_over_gsplat"] = b["recorded_frame_ms"] / fl["3dgs_rgb_batched"]
    if fl.get("2dgs_rgb_batched") and "one_call_2dgs_rgb_frame_ms" in b:
        out["batched_2dgs_over_gsplat"] = b["one_call_2dgs_rgb_frame_ms"] / fl["2dgs_rgb_batched"]
    return out


def train_speed(subject: Any, presets: list[str], steps: int, warmup: int, device: str, work_dir: Any,
                train_size: int = 0, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Steps per second of each named preset on ``subject``: the preset's schedule compressed to
    ``warmup + steps`` steps (every stage starts within the run, see ``scaled_steps``), the last ``steps``
    timed; the full preset's time is estimated as its step count / steps per second. On CUDA also the
    peak allocated memory. ``overrides``: TrainConfig fields replaced in every preset."""
    import time

    from thgs.runs.config import preset, replace_flat, scaled_steps
    from thgs.train.trainer import Trainer

    out: dict[str, Any] = {}
    for name in presets:
        full = preset(name)
        cfg = scaled_steps(full, warmup + steps)
        cfg = replace_flat(cfg, device=device, progress=False, init_colors=min(cfg.model.init_colors, 2),
                                  train_size=train_size or cfg.train_size, **(overrides or {}))
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        trainer = Trainer(cfg, subject, work_dir / name)
        for _ in range(warmup):
            trainer.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        sps = steps / dt if dt > 0 else float("inf")
        rec = {"steps_timed": steps, "steps_per_s": sps, "ms_per_step": 1000.0 * dt / steps,
               "preset_steps": full.steps, "preset_time_s": full.steps / sps,
               "num_gaussians_end": int(trainer.model.num_gaussians),
               "image": [int(trainer.camera.width), int(trainer.camera.height)]}
        if device.startswith("cuda"):
            rec["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        out[name] = rec
        del trainer
    return out


__all__ = ["SpeedOptions", "animate_batch", "bench_camera", "floor_ratios", "fresh_avatar", "frame_inputs_for",
           "gsplat_floor", "render_speed", "train_speed"]
