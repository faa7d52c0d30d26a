"""Fit a body model to detected 2D keypoints: calibration, then the paper's FMA (section 4.5, Eq. 16-17).

Input: the 553-point keypoints of every frame (:mod:`thgs.prepare.layout`), mediapipe's pose world
landmarks, the camera intrinsics. Output: per-frame pose, translation and expression, one shape, the
camera, and the landmark distance (LMD) before and after the fit. Stages (``docs/fma.md`` has the details
and the figures):

1. **init**: per frame, the depth from the size of the shoulders (else the eyes) in the image, the root
   facing the camera, placed under the observed landmarks.
2. **calibrate** on a few well-detected frames spread over the video: shape (anny's 6 phenotype
   parameters plus its proportion correction, :data:`thgs.body.anny.PROPORTION_CHANGES`; SMPL-X betas),
   optionally the focal length (regularised towards the given one), with those frames' poses and
   expressions. For anny the result is converted into an exact body (``load(phenotype=..., local_changes=...)``)
   that the rest of the fit and the subject use.
3. **root** (Eq. 16): root orientation and translation of every frame minimising the keypoint reprojection
   MSE with the body in its rest pose.
4. **fma** (Eq. 17): per-frame pose of every joint, eyes, expression, root and translation, minimising the
   thresholded keypoint distance ``||L2D - Pi(theta, psi)|| * M(L2D, tr)`` plus ``lambda_T`` times the mean
   squared motion of the (subsampled) vertices between consecutive frames, plus a bone-direction term from
   mediapipe's 3D world landmarks and pose/expression priors; windows of frames sharing a few frames with
   the previous one, every frame warm-started from its nearest calibration frame, a window in one batch.

Camera convention (``docs/data-format.md``): OpenCV, ``x_cam = R x_world + t``. During the fit the world is
the camera frame turned 180 degrees about x (a body facing +z, y up, faces the camera); the result moves
the world origin to the body's median position, so the avatar sits near the origin.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel
from thgs.core import lbs
from thgs.prepare.correspond import REGIONS, Correspondence, correspondence_for, pose_kp
from thgs.prepare.layout import NUM_KEYPOINTS

#: camera axes in the fitting world: x right, y down, z forward = world (x, -y, -z)
CAMERA_ROTATION = np.diag([1.0, -1.0, -1.0])

#: bones whose directions mediapipe's world landmarks constrain (layout pose indices, parent -> child)
WORLD_BONES: tuple[tuple[str, str], ...] = (
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
)

REGION_NAMES: tuple[str, ...] = ("face", "body", "hands")

#: the pose landmarks the root stage (Eq. 16) uses besides the face: those the root moves nearly rigidly
ROOT_POSE_POINTS: tuple[str, ...] = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass
class FitInput:
    """What the fit needs from detection.

    Attributes:
        kp2d: [T, 553, 3] float32 keypoints (x px, y px, confidence; confidence 0 = missing).
        world: [T, 33, 4] mediapipe pose world landmarks (metres, hip-centred, x right, y down, z away
            from the camera; visibility last), or None.
        valid: [T] bool, frames where a person was found; the others take the nearest valid frame's values.
        K: [3, 3] camera intrinsics (pixels).
        width, height: frame size in pixels. fps: frame rate.
    """

    kp2d: np.ndarray
    world: np.ndarray | None
    valid: np.ndarray
    K: np.ndarray
    width: int
    height: int
    fps: float


@dataclass
class FitOptions:
    """Options of :func:`fit_subject`; each field's help says what it does."""

    confidence: float = field(default=0.2, metadata={"help": (
        "keypoints with a confidence at or below this are left out (M(L2D, tr) of Eq. 17; 0.2 as in"
        " the paper's 5.2)")})
    lambda_t: float = field(default=0.02, metadata={"help": (
        "weight of the temporal vertex smoothness of Eq. 17 (mean squared motion per frame, in "
        "mm^2)")})
    bone_weight: float = field(default=5.0, metadata={"help": (
        "weight of the bone-direction prior from mediapipe's 3D world landmarks (1 - cosine per "
        "bone)")})
    pose_prior: float = field(default=1.0, metadata={"help": (
        "weight of the L2 prior on joint rotations (radians^2, per-joint scaled: spine/neck/fingers"
        " light, twist heavy)")})
    expression_prior: float = field(default=0.1, metadata={"help": (
        "weight of the L2 prior on expression coefficients")})
    shape_prior: float = field(default=1.0, metadata={"help": (
        "weight of the L2 prior on shape coefficients (phenotype offsets, proportion changes, "
        "betas)")})
    focal_prior: float = field(default=50.0, metadata={"help": (
        "weight of the prior keeping log(focal / given focal) near 0 when the focal length is "
        "refined")})
    region_weights: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0), metadata={"help": (
        "weights of the face, body and hands keypoint terms (each a mean over its confident points)")})
    init_steps: int = field(default=40, metadata={"help": (
        "Adam steps of the initial root/translation fit (default body, before calibration)")})
    calib_frames: int = field(default=24, metadata={"help": (
        "number of well-detected frames (spread over the video) the calibration uses")})
    calib_steps: int = field(default=150, metadata={"help": "Adam steps of the calibration"})
    root_steps: int = field(default=40, metadata={"help": (
        "Adam steps of the Eq. 16 stage (root orientation and translation, rest pose)")})
    fma_steps: int = field(default=60, metadata={"help": "Adam steps per FMA window"})
    window: int = field(default=120, metadata={"help": "frames per FMA window (one batch)"})
    overlap: int = field(default=8, metadata={"help": (
        "frames shared by consecutive windows (re-fitted and cross-faded)")})
    lr: float = field(default=0.02, metadata={"help": (
        "Adam learning rate of rotations (radians); expressions use 2x, translations 0.02x, shape "
        "1x")})
    proportions: bool = field(default=True, metadata={"help": (
        "anny: fit the proportion correction (head scale, arm, spine, neck lengths, shoulder width)"
        " too")})
    bake_shape: bool = field(default=True, metadata={"help": (
        "anny: convert the calibrated phenotype and proportions into an exact body for FMA and the "
        "subject")})
    refine_focal: bool = field(default=False, metadata={"help": (
        "refine the focal length during calibration (barely determined from one view; regularised)")})
    smooth_vertices: int = field(default=300, metadata={"help": (
        "vertices sampled for the smoothness term (plus those the correspondence uses)")})
    seed: int = field(default=0, metadata={"help": "seed of the vertex sampling"})
    threads: int = field(default=1, metadata={"help": "CPU threads of torch during the fit (0: leave as is); the work "
                                              "is many small tensor operations, where one thread is fastest"})

    @staticmethod
    def help() -> dict[str, str]:
        """Field name -> help text."""
        return {f.name: f.metadata["help"] for f in fields(FitOptions)}


