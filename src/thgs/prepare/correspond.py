"""Which of the 553 layout keypoints (:mod:`thgs.prepare.layout`) match which joints or vertices of a body.

The fit (:mod:`thgs.prepare.fit`) compares detected keypoints with the projections of *model points*; each
model point is a posed joint or a posed surface point (a vertex, or a barycentric mix of a few vertices).
The tables are fixed in code, one per body:

* The pose block's three hand points per side (pinky, index, thumb) are left out: they repeat the hand
  block's landmarks less precisely and pulled the fitted hands away from them.
* **anny**: pose and hand landmarks on anny's joints (elbows ``lowerarm01``, wrists,
  finger joints, hips ``upperleg01``, knees ``lowerleg01``, ankles ``foot``); the shoulders on the skin at the
  top outer corner of the shoulder (where mediapipe puts them: the joint itself sat 50-60 px inside the
  detected shoulders on a 1080x1920 video); finger tips, heels, toes, the
  nose, ears, eye corners and mouth corners on skin vertices; 38 face-mesh landmarks (jaw contour, outer and
  inner lips, eyelids, brows, nose) on skin vertices of anny's face (checked by drawing them on the mesh and
  for mirror symmetry: every left/right pair mirrors within 4 mm; ``contour_r_1`` was moved to the mirror of
  ``contour_l_1``, 11.5 mm away in the starting table); the two iris centres on the front of
  anny's eyeballs (the eyeball vertex furthest forward, found from the skinning weights), so the eye joints
  can be fitted. Vertex indices refer to anny's 13,718-vertex topology, which phenotype and local changes
  do not alter (teeth are appended after it).
* **smplx** and **toy** (SMPL-X's 55 joints): the body and hand landmarks on the joints of the same names;
  for a body of SMPL-X's 10,475-vertex topology the finger tips, nose, ears, heels and toes on SMPL-X's
  standard landmark vertices and the face landmarks on the model file's landmark embedding when it has one
  (``lmk_faces_idx`` / ``lmk_bary_coords``, the 51 inner face points of the 68-point scheme); for the toy,
  the mouth corners and lip mid points on its lip vertices and the eyes on its eye joints.

Left and right are the person's own throughout (anny ``.L`` = +x = the body's left = mediapipe's "left").
``REGIONS`` group the layout for the landmark distance (LMD): ``face`` (the pose block's face points and the
face mesh), ``body`` (the other pose points) and ``hands`` (both hand blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel
from thgs.prepare.layout import FACE, LEFT_HAND, NUM_KEYPOINTS, POSE, RIGHT_HAND

# ----------------------------------------------------------------------------------------------
# layout names

POSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
"""mediapipe's 33 pose landmarks, in order."""

HAND_NAMES: tuple[str, ...] = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
"""mediapipe's 21 hand landmarks, in order."""

#: mediapipe face-mesh index -> name, for the face points the tables use ("_l_" = the person's left).
FACE_POINTS: dict[int, str] = {
    234: "contour_r_ear", 132: "contour_r_1", 172: "contour_r_2", 150: "contour_r_3", 152: "chin",
    379: "contour_l_3", 397: "contour_l_2", 361: "contour_l_1", 454: "contour_l_ear",
    61: "lip_out_r_corner", 40: "lip_out_up_r", 0: "lip_out_up_mid", 270: "lip_out_up_l", 291: "lip_out_l_corner",
    321: "lip_out_lo_l", 17: "lip_out_lo_mid", 91: "lip_out_lo_r",
    78: "lip_in_r_corner", 13: "lip_in_up_mid", 308: "lip_in_l_corner", 14: "lip_in_lo_mid",
    33: "eye_r_outer", 159: "eye_r_upper", 133: "eye_r_inner", 145: "eye_r_lower",
    263: "eye_l_outer", 386: "eye_l_upper", 362: "eye_l_inner", 374: "eye_l_lower",
    70: "brow_r_outer", 105: "brow_r_mid", 107: "brow_r_inner", 336: "brow_l_inner", 334: "brow_l_mid",
    300: "brow_l_outer", 1: "nose_tip", 98: "nose_ala_r", 327: "nose_ala_l",
    468: "iris_r", 473: "iris_l",
}

IRIS_RIGHT, IRIS_LEFT = 468, 473


def pose_kp(name: str) -> int:
    """Layout index of a pose landmark by name."""
    return POSE.start + POSE_NAMES.index(name)


