import math

import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.body.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from thgs.body.registry import body_model_status, load_body_model

SMPLX_KINTREE_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15, 20, 25, 26,
                 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50,
                 21, 52, 53]


@pytest.fixture(scope="module")
def body():
    return toy.load()


def _part(body, name):
    s, e = body.meta["parts"][name]
    return torch.arange(s, e)


def _edges_closed(faces: np.ndarray) -> bool:
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    fwd = set(map(tuple, e.tolist()))
    rev = set(map(tuple, e[:, ::-1].tolist()))
    return len(fwd) == len(e) and fwd == rev  # every directed edge once, and its reverse present


def _signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def test_skeleton_is_smplx(body):
    assert body.num_joints == 55
    assert body.joint_names == list(SMPLX_JOINT_NAMES)
    assert body.parents.tolist() == SMPLX_KINTREE_PARENTS == list(SMPLX_PARENTS)
    assert body.joint_names[:3] == ["pelvis", "left_hip", "right_hip"]
    assert body.joint_names[22:25] == ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
    assert body.joint_names[25] == "left_index1" and body.joint_names[39] == "left_thumb3"
    assert body.joint_names[40] == "right_index1" and body.joint_names[54] == "right_thumb3"


def test_size_orientation_and_tpose(body):
    v = body.v_template
    assert 3000 <= body.num_vertices <= 6000
    height = float(v[:, 1].max() - v[:, 1].min())
    assert 1.6 < height < 1.8
    assert abs(float(v[:, 1].min())) < 0.01  # feet on y = 0
    J = body.rest_joints()[0]
    n = body.joint_index
    assert J[n("left_wrist"), 0] > 0.5 and J[n("right_wrist"), 0] < -0.5  # left = +x, arms out
    assert abs(float(J[n("left_wrist"), 1] - J[n("left_shoulder"), 1])) < 1e-5  # T-pose
    assert J[n("head"), 1] > J[n("neck"), 1] > J[n("spine3"), 1] > J[n("pelvis"), 1] > J[n("left_knee"), 1]
    head = _part(body, "head")
    nose = head[v[head, 2].argmax()]
    assert v[nose, 2] > 0.1 and abs(float(v[nose, 0])) < 1e-6  # the face looks along +z
    assert J[n("left_eye_smplhf"), 0] > 0 and J[n("left_eye_smplhf"), 2] > 0.05
    assert body.up_axis == "y"


def test_build_is_deterministic():
    a = toy.load()
    toy._build.cache_clear()
    b = toy.load()
    assert torch.equal(a.v_template, b.v_template) and torch.equal(a.faces, b.faces)
    assert torch.equal(a.lbs_weights, b.lbs_weights) and torch.equal(a.exprdirs, b.exprdirs)


def test_every_part_is_closed_with_outward_normals(body):
    v = body.v_template.double().numpy()
    f = body.faces.numpy()
    parts = body.meta["parts"]
    names = {"head", "neck", "torso", "left_eye", "right_eye"} | {
        f"{s}_{p}" for s in ("left", "right") for p in ("arm", "leg", "foot", "palm", "index", "middle", "ring",
                                                         "pinky", "thumb")}
    assert set(parts) == names
    covered = np.zeros(len(v), bool)
    for name, (s, e) in parts.items():
        pf = f[(f[:, 0] >= s) & (f[:, 0] < e)]
        assert ((pf >= s) & (pf < e)).all(), name
        assert _edges_closed(pf), f"{name} is not watertight"
        assert _signed_volume(v, pf) > 0, f"{name} faces inwards"
        covered[s:e] = True
    assert covered.all()
    assert sum(((f[:, 0] >= s) & (f[:, 0] < e)).sum() for s, e in parts.values()) == len(f)


