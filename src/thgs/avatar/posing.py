"""The posing pass (Eq. 5-7), one function for training, inference and the benchmarks.

:func:`pose_batch` poses B frames of the Gaussians from :class:`PoseConstants` (everything that does not
depend on the frame) and the frame inputs (joint rotations, expressions, SAAM's mouth deltas, translations),
in a fixed, shape-static sequence of batched operations:

    mu_e = mu + (B_S(beta) + B_E(psi) + B_P(theta))[parent] (+ SAAM's d_mu on the mouth rows)   (Eq. 5)
    M    = sum_j w_j(mu_e) T_j(theta)                                                          (Eq. 6)
    mu_theta = M_rot mu_e + M_t + transl,   r_theta = polar(M_rot) r                           (Eq. 7)

The training step builds the constants every step from the parameters, with their gradients
(:meth:`thgs.avatar.model.THGSAvatar.pose_constants`); the inference path builds them once and keeps them
(:class:`thgs.avatar.inference.Animator`). ``polar`` is Gram-Schmidt of the blended block's first two columns
(:func:`thgs.core.rotations.blended_rotation_quaternion`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.avatar import gaussians as G
from thgs.avatar.skinning_grid import blend_grid_transforms, grid_weights
from thgs.core import lbs
from thgs.core.rotations import blended_rotation_quaternion, normalize_quaternion, quaternion_multiply


@dataclass
class PoseConstants:
    """The frame-independent inputs of :func:`pose_batch` (N Gaussians, V template vertices, J joints, M mouth
    Gaussians).

    means [N, 3] canonical means; parent [N] their template vertex; shape_offsets [V, 3] ``B_S(beta)``;
    expr_basis [V, 3, K] the expression basis in use (``E_hat`` with LEB) or None (expressions have no
    effect); posedirs [P, 3V] the pose-corrective basis or None; quats [N, 4] (unit) and scales [N, 3]
    (activated) the Gaussians' own; mouth [M] the rows SAAM moves, with their raw quaternions mouth_quats
    [M, 4] and log-scales mouth_log_scales [M, 3] (SAAM's deltas are added to those); rest_joints [1, J, 3]; joint_expr_basis [J, 3, E] for a
    body whose joints follow the expression, else None; parents [J] the kinematic tree and jumps its ancestor tables (:func:`thgs.core.lbs.ancestor_jumps`);
    skinning: ``grid`` [J, R, R, R] with its box (``grid_lo``, ``grid_hi``) and ``grid_eps`` (Eq. 18), the
    transforms blended into the grid before one look-up when ``fused``, else the weights looked up and the
    transforms blended per point; with a sparse residual (:class:`thgs.avatar.skinning_grid.SkinningGrid` with
    a band) ``grid`` is the fixed base, ``grid_residual`` [J, M] the residual's effect on the M active grid
    points and ``grid_slots`` [R^3] each grid point's column in it (M: inactive); without a grid,
    ``lbs_weights`` [V, J] of each Gaussian's parent vertex.
    """

    means: Tensor
    parent: Tensor
    shape_offsets: Tensor
    expr_basis: Tensor | None
    posedirs: Tensor | None
    quats: Tensor
    scales: Tensor
    mouth: Tensor
    mouth_quats: Tensor
    mouth_log_scales: Tensor
    rest_joints: Tensor
    joint_expr_basis: Tensor | None
    parents: Tensor
    jumps: list[Tensor]
    grid: Tensor | None = None
    grid_lo: Tensor | None = None
    grid_hi: Tensor | None = None
    grid_eps: float = 0.0
    fused: bool = True
    lbs_weights: Tensor | None = None
    grid_residual: Tensor | None = None
    grid_slots: Tensor | None = None

    @property
    def num_expressions(self) -> int:
        return 0 if self.expr_basis is None else int(self.expr_basis.shape[-1])


def vertex_offsets(shape_offsets: Tensor, expr_basis: Tensor | None, posedirs: Tensor | None, rot: Tensor,
                   expression: Tensor | None) -> Tensor:
    """Per-vertex canonical offsets ``B_S + B_E + B_P`` of B frames (the blend shapes of
    :class:`PoseConstants`): rot [B, J, 3, 3] joint rotations, expression [B, K'] or None -> [B, V, 3]."""
    B = rot.shape[0]
    off = shape_offsets.expand(B, -1, -1)
    if expression is not None and expr_basis is not None:
        n = min(expression.shape[-1], expr_basis.shape[-1])
        off = off + torch.einsum("bk,vck->bvc", expression[:, :n], expr_basis[..., :n])
    if posedirs is not None:
        off = off + (lbs.pose_feature(rot) @ posedirs).reshape(B, -1, 3)
    return off


def skin_points(k: PoseConstants, mu_e: Tensor, quats: Tensor, rot: Tensor, expression: Tensor | None,
                transl: Tensor) -> tuple[Tensor, Tensor]:
    """Skinning (Eq. 6-7) of B frames: points ``mu_e`` [B, N, 3] with unit quaternions [B, N, 4], joint
    rotations [B, J, 3, 3], expression [B, E] or None (moves the joints of a body whose joints follow it) and
    translations [B, 3] -> posed means [B, N, 3] and unit quaternions [B, N, 4]."""
    B = rot.shape[0]
    joints = k.rest_joints.expand(B, -1, -1)
    if expression is not None and k.joint_expr_basis is not None:
        n = min(expression.shape[-1], k.joint_expr_basis.shape[-1])
        joints = joints + torch.einsum("bk,jck->bjc", expression[:, :n], k.joint_expr_basis[..., :n])
    T = lbs.forward_kinematics_jumps(rot, joints, k.parents, k.jumps).skinning_transforms  # [B, J, 4, 4]
    if k.grid is not None and k.fused:
        M = blend_grid_transforms(k.grid, k.grid_lo, k.grid_hi, k.grid_eps, mu_e, T, k.grid_residual,
                                  k.grid_slots)  # [B, N, 3, 4]
    elif k.grid is not None:
        M = lbs.blend_transforms(grid_weights(k.grid, k.grid_lo, k.grid_hi, k.grid_eps, mu_e, k.grid_residual,
                                              k.grid_slots), T)
    else:
        assert k.lbs_weights is not None
        M = lbs.blend_transforms(k.lbs_weights.index_select(0, k.parent), T)  # [B, N, 4, 4]
    R = M[..., :3, :3]
    means = (R @ mu_e[..., None])[..., 0] + M[..., :3, 3] + transl[:, None]
    return means, quaternion_multiply(blended_rotation_quaternion(R), quats)


def pose_batch(k: PoseConstants, rot: Tensor, expression: Tensor | None, mouth_delta: Tensor | None,
               transl: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pose B frames (Eq. 5-7).

    Args:
        k: the constants. rot: [B, J, 3, 3] joint rotations (``lbs.axis_angle_to_matrix`` of the pose).
        expression: [B, K'] or None. mouth_delta: [B, M, 10] SAAM's output on the mouth rows (position 3,
            raw quaternion 4, log-scale 3: Eq. 15) or None. transl: [B, 3].
    Returns:
        posed means [B, N, 3], unit quaternions [B, N, 4] and activated scales [B, N, 3].
    """
    B = rot.shape[0]
    offsets = vertex_offsets(k.shape_offsets, k.expr_basis, k.posedirs, rot, expression)
    mu_e = k.means + offsets.index_select(1, k.parent)  # [B, N, 3]
    quats = k.quats.expand(B, -1, -1)
    scales = k.scales.expand(B, -1, -1)
    if mouth_delta is not None and k.mouth.numel():
        idx = k.mouth
        mu_e = mu_e.index_add(1, idx, mouth_delta[..., :3])
        quats = quats.index_copy(1, idx, normalize_quaternion(k.mouth_quats + mouth_delta[..., 3:7]))
        scales = scales.index_copy(1, idx, G.activate_scales(k.mouth_log_scales + mouth_delta[..., 7:10]))
    means, q = skin_points(k, mu_e, quats, rot, expression, transl)
    return means, q, scales


__all__ = ["PoseConstants", "pose_batch", "skin_points", "vertex_offsets"]
