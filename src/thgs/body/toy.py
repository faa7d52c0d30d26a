"""``toy``: a procedural human body built in code, with SMPL-X's 55 joints.

It needs no file and no licence, so every code path (shape, expression, jaw, hands, teeth, skinning
grids, training) can run anywhere, including tests.

Conventions: metres, y up, facing +z, the body's left is +x; T-pose with the arms along ±x and the palms
down; **the feet stand on y = 0** (the pelvis joint is at y = 0.95) and the top of the head is at about
y = 1.73.

Construction: every body part is a closed lat-long surface (a pole, rings, a pole) swept along a straight
axis with a radius profile and rounded caps, oriented so that its normals point outwards: torso, neck,
head, an arm per side (upper and lower arm in one welded tube), a leg per side (thigh and shank in one
tube), a foot per side, a palm per side, five three-segment fingers per hand and two eyeballs. Parts
overlap where they meet instead of being stitched together; each one is watertight on its own.

The head is an ellipsoid with a nose, eye sockets and brows pushed out of (or into) its surface, and a
mouth: the surface folds inwards between an upper-lip ring and a lower-lip ring into a small cavity, so
the lips can part (jaw pose or the ``jaw_open`` expression) and reveal an opening. The lower lip, the
lower half of the cavity and the face below the mouth are skinned to ``jaw`` in front of a plane 1-5 cm
behind the jaw joint (smoothly), the rest of the head to ``head``, and the lower back of the head
partly to ``neck``. The head mask is the head surface and the eyeballs (not the neck).

Mouth definition: centre 8 mm behind the midpoint of the two lip rows at the front, forward +z, up +y,
width = the x extent of the mouth opening; the lips are the two lip rows where the mouth is open.

Skinning weights: each vertex of a part gets a softmax over the part's candidate joints of
``-(d_j - r_j) / tau``, where ``d_j`` is the distance to joint j's bone segment and ``r_j`` an offset
that puts the torso and the limbs on one scale; neighbouring bones therefore blend smoothly across
every joint. The joint regressor reproduces the rest joints exactly: each joint is the minimum-norm
affine combination of the vertices of the three rings of its part nearest to it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from thgs.body.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from thgs.body.model import BodyModel, MouthDefinition
from thgs.body.primitives import Rings, ellipsoid, latlong_faces, ring_angles, tube, unit

EXPRESSION_NAMES: tuple[str, ...] = (
    "jaw_open", "lip_round", "smile", "frown", "brow_raise", "blink", "mouth_left", "mouth_right",
)
"""Named expression components; a coefficient of 1 is a full, natural expression."""

SHAPE_NAMES: tuple[str, ...] = ("height", "girth", "shoulder_width", "head_size")
"""Shape components; a coefficient of 1 is roughly one standard deviation."""

# ---------------------------------------------------------------------------------------------
# Dimensions (metres)
_HEAD_CENTER = np.array([0.0, 1.61, 0.01])
_HEAD_RADII = np.array([0.078, 0.12, 0.10])  # x (half width), y (half height), z (half depth)
_MOUTH_Y = 1.545
_MOUTH_HALF_ANGLE = math.radians(27.0)  # angular half-width of the mouth on the head's rings
_LIP_GAP = 0.003  # rest gap between the lips at the centre
_EYE_Y = 1.615
_EYE_X = 0.032
_EYE_RADIUS = 0.0125
_JAW_OPEN_ANGLE = 0.30  # radians of jaw rotation that expression ``jaw_open`` = 1 mimics
_KNUCKLE_X = 0.775
_ARM_Y = 1.41


def _vec(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float64)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# Finger layout for the left hand: (name, knuckle z, segment lengths proximal/middle/distal, radius).
_FINGERS = (
    ("index", 0.027, (0.040, 0.024, 0.022), 0.0085),
    ("middle", 0.008, (0.044, 0.027, 0.023), 0.0090),
    ("ring", -0.011, (0.041, 0.026, 0.022), 0.0085),
    ("pinky", -0.029, (0.032, 0.019, 0.019), 0.0075),
)
_THUMB_DIR = unit(_vec(0.7, -0.12, 0.7))
_THUMB_BASE = _vec(0.695, 1.40, 0.028)
_THUMB_LENGTHS = (0.040, 0.032, 0.030)
_THUMB_RADIUS = 0.0105


def _skeleton() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rest joints of the left side and the centre (right = mirrored) and extra end points."""
    j: dict[str, np.ndarray] = {
        "pelvis": _vec(0, 0.95, 0), "spine1": _vec(0, 1.06, 0), "spine2": _vec(0, 1.18, 0),
        "spine3": _vec(0, 1.30, 0), "neck": _vec(0, 1.45, 0), "head": _vec(0, 1.53, 0),
        "jaw": _vec(0, 1.575, 0.015),
        "left_eye_smplhf": _vec(_EYE_X, _EYE_Y, 0.0),  # z set from the head surface below
        "left_hip": _vec(0.085, 0.88, 0), "left_knee": _vec(0.085, 0.50, 0), "left_ankle": _vec(0.085, 0.085, 0),
        "left_collar": _vec(0.035, _ARM_Y, 0), "left_shoulder": _vec(0.17, _ARM_Y, 0),
        "left_elbow": _vec(0.43, _ARM_Y, 0), "left_wrist": _vec(0.67, _ARM_Y, 0),
    }
    ends: dict[str, np.ndarray] = {
        "head_top": _HEAD_CENTER + _vec(0, _HEAD_RADII[1], 0), "chin": _vec(0, 1.50, 0.08),
        "pelvis_bottom": _vec(0, 0.80, 0),
        "left_heel": _vec(0.085, 0.040, -0.045), "left_toe": _vec(0.085, 0.035, 0.14),
    }
    # the foot joint sits on the foot's axis
    heel, toe = ends["left_heel"], ends["left_toe"]
    t = (0.10 - heel[2]) / (toe[2] - heel[2])
    j["left_foot"] = heel + t * (toe - heel)
    ends["left_toe_tip"] = toe + 0.03 * unit(toe - heel)
    for name, kz, lengths, _r in _FINGERS:
        base = _vec(_KNUCKLE_X, _ARM_Y, kz)
        pos = base.copy()
        for i, seg in enumerate(lengths, start=1):
            j[f"left_{name}{i}"] = pos.copy()
            pos = pos + _vec(seg, 0, 0)
        ends[f"left_{name}_tip"] = pos
    pos = _THUMB_BASE.copy()
    for i, seg in enumerate(_THUMB_LENGTHS, start=1):
        j[f"left_thumb{i}"] = pos.copy()
        pos = pos + seg * _THUMB_DIR
    ends["left_thumb_tip"] = pos
    return j, ends