def test_skinning_weights(body):
    W = body.lbs_weights
    assert (W >= 0).all()
    assert torch.allclose(W.sum(1), torch.ones(body.num_vertices), atol=1e-5)
    n = body.joint_index
    # smooth blend across the elbow: the ring at the elbow splits between upper and lower arm
    arm = _part(body, "left_arm")
    va = body.v_template[arm]
    J = body.rest_joints()[0]
    at_elbow = arm[(va[:, 0] - J[n("left_elbow"), 0]).abs() < 1e-6]
    assert len(at_elbow) >= 8
    for j in ("left_shoulder", "left_elbow"):
        assert ((W[at_elbow, n(j)] > 0.3) & (W[at_elbow, n(j)] < 0.7)).all()
    upper = arm[(va[:, 0] > 0.27) & (va[:, 0] < 0.32)]  # middle of the upper arm
    lower = arm[(va[:, 0] > 0.53) & (va[:, 0] < 0.58)]  # middle of the forearm
    assert len(upper) and len(lower)
    assert (W[upper, n("left_shoulder")] > 0.9).all() and (W[lower, n("left_elbow")] > 0.9).all()
    # eyes are rigid
    assert torch.allclose(W[_part(body, "left_eye"), n("left_eye_smplhf")], torch.ones(1))
    # lips: the lower lip follows the jaw, the upper lip the head
    m = body.mouth
    v = body.v_template
    lo_mid, up_mid = m.lower_lip[v[m.lower_lip, 0].abs() < 0.01], m.upper_lip[v[m.upper_lip, 0].abs() < 0.01]
    assert len(lo_mid) >= 3 and len(up_mid) >= 3
    assert (W[lo_mid, n("jaw")] > 0.99).all() and (W[up_mid, n("head")] > 0.99).all()
    assert (W[m.lower_lip, n("jaw")] > 0.5).all() and (W[m.upper_lip, n("jaw")] < 0.5).all()
    # finger tips follow the distal joint
    finger = _part(body, "right_index")
    tip = finger[body.v_template[finger, 0].argmin()]
    assert W[tip, n("right_index3")] > 0.9


def test_regressor_reproduces_rest_joints(body):
    J = body.joint_regressor @ body.v_template
    assert torch.allclose(J, body.meta["rest_joints"], atol=1e-5)
    assert torch.allclose(body.joint_regressor.sum(1), torch.ones(55), atol=1e-5)
    # every row only uses vertices of one part near the joint
    dist = (body.v_template[None] - J[:, None]).norm(dim=-1)
    assert float((dist * (body.joint_regressor.abs() > 0)).max()) < 0.25


def test_head_mask(body):
    hm = body.head_mask
    assert hm[_part(body, "head")].all() and hm[_part(body, "left_eye")].all()
    assert not hm[_part(body, "neck")].any() and not hm[_part(body, "torso")].any()
    assert int(hm.sum()) == len(_part(body, "head")) + 2 * len(_part(body, "left_eye"))


def test_expressions_move_only_the_head(body):
    assert body.expression_names[:6] == ["jaw_open", "lip_round", "smile", "frown", "brow_raise", "blink"]
    moving = body.exprdirs.abs().sum((1, 2)) > 0
    assert not (moving & ~body.head_mask).any()
    for k, name in enumerate(body.expression_names):
        assert body.exprdirs[..., k].abs().max() > 1e-3, name


def _expr(body, name, value=1.0):
    e = torch.zeros(1, body.num_expressions)
    e[0, body.expression_names.index(name)] = value
    return body(body.zero_pose(), expression=e).vertices[0]


def test_jaw_open_expression_opens_the_mouth(body):
    m = body.mouth
    rest = body.v_template
    up, lo = m.upper_lip[rest[m.upper_lip, 0].abs().argmin()], m.lower_lip[rest[m.lower_lip, 0].abs().argmin()]
    v = _expr(body, "jaw_open")
    gap_rest = float(rest[up, 1] - rest[lo, 1])
    gap = float(v[up, 1] - v[lo, 1])
    assert gap_rest < 0.005
    assert 0.015 < gap - gap_rest < 0.03  # about 2 cm
    assert torch.allclose(v[up], rest[up])


