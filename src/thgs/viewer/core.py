"""The viewer's core: a :class:`ViewerState` (what the user chose) -> a rendered image, with no GUI.

The GUI (:mod:`thgs.viewer.app`) only edits a ``ViewerState`` and shows what :func:`render_state`
returns, so everything here is testable without a browser.

Cameras: viser reports the browser camera as camera-to-world rotation ``wxyz`` and ``position`` in the
OpenCV convention (+z forward, -y up, +x right), with a vertical field of view and the canvas aspect;
:func:`camera_from_view` turns that into a :class:`Camera` (the same convention), and
:func:`view_from_camera` goes back (used to put the browser at the training camera).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from thgs.avatar.inference import Animator, model_fingerprint
from thgs.avatar.model import FrameInputs, THGSAvatar
from thgs.core.rotations import matrix_to_quaternion, quaternion_to_matrix
from thgs.render.base import Camera, GaussianBatch, render, render_batch
from thgs.viewer.session import AvatarSession

ExpressionSource = Literal["sequence", "sliders", "blend"]
MAX_SLIDERS = 64
GENERIC_SLIDERS = 10


@dataclass(frozen=True)
class ViewerState:
    """What the user has chosen; immutable (the GUI replaces it on every change).

    frame: index into the session's driving sequence.
    expression_source: 'sequence' (the tracked expression of the frame), 'sliders' (``sliders``, the
        first len(sliders) coefficients, the rest zero) or 'blend' ((1 - blend) * expr_a + blend * expr_b,
        the interpolation of the paper's Fig. 6).
    saam / leb: the audio module and the learned expression blend shapes on or off (no effect when the
        avatar has none).
    camera: the view (None: the training camera); height: render height in pixels (0: the camera's own).
    """

    frame: int = 0
    expression_source: ExpressionSource = "sequence"
    sliders: tuple[float, ...] = ()
    expr_a: tuple[float, ...] = ()
    expr_b: tuple[float, ...] = ()
    blend: float = 0.0
    saam: bool = True
    leb: bool = True
    camera: Camera | None = field(default=None, compare=False)
    height: int = 0

    def with_(self, **changes) -> "ViewerState":
        return replace(self, **changes)


# -- expressions ---------------------------------------------------------------------------------
def slider_names(names: list[str]) -> list[str]:
    """The expression components that get a slider: every named one (up to ``MAX_SLIDERS``), or the first
    ``GENERIC_SLIDERS`` when the body only has generic names (``expr000``...; SMPL-X)."""
    generic = all(n.startswith("expr") and n[4:].isdigit() for n in names)
    return list(names[: GENERIC_SLIDERS if generic else MAX_SLIDERS])


def slider_range(names: list[str]) -> tuple[float, float]:
    """Slider limits: [-3, 3] for generic (PCA-like SMPL-X) components, [-1, 2] for named actions."""
    generic = all(n.startswith("expr") and n[4:].isdigit() for n in names)
    return (-3.0, 3.0) if generic else (-1.0, 2.0)


def _vector(values: tuple[float, ...], E: int) -> Tensor:
    out = torch.zeros(E)
    k = min(E, len(values))
    if k:
        out[:k] = torch.tensor(values[:k], dtype=torch.float32)
    return out


def state_expression(session: AvatarSession, state: ViewerState) -> Tensor:
    """The expression coefficients [E] the state asks for."""
    E = session.model.body.num_expressions
    if state.expression_source == "sequence":
        return session.drive.expression[_frame(session, state)].float()
    if state.expression_source == "sliders":
        return _vector(state.sliders, E)
    if state.expression_source == "blend":
        t = float(min(1.0, max(0.0, state.blend)))
        return (1 - t) * _vector(state.expr_a, E) + t * _vector(state.expr_b, E)
    raise ValueError(f"ViewerState.expression_source: unknown value {state.expression_source!r}")


def _frame(session: AvatarSession, state: ViewerState) -> int:
    return int(min(max(0, state.frame), session.num_frames - 1))


def state_inputs(session: AvatarSession, state: ViewerState) -> FrameInputs:
    """The avatar inputs of the state's frame with its expression (on the model's device)."""
    d = session.drive
    t = _frame(session, state)
    dev = session.device
    audio = d.audio[t].to(dev) if (d.audio is not None and state.saam) else None
    return FrameInputs(pose=d.pose[t].to(dev), transl=d.transl[t].to(dev), betas=d.betas.to(dev),
                       expression=state_expression(session, state).to(dev), audio_window=audio, frame_index=None)


@contextlib.contextmanager
def switches(model: THGSAvatar, saam: bool, leb: bool, trained: dict[str, bool]) -> Iterator[None]:
    """Temporarily switch SAAM and the learned blend-shape residual on/off (they are on only if trained on)."""
    with model.groups_switched(saam=bool(saam) and trained.get("saam", False),
                               blendshapes=bool(leb) and trained.get("blendshapes", False)):
        yield


# -- cameras -------------------------------------------------------------------------------------
def camera_from_view(position, wxyz, fov_y: float, aspect: float, height: int) -> Camera:
    """A pinhole camera from a viser-style view: camera-to-world rotation ``wxyz`` [4] and ``position`` [3]
    (OpenCV axes), vertical field of view ``fov_y`` (radians), width / height ``aspect``, image ``height``."""
    if not (0 < fov_y < math.pi) or aspect <= 0 or height <= 0:
        raise ValueError(f"camera_from_view: bad fov {fov_y}, aspect {aspect} or height {height}")
    q = torch.as_tensor(np.asarray(wxyz, dtype=np.float64), dtype=torch.float32)
    R = quaternion_to_matrix(q / q.norm())  # camera -> world
    t = torch.as_tensor(np.asarray(position, dtype=np.float64), dtype=torch.float32)
    w2c = torch.eye(4)
    w2c[:3, :3] = R.T
    w2c[:3, 3] = -R.T @ t
    H = int(height)
    W = max(1, int(round(H * aspect)))
    f = 0.5 * H / math.tan(fov_y / 2)
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float32)
    return Camera(K, w2c, W, H)


@dataclass
class View:
    """A viser-style camera: position [3], wxyz [4] (camera-to-world), look_at [3], up [3], fov_y (rad)."""

    position: np.ndarray
    wxyz: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov_y: float


def view_from_camera(camera: Camera, target: Tensor | np.ndarray) -> View:
    """The browser view that matches ``camera``, orbiting about the point of its optical axis nearest ``target``."""
    w2c = camera.world_to_cam.float().cpu()
    R = w2c[:3, :3].T  # camera -> world
    c = camera.center.float().cpu()
    forward = R[:, 2]
    dist = float(torch.dot(torch.as_tensor(np.asarray(target), dtype=torch.float32) - c, forward))
    dist = dist if dist > 1e-3 else 1.0
    fov = 2 * math.atan(0.5 * camera.height / float(camera.K[1, 1]))
    return View(position=c.numpy().astype(np.float64), wxyz=matrix_to_quaternion(R).numpy().astype(np.float64),
                look_at=(c + dist * forward).numpy().astype(np.float64), up=(-R[:, 1]).numpy().astype(np.float64),
                fov_y=fov)


def state_camera(session: AvatarSession, state: ViewerState) -> Camera:
    cam = state.camera if state.camera is not None else session.camera
    if state.height and state.height != cam.height:
        cam = cam.scaled(state.height / cam.height)
    return cam


# -- rendering ------------------------------------------------------------------------------------
def session_animator(session: AvatarSession, state: ViewerState) -> Animator:
    """The fast-path :class:`Animator` of the session for the state's SAAM / LEB switches (with the
    :func:`switches` semantics), cached on the session and rebuilt when the switches, the model's weights
    or active groups, or the driving sequence's betas change. On CUDA its animation is a CUDA graph."""
    model = session.model
    d = session.drive
    with switches(model, state.saam, state.leb, session.trained_active):
        key = (model_fingerprint(model), id(d), id(d.betas), d.betas._version)
        cached = session.animator_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        anim = Animator.from_model(model, betas=d.betas.to(session.device))
    if session.device.type == "cuda":
        anim.capture(batch=1, audio_shape=tuple(d.audio.shape[1:]) if d.audio is not None else (8, 16, 0))
    session.animator_cache = (key, anim)
    return anim


