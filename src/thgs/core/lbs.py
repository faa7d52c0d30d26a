"""Linear blend skinning, as pure functions that keep every transform.

Gaussians are not vertices: skinning a Gaussian needs the blended 4x4 transform itself (to move its
centre and rotate its orientation), so :func:`forward_kinematics` returns each joint's transform and
:func:`blend_transforms` returns each point's.

Conventions: ``pose`` is local axis-angle per joint, [B, J, 3]; joint 0 is the root; ``parents[j] < j``
for j > 0 and ``parents[0] == -1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.core.rotations import axis_angle_to_matrix


def blend_shapes(coeffs: Tensor, basis: Tensor) -> Tensor:
    """Linear blend shapes: coeffs [B, K], basis [V, 3, K] -> offsets [B, V, 3]."""
    if coeffs.shape[-1] != basis.shape[-1]:
        raise ValueError(f"blend_shapes: {coeffs.shape[-1]} coefficients for a basis of {basis.shape[-1]}")
    return torch.einsum("bk,vck->bvc", coeffs, basis)


def pose_feature(rot_mats: Tensor) -> Tensor:
    """SMPL-style pose-corrective feature: (R_j - I) for every non-root joint, flattened: [B, (J-1)*9]."""
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).reshape(rot_mats.shape[0], -1)


def make_transform(rot: Tensor, trans: Tensor) -> Tensor:
    """rot [..., 3, 3], trans [..., 3] -> [..., 4, 4]."""
    top = torch.cat([rot, trans[..., None]], dim=-1)
    bottom = torch.zeros(*rot.shape[:-2], 1, 4, dtype=rot.dtype, device=rot.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


@dataclass
class Kinematics:
    """Result of forward kinematics for a batch of poses.

    Attributes:
        global_transforms: [B, J, 4, 4] each joint's frame in world (rest joint at origin of its frame).
        skinning_transforms: [B, J, 4, 4] maps a rest-pose point to its posed position if it moved
            rigidly with joint j (the transforms LBS blends).
        posed_joints: [B, J, 3] joint positions after posing.
    """

    global_transforms: Tensor
    skinning_transforms: Tensor
    posed_joints: Tensor


def forward_kinematics(rot_mats: Tensor, rest_joints: Tensor, parents: Tensor) -> Kinematics:
    """Compose local rotations along the kinematic tree.

    Args:
        rot_mats: [B, J, 3, 3] local joint rotations.
        rest_joints: [B, J, 3] joint locations in the rest pose.
        parents: [J] long, parents[0] = -1.
    """
    B, J = rot_mats.shape[:2]
    rel = rest_joints.clone()
    par = parents.tolist()
    rel[:, 1:] = rest_joints[:, 1:] - rest_joints[:, par[1:]]
    local = make_transform(rot_mats, rel)  # [B, J, 4, 4]
    chain = [local[:, 0]]
    for j in range(1, J):
        chain.append(chain[par[j]] @ local[:, j])
    glob = torch.stack(chain, dim=1)
    posed = glob[..., :3, 3]
    # Remove the rest joint location: T_skin = G_j * translate(-rest_j).
    offset = (glob[..., :3, :3] @ rest_joints[..., None])[..., 0]
    skin = glob.clone()
    skin[..., :3, 3] = glob[..., :3, 3] - offset
    return Kinematics(global_transforms=glob, skinning_transforms=skin, posed_joints=posed)


def kinematic_levels(parents: Tensor) -> list[Tensor]:
    """The joints grouped by depth in the kinematic tree, for :func:`forward_kinematics_levels`.

    Args:
        parents: [J] long, parents[0] = -1 and parents[j] < j.
    Returns:
        one long tensor per depth 1, 2, ... (the root, depth 0, is left out), each [J_d] holding the
        joints at that depth in increasing order, on ``parents``' device. Computed once per skeleton.
    """
    par = parents.tolist()
    if not par:
        return []
    depth = [0] * len(par)
    for j in range(1, len(par)):
        if not 0 <= par[j] < j:
            raise ValueError(f"kinematic_levels: parents[{j}] = {par[j]} must satisfy 0 <= parents[j] < j")
        depth[j] = depth[par[j]] + 1
    return [torch.tensor([j for j, d in enumerate(depth) if d == level], dtype=torch.long, device=parents.device)
            for level in range(1, max(depth) + 1)]


def forward_kinematics_levels(rot_mats: Tensor, rest_joints: Tensor, parents: Tensor,
                              levels: list[Tensor]) -> Kinematics:
    """:func:`forward_kinematics` with all joints of one depth composed in one batched product.

    The number of operations grows with the depth of the tree, not the number of joints, and nothing
    reads a tensor back to the host (the parent table stays on the device), so the call can be
    recorded in a CUDA graph.

    Args:
        rot_mats: [B, J, 3, 3] local joint rotations.
        rest_joints: [B, J, 3] joint locations in the rest pose.
        parents: [J] long, parents[0] = -1.
        levels: :func:`kinematic_levels` of ``parents`` (on the same device).
    Returns:
        the same :class:`Kinematics` as :func:`forward_kinematics`.
    """
    local = _local_transforms(rot_mats, rest_joints, parents)
    glob = local.clone()  # the root's global transform is its local one
    for idx in levels:
        par = parents.index_select(0, idx)
        glob = glob.index_copy(1, idx, glob.index_select(1, par) @ local.index_select(1, idx))
    return _kinematics(glob, rest_joints)


def _local_transforms(rot_mats: Tensor, rest_joints: Tensor, parents: Tensor) -> Tensor:
    """[B, J, 4, 4] each joint's transform relative to its parent: its rotation, and its rest offset from the
    parent as translation (the root's offset is its location)."""
    rel = torch.cat([rest_joints[:, :1], rest_joints[:, 1:] - rest_joints.index_select(1, parents[1:])], dim=1)
    return make_transform(rot_mats, rel)


def _kinematics(glob: Tensor, rest_joints: Tensor) -> Kinematics:
    """:class:`Kinematics` from the global joint transforms [B, J, 4, 4] and the rest joints [B, J, 3]."""
    posed = glob[..., :3, 3]
    offset = (glob[..., :3, :3] @ rest_joints[..., None])[..., 0]
    skin = torch.cat([glob[..., :3, :3], (glob[..., :3, 3] - offset)[..., None]], dim=-1)
    skin = torch.cat([skin, glob[..., 3:, :]], dim=-2)
    return Kinematics(global_transforms=glob, skinning_transforms=skin, posed_joints=posed)


def ancestor_jumps(parents: Tensor) -> list[Tensor]:
    """The ancestor tables of :func:`forward_kinematics_jumps`: table r [J] holds, for each joint, its ancestor
    2^r generations up, or J (past the root). There are ceil(log2(depth + 1)) tables for a tree of that depth
    (5 for anny's 16 levels). Computed once per skeleton, on ``parents``' device; ``parents`` as
    :func:`kinematic_levels` takes them."""
    par = parents.tolist()
    for j in range(1, len(par)):
        if not 0 <= par[j] < j:
            raise ValueError(f"ancestor_jumps: parents[{j}] = {par[j]} must satisfy 0 <= parents[j] < j")
    J = len(par)
    up = [p if p >= 0 else J for p in par]
    tables = []
    while any(a != J for a in up):
        tables.append(torch.tensor(up, dtype=torch.long, device=parents.device))
        up = [J if a == J else up[a] for a in up]
    return tables


def forward_kinematics_jumps(rot_mats: Tensor, rest_joints: Tensor, parents: Tensor,
                             jumps: list[Tensor]) -> Kinematics:
    """:func:`forward_kinematics` by pointer jumping: every joint's chain of local transforms is composed in
    ceil(log2(depth + 1)) batched products instead of one per depth level.

    Each joint keeps the product ``P_j`` of the local transforms from below its current ancestor ``a_j`` down to
    itself (at first its own local transform and its parent), so that ``G_j = G_{a_j} P_j``; a round replaces
    ``P_j`` by ``P_{a_j} P_j`` and ``a_j`` by ``a_{a_j}``, doubling the span; once every ancestor is past the
    root, ``P_j = G_j``. Nothing is read back to the host, so the call can be recorded in a CUDA graph.

    Args:
        rot_mats: [B, J, 3, 3] local joint rotations; rest_joints: [B, J, 3]; parents: [J] long, parents[0] = -1;
        jumps: :func:`ancestor_jumps` of ``parents`` (on the same device).
    Returns:
        the same :class:`Kinematics` as :func:`forward_kinematics` (to float rounding: the products associate
        differently).
    """
    P = _local_transforms(rot_mats, rest_joints, parents)
    if jumps:
        eye = torch.eye(4, dtype=P.dtype, device=P.device).expand(P.shape[0], 1, 4, 4)
        for up in jumps:
            P = torch.cat([P, eye], dim=1).index_select(1, up) @ P
    return _kinematics(P, rest_joints)


def pose_to_kinematics(pose: Tensor, rest_joints: Tensor, parents: Tensor) -> Kinematics:
    """Axis-angle pose [B, J, 3] -> :class:`Kinematics`."""
    return forward_kinematics(axis_angle_to_matrix(pose), rest_joints, parents)


def blend_transforms(weights: Tensor, transforms: Tensor) -> Tensor:
    """Per-point blended transforms.

    Args:
        weights: [N, J] or [B, N, J] skinning weights.
        transforms: [B, J, 4, 4].
    Returns:
        [B, N, 4, 4]
    """
    B, J = transforms.shape[:2]
    flat = transforms.reshape(B, J, 16)
    if weights.dim() == 2:
        out = torch.einsum("nj,bjk->bnk", weights, flat)
    else:
        out = torch.einsum("bnj,bjk->bnk", weights, flat)
    return out.reshape(B, -1, 4, 4)


def transform_points(transforms: Tensor, points: Tensor) -> Tensor:
    """transforms [B, N, 4, 4], points [B, N, 3] or [N, 3] -> [B, N, 3]."""
    if points.dim() == 2:
        points = points.expand(transforms.shape[0], -1, -1)
    return (transforms[..., :3, :3] @ points[..., None])[..., 0] + transforms[..., :3, 3]


def linear_blend_skinning(points: Tensor, weights: Tensor, transforms: Tensor) -> tuple[Tensor, Tensor]:
    """Skin arbitrary points: returns (posed points [B, N, 3], per-point transforms [B, N, 4, 4])."""
    per_point = blend_transforms(weights, transforms)
    return transform_points(per_point, points), per_point


__all__ = [
    "Kinematics", "ancestor_jumps", "axis_angle_to_matrix", "blend_shapes", "blend_transforms", "forward_kinematics",
    "forward_kinematics_jumps", "forward_kinematics_levels", "kinematic_levels", "linear_blend_skinning", "make_transform", "pose_feature",
    "pose_to_kinematics", "transform_points",
]