def _mirror_name(name: str) -> str:
    return "right_" + name[5:] if name.startswith("left_") else name


def _mirror(p: np.ndarray) -> np.ndarray:
    return p * _vec(-1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Mesh assembly


@dataclass
class _Part:
    name: str
    start: int
    stop: int
    rings: np.ndarray  # [R, n] vertex indices
    ring_s: np.ndarray  # [R] axial coordinate of each ring
    origin: np.ndarray  # [3]
    direction: np.ndarray  # [3]


class _MeshBuilder:
    def __init__(self) -> None:
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.axis_points: list[np.ndarray] = []
        self.parts: dict[str, _Part] = {}
        self.count = 0

    def add(self, name: str, rings: np.ndarray, poles: tuple[np.ndarray, np.ndarray], ring_s: np.ndarray,
            origin: np.ndarray, direction: np.ndarray) -> _Part:
        """rings [R, n, 3]; poles (start, end); ring_s [R]."""
        R, n = rings.shape[:2]
        verts = np.concatenate([poles[0][None], rings.reshape(-1, 3), poles[1][None]])
        base = self.count
        self.vertices.append(verts)
        self.faces.append(latlong_faces(R, n) + base)
        s_all = np.concatenate([[ring_s[0]], np.repeat(ring_s, n), [ring_s[-1]]])
        self.axis_points.append(origin + s_all[:, None] * direction)
        part = _Part(name, base, base + len(verts), base + 1 + np.arange(R * n).reshape(R, n),
                     np.asarray(ring_s, dtype=np.float64), origin, direction)
        self.parts[name] = part
        self.count += len(verts)
        return part


# ---------------------------------------------------------------------------------------------
# The head


def _mouth_window(theta: np.ndarray) -> np.ndarray:
    """1 across the mouth, 0 beyond its corners (theta measured from +z towards +x)."""
    a = np.abs(np.angle(np.exp(1j * theta)))
    return 1.0 - _smoothstep(0.55 * _MOUTH_HALF_ANGLE, _MOUTH_HALF_ANGLE, a)


def _head_rx(y: np.ndarray) -> np.ndarray:
    below = np.clip((_HEAD_CENTER[1] - y) / _HEAD_RADII[1], 0, 1)
    return _HEAD_RADII[0] * (1.0 - 0.22 * _smoothstep(0.0, 1.0, below))


def _head_surface(y: np.ndarray, theta: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Points on the head at height y [R, n] and angle theta [n] (from +z towards +x), with the facial
    relief, then pushed ``depth`` towards the head's vertical axis (the mouth cavity)."""
    c = _HEAD_CENTER
    q = np.clip((y - c[1]) / _HEAD_RADII[1], -1, 1)
    cphi = np.sqrt(1 - q * q)
    x = _head_rx(y) * cphi * np.sin(theta)
    z = _HEAD_RADII[2] * cphi * np.cos(theta)
    # facial relief along +z, on the front only
    front = _smoothstep(0.55, 0.9, np.cos(theta))
    X, Y = x + c[0], y
    nose = (0.024 * np.exp(-(X ** 2 / (2 * 0.011 ** 2) + (Y - 1.585) ** 2 / (2 * 0.016 ** 2)))
            + 0.010 * np.exp(-(X ** 2 / (2 * 0.008 ** 2) + (Y - 1.612) ** 2 / (2 * 0.018 ** 2))))
    sockets = -0.008 * np.exp(-((np.abs(X) - _EYE_X) ** 2 + (Y - _EYE_Y) ** 2) / (2 * 0.012 ** 2))
    brows = 0.004 * np.exp(-((np.abs(X) - _EYE_X) ** 2 / (2 * 0.016 ** 2) + (Y - 1.642) ** 2 / (2 * 0.006 ** 2)))
    lips = 0.004 * np.exp(-(X ** 2 / (2 * 0.018 ** 2) + (Y - _MOUTH_Y) ** 2 / (2 * 0.007 ** 2)))
    chin = 0.014 * np.exp(-(X ** 2 / (2 * 0.03 ** 2) + (Y - 1.515) ** 2 / (2 * 0.022 ** 2)))
    z = z + front * (nose + sockets + brows + lips + chin)
    rho = np.sqrt(x * x + z * z)
    scale = np.clip(1 - depth / np.maximum(rho, 1e-9), 0.05, 1)
    return np.stack([c[0] + x * scale, np.broadcast_to(y, x.shape), c[2] + z * scale], -1)


@dataclass
class _HeadRows:
    ring_y: np.ndarray  # [R] nominal height of each ring (for the regressor)
    jaw: np.ndarray  # [R, n] jaw weight before the angular fall-off
    upper_lip_row: int
    lower_lip_row: int
    theta: np.ndarray
    window: np.ndarray  # [n]


def _head_rings(n_lat: int = 32, n_around: int = 44) -> tuple[np.ndarray, tuple, _HeadRows]:
    c, ry = _HEAD_CENTER, _HEAD_RADII[1]
    theta = ring_angles(n_around, front_density=0.55)
    w = _mouth_window(theta)
    phi = -np.pi / 2 + np.pi * np.arange(1, n_lat + 1) / (n_lat + 1)
    ys = c[1] + ry * np.sin(phi)
    below = ys[ys < _MOUTH_Y - 0.010]
    above = ys[ys > _MOUTH_Y + 0.010]
    # rows of the mouth, bottom to top: lower lip, cavity (5 rows), upper lip.
    # inside the mouth: (height offset, depth); beyond the corners the rows lie on the surface, evenly
    # spread between the lip lines, so the fold fades out at the corners
    inside = [(-_LIP_GAP / 2, 0.0), (-0.008, 0.005), (-0.013, 0.018), (0.0, 0.034), (0.013, 0.018),
              (0.008, 0.005), (_LIP_GAP / 2, 0.0)]
    outside_y = np.linspace(-_LIP_GAP / 2, _LIP_GAP / 2, len(inside))
    jaw_inside = [1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]

    def jaw_of_height(y: np.ndarray) -> np.ndarray:
        return 1.0 - _smoothstep(_MOUTH_Y - 0.012, _MOUTH_Y + 0.008, y)

    rows_y, rows_depth, rows_jaw = [], [], []
    for y in below:
        rows_y.append(np.full(n_around, y))
        rows_depth.append(np.zeros(n_around))
        rows_jaw.append(jaw_of_height(np.full(n_around, y)))
    lower_lip_row = len(rows_y)
    for (dy_in, d_in), dy_out, j_in in zip(inside, outside_y, jaw_inside):
        y = _MOUTH_Y + w * dy_in + (1 - w) * dy_out
        rows_y.append(y)
        rows_depth.append(w * d_in)
        rows_jaw.append(w * j_in + (1 - w) * jaw_of_height(_MOUTH_Y + np.full(n_around, dy_out)))
    upper_lip_row = len(rows_y) - 1
    for y in above:
        rows_y.append(np.full(n_around, y))
        rows_depth.append(np.zeros(n_around))
        rows_jaw.append(jaw_of_height(np.full(n_around, y)))
    Y = np.stack(rows_y)
    rings = _head_surface(Y, theta[None], np.stack(rows_depth))
    poles = (c - _vec(0, ry, 0), c + _vec(0, ry, 0))
    nominal = np.concatenate([below, _MOUTH_Y + outside_y, above])
    info = _HeadRows(ring_y=nominal, jaw=np.stack(rows_jaw), upper_lip_row=upper_lip_row,
                     lower_lip_row=lower_lip_row, theta=theta, window=w)
    return rings, poles, info


# ---------------------------------------------------------------------------------------------
# Assembly


@dataclass
class _ToyArrays:
    v_template: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    joint_regressor: np.ndarray
    lbs_weights: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    head_mask: np.ndarray
    mouth_center: np.ndarray
    mouth_width: float
    upper_lip: np.ndarray
    lower_lip: np.ndarray
    parts: dict[str, tuple[int, int]]


def _segment_distance(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((P - a) @ ab) / max(float(ab @ ab), 1e-12), 0, 1)
    return np.linalg.norm(P - (a + t[:, None] * ab), axis=1)


def _softmax_weights(P: np.ndarray, candidates: list[tuple[str, float]], bones: dict[str, tuple],
                     tau: float) -> tuple[list[str], np.ndarray]:
    names = [n for n, _ in candidates]
    score = np.stack([-(_segment_distance(P, *bones[n]) - r) / tau for n, r in candidates], 1)
    score -= score.max(1, keepdims=True)
    w = np.exp(score)
    return names, w / w.sum(1, keepdims=True)


def _affine_weights(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Minimum-norm weights w (sum 1) with w @ points = target."""
    A = np.concatenate([points.T, np.ones((1, len(points)))], 0)  # [4, k]
    b = np.concatenate([target, [1.0]])
    return A.T @ np.linalg.solve(A @ A.T, b)


@functools.lru_cache(maxsize=1)
def _build() -> _ToyArrays:
    joints_l, ends = _skeleton()
    jn = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    mb = _MeshBuilder()
    z = _vec(0, 0, 1)
    y = _vec(0, 1, 0)

    # head first: the eye joints sit on its surface
    head_rings, head_poles, hrows = _head_rings()
    head = mb.add("head", head_rings, head_poles, hrows.ring_y - _HEAD_CENTER[1], _HEAD_CENTER.copy(), y)
    surf_eye = _head_surface(np.array([[_EYE_Y]]), np.array([math.asin(_EYE_X / (_head_rx(np.array(_EYE_Y))
                             * math.sqrt(1 - ((_EYE_Y - _HEAD_CENTER[1]) / _HEAD_RADII[1]) ** 2)))]),
                             np.zeros((1, 1)))[0, 0]
    joints_l["left_eye_smplhf"] = _vec(_EYE_X, _EYE_Y, surf_eye[2] - 0.35 * _EYE_RADIUS)

    joints: dict[str, np.ndarray] = {}
    for name, p in joints_l.items():
        joints[name] = p
        if name.startswith("left_"):
            joints[_mirror_name(name)] = _mirror(p)
    for name, p in list(ends.items()):
        if name.startswith("left_"):
            ends[_mirror_name(name)] = _mirror(p)

    for side in ("left", "right"):
        eye = joints[f"{side}_eye_smplhf"]
        r, p, s = ellipsoid(eye, y, z, (_EYE_RADIUS,) * 3, 7, 12)
        mb.add(f"{side}_eye", r, p, s, eye, y)

    neck_a, neck_b = _vec(0, 1.36, 0), _vec(0, 1.575, 0)
    r, p, s = tube(neck_a, neck_b, z, [(0, 0.052, 0.056), (0.5, 0.046, 0.050), (1, 0.048, 0.052)],
                    (0.02, 0.02), Rings(20, 8, 3), snap=[1.45 - 1.36, 1.53 - 1.36])
    mb.add("neck", r, p, s, neck_a, unit(neck_b - neck_a))

    torso_a, torso_b = _vec(0, 0.86, 0), _vec(0, 1.41, 0)
    L = 0.55
    prof = [((yy - 0.86) / L, rz, rx) for yy, rz, rx in
            [(0.86, 0.095, 0.155), (0.95, 0.10, 0.16), (1.06, 0.09, 0.14), (1.18, 0.10, 0.15),
             (1.30, 0.11, 0.165), (1.41, 0.09, 0.175)]]
    r, p, s = tube(torso_a, torso_b, z, prof, (0.075, 0.06), Rings(32, 20, 4),
                    snap=[0.95 - 0.86, 1.06 - 0.86, 1.18 - 0.86, 1.30 - 0.86], squareness=2.6)
    mb.add("torso", r, p, s, torso_a, y)

    for side, sg in (("left", 1.0), ("right", -1.0)):
        S = _vec(sg, 1, 1)
        # arm: shoulder to wrist in one tube along +-x
        a, b = _vec(0.11, _ARM_Y, 0) * S, _vec(0.69, _ARM_Y, 0) * S
        prof = [((xx - 0.11) / 0.58, rz, ry_) for xx, rz, ry_ in
                [(0.11, 0.05, 0.05), (0.17, 0.055, 0.052), (0.30, 0.047, 0.045), (0.43, 0.038, 0.036),
                 (0.52, 0.041, 0.038), (0.67, 0.033, 0.026), (0.69, 0.032, 0.025)]]
        r, p, s = tube(a, b, z, prof, (0.04, 0.02), Rings(16, 18, 3), snap=[0.06, 0.32, 0.56])
        mb.add(f"{side}_arm", r, p, s, a, unit(b - a))
        # leg: hip to ankle
        a, b = _vec(0.085, 0.97, 0) * S, _vec(0.085, 0.085, 0) * S
        prof = [((0.97 - yy) / 0.885, rz, rx) for yy, rz, rx in
                [(0.97, 0.075, 0.08), (0.88, 0.085, 0.085), (0.70, 0.07, 0.07), (0.50, 0.05, 0.052),
                 (0.38, 0.055, 0.05), (0.15, 0.04, 0.038), (0.085, 0.035, 0.033)]]
        r, p, s = tube(a, b, z, prof, (0.05, 0.035), Rings(16, 20, 3), snap=[0.09, 0.47, 0.885])
        mb.add(f"{side}_leg", r, p, s, a, unit(b - a))
        # foot: heel to toe
        a, b = ends[f"{side}_heel"], ends[f"{side}_toe"]
        r, p, s = tube(a, b, y, [(0, 0.04, 0.035), (0.75, 0.03, 0.045), (1, 0.02, 0.04)], (0.03, 0.03),
                        Rings(12, 8, 3),
                        snap=[float(np.linalg.norm(joints[f"{side}_foot"] - a))])
        mb.add(f"{side}_foot", r, p, s, a, unit(b - a))
        # palm
        a, b = _vec(0.655, _ARM_Y, 0) * S, _vec(0.772, _ARM_Y, 0) * S
        r, p, s = tube(a, b, z, [(0, 0.036, 0.014), (1, 0.043, 0.012)], (0.012, 0.012), Rings(14, 6, 2),
                        snap=[0.015], squareness=3.0)
        mb.add(f"{side}_palm", r, p, s, a, unit(b - a))
        # fingers
        for name, _kz, lengths, rad in _FINGERS:
            base, tip = joints[f"{side}_{name}1"], ends[f"{side}_{name}_tip"]
            d = unit(tip - base)
            a, b = base - 0.01 * d, tip - 0.8 * rad * d
            Lf = float(np.linalg.norm(b - a))
            r, p, s = tube(a, b, y, [(0, rad, rad * 0.9), (1, rad * 0.8, rad * 0.72)], (0.006, 0.8 * rad),
                            Rings(8, 10, 2),
                            snap=[0.01, 0.01 + lengths[0], 0.01 + lengths[0] + lengths[1]])
            assert Lf > 0
            mb.add(f"{side}_{name}", r, p, s, a, d)
        base, tip = joints[f"{side}_thumb1"], ends[f"{side}_thumb_tip"]
        d = unit(tip - base)
        a, b = base - 0.012 * d, tip - 0.8 * _THUMB_RADIUS * d
        r, p, s = tube(a, b, y, [(0, _THUMB_RADIUS * 1.1, _THUMB_RADIUS), (1, _THUMB_RADIUS * 0.8, _THUMB_RADIUS * 0.75)],
                        (0.006, 0.8 * _THUMB_RADIUS), Rings(8, 10, 2),
                        snap=[0.012, 0.012 + _THUMB_LENGTHS[0], 0.012 + _THUMB_LENGTHS[0] + _THUMB_LENGTHS[1]])
        mb.add(f"{side}_thumb", r, p, s, a, d)

    V = np.concatenate(mb.vertices)
    F = np.concatenate(mb.faces)
    axis_pts = np.concatenate(mb.axis_points)
    nV, J = len(V), len(SMPLX_JOINT_NAMES)
    J_rest = np.stack([joints[n] for n in SMPLX_JOINT_NAMES])

    # ---- bones for skinning: joint -> segment
    bones: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "pelvis": (ends["pelvis_bottom"], joints["spine1"]), "spine1": (joints["spine1"], joints["spine2"]),
        "spine2": (joints["spine2"], joints["spine3"]), "spine3": (joints["spine3"], joints["neck"]),
        "neck": (joints["neck"], joints["head"]), "head": (joints["head"], ends["head_top"]),
    }
    for side in ("left", "right"):
        def P(n: str, side: str = side) -> np.ndarray:
            return joints[f"{side}_{n}"]

        bones.update({
            f"{side}_hip": (P("hip"), P("knee")), f"{side}_knee": (P("knee"), P("ankle")),
            f"{side}_ankle": (P("ankle"), P("foot")), f"{side}_foot": (P("foot"), ends[f"{side}_toe_tip"]),
            f"{side}_collar": (P("collar"), P("shoulder")), f"{side}_shoulder": (P("shoulder"), P("elbow")),
            f"{side}_elbow": (P("elbow"), P("wrist")), f"{side}_wrist": (P("wrist"), P("middle1")),
        })
        for f in ("index", "middle", "ring", "pinky", "thumb"):
            bones[f"{side}_{f}1"] = (P(f"{f}1"), P(f"{f}2"))
            bones[f"{side}_{f}2"] = (P(f"{f}2"), P(f"{f}3"))
            bones[f"{side}_{f}3"] = (P(f"{f}3"), ends[f"{side}_{f}_tip"])

    W = np.zeros((nV, J))

    def assign(part: str, candidates: list[tuple[str, float]], tau: float) -> None:
        pt = mb.parts[part]
        names, w = _softmax_weights(V[pt.start:pt.stop], candidates, bones, tau)
        for k, n in enumerate(names):
            W[pt.start:pt.stop, jn[n]] += w[:, k]

    assign("torso", [("pelvis", 0.15), ("spine1", 0.15), ("spine2", 0.15), ("spine3", 0.15), ("neck", 0.05),
                     ("left_hip", 0.08), ("right_hip", 0.08), ("left_collar", 0.08), ("right_collar", 0.08),
                     ("left_shoulder", 0.05), ("right_shoulder", 0.05)], 0.02)
    assign("neck", [("spine3", 0.0), ("neck", 0.0), ("head", 0.0)], 0.008)
    for side in ("left", "right"):
        assign(f"{side}_arm", [(f"{side}_collar", 0), (f"{side}_shoulder", 0), (f"{side}_elbow", 0),
                               (f"{side}_wrist", 0)], 0.012)
        assign(f"{side}_leg", [("pelvis", 0.08), (f"{side}_hip", 0), (f"{side}_knee", 0), (f"{side}_ankle", 0)], 0.012)
        assign(f"{side}_foot", [(f"{side}_knee", 0), (f"{side}_ankle", 0), (f"{side}_foot", 0)], 0.01)
        assign(f"{side}_palm", [(f"{side}_elbow", 0), (f"{side}_wrist", 0)]
               + [(f"{side}_{f}1", 0) for f in ("index", "middle", "ring", "pinky", "thumb")], 0.005)
        for f in ("index", "middle", "ring", "pinky", "thumb"):
            assign(f"{side}_{f}", [(f"{side}_wrist", 0)] + [(f"{side}_{f}{i}", 0) for i in (1, 2, 3)], 0.004)
        ep = mb.parts[f"{side}_eye"]
        W[ep.start:ep.stop, jn[f"{side}_eye_smplhf"]] = 1.0

    # head: head / jaw / neck
    Vh = V[head.start:head.stop]
    n_around = len(hrows.theta)
    jaw_rows = np.concatenate([[1.0], hrows.jaw.reshape(-1), [0.0]])
    # the mandible: in front of a plane 1-5 cm behind the jaw joint (smooth under the chin)
    front_fall = _smoothstep(-0.045, -0.005, Vh[:, 2] - joints["jaw"][2])
    jaw_w = jaw_rows * front_fall
    neck_w = 0.6 * (1 - _smoothstep(_HEAD_CENTER[1] - 0.10, _HEAD_CENTER[1] - 0.05, Vh[:, 1])) * (1 - front_fall)
    W[head.start:head.stop, jn["neck"]] = neck_w
    W[head.start:head.stop, jn["jaw"]] = (1 - neck_w) * jaw_w
    W[head.start:head.stop, jn["head"]] = (1 - neck_w) * (1 - jaw_w)
    assert np.allclose(W.sum(1), 1.0)

    # ---- joint regressor: min-norm affine combination of the three nearest rings of the owning part
    owner = {"pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso", "neck": "neck",
             "head": "neck", "jaw": "head"}
    for side in ("left", "right"):
        owner.update({f"{side}_collar": "torso", f"{side}_hip": f"{side}_leg", f"{side}_knee": f"{side}_leg",
                      f"{side}_ankle": f"{side}_leg", f"{side}_foot": f"{side}_foot",
                      f"{side}_shoulder": f"{side}_arm", f"{side}_elbow": f"{side}_arm",
                      f"{side}_wrist": f"{side}_arm", f"{side}_eye_smplhf": f"{side}_eye"})
        for f in ("index", "middle", "ring", "pinky", "thumb"):
            for i in (1, 2, 3):
                owner[f"{side}_{f}{i}"] = f"{side}_{f}"
    Jreg = np.zeros((J, nV))
    for name, part_name in owner.items():
        pt = mb.parts[part_name]
        target = joints[name]
        s = float((target - pt.origin) @ pt.direction)
        k = int(np.argmin(np.abs(pt.ring_s - s)))
        k = min(max(k, 1), len(pt.ring_s) - 2)
        idx = pt.rings[k - 1:k + 2].reshape(-1)
        Jreg[jn[name], idx] = _affine_weights(V[idx], target)
    assert np.abs(Jreg @ V - J_rest).max() < 1e-9

    # ---- head mask
    head_mask = np.zeros(nV, dtype=bool)
    for pname in ("head", "left_eye", "right_eye"):
        pt = mb.parts[pname]
        head_mask[pt.start:pt.stop] = True

    # ---- shape basis
    part_of = np.empty(nV, dtype=object)
    for pname, pt in mb.parts.items():
        part_of[pt.start:pt.stop] = pname
    shapedirs = np.zeros((nV, 3, len(SHAPE_NAMES)))
    shapedirs[:, 1, 0] = 0.035 * V[:, 1]  # height: stretch upwards from the feet (~6 cm)
    limb = np.array([p in ("torso", "neck") or p.endswith(("_arm", "_leg")) for p in part_of])
    radial = V - axis_pts
    for pname, pt in mb.parts.items():  # remove the axial component
        sl = slice(pt.start, pt.stop)
        radial[sl] -= (radial[sl] @ pt.direction)[:, None] * pt.direction
    shapedirs[limb, :, 1] = 0.12 * radial[limb]  # girth
    arms = np.array([p.endswith(("_arm", "_palm", "_index", "_middle", "_ring", "_pinky", "_thumb")) for p in part_of])
    shapedirs[arms, 0, 2] = 0.025 * np.sign(V[arms, 0])  # shoulder width
    tor = mb.parts["torso"]
    Vt = V[tor.start:tor.stop]
    shapedirs[tor.start:tor.stop, 0, 2] = 0.025 * np.clip(Vt[:, 0] / 0.175, -1, 1) * _smoothstep(1.25, 1.38, Vt[:, 1])
    shapedirs[head_mask, :, 3] = 0.08 * (V[head_mask] - _HEAD_CENTER)  # head size

    # ---- expression basis (head mask only)
    E = np.zeros((nV, 3, len(EXPRESSION_NAMES)))
    X, Y, Z = V[:, 0], V[:, 1], V[:, 2]
    front = _smoothstep(0.03, 0.07, Z - _HEAD_CENTER[2])
    dy = Y - _MOUTH_Y
    q = np.exp(-(X ** 2 / (2 * 0.02 ** 2) + dy ** 2 / (2 * 0.012 ** 2))) * front
    corner = np.exp(-((np.abs(X) - 0.026) ** 2 / (2 * 0.01 ** 2) + dy ** 2 / (2 * 0.012 ** 2))) * front
    brow = np.exp(-((np.abs(X) - _EYE_X) ** 2 / (2 * 0.018 ** 2) + (Y - 1.642) ** 2 / (2 * 0.01 ** 2))) * front
    ang = _JAW_OPEN_ANGLE
    Rx = np.array([[1, 0, 0], [0, math.cos(ang), -math.sin(ang)], [0, math.sin(ang), math.cos(ang)]])
    jaw_col = W[:, jn["jaw"]]
    rel = V - joints["jaw"]
    E[:, :, 0] = jaw_col[:, None] * (rel @ (Rx - np.eye(3)).T)
    E[:, :, 1] = q[:, None] * np.stack([-0.6 * X, -0.25 * dy, np.full(nV, 0.008)], 1)
    E[:, :, 2] = corner[:, None] * np.stack([0.005 * np.sign(X), np.full(nV, 0.006), np.full(nV, -0.002)], 1)
    E[:, :, 3] = corner[:, None] * np.stack([0.001 * np.sign(X), np.full(nV, -0.005), np.zeros(nV)], 1)
    E[:, 1, 4] = 0.007 * brow
    for side in ("left", "right"):
        ep = mb.parts[f"{side}_eye"]
        E[ep.start:ep.stop, 1, 5] = -0.9 * (V[ep.start:ep.stop, 1] - joints[f"{side}_eye_smplhf"][1])
    E[:, 0, 6] = 0.008 * q
    E[:, 0, 7] = -0.008 * q
    E *= head_mask[:, None, None]

    # ---- mouth
    n_rows = len(hrows.ring_y)
    ring_idx = head.rings  # [R, n]
    upper_row, lower_row = ring_idx[hrows.upper_lip_row], ring_idx[hrows.lower_lip_row]
    lip_sel = hrows.window > 0.3
    upper_lip, lower_lip = upper_row[lip_sel], lower_row[lip_sel]
    upper_lip, lower_lip = upper_lip[np.argsort(V[upper_lip, 0])], lower_lip[np.argsort(V[lower_lip, 0])]
    span = upper_row[hrows.window > 0.02]
    width = float(V[span, 0].max() - V[span, 0].min())
    c_up, c_lo = V[upper_row[0]], V[lower_row[0]]  # theta = 0 is the front centre
    center = 0.5 * (c_up + c_lo) - _vec(0, 0, 0.008)  # 8 mm behind the lips
    assert n_rows == ring_idx.shape[0] and n_around == ring_idx.shape[1]

    parts = {n: (p.start, p.stop) for n, p in mb.parts.items()}
    return _ToyArrays(V, F, J_rest, Jreg, W, shapedirs, E, head_mask, center, width, upper_lip, lower_lip, parts)


def status() -> dict:
    return {"available": True, "detail": "procedural body built in code (SMPL-X joints, no file needed)"}


def load(num_betas: int | None = None, num_expression: int | None = None, teeth: bool = False) -> BodyModel:
    """Build the toy body.

    Args:
        num_betas: keep the first ``num_betas`` shape components (default all 4).
        num_expression: keep the first ``num_expression`` expression components (default all).
        teeth: append upper and lower teeth (:func:`thgs.body.teeth.with_teeth`).
    """
    a = _build()
    S, E = a.shapedirs.shape[-1], a.exprdirs.shape[-1]
    nb = S if num_betas is None else int(num_betas)
    ne = E if num_expression is None else int(num_expression)
    if not 0 <= nb <= S:
        raise ValueError(f"toy body: num_betas must be in [0, {S}], got {num_betas}")
    if not 0 <= ne <= E:
        raise ValueError(f"toy body: num_expression must be in [0, {E}], got {num_expression}")
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    mouth = MouthDefinition(
        center=t(a.mouth_center).float(), forward=torch.tensor([0.0, 0.0, 1.0]), up=torch.tensor([0.0, 1.0, 0.0]),
        width=a.mouth_width, upper_lip=t(a.upper_lip).long(), lower_lip=t(a.lower_lip).long(),
        head_joint=SMPLX_JOINT_NAMES.index("head"), jaw_joint=SMPLX_JOINT_NAMES.index("jaw"),
    )
    body = BodyModel(
        name="toy", v_template=t(a.v_template), faces=t(a.faces), joint_regressor=t(a.joint_regressor),
        parents=torch.tensor(SMPLX_PARENTS), joint_names=list(SMPLX_JOINT_NAMES), lbs_weights=t(a.lbs_weights),
        shapedirs=t(a.shapedirs[..., :nb]), exprdirs=t(a.exprdirs[..., :ne]), posedirs=None,
        head_mask=t(a.head_mask), mouth=mouth, expression_names=list(EXPRESSION_NAMES[:ne]), up_axis="y",
        meta={"parts": dict(a.parts), "shape_names": list(SHAPE_NAMES[:nb]), "units": "m",
              "origin": "feet on y=0, pelvis joint at y=0.95", "rest_joints": t(a.joints).float()},
    )
    if teeth:
        from thgs.body.teeth import with_teeth

        body = with_teeth(body)
    return body


__all__ = ["EXPRESSION_NAMES", "SHAPE_NAMES", "load", "status"]