def hand_kp(side: str, name: str) -> int:
    """Layout index of a hand landmark (``side`` "left" or "right")."""
    block = LEFT_HAND if side == "left" else RIGHT_HAND
    return block.start + HAND_NAMES.index(name)


def face_kp(index: int) -> int:
    """Layout index of face-mesh landmark ``index`` (0..477)."""
    return FACE.start + int(index)


def keypoint_name(kp: int) -> str:
    """A readable name of a layout index (``pose:left_wrist``, ``left_hand:index_tip``, ``face:152``)."""
    if kp < POSE.stop:
        return f"pose:{POSE_NAMES[kp]}"
    if kp < LEFT_HAND.stop:
        return f"left_hand:{HAND_NAMES[kp - LEFT_HAND.start]}"
    if kp < RIGHT_HAND.stop:
        return f"right_hand:{HAND_NAMES[kp - RIGHT_HAND.start]}"
    m = kp - FACE.start
    return f"face:{FACE_POINTS.get(m, m)}"


def mirror_keypoint(kp: int) -> int | None:
    """The layout index of the mirror-symmetric landmark (left <-> right), ``kp`` itself on the midline,
    or None when the layout has no known mirror for it."""
    name = keypoint_name(kp)
    block, _, leaf = name.partition(":")
    swap = {"left": "right", "right": "left"}
    if block == "pose":
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if leaf.startswith(a):
                return pose_kp(b + leaf[len(a):])
        return kp
    if block in ("left_hand", "right_hand"):
        return hand_kp(swap[block.split("_")[0]], leaf)
    by_name = {v: k for k, v in FACE_POINTS.items()}
    for a, b in (("_r_", "_l_"), ("_l_", "_r_")):
        if a in f"_{leaf}_":
            other = f"_{leaf}_".replace(a, b, 1)[1:-1]
            return face_kp(by_name[other]) if other in by_name else None
    if leaf in ("iris_r", "iris_l"):
        return face_kp(IRIS_LEFT if leaf == "iris_r" else IRIS_RIGHT)
    return kp if leaf in by_name else None


# ----------------------------------------------------------------------------------------------
# regions for the landmark distance

REGIONS: dict[str, np.ndarray] = {
    "face": np.concatenate([np.arange(POSE.start, POSE.start + 11), np.arange(FACE.start, FACE.stop)]),
    "body": np.arange(POSE.start + 11, POSE.stop),
    "hands": np.arange(LEFT_HAND.start, RIGHT_HAND.stop),
}
"""Layout indices of each LMD region (before restricting to the points a body has a correspondence for)."""


# ----------------------------------------------------------------------------------------------
# the correspondence object


@dataclass
class Correspondence:
    """Model points for a set of layout keypoints.

    Attributes:
        body: name of the body model.
        keypoints: [K] layout indices, sorted.
        joint: [K] joint index of each point, or -1 when the point is on the surface.
        surface: [K, 3] vertex indices of each surface point (repeated for a single vertex; unused for joints).
        bary: [K, 3] barycentric weights of ``surface`` (rows sum to 1; zeros for joints).
        names: [K] readable names (layout name -> model name).
    """

    body: str
    keypoints: np.ndarray
    joint: np.ndarray
    surface: np.ndarray
    bary: np.ndarray
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        K = len(self.keypoints)
        if not (self.joint.shape == (K,) and self.surface.shape == (K, 3) and self.bary.shape == (K, 3)):
            raise ValueError("correspondence arrays disagree in length")
        if len(set(self.keypoints.tolist())) != K:
            raise ValueError("correspondence: a layout keypoint appears twice")

    @property
    def num_points(self) -> int:
        return len(self.keypoints)

    @property
    def is_joint(self) -> np.ndarray:
        return self.joint >= 0

    def vertices_used(self) -> np.ndarray:
        """Distinct vertex indices the surface points need."""
        return np.unique(self.surface[~self.is_joint].ravel())

    def region_mask(self, region: str) -> np.ndarray:
        """[K] bool: which points belong to LMD region ``region``."""
        return np.isin(self.keypoints, REGIONS[region])

    def gather(self, joints: Tensor, verts: Tensor, vertex_slot: Tensor | None = None) -> Tensor:
        """Model points [B, K, 3] from posed ``joints`` [B, J, 3] and ``verts`` [B, V', 3].

        ``vertex_slot`` [V] maps a vertex index to its row in ``verts`` when ``verts`` holds a subset
        (default: ``verts`` holds every vertex)."""
        dev = joints.device
        surf = torch.as_tensor(self.surface, device=dev)
        if vertex_slot is not None:
            surf = vertex_slot[surf]
        w = torch.as_tensor(self.bary, dtype=verts.dtype, device=dev)
        on_surface = (verts[:, surf] * w[None, :, :, None]).sum(2)  # [B, K, 3]
        j = torch.as_tensor(np.maximum(self.joint, 0), device=dev)
        is_j = torch.as_tensor(self.is_joint, device=dev)[None, :, None]
        return torch.where(is_j, joints[:, j], on_surface)

    def model_points(self, body: BodyModel, vertices: Tensor, joints: Tensor) -> Tensor:
        """Model points [B, K, 3] from a full :class:`~thgs.body.model.BodyOutput`'s vertices and joints."""
        return self.gather(joints, vertices)