@dataclass
class FitResult:
    """The fit of one video (float32 numpy arrays; every frame filled).

    Attributes:
        pose: [T, J, 3] axis-angle; transl: [T, 3]; betas: [S]; expression: [T, E].
        body_spec: ``{"model": name, "options": {...}}`` for :func:`thgs.body.registry.load_body_model`.
        K: [3, 3]; world_to_cam: [4, 4] (OpenCV).
        model_kp2d: [T, 553, 2] projected model points after the fit (NaN where the body has no point).
        lmd_before, lmd_after: region -> mean pixel distance over confident points (before: calibrated body
            in its rest pose with the Eq. 16 root and translation; after: FMA).
        stage_seconds: stage -> seconds. report: everything else worth recording (options, calibration, counts).
    """

    pose: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    expression: np.ndarray
    body_spec: dict[str, Any]
    K: np.ndarray
    world_to_cam: np.ndarray
    model_kp2d: np.ndarray
    lmd_before: dict[str, float]
    lmd_after: dict[str, float]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# the reduced forward pass: joints and a subset of vertices


class PointModel:
    """A body model reduced to its joints and a subset of vertices, for fitting.

    Shapes: ``pose`` [B, J, 3], ``betas`` [S] (shared), ``expression`` [B, E], ``transl`` [B, 3];
    returns (joints [B, J, 3], vertices [B, N, 3]) posed exactly as :meth:`BodyModel.forward` poses them.
    """

    def __init__(self, body: BodyModel, vertex_index: np.ndarray) -> None:
        dev = body.v_template.device
        idx = torch.as_tensor(np.asarray(vertex_index, dtype=np.int64), device=dev)
        self.index = idx
        self.slot = torch.full((body.num_vertices,), -1, dtype=torch.long, device=dev)
        self.slot[idx] = torch.arange(idx.numel(), device=dev)
        self.v0 = body.v_template[idx]
        self.shapedirs = body.shapedirs[idx]
        self.exprdirs = body.exprdirs[idx]
        self.weights = body.lbs_weights[idx]
        self.j0 = body.rest_joints()[0]
        self.jdirs = torch.einsum("jv,vcs->jcs", body.joint_regressor, body.shapedirs)
        if body.posedirs.shape[0]:
            cols = (idx[:, None] * 3 + torch.arange(3, device=dev)).reshape(-1)
            self.posedirs: Tensor | None = body.posedirs[:, cols]
        else:
            self.posedirs = None
        self.parents = body.parents
        self.jumps = lbs.ancestor_jumps(body.parents)

    def __call__(self, pose: Tensor, betas: Tensor | None, expression: Tensor | None,
                 transl: Tensor) -> tuple[Tensor, Tensor]:
        B = pose.shape[0]
        v = self.v0
        j = self.j0
        if betas is not None and betas.numel():
            v = v + torch.einsum("s,ncs->nc", betas, self.shapedirs[..., : betas.shape[0]])
            j = j + torch.einsum("s,jcs->jc", betas, self.jdirs[..., : betas.shape[0]])
        v = v.expand(B, -1, -1)
        if expression is not None and expression.shape[1]:
            v = v + torch.einsum("be,nce->bnc", expression, self.exprdirs[..., : expression.shape[1]])
        rot = lbs.axis_angle_to_matrix(pose)
        if self.posedirs is not None:
            v = v + (lbs.pose_feature(rot) @ self.posedirs).reshape(B, -1, 3)
        kin = lbs.forward_kinematics_jumps(rot, j.expand(B, -1, -1), self.parents, self.jumps)
        verts, _ = lbs.linear_blend_skinning(v, self.weights, kin.skinning_transforms)
        return kin.posed_joints + transl[:, None], verts + transl[:, None]


# ----------------------------------------------------------------------------------------------
# pure helpers