def test_named_expressions_do_what_they_say(body):
    rest = body.v_template
    m = body.mouth
    lips = torch.cat([m.upper_lip, m.lower_lip])
    corner = lips[rest[lips, 0].argmax()]
    smile = _expr(body, "smile")
    assert smile[corner, 1] > rest[corner, 1] + 0.002 and smile[corner, 0] > rest[corner, 0]
    frown = _expr(body, "frown")
    assert frown[corner, 1] < rest[corner, 1] - 0.002
    pucker = _expr(body, "lip_round")
    w_rest = rest[lips, 0].max() - rest[lips, 0].min()
    assert pucker[lips, 0].max() - pucker[lips, 0].min() < 0.9 * w_rest
    brow = _expr(body, "brow_raise")
    head = _part(body, "head")
    assert (brow[head, 1] - rest[head, 1]).max() > 0.005
    eye = _part(body, "left_eye")
    blink = _expr(body, "blink")
    h_rest = rest[eye, 1].max() - rest[eye, 1].min()
    assert blink[eye, 1].max() - blink[eye, 1].min() < 0.2 * h_rest
    left = _expr(body, "mouth_left")
    assert (left[lips, 0] - rest[lips, 0]).mean() > 0.003


def test_jaw_pose_opens_the_mouth_and_hands_pose(body):
    n = body.joint_index
    m = body.mouth
    rest = body.v_template
    up, lo = m.upper_lip[rest[m.upper_lip, 0].abs().argmin()], m.lower_lip[rest[m.lower_lip, 0].abs().argmin()]
    pose = body.zero_pose()
    pose[0, n("jaw"), 0] = 0.3
    out = body(pose)
    v = out.vertices[0]
    assert torch.allclose(v[up], body.v_template[up], atol=1e-6)
    assert v[lo, 1] < body.v_template[lo, 1] - 0.015
    # arm down: rotate the left shoulder -90 degrees about z; the wrist ends below the shoulder
    pose = body.zero_pose()
    pose[0, n("left_shoulder"), 2] = -math.pi / 2
    out = body(pose)
    J = out.joints[0]
    L = float(body.rest_joints()[0, n("left_wrist"), 0] - body.rest_joints()[0, n("left_shoulder"), 0])
    assert torch.allclose(J[n("left_wrist")], J[n("left_shoulder")] - torch.tensor([0.0, L, 0.0]), atol=1e-5)
    finger = _part(body, "left_middle")
    assert (out.vertices[0, finger, 1] < J[n("left_shoulder"), 1] - 0.4).all()


def test_shape_components(body):
    assert body.num_betas == 4 and body.meta["shape_names"] == list(toy.SHAPE_NAMES)
    rest = body.v_template
    for k in range(4):
        betas = torch.zeros(1, 4)
        betas[0, k] = 1.0
        v = body.shaped_template(betas)[0]
        assert (v - rest).norm(dim=-1).max() > 0.01
    betas = torch.tensor([[1.0, 0, 0, 0]])
    assert body.shaped_template(betas)[0, :, 1].max() > rest[:, 1].max() + 0.04  # taller
    assert body.rest_joints(betas)[0, body.joint_index("head"), 1] > body.rest_joints()[0, body.joint_index("head"), 1]


def test_mouth_definition(body):
    m = body.mouth
    v = body.v_template
    assert m.head_joint == body.joint_index("head") and m.jaw_joint == body.joint_index("jaw")
    assert torch.equal(m.forward, torch.tensor([0.0, 0.0, 1.0])) and torch.equal(m.up, torch.tensor([0.0, 1.0, 0.0]))
    assert 0.04 < m.width < 0.065
    assert len(m.upper_lip) >= 6 and len(m.lower_lip) == len(m.upper_lip)
    assert body.head_mask[m.upper_lip].all() and body.head_mask[m.lower_lip].all()
    assert (v[m.upper_lip, 1] > v[m.lower_lip, 1]).all()
    assert v[m.lower_lip, 1].max() < m.center[1] < v[m.upper_lip, 1].min()
    assert m.center[2] < v[m.upper_lip, 2].max()  # inside the mouth, behind the lips


def test_load_options_and_registry():
    b = toy.load(num_betas=2, num_expression=3)
    assert b.num_betas == 2 and b.num_expressions == 3 and b.expression_names == ["jaw_open", "lip_round", "smile"]
    with pytest.raises(ValueError, match="num_betas"):
        toy.load(num_betas=9)
    assert load_body_model("toy").num_vertices == toy.load().num_vertices
    st = body_model_status()["toy"]
    assert st["available"] is True and st["detail"]
