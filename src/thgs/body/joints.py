"""SMPL-X's 55 joints: names and kinematic tree.

Every body in thgs that claims SMPL-X compatibility (the procedural toy, a user's SMPL-X file) uses this
joint order, so poses can be exchanged between them. Left means the body's left (+x for a body facing +z
with y up).
"""

from __future__ import annotations

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")

BODY_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
"""The 22 body joints (SMPL's first 22), in order."""

FACE_JOINT_NAMES: tuple[str, ...] = ("jaw", "left_eye_smplhf", "right_eye_smplhf")

LEFT_HAND_JOINT_NAMES: tuple[str, ...] = tuple(f"left_{f}{i}" for f in _FINGERS for i in (1, 2, 3))
RIGHT_HAND_JOINT_NAMES: tuple[str, ...] = tuple(f"right_{f}{i}" for f in _FINGERS for i in (1, 2, 3))

SMPLX_JOINT_NAMES: tuple[str, ...] = (
    BODY_JOINT_NAMES + FACE_JOINT_NAMES + LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES
)
"""All 55 joint names in SMPL-X order."""

SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
"""Parent of every joint (SMPL-X kintree row 0); the root's parent is -1."""

NUM_SMPLX_JOINTS = 55
NUM_BODY_JOINTS = 21
"""Body joints excluding the root (``body_pose`` has 21 rotations)."""
NUM_HAND_JOINTS = 15

# Index ranges inside the 55-joint pose.
GLOBAL_ORIENT_INDEX = 0
BODY_POSE_SLICE = slice(1, 22)
JAW_INDEX = 22
LEFT_EYE_INDEX = 23
RIGHT_EYE_INDEX = 24
LEFT_HAND_SLICE = slice(25, 40)
RIGHT_HAND_SLICE = slice(40, 55)

assert len(SMPLX_JOINT_NAMES) == NUM_SMPLX_JOINTS == len(SMPLX_PARENTS)


def joint_index(name: str) -> int:
    """Index of an SMPL-X joint by name (``KeyError`` naming the joint if unknown)."""
    try:
        return SMPLX_JOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"no SMPL-X joint named {name!r}") from None


__all__ = [
    "BODY_JOINT_NAMES", "BODY_POSE_SLICE", "FACE_JOINT_NAMES", "GLOBAL_ORIENT_INDEX", "JAW_INDEX",
    "LEFT_EYE_INDEX", "LEFT_HAND_JOINT_NAMES", "LEFT_HAND_SLICE", "NUM_BODY_JOINTS", "NUM_HAND_JOINTS",
    "NUM_SMPLX_JOINTS", "RIGHT_EYE_INDEX", "RIGHT_HAND_JOINT_NAMES", "RIGHT_HAND_SLICE", "SMPLX_JOINT_NAMES",
    "SMPLX_PARENTS", "joint_index",
]