def project(points: Tensor, K: Tensor, focal_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fitting-world points [..., 3] -> (pixels [..., 2], camera depth [...]) through :data:`CAMERA_ROTATION`."""
    x, y, z = points[..., 0], -points[..., 1], -points[..., 2]
    zc = z.clamp_min(1e-3)
    fx, fy = K[0, 0], K[1, 1]
    if focal_scale is not None:
        fx, fy = fx * focal_scale, fy * focal_scale
    return torch.stack([fx * x / zc + K[0, 2], fy * y / zc + K[1, 2]], dim=-1), z


def keypoint_weights(kp2d: np.ndarray, valid: np.ndarray, width: int, height: int, threshold: float) -> np.ndarray:
    """[T, 553] float32: 1 where the keypoint is confident (> threshold), inside the image and the frame valid."""
    x, y, c = kp2d[..., 0], kp2d[..., 1], kp2d[..., 2]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height) & np.isfinite(x) & np.isfinite(y)
    return ((c > threshold) & inside & valid[:, None]).astype(np.float32)


def landmark_distance(pred: np.ndarray, target: np.ndarray, weight: np.ndarray,
                      keypoints: np.ndarray) -> dict[str, float]:
    """LMD per region: mean pixel distance over the (frame, point) pairs with weight > 0.

    pred, target: [T, K, 2]; weight: [T, K]; keypoints: [K] layout indices. A region without such pairs is NaN.
    """
    d = np.linalg.norm(pred - target, axis=-1)
    out: dict[str, float] = {}
    for region in REGION_NAMES:
        m = (weight > 0) & np.isin(keypoints, REGIONS[region])[None]
        out[region] = float(d[m].mean()) if m.any() else float("nan")
    return out


def nearest_valid(valid: np.ndarray) -> np.ndarray:
    """[T] index of the nearest valid frame for every frame (ties go to the earlier); needs one valid frame."""
    idx = np.nonzero(valid)[0]
    if idx.size == 0:
        raise ValueError("fit: no valid frame (no person found in any frame)")
    t = np.arange(len(valid))
    pos = np.clip(np.searchsorted(idx, t), 1, max(1, idx.size - 1)) if idx.size > 1 else np.zeros_like(t)
    if idx.size == 1:
        return np.full_like(t, idx[0])
    left, right = idx[pos - 1], idx[pos]
    return np.where(np.abs(t - left) <= np.abs(right - t), left, right)


def pick_calibration_frames(weight: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` frames spread over the video: the best-detected frame (most confident points) of each
    of ``count`` equal chunks; frames without any confident point are never picked."""
    T = weight.shape[0]
    score = weight.sum(1)
    chunks = np.array_split(np.arange(T), max(1, min(count, T)))
    picks = [int(c[np.argmax(score[c])]) for c in chunks if c.size and score[c].max() > 0]
    return np.array(sorted(set(picks)), dtype=np.int64)


def joint_prior_weights(body: BodyModel) -> np.ndarray:
    """[J] weights of the rotation prior per joint: light on spine, neck, head, eyes, fingers, shoulders,
    elbows and wrists (they move), heavy on twist bones, toes and other helper bones."""
    w = np.ones(body.num_joints, dtype=np.float32)
    for j, name in enumerate(body.joint_names):
        n = name.lower()
        if j == 0:
            w[j] = 0.0
        elif any(k in n for k in ("02.", "03.", "toe", "breast", "tongue", "jaw")) and "spine" not in n and "neck" not in n:
            w[j] = 10.0
        elif any(k in n for k in ("finger", "thumb", "index", "middle", "ring", "pinky", "eye")):
            w[j] = 0.3
        elif any(k in n for k in ("spine", "neck", "head")):
            w[j] = 0.5
    return w


def _bone_pairs(corr: Correspondence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of parent points in corr, rows of child points, pose indices [n, 2]) for WORLD_BONES."""
    row = {int(k): i for i, k in enumerate(corr.keypoints)}
    a, b, pairs = [], [], []
    for p, c in WORLD_BONES:
        kp_p, kp_c = pose_kp(p), pose_kp(c)
        if kp_p in row and kp_c in row:
            a.append(row[kp_p])
            b.append(row[kp_c])
            pairs.append((kp_p, kp_c))
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), np.array(pairs, dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------------------------
# the fitting problem of one batch of frames


@dataclass
class _Data:
    """Per-frame tensors of the whole video (on the fitting device)."""

    target: Tensor        # [T, K, 2] keypoints of the correspondence's points
    weight: Tensor        # [T, K] confident & inside & valid
    region: Tensor        # [K] region id (0 face, 1 body, 2 hands)
    bone_dir: Tensor      # [T, nb, 3] unit world-landmark bone directions in the fitting world
    bone_w: Tensor        # [T, nb]


@dataclass
class _Problem:
    """Everything a loss evaluation needs besides the parameters."""

    model: PointModel
    corr: Correspondence
    K: Tensor
    bone_a: Tensor
    bone_b: Tensor
    joint_w: Tensor
    region_w: Tensor
    expr_range: tuple[float, float] | None
    options: FitOptions
    points_only: PointModel | None = None  # the correspondence's vertices only (root stage)


def _keypoint_term(pred: Tensor, target: Tensor, weight: Tensor, region: Tensor, region_w: Tensor,
                   squared: bool) -> Tensor:
    """Sum over regions of region weight x mean (over weighted points) of the distance in pixels
    (Eq. 17's norm) or its square (Eq. 16's MSE)."""
    d2 = ((pred - target) ** 2).sum(-1)
    d = d2 if squared else torch.sqrt(d2 + 1.0)
    total = pred.new_zeros(())
    for r in range(3):
        m = weight * (region == r).to(weight.dtype)[None]
        s = m.sum()
        if float(region_w[r]) > 0:
            total = total + region_w[r] * (d * m).sum() / s.clamp_min(1.0)
    return total


def _evaluate(pb: _Problem, pose: Tensor, betas: Tensor | None, expr: Tensor | None, transl: Tensor,
              focal_scale: Tensor | None = None, light: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(model points [B, K, 3], pixels [B, K, 2], vertices [B, N, 3], joints [B, J, 3]); ``light``: use the
    model reduced to the correspondence's vertices (no smoothness vertices)."""
    model = pb.points_only if light and pb.points_only is not None else pb.model
    joints, verts = model(pose, betas, expr, transl)
    pts = pb.corr.gather(joints, verts, model.slot)
    px, _ = project(pts, pb.K, focal_scale)
    return pts, px, verts, joints


def _bone_term(pts: Tensor, pb: _Problem, bone_dir: Tensor, bone_w: Tensor) -> Tensor:
    if pb.bone_a.numel() == 0 or float(bone_w.sum()) == 0:
        return pts.new_zeros(())
    d = pts[:, pb.bone_b] - pts[:, pb.bone_a]
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    cos = (d * bone_dir).sum(-1)
    return ((1 - cos) * bone_w).sum() / bone_w.sum().clamp_min(1.0)


def _pose_prior(pose: Tensor, joint_w: Tensor) -> Tensor:
    return ((pose[:, 1:] ** 2).sum(-1) * joint_w[None, 1:]).sum(-1).mean()


def _schedule(opt: torch.optim.Optimizer, step: int, steps: int) -> None:
    """Cosine decay of every group's learning rate from its initial value to a tenth of it."""
    f = 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * step / max(1, steps)))
    for g in opt.param_groups:
        g.setdefault("initial_lr", g["lr"])
        g["lr"] = g["initial_lr"] * f


