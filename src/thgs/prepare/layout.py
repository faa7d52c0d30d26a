"""The 2D keypoint layout shared by detection, fitting and evaluation.

One array of ``NUM_KEYPOINTS`` = 553 points per frame, each ``(x, y, confidence)`` with x, y in pixels of the
video frame (x right, y down, origin at the top-left corner of the top-left pixel) and confidence in [0, 1];
a point that was not detected has confidence 0 (its x, y are then meaningless and stored as 0). The blocks
follow mediapipe holistic's outputs, in this order:

=========  =========  ===================================================================
block      indices    what
=========  =========  ===================================================================
pose       0 .. 32    the 33 pose landmarks (nose, eyes, ears, mouth corners, shoulders,
                      elbows, wrists, hand points, hips, knees, ankles, heels, foot tips)
left hand  33 .. 53   the 21 landmarks of the person's own left hand
right hand 54 .. 74   the 21 landmarks of the person's own right hand
face       75 .. 552  the 478-point face mesh (468 points plus 10 iris points)
=========  =========  ===================================================================

Left and right are the person's own (the left hand is the one that appears on the image's right when the
person faces the camera). Pose world landmarks (metres, hip-centred) are stored beside, as [T, 33, 4]
(x, y, z, visibility).
"""

from __future__ import annotations

NUM_POSE = 33
NUM_HAND = 21
NUM_FACE = 478

POSE = slice(0, NUM_POSE)
LEFT_HAND = slice(POSE.stop, POSE.stop + NUM_HAND)
RIGHT_HAND = slice(LEFT_HAND.stop, LEFT_HAND.stop + NUM_HAND)
FACE = slice(RIGHT_HAND.stop, RIGHT_HAND.stop + NUM_FACE)
NUM_KEYPOINTS = FACE.stop

#: Name recorded with stored keypoints, so a reader can refuse a layout it does not know.
LAYOUT_NAME = "mediapipe-holistic-553"

BLOCKS: dict[str, slice] = {"pose": POSE, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND, "face": FACE}

__all__ = ["BLOCKS", "FACE", "LAYOUT_NAME", "LEFT_HAND", "NUM_FACE", "NUM_HAND", "NUM_KEYPOINTS", "NUM_POSE",
           "POSE", "RIGHT_HAND"]
