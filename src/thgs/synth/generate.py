"""Generate a complete synthetic subject: speech, motion, rendered frames, novel views and ground truth.

Pipeline (:func:`generate`):

1. speech (:mod:`thgs.synth.speech`): audio + phone track; mouth shapes from the audio;
2. motion (:mod:`thgs.synth.motion`): pose, translation, expressions for every frame;
3. rendering (:class:`MeshRenderer`): the body with teeth, posed per frame, rasterized by our own mesh
   rasterizer with 2x2 supersampling and painted by :mod:`thgs.synth.appearance`, from one static front
   camera, plus the test frames from novel-view cameras turned about the body's vertical axis;
4. writing through :func:`thgs.data.writer.write_subject` (atomic): frames, masks, audio, params.npz (the
   exact body parameters), truth.npz (mouth shapes, phone track, controls), views.
"""

from __future__ import annotations

import multiprocessing as mp

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel
from thgs.core.mesh import vertex_normals
from thgs.render.base import Camera
from thgs.synth import speech as sp
from thgs.synth.appearance import PART, Appearance, pixel_part, shade
from thgs.synth.motion import (
    CONTROL_NAMES,
    MotionStyle,
    generate_motion,
    semantic_joints,
)
from thgs.synth.raster import downsample, rasterize

BACKGROUND = (1.0, 1.0, 1.0)
"""Frames are composited on white, like the paper's data."""


@dataclass
class SynthConfig:
    """What to generate. Every field is recorded in truth.npz (``synth_config``)."""

    body: Literal["anny", "toy"] = "anny"
    seconds: float = 20.0
    fps: float = 25.0
    size: int = 256
    portrait: bool = False
    seed: int = 0
    views: tuple[float, ...] = (-30.0, -15.0, 15.0, 30.0)
    supersample: int = 2
    camera_distance: float = 2.4

    def image_size(self) -> tuple[int, int]:
        """(width, height): 16:9 landscape, or 9:16 portrait, ``size`` pixels high."""
        h = int(self.size)
        w = int(round(h * 9 / 16)) if self.portrait else int(round(h * 16 / 9))
        return w, h


def default_workers(requested: int = 0) -> int:
    """``requested`` rendering processes, or (0) one per CPU core, at most 8."""
    import os

    return requested if requested > 0 else max(1, min(8, os.cpu_count() or 1))


def view_name(yaw: float) -> str:
    """Folder name of a novel view: ``yaw-30``, ``yaw15``, ``yaw7.5``."""
    return f"yaw{yaw:g}"