def _build(body: BodyModel, entries: list[tuple[int, str, object]]) -> Correspondence:
    """entries: (layout index, "j" joint name | "v" vertex index | "b" ((v0, v1, v2), (w0, w1, w2)), ...)."""
    entries = sorted(entries, key=lambda e: e[0])
    K = len(entries)
    joint = np.full(K, -1, dtype=np.int64)
    surface = np.zeros((K, 3), dtype=np.int64)
    bary = np.zeros((K, 3), dtype=np.float32)
    names = []
    V = body.num_vertices
    for k, (kp, kind, target) in enumerate(entries):
        if kind == "j":
            joint[k] = body.joint_index(str(target))
            names.append(f"{keypoint_name(kp)} -> joint {target}")
        elif kind == "v":
            v = int(target)  # type: ignore[arg-type]
            if not 0 <= v < V:
                raise ValueError(f"correspondence for {body.name!r}: vertex {v} outside [0, {V})")
            surface[k] = v
            bary[k] = (1.0, 0.0, 0.0)
            names.append(f"{keypoint_name(kp)} -> vertex {v}")
        else:
            vs, ws = target  # type: ignore[misc]
            surface[k] = vs
            bary[k] = ws
            names.append(f"{keypoint_name(kp)} -> surface {tuple(int(x) for x in vs)}")
    return Correspondence(body=body.name, keypoints=np.array([e[0] for e in entries], dtype=np.int64),
                          joint=joint, surface=surface, bary=bary, names=names)


# ----------------------------------------------------------------------------------------------
# anny

_ANNY_POSE: dict[str, tuple[str, object]] = {
    "nose": ("v", 5038), "left_eye_inner": ("v", 6837), "left_eye": ("j", "eye.L"), "left_eye_outer": ("v", 11684),
    "right_eye_inner": ("v", 4854), "right_eye": ("j", "eye.R"), "right_eye_outer": ("v", 5085),
    "left_ear": ("v", 12008), "right_ear": ("v", 5425), "mouth_left": ("v", 10365), "mouth_right": ("v", 3713),
    "left_elbow": ("j", "lowerarm01.L"), "right_elbow": ("j", "lowerarm01.R"),
    "left_wrist": ("j", "wrist.L"), "right_wrist": ("j", "wrist.R"),
    "left_hip": ("j", "upperleg01.L"), "right_hip": ("j", "upperleg01.R"),
    "left_knee": ("j", "lowerleg01.L"), "right_knee": ("j", "lowerleg01.R"),
    "left_ankle": ("j", "foot.L"), "right_ankle": ("j", "foot.R"),
    "left_heel": ("v", 12421), "right_heel": ("v", 5840),
    "left_foot_index": ("v", 11519), "right_foot_index": ("v", 4917),
}

#: finger tips of each side (mediapipe ``*_tip``) on anny's skin: side -> finger -> vertex
_ANNY_TIPS: dict[str, dict[str, int]] = {
    "left": {"thumb": 9316, "index": 8563, "middle": 8755, "ring": 8950, "pinky": 9139},
    "right": {"thumb": 2664, "index": 1911, "middle": 2103, "ring": 2298, "pinky": 2487},
}

