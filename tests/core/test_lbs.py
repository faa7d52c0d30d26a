import math

import pytest
import torch

from thgs.core import lbs
from thgs.core.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion,
                                 quaternion_multiply, quaternion_to_matrix)


def chain(n=3):
    parents = torch.tensor([-1] + list(range(n - 1)))
    rest = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])[:n][None]
    return parents, rest


def test_single_joint_rotated_90_degrees_about_z():
    parents, rest = chain(2)
    pose = torch.zeros(1, 2, 3)
    pose[0, 1, 2] = math.pi / 2  # joint 1 (at x=1) turns 90 deg about z
    kin = lbs.pose_to_kinematics(pose, rest, parents)
    # a point at x=2 fully bound to joint 1 swings to (1, 1, 0)
    pts = torch.tensor([[2.0, 0, 0], [0.5, 0, 0]])
    w = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    posed, per_point = lbs.linear_blend_skinning(pts, w, kin.skinning_transforms)
    assert torch.allclose(posed[0, 0], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(posed[0, 1], torch.tensor([0.5, 0.0, 0.0]), atol=1e-6)  # root-bound point stays
    # half/half weights: the average of the two rigid motions
    half, _ = lbs.linear_blend_skinning(torch.tensor([[2.0, 0, 0]]), torch.tensor([[0.5, 0.5]]), kin.skinning_transforms)
    assert torch.allclose(half[0, 0], torch.tensor([1.5, 0.5, 0.0]), atol=1e-6)
    # the blended transform rotates orientations too
    r = per_point[0, 0, :3, :3]
    assert torch.allclose(r @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_transforms_compose_along_the_tree():
    parents, rest = chain(3)
    pose = torch.randn(2, 3, 3) * 0.7
    kin = lbs.pose_to_kinematics(pose, rest.expand(2, -1, -1), parents)
    R = axis_angle_to_matrix(pose)
    # global rotation of joint 2 = R0 R1 R2; posed joint 2 = G1 applied to the rest offset
    assert torch.allclose(kin.global_transforms[:, 2, :3, :3], R[:, 0] @ R[:, 1] @ R[:, 2], atol=1e-5)
    expect_j2 = kin.posed_joints[:, 1] + (R[:, 0] @ R[:, 1] @ torch.tensor([1.0, 0, 0]))
    assert torch.allclose(kin.posed_joints[:, 2], expect_j2, atol=1e-5)
    # skinning transform maps each rest joint to its posed location
    for j in range(3):
        moved = lbs.transform_points(kin.skinning_transforms[:, j:j + 1], rest[:, j])
        assert torch.allclose(moved[:, 0], kin.posed_joints[:, j], atol=1e-5)


def test_zero_pose_is_identity():
    parents, rest = chain(3)
    kin = lbs.pose_to_kinematics(torch.zeros(1, 3, 3), rest, parents)
    assert torch.allclose(kin.skinning_transforms, torch.eye(4).expand(1, 3, 4, 4), atol=1e-6)


def test_rotation_conversions_round_trip():
    aa = torch.randn(64, 3)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(64, 1) * 3.0
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(64, 3, 3), atol=1e-5)
    q = matrix_to_quaternion(R)
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-5)
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(R)), R, atol=1e-4)
    q2 = matrix_to_quaternion(axis_angle_to_matrix(torch.randn(64, 3)))
    assert torch.allclose(quaternion_to_matrix(quaternion_multiply(q, q2)), R @ quaternion_to_matrix(q2), atol=1e-5)


def test_axis_angle_gradient_finite_at_zero():
    aa = torch.zeros(1, 3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def _same_as_the_joint_loop(body, fk, frames: int, seed: int) -> None:
    """``fk(rot, rest)`` gives :func:`lbs.forward_kinematics`'s kinematics for random poses and shapes of ``body``."""
    g = torch.Generator().manual_seed(seed)
    rot = axis_angle_to_matrix(0.5 * torch.randn(frames, body.num_joints, 3, generator=g))
    rest = body.rest_joints(torch.randn(frames, body.num_betas, generator=g))
    want, got = lbs.forward_kinematics(rot, rest, body.parents), fk(rot, rest)
    for name in ("global_transforms", "skinning_transforms", "posed_joints"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-6, rtol=1e-6)


def test_kinematic_levels_and_level_forward_kinematics_match_the_joint_loop():
    from thgs.body import toy

    body = toy.load()
    levels = lbs.kinematic_levels(body.parents)
    par = body.parents.tolist()
    seen = torch.cat(levels).sort().values
    assert torch.equal(seen, torch.arange(1, body.num_joints))  # every non-root joint exactly once
    for d, idx in enumerate(levels):  # a joint's parent sits one level up (the root is level 0)
        for j in idx.tolist():
            p = par[j]
            assert (p == 0 and d == 0) or (d > 0 and p in levels[d - 1].tolist())
    assert len(levels) < body.num_joints / 3  # launches scale with depth, not joint count
    _same_as_the_joint_loop(body, lambda rot, rest: lbs.forward_kinematics_levels(rot, rest, body.parents, levels),
                            frames=3, seed=0)
    # a chain has one joint per level
    parents, _ = chain(3)
    assert [t.tolist() for t in lbs.kinematic_levels(parents)] == [[1], [2]]
    with pytest.raises(ValueError, match="parents"):
        lbs.kinematic_levels(torch.tensor([-1, 2, 0]))


def test_pointer_jumping_forward_kinematics_matches_the_joint_loop():
    from thgs.body import toy

    body = toy.load()
    jumps = lbs.ancestor_jumps(body.parents)
    depth = len(lbs.kinematic_levels(body.parents))
    assert len(jumps) == math.ceil(math.log2(depth + 1))  # doubling spans: log of the depth
    J = body.num_joints
    assert jumps[0].tolist() == [J] + body.parents.tolist()[1:]  # first table: the parents (root: past it)
    _same_as_the_joint_loop(body, lambda rot, rest: lbs.forward_kinematics_jumps(rot, rest, body.parents, jumps),
                            frames=2, seed=1)
    # a chain of 5 joints: ancestors 1, 2, 4 generations up, then done
    parents, _ = chain(5)
    assert [t.tolist() for t in lbs.ancestor_jumps(parents)] == [[5, 0, 1, 2, 3], [5, 5, 0, 1, 2], [5, 5, 5, 5, 0]]
    assert lbs.ancestor_jumps(torch.tensor([-1])) == []  # a lone root needs no product
    rot, rest = axis_angle_to_matrix(torch.tensor([[[0.3, -0.2, 0.1]]])), torch.tensor([[[0.5, 1.0, -0.2]]])
    one = lbs.forward_kinematics_jumps(rot, rest, torch.tensor([-1]), [])
    want = lbs.forward_kinematics(rot, rest, torch.tensor([-1]))
    torch.testing.assert_close(one.global_transforms, want.global_transforms)
    with pytest.raises(ValueError, match="parents"):
        lbs.ancestor_jumps(torch.tensor([-1, 2, 0]))