def names_to_array(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """A list of names as a uint8 array (UTF-8, comma-separated): truth.npz holds numeric arrays only."""
    return np.frombuffer(",".join(names).encode("utf-8"), dtype=np.uint8).copy()


def array_to_names(arr: np.ndarray) -> list[str]:
    """Inverse of :func:`names_to_array`."""
    text = np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8")
    return text.split(",") if text else []


# -- cameras ---------------------------------------------------------------------------------------

def framing(body: BodyModel) -> tuple[Tensor, float, float]:
    """Body centre [3] (x, z of the pelvis; chest depth) and the vertical range (bottom, top) to frame:
    from a little above the top of the head down to the upper thighs (the hands at rest stay in view)."""
    sem = semantic_joints(body)
    rest = body.rest_joints()[0].detach().float().cpu()
    v = body.v_template.detach().float().cpu()
    pelvis = rest[sem["pelvis"]] if "pelvis" in sem else v.mean(0)
    top = float(v[:, 1].max())
    if "left_knee" in sem and "right_knee" in sem:
        knee_y = 0.5 * float(rest[sem["left_knee"], 1] + rest[sem["right_knee"], 1])
    else:
        knee_y = float(pelvis[1]) - 0.45
    bottom = float(pelvis[1]) - 0.3 * (float(pelvis[1]) - knee_y)
    top = top + 0.06 * (top - bottom)
    centre = torch.tensor([float(pelvis[0]), 0.5 * (top + bottom), float(pelvis[2])])
    return centre, bottom, top


def front_camera(body: BodyModel, width: int, height: int, distance: float = 2.4) -> Camera:
    """The static front camera: level, on the body's +z side, framing the head to the upper thighs."""
    centre, bottom, top = framing(body)
    fov = math.degrees(2 * math.atan(0.5 * (top - bottom) / distance))
    eye = centre + torch.tensor([0.0, 0.0, distance])
    return Camera.look_at(eye, centre, torch.tensor([0.0, 1.0, 0.0]), fov, width, height)


def orbit_camera(cam: Camera, centre: Tensor, yaw_deg: float) -> Camera:
    """``cam`` turned by ``yaw_deg`` about the vertical axis through ``centre`` (positive: toward the
    body's left, +x)."""
    a = math.radians(yaw_deg)
    R = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    # world_to_cam' = world_to_cam o R^-1 about the centre.
    M = torch.eye(4)
    M[:3, :3] = R.T
    M[:3, 3] = centre - R.T @ centre
    return Camera(cam.K.clone(), cam.world_to_cam @ M, cam.width, cam.height, cam.near, cam.far)


# -- rendering ---------------------------------------------------------------------------------------

class MeshRenderer:
    """Renders posed vertices of one mesh (body + teeth) with the synthetic appearance."""

    def __init__(self, body: BodyModel, appearance: Appearance, supersample: int = 2,
                 background: tuple[float, float, float] = BACKGROUND) -> None:
        self.faces = body.faces.detach().cpu()
        self.canonical = body.v_template.detach().float().cpu()
        self.appearance = appearance
        self.ss = int(supersample)
        self.background = torch.tensor(background)
        # Back faces may be skipped everywhere except on the head, where the mouth opening shows the inside.
        head_parts = torch.tensor([PART[n] for n in ("head", "left_eye", "right_eye", "teeth", "cavity")])
        self.cullable = ~torch.isin(appearance.face_part, head_parts)

    def render(self, verts: Tensor, normals: Tensor, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """verts, normals [V, 3] world -> (RGB [H, W, 3] uint8, mask [H, W] float32 coverage in 0..1)."""
        cam = camera.scaled(self.ss) if self.ss > 1 else camera
        R = cam.world_to_cam[:3, :3]
        t = cam.world_to_cam[:3, 3]
        vc = verts @ R.T + t
        frags = rasterize(vc, self.faces, cam.K, cam.height, cam.width, cullable=self.cullable)
        cov = frags.covered
        f = frags.face[cov]
        w = frags.bary[cov]
        tri = self.faces[f]  # [P, 3]
        p = (self.canonical[tri] * w[..., None]).sum(1)
        n = (normals[tri] * w[..., None]).sum(1)
        part = pixel_part(self.appearance.vertex_part, tri, w)
        alb = self.appearance.albedo(p, part)
        rgb = shade(alb, n, frags.front[cov], self.appearance.interior_colour())
        img = self.background.expand(cam.height, cam.width, 3).clone()
        img[cov] = rgb
        img = downsample(img, self.ss)
        mask = downsample(cov.float()[..., None], self.ss)[..., 0]
        out = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        return out, mask.numpy()


@dataclass
class SynthResult:
    """Everything generated, before writing."""

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    audio: np.ndarray
    camera: Camera
    params: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    views: dict[str, dict[str, Any]]
    split: dict[str, list[int]]
    timings: dict[str, float] = field(default_factory=dict)


def load_bodies(name: str) -> tuple[BodyModel, BodyModel]:
    """(plain body, body with teeth for rendering)."""
    from thgs.body.registry import load_body_model
    from thgs.body.teeth import with_teeth

    body = load_body_model(name)
    return body, with_teeth(body)


def synthesize(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None,
               bodies: tuple[BodyModel, BodyModel] | None = None, workers: int = 1) -> SynthResult:
    """Generate a subject in memory (see :func:`generate` to write it).

    Runs torch on one thread: the work is many small tensor operations, for which one thread is as fast
    as two and does not collapse when the machine is busy (oversubscribed intra-op thread pools spin).

    Args:
        cfg: what to generate.
        progress: called as ``progress(done, total)`` after each rendered image.
        bodies: (plain body, body with teeth) to use instead of loading ``cfg.body``.
        workers: rendering processes (forked; the images do not depend on this).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _synthesize(cfg, progress, bodies, workers)
    finally:
        torch.set_num_threads(threads)


def _synthesize(cfg: SynthConfig, progress: Callable[[int, int], None] | None,
                bodies: tuple[BodyModel, BodyModel] | None, workers: int = 1) -> SynthResult:
    from thgs.data.format import default_split

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    body, render_body = bodies if bodies is not None else load_bodies(cfg.body)
    timings["load_body"] = time.perf_counter() - t0

    t = time.perf_counter()
    T = int(round(cfg.seconds * cfg.fps))
    if T < 2:
        raise ValueError(f"--seconds {cfg.seconds} at --fps {cfg.fps} gives {T} frame(s); need at least 2")
    samples, track = sp.synthesize_speech(T / cfg.fps, seed=cfg.seed)
    mouth = sp.mouth_from_audio(samples, track.per_sample(), cfg.fps, T)
    timings["speech"] = time.perf_counter() - t

    t = time.perf_counter()
    jaw_joint = body.mouth.jaw_joint != body.mouth.head_joint and "jaw" in semantic_joints(body)
    motion = generate_motion(body, mouth, cfg.fps, seed=cfg.seed, style=MotionStyle(),
                             jaw_from_joint=1.0 if jaw_joint else 0.0)
    timings["motion"] = time.perf_counter() - t

    width, height = cfg.image_size()
    camera = front_camera(body, width, height, cfg.camera_distance)
    centre, _, _ = framing(body)
    split = default_split(T)
    view_cams = {view_name(y): orbit_camera(camera, centre, y) for y in cfg.views}

    t = time.perf_counter()
    teeth = render_body.meta.get("teeth_vertex_range")
    teeth_idx = torch.arange(int(teeth[0]), int(teeth[1])) if teeth is not None else None
    appearance = Appearance(render_body, seed=cfg.seed, teeth_vertices=teeth_idx)
    renderer = MeshRenderer(render_body, appearance, supersample=cfg.supersample)
    scene = _Scene(body=render_body, renderer=renderer, camera=camera, view_cams=view_cams,
                   pose=torch.from_numpy(motion.pose), transl=torch.from_numpy(motion.transl),
                   expr=torch.from_numpy(motion.expression), betas=torch.from_numpy(motion.betas)[None],
                   test=set(split["test"]))
    frames, masks, views = _render_all(scene, chunk=25, progress=progress, workers=workers)
    timings["render"] = time.perf_counter() - t
    timings["render_images"] = float(len(frames) + sum(len(v["images"]) for v in views.values()))

    params = {"pose": motion.pose, "transl": motion.transl, "betas": motion.betas, "expression": motion.expression}
    truth = {
        "mouth": mouth,
        "mouth_names": names_to_array(sp.MOUTH_NAMES),
        "phone_frames": track.per_frame(cfg.fps, T),
        "phone_segments": track.as_array(),
        "phone_names": names_to_array(sp.PHONES),
        "controls": motion.controls,
        "control_names": names_to_array(CONTROL_NAMES),
        "view_yaws": np.asarray(cfg.views, dtype=np.float32),
        "synth_config": np.frombuffer(json.dumps(config_dict(cfg), sort_keys=True).encode(), dtype=np.uint8).copy(),
    }
    return SynthResult(frames=frames, masks=masks, audio=samples, camera=camera, params=params, truth=truth,
                       views=views, split=split, timings=timings)


@dataclass(frozen=True)
class _Scene:
    """What every rendered frame needs: the posed body's model and renderer, the main camera and the extra
    views' cameras, the per-frame body parameters, and the test frames (the ones the views are rendered for)."""

    body: BodyModel
    renderer: MeshRenderer
    camera: Camera
    view_cams: dict[str, Camera]
    pose: Tensor
    transl: Tensor
    expr: Tensor
    betas: Tensor
    test: set[int]


def _render_chunk(scene: _Scene, s: int, e: int) -> list[tuple[int, str | None, np.ndarray, np.ndarray]]:
    """Render frames s..e-1 (and the views of those in ``test``): a list of (frame, view or None, image, mask)."""
    out_images: list[tuple[int, str | None, np.ndarray, np.ndarray]] = []
    betas = scene.betas
    with torch.no_grad():
        out = scene.body(scene.pose[s:e], betas.expand(e - s, -1) if betas.shape[1] else None, scene.expr[s:e],
                         scene.transl[s:e])
        verts = out.vertices
        normals = vertex_normals(verts, scene.body.faces)
        for k in range(e - s):
            i = s + k
            img, m = scene.renderer.render(verts[k], normals[k], scene.camera)
            out_images.append((i, None, img, m))
            if i in scene.test:
                for name, cam in scene.view_cams.items():
                    vi, vm = scene.renderer.render(verts[k], normals[k], cam)
                    out_images.append((i, name, vi, vm))
    return out_images


_WORKER_SCENE: _Scene | None = None
"""What forked rendering workers inherit (set just before the pool starts, cleared after)."""


def _worker_chunk(bounds: tuple[int, int]) -> list[tuple[int, str | None, np.ndarray, np.ndarray]]:
    torch.set_num_threads(1)
    assert _WORKER_SCENE is not None
    return _render_chunk(_WORKER_SCENE, *bounds)


def _render_all(scene: _Scene, chunk: int, progress: Callable[[int, int], None] | None, workers: int = 1
                ) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, dict[str, Any]]]:
    """Pose the body in chunks of frames and render every frame (and the views of the test frames): returns
    the frames, their masks and the views (``{name: dict(camera, frames, images, masks)}``).

    With ``workers`` > 1 the chunks are rendered by forked processes (one torch thread each); every image
    is a deterministic function of its frame, so the result is identical to ``workers=1``.
    """
    global _WORKER_SCENE
    T = scene.pose.shape[0]
    bounds = [(s, min(T, s + chunk)) for s in range(0, T, chunk)]
    total = T + len(scene.test) * len(scene.view_cams)
    frames: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    views: dict[str, dict[str, Any]] = {n: dict(camera=c, frames=[], images=[], masks=[])
                                        for n, c in scene.view_cams.items()}
    done = 0

    def collect(results: list[tuple[int, str | None, np.ndarray, np.ndarray]]) -> None:
        nonlocal done
        for i, name, img, m in results:
            if name is None:
                frames.append(img)
                masks.append(m)
            else:
                views[name]["frames"].append(i)
                views[name]["images"].append(img)
                views[name]["masks"].append(m)
            done += 1
        if progress is not None:
            progress(done, total)

    if workers <= 1 or len(bounds) < 2 or "fork" not in mp.get_all_start_methods():
        for b in bounds:
            collect(_render_chunk(scene, *b))
        return frames, masks, views
    _WORKER_SCENE = scene
    try:
        with mp.get_context("fork").Pool(min(workers, len(bounds))) as pool:
            for res in pool.imap(_worker_chunk, bounds):
                collect(res)
    finally:
        _WORKER_SCENE = None
    return frames, masks, views


def config_dict(cfg: SynthConfig) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(cfg)
    d["views"] = list(d["views"])
    return d


def generate(out_dir: str | Path, cfg: SynthConfig, *, overwrite: bool = False, progress: bool = True,
             bodies: tuple[BodyModel, BodyModel] | None = None, workers: int = 1) -> tuple[Path, dict[str, float]]:
    """Generate and write a synthetic subject to ``out_dir`` (atomically); returns (path, timings)."""
    from tqdm import tqdm

    from thgs.data.writer import write_subject

    with tqdm(total=None, desc="rendering", unit="img", disable=not progress, leave=False) as bar:
        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        res = synthesize(cfg, progress=tick if progress else None, bodies=bodies, workers=workers)
    t = time.perf_counter()
    path = write_subject(
        out_dir, frames=res.frames, masks=res.masks, fps=cfg.fps, camera=res.camera,
        audio=(res.audio, sp.SAMPLE_RATE), params=res.params, body=dict(model=cfg.body, options={}),
        split=res.split, name=Path(out_dir).name, background=list(BACKGROUND), views=res.views, truth=res.truth,
        source="synth", overwrite=overwrite, progress=progress,
    )
    res.timings["write"] = time.perf_counter() - t
    return path, res.timings