#: mediapipe face-mesh index -> anny skin vertex
_ANNY_FACE: dict[int, int] = {
    234: 5219, 132: 5222, 172: 737, 150: 5281, 152: 5280, 379: 11870, 397: 7441, 361: 11815, 454: 11812,
    61: 3713, 40: 374, 0: 362, 270: 7118, 291: 10365, 321: 7183, 17: 492, 91: 439,
    78: 3693, 13: 537, 308: 10345, 14: 540,
    33: 5085, 159: 1056, 133: 4854, 145: 43, 263: 11684, 386: 7732, 362: 6837, 374: 6811,
    70: 212, 105: 222, 107: 208, 336: 6967, 334: 6980, 300: 7008,
    1: 5038, 98: 318, 327: 7064,
}

_FINGER_NUMBER = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def eyeball_front_vertex(body: BodyModel, eye_joint: str) -> int:
    """The eyeball vertex furthest forward (+z) among those skinned mostly to ``eye_joint``: the centre of
    the cornea, where the iris centre is seen when the eye looks ahead."""
    j = body.joint_index(eye_joint)
    on_eye = torch.nonzero(body.lbs_weights[:, j] > 0.5)[:, 0]
    if on_eye.numel() == 0:
        raise ValueError(f"body model {body.name!r}: no vertex is skinned to {eye_joint!r}")
    return int(on_eye[torch.argmax(body.v_template[on_eye, 2])])


#: where mediapipe puts a shoulder relative to anny's shoulder joint (``upperarm01``), metres, for the body's
#: left (x mirrored for the right): on the skin at the top outer corner of the shoulder, as seen from the front
_SHOULDER_OFFSET = (0.03, 0.045, 0.0)


def shoulder_vertex(body: BodyModel, side: str) -> int:
    """The skin vertex nearest to the shoulder joint moved by :data:`_SHOULDER_OFFSET` (mirrored for the right)."""
    s = "L" if side == "left" else "R"
    j = body.rest_joints()[0, body.joint_index(f"upperarm01.{s}")]
    off = torch.tensor(_SHOULDER_OFFSET, dtype=j.dtype, device=j.device)
    if side == "right":
        off[0] = -off[0]
    return int(torch.argmin((body.v_template - (j + off)).norm(dim=-1)))


def anny_correspondence(body: BodyModel) -> Correspondence:
    """The anny table (module docstring)."""
    entries: list[tuple[int, str, object]] = [(pose_kp(n), kind, t) for n, (kind, t) in _ANNY_POSE.items()]
    for side in ("left", "right"):
        entries.append((pose_kp(f"{side}_shoulder"), "v", shoulder_vertex(body, side)))
    for side, s in (("left", "L"), ("right", "R")):
        entries.append((hand_kp(side, "wrist"), "j", f"wrist.{s}"))
        for finger, k in _FINGER_NUMBER.items():
            if finger == "thumb":
                names = ("thumb_cmc", "thumb_mcp", "thumb_ip")
            else:
                names = (f"{finger}_mcp", f"{finger}_pip", f"{finger}_dip")
            for i, n in enumerate(names, start=1):
                entries.append((hand_kp(side, n), "j", f"finger{k}-{i}.{s}"))
            entries.append((hand_kp(side, f"{finger}_tip"), "v", _ANNY_TIPS[side][finger]))
    entries += [(face_kp(m), "v", v) for m, v in _ANNY_FACE.items()]
    entries.append((face_kp(IRIS_LEFT), "v", eyeball_front_vertex(body, "eye.L")))
    entries.append((face_kp(IRIS_RIGHT), "v", eyeball_front_vertex(body, "eye.R")))
    return _build(body, entries)


# ----------------------------------------------------------------------------------------------
# SMPL-X and the toy (SMPL-X joints)

SMPLX_NUM_VERTICES = 10475

_SMPLX_POSE_JOINTS: dict[str, str] = {
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist",
    "left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee",
    "left_ankle": "left_ankle", "right_ankle": "right_ankle",
}

#: SMPL-X's standard landmark vertices (10,475-vertex topology).
_SMPLX_POSE_VERTICES: dict[str, int] = {
    "nose": 9120, "right_eye": 9929, "left_eye": 9448, "right_ear": 616, "left_ear": 6,
    "left_foot_index": 5770, "left_heel": 8846, "right_foot_index": 8463, "right_heel": 8635,
}
_SMPLX_TIPS: dict[str, dict[str, int]] = {
    "left": {"thumb": 5361, "index": 4933, "middle": 5058, "ring": 5169, "pinky": 5286},
    "right": {"thumb": 8079, "index": 7669, "middle": 7794, "ring": 7905, "pinky": 8022},
}