# ----------------------------------------------------------------------------------------------
# stages


def _initial_root(pb: _Problem, data: _Data, betas: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-frame (root axis-angle [T, 3], translation [T, 3]) from the scale and position of the shoulders
    (else the eyes) in the image, the body facing the camera."""
    corr = pb.corr
    T = data.target.shape[0]
    dev = data.target.device
    zero = torch.zeros(1, pb.model.parents.shape[0], 3, device=dev)
    pts, _, _, _ = _evaluate(pb, zero, betas, None, torch.zeros(1, 3, device=dev), light=True)
    pts = pts[0]
    row = {int(k): i for i, k in enumerate(corr.keypoints)}
    f = float(pb.K[0, 0])
    pairs = [(pose_kp("left_shoulder"), pose_kp("right_shoulder")), (pose_kp("left_eye_outer"), pose_kp("right_eye_outer")),
             (pose_kp("left_ear"), pose_kp("right_ear")), (pose_kp("left_hip"), pose_kp("right_hip"))]
    depth = torch.full((T,), float("nan"), device=dev)
    for a, b in pairs:
        if a not in row or b not in row:
            continue
        ra, rb = row[a], row[b]
        ok = (data.weight[:, ra] > 0) & (data.weight[:, rb] > 0) & torch.isnan(depth)
        size_m = float((pts[ra, :2] - pts[rb, :2]).norm())
        size_px = (data.target[:, ra] - data.target[:, rb]).norm(dim=-1)
        ok = ok & (size_px > 2)
        depth = torch.where(ok, f * size_m / size_px.clamp_min(1e-3), depth)
    good = ~torch.isnan(depth)
    fallback = float(depth[good].median()) if bool(good.any()) else 2.5
    depth = torch.where(good, depth, torch.full_like(depth, fallback)).clamp(0.2, 50.0)
    # place the mean of the observed points under their mean pixel
    w = data.weight
    cnt = w.sum(1).clamp_min(1.0)
    px_mean = (data.target * w[..., None]).sum(1) / cnt[:, None]
    model_mean = (pts[None] * w[..., None]).sum(1) / cnt[:, None]  # [T, 3] rest-pose mean of those points
    cx, cy, fy = float(pb.K[0, 2]), float(pb.K[1, 2]), float(pb.K[1, 1])
    xc = (px_mean[:, 0] - cx) / f * depth
    yc = (px_mean[:, 1] - cy) / fy * depth
    world = torch.stack([xc, -yc, -depth], dim=-1)  # camera -> fitting world
    transl = world - model_mean
    transl[:, 2] = -depth - float(pts[:, 2].mean())
    return torch.zeros(T, 3, device=dev), transl


def _fit_root(pb: _Problem, data: _Data, frames: Tensor, root: Tensor, transl: Tensor, betas: Tensor | None,
              steps: int, progress: Any = None) -> tuple[Tensor, Tensor]:
    """Eq. 16: root orientation and translation of ``frames`` minimising the keypoint reprojection MSE, the
    body in its rest pose with a neutral expression, over the points the root moves nearly rigidly (the
    face, shoulders and hips: the limbs' rest pose would drag the root towards them). Returns updated copies of root, transl (all frames)."""
    root = root.clone()
    transl = transl.clone()
    J = pb.model.parents.shape[0]
    rigid = torch.as_tensor(np.isin(pb.corr.keypoints, REGIONS["face"])
                            | np.isin(pb.corr.keypoints, [pose_kp(n) for n in ROOT_POSE_POINTS]),
                            dtype=torch.float32, device=root.device)
    chunk = max(1, pb.options.window * 4)
    for s in range(0, frames.numel(), chunk):
        fr = frames[s:s + chunk]
        r = root[fr].clone().requires_grad_(True)
        t = transl[fr].clone().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [r], "lr": pb.options.lr * 2}, {"params": [t], "lr": pb.options.lr * 0.5}])
        scale = float(max(pb.K[0, 2], pb.K[1, 2]))
        for k in range(steps):
            _schedule(opt, k, steps)
            opt.zero_grad()
            pose = torch.cat([r[:, None], torch.zeros(fr.numel(), J - 1, 3, device=r.device)], dim=1)
            _, px, _, _ = _evaluate(pb, pose, betas, None, t, light=True)
            loss = _keypoint_term(px / scale, data.target[fr] / scale, data.weight[fr] * rigid, data.region,
                                  pb.region_w, True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress.update(1)
        root[fr] = r.detach()
        transl[fr] = t.detach()
    return root, transl


@dataclass
class _State:
    """Per-frame parameters of the whole video."""

    pose: Tensor     # [T, J, 3]
    transl: Tensor   # [T, 3]
    expr: Tensor     # [T, E]


def _clamp_(pb: _Problem, expr: Tensor) -> None:
    if pb.expr_range is not None:
        expr.clamp_(*pb.expr_range)


@dataclass(frozen=True)
class _Pass:
    """One optimisation of a batch of frames: ``steps`` Adam steps with the body shape ``betas`` fixed, or,
    with ``shape``, the shared shape (and focal) parameters optimised too (calibration). ``smooth``: add
    Eq. 17's vertex smoothness between consecutive frames (the batch must be consecutive) and, with
    ``anchor`` (the previous frame's pose, translation, expression, fixed), between that frame and the
    first one."""

    steps: int
    betas: Tensor | None = None
    smooth: bool = False
    anchor: tuple[Tensor, Tensor, Tensor] | None = None
    shape: "_ShapeParams | None" = None


def _fit_frames(pb: _Problem, data: _Data, frames: Tensor, state: _State, fit: _Pass, progress: Any = None) -> None:
    """Optimise pose, translation and expression of ``frames`` (one batch) in place in ``state`` as ``fit``
    says (:class:`_Pass`)."""
    betas, steps, smooth, anchor, shape = fit.betas, fit.steps, fit.smooth, fit.anchor, fit.shape
    o = pb.options
    pose = state.pose[frames].clone().requires_grad_(True)
    transl = state.transl[frames].clone().requires_grad_(True)
    expr = state.expr[frames].clone().requires_grad_(state.expr.shape[1] > 0)
    groups = [{"params": [pose], "lr": o.lr}, {"params": [transl], "lr": o.lr * 0.25}]
    if expr.requires_grad:
        groups.append({"params": [expr], "lr": o.lr * 2})
    if shape is not None:
        groups += shape.groups(o.lr)
    opt = torch.optim.Adam(groups)
    target, weight = data.target[frames], data.weight[frames]
    bone_dir, bone_w = data.bone_dir[frames], data.bone_w[frames]
    prev_verts = None
    if smooth and anchor is not None:
        with torch.no_grad():
            _, _, prev_verts, _ = _evaluate(pb, anchor[0][None], betas, anchor[2][None], anchor[1][None])
    for k in range(steps):
        _schedule(opt, k, steps)
        opt.zero_grad()
        b = shape.betas() if shape is not None else betas
        fs = shape.focal_scale() if shape is not None else None
        pts, px, verts, _ = _evaluate(pb, pose, b, expr, transl, fs)
        loss = _keypoint_term(px, target, weight, data.region, pb.region_w, False)
        loss = loss + o.bone_weight * _bone_term(pts, pb, bone_dir, bone_w)
        loss = loss + o.pose_prior * _pose_prior(pose, pb.joint_w)
        if expr.shape[1]:
            loss = loss + o.expression_prior * (expr ** 2).sum(-1).mean()
        if smooth and o.lambda_t > 0:
            v = verts * 1000.0  # mm
            seq = v if prev_verts is None else torch.cat([prev_verts * 1000.0, v], dim=0)
            if seq.shape[0] > 1:
                loss = loss + o.lambda_t * ((seq[1:] - seq[:-1]) ** 2).sum(-1).mean()
        if shape is not None:
            loss = loss + shape.prior()
        loss.backward()
        opt.step()
        with torch.no_grad():
            _clamp_(pb, expr)
            if shape is not None:
                shape.clamp_()
        if progress is not None:
            progress.update(1)
    state.pose[frames] = pose.detach()
    state.transl[frames] = transl.detach()
    state.expr[frames] = expr.detach()


class _ShapeParams:
    """Shared shape coefficients (with box constraints) and the focal-length scale, for calibration."""

    def __init__(self, num_betas: int, lower: Tensor, upper: Tensor, refine_focal: bool, options: FitOptions,
                 device: torch.device) -> None:
        self.raw = torch.zeros(num_betas, device=device, requires_grad=num_betas > 0)
        self.lower, self.upper = lower, upper
        self.log_f = torch.zeros((), device=device, requires_grad=refine_focal)
        self.options = options

    def groups(self, lr: float) -> list[dict[str, Any]]:
        out = []
        if self.raw.requires_grad:
            out.append({"params": [self.raw], "lr": lr * 0.5})
        if self.log_f.requires_grad:
            out.append({"params": [self.log_f], "lr": lr * 0.25})
        return out

    def betas(self) -> Tensor:
        return self.raw

    def focal_scale(self) -> Tensor:
        return torch.exp(self.log_f)

    def prior(self) -> Tensor:
        o = self.options
        return o.shape_prior * (self.raw ** 2).sum() + o.focal_prior * self.log_f ** 2

    def clamp_(self) -> None:
        self.raw.copy_(torch.maximum(torch.minimum(self.raw, self.upper), self.lower))


# ----------------------------------------------------------------------------------------------
# body set-up


def _load_body(body: str, options: dict[str, Any], device: str | torch.device) -> BodyModel:
    from thgs.body.registry import load_body_model

    return load_body_model(body, **options).to(device)


def _shape_bounds(model: BodyModel) -> tuple[np.ndarray, np.ndarray]:
    """Box constraints of the shape coefficients: anny's phenotype stays in [0, 1], its proportion columns
    are >= 0 and their change stays in [-1, 1]; other bodies' betas within +-5."""
    S = model.num_betas
    lo, hi = np.full(S, -5.0, dtype=np.float32), np.full(S, 5.0, dtype=np.float32)
    if model.name == "anny":
        from thgs.body.anny import PHENOTYPE_NAMES

        pheno = model.meta.get("phenotype", {})
        for k, name in enumerate(PHENOTYPE_NAMES[:S]):
            v = float(pheno.get(name, 0.5))
            lo[k], hi[k] = -v, 1.0 - v
        lo[len(PHENOTYPE_NAMES):], hi[len(PHENOTYPE_NAMES):] = 0.0, 1.0
    return lo, hi


def _anny_spec(model: BodyModel, betas: np.ndarray) -> dict[str, Any]:
    """Loader options of the calibrated anny: phenotype = converted one + phenotype betas; local changes =
    converted ones + (towards-larger - towards-smaller) proportion columns."""
    from thgs.body.anny import PHENOTYPE_NAMES

    pheno = dict(model.meta.get("phenotype", {}))
    for k, name in enumerate(PHENOTYPE_NAMES):
        pheno[name] = float(np.clip(pheno.get(name, 0.5) + float(betas[k]), 0.0, 1.0))
    changes = dict(model.meta.get("local_changes", {}))
    basis = list(model.meta.get("shape_basis", []))
    base = len(PHENOTYPE_NAMES)
    for i, label in enumerate(basis):
        value = changes.get(label, 0.0) + float(betas[base + 2 * i]) - float(betas[base + 2 * i + 1])
        changes[label] = float(np.clip(value, -1.0, 1.0))
    out: dict[str, Any] = {"phenotype": {k: round(v, 6) for k, v in pheno.items()}}
    changes = {k: round(v, 6) for k, v in changes.items() if abs(v) >= 1e-6}
    if changes:
        out["local_changes"] = changes
    return out


def _expression_range(model: BodyModel) -> tuple[float, float] | None:
    return (0.0, 1.0) if model.name in ("anny", "toy") else None


def _world_bones(inp: FitInput, pairs: np.ndarray, weight_kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit bone directions [T, nb, 3] in the fitting world and their weights [T, nb] from the world
    landmarks (x right, y down, z away from the camera = camera axes; fitting world = (x, -y, -z))."""
    T = inp.kp2d.shape[0]
    nb = pairs.shape[0]
    if inp.world is None or nb == 0:
        return np.zeros((T, nb, 3), np.float32), np.zeros((T, nb), np.float32)
    w = np.asarray(inp.world, dtype=np.float64)
    d = w[:, pairs[:, 1], :3] - w[:, pairs[:, 0], :3]
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    d = d / np.maximum(n, 1e-9)
    d = d * np.array([1.0, -1.0, -1.0])
    vis = np.minimum(w[:, pairs[:, 0], 3], w[:, pairs[:, 1], 3])
    ok = (n[..., 0] > 1e-4) & np.isfinite(d).all(-1) & (vis > 0.5)
    ok = ok & (weight_kp[:, pairs[:, 0]] > 0) & (weight_kp[:, pairs[:, 1]] > 0)
    return np.where(ok[..., None], d, 0.0).astype(np.float32), ok.astype(np.float32)


def _check_input(inp: FitInput) -> None:
    T = inp.kp2d.shape[0]
    if inp.kp2d.ndim != 3 or inp.kp2d.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"fit: kp2d must be [T, {NUM_KEYPOINTS}, 3], got {tuple(inp.kp2d.shape)}")
    if inp.world is not None and tuple(inp.world.shape) != (T, 33, 4):
        raise ValueError(f"fit: world must be [T, 33, 4], got {tuple(inp.world.shape)}")
    if tuple(np.shape(inp.valid)) != (T,):
        raise ValueError(f"fit: valid must be [T], got {tuple(np.shape(inp.valid))}")
    if tuple(np.shape(inp.K)) != (3, 3) or not np.isfinite(inp.K).all() or inp.K[0, 0] <= 0:
        raise ValueError("fit: K must be a finite 3x3 intrinsics matrix with a positive focal length")


# ----------------------------------------------------------------------------------------------
# the public entry point


def fit_subject(inp: FitInput, body: str = "anny", options: FitOptions | None = None, device: str = "cpu",
                progress: bool = True, body_options: dict[str, Any] | None = None) -> FitResult:
    """Fit ``body`` to the keypoints of one video (module docstring: the stages).

    Args:
        inp: the detections and camera. body: ``anny``, ``smplx`` or ``toy``.
        options: :class:`FitOptions`. device: ``cpu`` or ``cuda``. progress: show a progress bar per stage.
        body_options: loader options of the starting body (e.g. SMPL-X ``model_path``); anny's proportion
            basis is added here when ``options.proportions``.
    Returns:
        :class:`FitResult`.
    """
    o = options or FitOptions()
    _check_input(inp)
    before = torch.get_num_threads()
    if o.threads > 0 and torch.device(device).type == "cpu":
        torch.set_num_threads(o.threads)
    try:
        return _fit_subject(inp, body, o, device, progress, body_options)
    finally:
        torch.set_num_threads(before)


def _fit_subject(inp: FitInput, body: str, o: FitOptions, device: str, progress: bool,
                 body_options: dict[str, Any] | None) -> FitResult:
    from tqdm.auto import tqdm

    torch.manual_seed(o.seed)
    dev = torch.device(device)
    T = inp.kp2d.shape[0]
    valid = np.asarray(inp.valid, dtype=bool)
    seconds: dict[str, float] = {}
    report: dict[str, Any] = {"options": asdict(o), "body": body, "num_frames": T,
                              "valid_frames": int(valid.sum())}
    K = torch.as_tensor(np.asarray(inp.K, dtype=np.float32), device=dev)
    base_options = dict(body_options or {})
    if body == "anny" and o.proportions:
        from thgs.body.anny import PROPORTION_CHANGES

        base_options.setdefault("shape_basis", list(PROPORTION_CHANGES))

    def bar(total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=not progress, leave=False)

    def setup(model: BodyModel) -> tuple[_Problem, _Data, Correspondence]:
        corr = correspondence_for(model)
        rng = np.random.default_rng(o.seed)
        V = model.num_vertices
        teeth = model.meta.get("teeth_vertex_range")
        pool = np.arange(teeth[0] if teeth else V)
        sample = rng.choice(pool, size=min(o.smooth_vertices, pool.size), replace=False)
        vidx = np.unique(np.concatenate([corr.vertices_used(), sample]))
        pm = PointModel(model, vidx)
        kp = corr.keypoints
        w_all = keypoint_weights(inp.kp2d, valid, inp.width, inp.height, o.confidence)
        region = np.full(len(kp), 3, dtype=np.int64)
        for r, name in enumerate(REGION_NAMES):
            region[np.isin(kp, REGIONS[name])] = r
        a, b, pairs = _bone_pairs(corr)
        bdir, bw = _world_bones(inp, pairs, w_all)
        data = _Data(target=torch.as_tensor(inp.kp2d[:, kp, :2], dtype=torch.float32, device=dev),
                     weight=torch.as_tensor(w_all[:, kp], device=dev),
                     region=torch.as_tensor(region, device=dev),
                     bone_dir=torch.as_tensor(bdir, device=dev), bone_w=torch.as_tensor(bw, device=dev))
        pb = _Problem(model=pm, corr=corr, K=K, bone_a=torch.as_tensor(a, device=dev),
                      bone_b=torch.as_tensor(b, device=dev),
                      joint_w=torch.as_tensor(joint_prior_weights(model), device=dev),
                      region_w=torch.tensor(list(o.region_weights), dtype=torch.float32, device=dev),
                      expr_range=_expression_range(model), options=o,
                      points_only=PointModel(model, corr.vertices_used()))
        return pb, data, corr

    # -- stage 1: init + calibration -------------------------------------------------------------
    t0 = time.perf_counter()
    model = _load_body(body, base_options, dev)
    seconds["load_body"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pb, data, corr = setup(model)
    if float(data.weight.sum()) == 0:
        raise ValueError("fit: no confident keypoint in any frame (nothing to fit)")
    root, transl = _initial_root(pb, data, None)
    has_data = valid & (data.weight.sum(1) > 0).cpu().numpy()
    all_frames = torch.as_tensor(np.nonzero(has_data)[0], device=dev)
    with bar(o.init_steps * max(1, math.ceil(all_frames.numel() / (o.window * 4))), "init") as pbar:
        root, transl = _fit_root(pb, data, all_frames, root, transl, None, o.init_steps, pbar)
    seconds["init"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calib = pick_calibration_frames(data.weight.cpu().numpy(), o.calib_frames)
    report["calibration_frames"] = calib.tolist()
    J, E = model.num_joints, model.num_expressions
    lo, hi = _shape_bounds(model)
    shape = _ShapeParams(model.num_betas, torch.as_tensor(lo, device=dev), torch.as_tensor(hi, device=dev),
                         o.refine_focal, o, dev)
    cframes = torch.as_tensor(calib, device=dev)
    cstate = _State(pose=torch.zeros(len(calib), J, 3, device=dev), transl=transl[cframes].clone(),
                    expr=torch.zeros(len(calib), E, device=dev))
    cstate.pose[:, 0] = root[cframes]
    local = torch.arange(len(calib), device=dev)
    cdata = _Data(target=data.target[cframes], weight=data.weight[cframes], region=data.region,
                  bone_dir=data.bone_dir[cframes], bone_w=data.bone_w[cframes])
    with bar(o.calib_steps, "calibrate") as pbar:
        _fit_frames(pb, cdata, local, cstate, _Pass(o.calib_steps, shape=shape), progress=pbar)
    betas_fit = shape.betas().detach().cpu().numpy().astype(np.float32)
    focal_scale = float(shape.focal_scale().detach())
    K = K.clone()
    K[0, 0] *= focal_scale
    K[1, 1] *= focal_scale
    report["calibration"] = {"betas": betas_fit.round(5).tolist(), "focal_scale": round(focal_scale, 5),
                             "shape_names": list(model.meta.get("shape_names", [])),
                             "frames": len(calib)}
    seconds["calibrate"] = time.perf_counter() - t0

    # -- the calibrated body ---------------------------------------------------------------------
    t0 = time.perf_counter()
    if body == "anny" and o.bake_shape:
        spec_options = _anny_spec(model, betas_fit)
        for key in ("cache_dir",):
            if key in base_options:
                spec_options[key] = base_options[key]
        model = _load_body(body, spec_options, dev)
        betas_t: Tensor | None = None
        betas_out = np.zeros(model.num_betas, dtype=np.float32)
        report["calibration"]["anny"] = {k: v for k, v in spec_options.items() if k != "cache_dir"}
    else:
        spec_options = dict(base_options)
        betas_t = torch.as_tensor(betas_fit, device=dev)
        betas_out = betas_fit
    pb, data, corr = setup(model)
    pb.K = K
    seconds["load_calibrated_body"] = time.perf_counter() - t0

    # -- stage 2: Eq. 16 on the calibrated body --------------------------------------------------
    t0 = time.perf_counter()
    with bar(o.root_steps * max(1, math.ceil(all_frames.numel() / (o.window * 4))), "root (Eq. 16)") as pbar:
        root, transl = _fit_root(pb, data, all_frames, root, transl, betas_t, o.root_steps, pbar)
    seconds["root"] = time.perf_counter() - t0
    # frames without data start from their nearest frame with data (the smoothness term then bridges them)
    fill = torch.as_tensor(nearest_valid(has_data), device=dev)
    root, transl = root[fill], transl[fill]
    state = _State(pose=torch.zeros(T, J, 3, device=dev), transl=transl.clone(), expr=torch.zeros(T, E, device=dev))
    state.pose[:, 0] = root
    w_np = data.weight.cpu().numpy()
    before_px = _project_all(pb, state, betas_t)
    # warm start: every frame's joints and expression from its nearest calibration frame (fitted there)
    near_calib = torch.as_tensor(np.abs(np.arange(T)[:, None] - calib[None]).argmin(1), device=dev)
    state.pose[:, 1:] = cstate.pose[near_calib, 1:]
    state.expr[:] = cstate.expr[near_calib]
    target_np = data.target.cpu().numpy()
    lmd_before = landmark_distance(before_px, target_np, w_np, corr.keypoints)

    # -- stage 3: FMA (Eq. 17), windowed and warm-started -----------------------------------------
    t0 = time.perf_counter()
    windows = _windows(T, o.window, o.overlap)
    with bar(len(windows) * o.fma_steps, "FMA (Eq. 17)") as pbar:
        prev_end = 0
        for start, stop in windows:
            frames = torch.arange(start, stop, device=dev)
            if start > 0:
                kept = (state.pose[frames].clone(), state.transl[frames].clone(), state.expr[frames].clone())
            anchor = None
            if start > 0:
                a = start - 1
                anchor = (state.pose[a], state.transl[a], state.expr[a])
            _fit_frames(pb, data, frames, state, _Pass(o.fma_steps, betas=betas_t, smooth=True, anchor=anchor),
                        progress=pbar)
            if start > 0 and prev_end > start:
                # cross-fade the overlap between the previous window's and this window's solutions
                n = prev_end - start
                ramp = torch.linspace(0, 1, n + 2, device=dev)[1:-1]
                ov = torch.arange(start, prev_end, device=dev)
                state.pose[ov] = (1 - ramp)[:, None, None] * kept[0][:n] + ramp[:, None, None] * state.pose[ov]
                state.transl[ov] = (1 - ramp)[:, None] * kept[1][:n] + ramp[:, None] * state.transl[ov]
                state.expr[ov] = (1 - ramp)[:, None] * kept[2][:n] + ramp[:, None] * state.expr[ov]
            prev_end = stop
    seconds["fma"] = time.perf_counter() - t0

    # -- fill invalid frames, measure, package -----------------------------------------------------
    near = torch.as_tensor(nearest_valid(has_data), device=dev)
    state = _State(pose=state.pose[near], transl=state.transl[near], expr=state.expr[near])
    after_px = _project_all(pb, state, betas_t)
    lmd_after = landmark_distance(after_px, target_np, w_np, corr.keypoints)
    model_kp2d = np.full((T, NUM_KEYPOINTS, 2), np.nan, dtype=np.float32)
    model_kp2d[:, corr.keypoints] = after_px
    transl_np = state.transl.cpu().numpy().astype(np.float64)
    centre = np.median(transl_np[has_data], axis=0)
    w2c = np.eye(4)
    w2c[:3, :3] = CAMERA_ROTATION
    w2c[:3, 3] = CAMERA_ROTATION @ centre
    report.update({
        "lmd_before": lmd_before, "lmd_after": lmd_after,
        "confident_points": {r: int((w_np * np.isin(corr.keypoints, REGIONS[r])[None]).sum()) for r in REGION_NAMES},
        "correspondence_points": int(corr.num_points), "windows": len(windows),
        "focal": [float(K[0, 0]), float(K[1, 1])],
    })
    spec = {"model": body, "options": {k: v for k, v in spec_options.items() if k != "cache_dir"}}
    return FitResult(
        pose=state.pose.cpu().numpy().astype(np.float32), transl=(transl_np - centre).astype(np.float32),
        betas=betas_out.astype(np.float32), expression=state.expr.cpu().numpy().astype(np.float32),
        body_spec=spec, K=K.cpu().numpy().astype(np.float32), world_to_cam=w2c.astype(np.float32),
        model_kp2d=model_kp2d, lmd_before=lmd_before, lmd_after=lmd_after,
        stage_seconds={k: round(v, 3) for k, v in seconds.items()}, report=report)


def _windows(T: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive windows of ``window`` frames sharing ``overlap`` frames."""
    window = max(2, int(window))
    overlap = min(max(0, int(overlap)), window - 1)
    out, start = [], 0
    while True:
        stop = min(T, start + window)
        out.append((start, stop))
        if stop >= T:
            return out
        start = stop - overlap


def _project_all(pb: _Problem, state: _State, betas: Tensor | None, chunk: int = 256) -> np.ndarray:
    """[T, K, 2] projected model points of every frame."""
    out = []
    with torch.no_grad():
        for s in range(0, state.pose.shape[0], chunk):
            sl = slice(s, s + chunk)
            _, px, _, _ = _evaluate(pb, state.pose[sl], betas, state.expr[sl], state.transl[sl], light=True)
            out.append(px.cpu().numpy())
    return np.concatenate(out).astype(np.float32)


__all__ = [
    "CAMERA_ROTATION", "REGION_NAMES", "WORLD_BONES", "FitInput", "FitOptions", "FitResult", "PointModel",
    "fit_subject", "joint_prior_weights", "keypoint_weights", "landmark_distance", "nearest_valid",
    "pick_calibration_frames", "project",
]