@torch.no_grad()
def render_state_tensor(session: AvatarSession, state: ViewerState) -> Tensor:
    """The image for ``state`` as a uint8 [H, W, 3] tensor on the session's device (for a GPU JPEG encoder)."""
    inp = state_inputs(session, state)
    gs = session_animator(session, state)(inp.pose, inp.expression, inp.audio_window, inp.transl)
    cam = state_camera(session, state).to(session.device)
    res = render(gs, cam, session.background.to(session.device), mode=session.mode,  # type: ignore[arg-type]
                 backend=session.backend, outputs="rgb", surfels_as_3dgs=session.surfels_as_3dgs)
    return (res.rgb.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def render_views_tensor(session: AvatarSession, state: ViewerState, cameras: list[Camera]) -> list[Tensor]:
    """The images of ``state`` from several cameras (one per connected client), uint8 [H, W, 3] tensors on the
    session's device, in the cameras' order: the avatar is posed once, and the views that share an image
    size (and clipping planes) are drawn in one :func:`thgs.render.base.render_batch` call (one rasterizer
    call on gsplat). Each image equals :func:`render_state_tensor` with that camera."""
    if not cameras:
        return []
    inp = state_inputs(session, state)
    gs = session_animator(session, state)(inp.pose, inp.expression, inp.audio_window, inp.transl)
    dev = session.device
    groups: dict[tuple, list[int]] = {}
    for i, cam in enumerate(cameras):
        groups.setdefault((cam.width, cam.height, cam.near, cam.far), []).append(i)
    images: list[Tensor | None] = [None] * len(cameras)
    for idx in groups.values():
        res = render_batch(GaussianBatch.repeat(gs, len(idx)), [cameras[i].to(dev) for i in idx],
                           session.background.to(dev), mode=session.mode,  # type: ignore[arg-type]
                           backend=session.backend, outputs="rgb", surfels_as_3dgs=session.surfels_as_3dgs)
        rgb = (res.rgb.clamp(0, 1) * 255).round().to(torch.uint8)
        for b, i in enumerate(idx):
            images[i] = rgb[b]
    return images  # type: ignore[return-value]


def render_state(session: AvatarSession, state: ViewerState) -> np.ndarray:
    """The image for ``state``: uint8 [H, W, 3] (the avatar posed by :func:`session_animator`: the same
    Gaussians as ``model(state_inputs(...))`` under :func:`switches`)."""
    return render_state_tensor(session, state).cpu().numpy()


@dataclass
class BodyGeometry:
    """The posed template mesh and skeleton of a frame: vertices [V, 3], faces [F, 3], joints [J, 3],
    bones [B, 2, 3] (one segment per joint with a parent)."""

    vertices: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    bones: np.ndarray


@torch.no_grad()
def body_geometry(session: AvatarSession, state: ViewerState) -> BodyGeometry:
    """The body model posed with the state's frame and expression (for the mesh and skeleton overlays)."""
    body = session.model.body
    inp = state_inputs(session, state)
    out = body(inp.pose[None], inp.betas[None] if inp.betas is not None else None,
               inp.expression[None] if inp.expression is not None else None, inp.transl[None])
    joints = out.joints[0].float().cpu().numpy()
    parents = body.parents.cpu().numpy()
    child = np.nonzero(parents >= 0)[0]
    bones = np.stack([joints[parents[child]], joints[child]], axis=1)
    return BodyGeometry(vertices=out.vertices[0].float().cpu().numpy(), faces=body.faces.cpu().numpy().astype(np.int32),
                        joints=joints, bones=bones)


def body_center(session: AvatarSession, frame: int = 0) -> np.ndarray:
    """Centre of the posed body's bounding box at ``frame`` [3] (the orbit target)."""
    g = body_geometry(session, ViewerState(frame=frame))
    return (g.vertices.min(0) + g.vertices.max(0)) / 2


__all__ = ["BodyGeometry", "View", "ViewerState", "body_center", "body_geometry", "camera_from_view", "render_state", "render_state_tensor", "render_views_tensor",
           "session_animator", "slider_names", "slider_range", "state_camera", "state_expression", "state_inputs",
           "switches", "view_from_camera"]