#: The 51 inner points of the 68-point face scheme (indices 17..67, the order of SMPL-X's static landmark
#: embedding) -> the matching mediapipe face-mesh index, for the points with a clear counterpart.
_DLIB_TO_MEDIAPIPE: dict[int, int] = {
    17: 70, 19: 105, 21: 107, 22: 336, 24: 334, 26: 300,
    30: 1, 31: 98, 35: 327,
    36: 33, 37: 159, 39: 133, 41: 145, 42: 362, 44: 386, 45: 263, 47: 374,
    48: 61, 50: 40, 51: 0, 52: 270, 54: 291, 56: 321, 57: 17, 58: 91,
    60: 78, 62: 13, 64: 308, 66: 14,
}


def smplx_joint_correspondence(body: BodyModel) -> Correspondence:
    """SMPL-X-jointed bodies (``smplx`` files, the toy): joints, plus the landmark vertices when the body has
    SMPL-X's topology and the face landmark embedding when the body's meta carries one."""
    entries: list[tuple[int, str, object]] = [(pose_kp(n), "j", j) for n, j in _SMPLX_POSE_JOINTS.items()]
    names = set(body.joint_names)
    for side in ("left", "right"):
        entries.append((hand_kp(side, "wrist"), "j", f"{side}_wrist"))
        for finger in _FINGER_NUMBER:
            if finger == "thumb":
                lm = ("thumb_cmc", "thumb_mcp", "thumb_ip")
            else:
                lm = (f"{finger}_mcp", f"{finger}_pip", f"{finger}_dip")
            for i, n in enumerate(lm, start=1):
                entries.append((hand_kp(side, n), "j", f"{side}_{finger}{i}"))
    if body.num_vertices >= SMPLX_NUM_VERTICES and body.name == "smplx":
        entries += [(pose_kp(n), "v", v) for n, v in _SMPLX_POSE_VERTICES.items()]
        for side in ("left", "right"):
            entries += [(hand_kp(side, f"{f}_tip"), "v", v) for f, v in _SMPLX_TIPS[side].items()]
    else:
        for side, eye in (("left", "left_eye_smplhf"), ("right", "right_eye_smplhf")):
            if eye in names:
                entries.append((pose_kp(f"{side}_eye"), "j", eye))
    lmk = body.meta.get("landmark_embedding")
    if lmk is not None:
        faces_idx = np.asarray(lmk["faces_idx"], dtype=np.int64)
        bary = np.asarray(lmk["bary"], dtype=np.float32)
        faces = body.faces.cpu().numpy()
        for dlib, mp in _DLIB_TO_MEDIAPIPE.items():
            row = dlib - 17
            if 0 <= row < len(faces_idx):
                entries.append((face_kp(mp), "b", (faces[faces_idx[row]], bary[row])))
    elif body.name == "toy":
        entries += _toy_face(body)
    return _build(body, entries)


def _toy_face(body: BodyModel) -> list[tuple[int, str, object]]:
    """The toy's mouth: outer corners and lip mid points on its lip vertices (ordered right to left)."""
    x = body.v_template[:, 0]
    up = sorted(body.mouth.upper_lip.tolist(), key=lambda v: float(x[v]))
    lo = sorted(body.mouth.lower_lip.tolist(), key=lambda v: float(x[v]))
    if len(up) < 3 or len(lo) < 3:
        return []
    return [(face_kp(61), "v", up[0]), (face_kp(291), "v", up[-1]),
            (face_kp(13), "v", up[len(up) // 2]), (face_kp(14), "v", lo[len(lo) // 2])]


def correspondence_for(body: BodyModel) -> Correspondence:
    """The correspondence of a body model by its name (``anny``, ``smplx``, ``toy``)."""
    if body.name == "anny":
        return anny_correspondence(body)
    if body.name in ("smplx", "toy"):
        return smplx_joint_correspondence(body)
    raise ValueError(f"no keypoint correspondence for body model {body.name!r}")


__all__ = [
    "FACE_POINTS", "HAND_NAMES", "POSE_NAMES", "REGIONS", "Correspondence", "anny_correspondence",
    "correspondence_for", "eyeball_front_vertex", "face_kp", "hand_kp", "keypoint_name", "mirror_keypoint",
    "pose_kp", "smplx_joint_correspondence",
]

assert NUM_KEYPOINTS == FACE.stop
