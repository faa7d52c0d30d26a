"""The body-model abstraction: a module that holds only buffers, plus pure functions that pose it.

Every body (SMPL-X, anny, the procedural toy) is converted into the same set of tensors:

=================  =====================  ============================================================
buffer             shape                  meaning
=================  =====================  ============================================================
v_template         [V, 3] float           rest (T-pose) vertices, metres
faces              [F, 3] long            triangles
joint_regressor    [J, V] float           rest joints = joint_regressor @ (v_template + shape offsets
                                          [+ expression offsets, see below])
parents            [J] long               kinematic tree, parents[0] = -1, parents[j] < j
lbs_weights        [V, J] float           skinning weights, rows sum to 1
shapedirs          [V, 3, S] float        shape blend shapes (S may be 0)
exprdirs           [V, 3, E] float        expression blend shapes (E may be 0)
posedirs           [(J-1)*9, V*3] float   pose correctives on (R_j - I), optional (0 rows = none)
head_mask          [V] bool               head region (FLAME region for SMPL-X); LEB/SAAM act here
=================  =====================  ============================================================

plus ``joint_names`` (list of J names), ``expression_names`` (E names, may be generic), and a
:class:`MouthDefinition` that the teeth and SAAM need. Vertex normals are computed from the template.

Whether expressions move the joints is part of each model's definition (``joints_follow_expression``):
SMPL-X regresses its joints from the template plus shape *and* expression offsets (its expression
components are extra columns of ``shapedirs``), so an SMPL-X body sets it and its rest joints depend on
the expression; anny's facial actions are blend shapes that move no bone, and the toy's expressions are
surface displacements about fixed joints, so both leave it unset and their joints follow the shape only.
The joint-space expression basis ``joint_regressor @ exprdirs`` ([J, 3, E]) is computed once (a buffer
that is not saved in state dicts).

The pose of every model is local axis-angle per joint, [B, J, 3], plus a root translation [B, 3].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from thgs.core import lbs
from thgs.core.mesh import vertex_normals


@dataclass
class MouthDefinition:
    """Where the mouth is, in the rest pose, for the teeth and SAAM.

    Attributes:
        center: [3] point inside the mouth between the lips (rest pose, metres).
        forward: [3] unit vector pointing out of the face.
        up: [3] unit vector pointing to the top of the head.
        width: mouth width (corner to corner), metres.
        upper_lip: vertex indices of the upper lip's inner edge.
        lower_lip: vertex indices of the lower lip's inner edge.
        head_joint: index of the joint the upper teeth follow.
        jaw_joint: index of the joint the lower teeth follow.
    """

    center: Tensor
    forward: Tensor
    up: Tensor
    width: float
    upper_lip: Tensor
    lower_lip: Tensor
    head_joint: int
    jaw_joint: int

    def to(self, device: torch.device | str) -> "MouthDefinition":
        return MouthDefinition(
            center=self.center.to(device), forward=self.forward.to(device), up=self.up.to(device),
            width=self.width, upper_lip=self.upper_lip.to(device), lower_lip=self.lower_lip.to(device),
            head_joint=self.head_joint, jaw_joint=self.jaw_joint,
        )


@dataclass
class BodyOutput:
    """A posed batch. ``vertices`` [B, V, 3]; ``joints`` [B, J, 3] posed; ``kinematics`` holds every
    joint transform; ``rest_vertices`` [B, V, 3] are the shaped/expressed/pose-corrected rest vertices
    that LBS moved; ``rest_joints`` [B, J, 3]."""

    vertices: Tensor
    joints: Tensor
    rest_vertices: Tensor
    rest_joints: Tensor
    kinematics: lbs.Kinematics


class BodyModel(nn.Module):
    """Buffers of a parametric body; see the module docstring for the layout."""

    def __init__(
        self,
        *,
        name: str,
        v_template: Tensor,
        faces: Tensor,
        joint_regressor: Tensor,
        parents: Tensor,
        joint_names: list[str],
        lbs_weights: Tensor,
        shapedirs: Tensor | None = None,
        exprdirs: Tensor | None = None,
        posedirs: Tensor | None = None,
        head_mask: Tensor,
        mouth: MouthDefinition,
        expression_names: list[str] | None = None,
        up_axis: str = "y",
        meta: dict | None = None,
        joints_follow_expression: bool = False,
    ) -> None:
        super().__init__()
        V = v_template.shape[0]
        J = parents.shape[0]
        dt = torch.float32
        shapedirs = shapedirs if shapedirs is not None else torch.zeros(V, 3, 0)
        exprdirs = exprdirs if exprdirs is not None else torch.zeros(V, 3, 0)
        posedirs = posedirs if posedirs is not None else torch.zeros(0, V * 3)
        checks = [
            ("v_template", v_template.shape, (V, 3)),
            ("faces", tuple(faces.shape[1:]), (3,)),
            ("joint_regressor", joint_regressor.shape, (J, V)),
            ("lbs_weights", lbs_weights.shape, (V, J)),
            ("shapedirs", shapedirs.shape[:2], (V, 3)),
            ("exprdirs", exprdirs.shape[:2], (V, 3)),
            ("head_mask", head_mask.shape, (V,)),
        ]
        for fname, got, want in checks:
            if tuple(got) != tuple(want):
                raise ValueError(f"body model {name!r}: field {fname} has shape {tuple(got)}, expected {want}")
        if posedirs.shape[0] not in (0, (J - 1) * 9) or posedirs.shape[1] != V * 3:
            raise ValueError(f"body model {name!r}: field posedirs has shape {tuple(posedirs.shape)}, "
                             f"expected ({(J - 1) * 9}, {V * 3}) or (0, {V * 3})")
        if len(joint_names) != J:
            raise ValueError(f"body model {name!r}: {len(joint_names)} joint names for {J} joints")
        par = parents.tolist()
        if par[0] != -1 or any(not (0 <= p < j) for j, p in enumerate(par) if j > 0):
            raise ValueError(f"body model {name!r}: parents must have parents[0] = -1 and parents[j] < j")
        self.name = name
        self.joint_names = list(joint_names)
        E = exprdirs.shape[-1]
        self.expression_names = list(expression_names) if expression_names else [f"expr{i:03d}" for i in range(E)]
        if len(self.expression_names) != E:
            raise ValueError(f"body model {name!r}: {len(self.expression_names)} expression names for {E} components")
        self.up_axis = up_axis
        self.meta = dict(meta or {})
        self.joints_follow_expression = bool(joints_follow_expression)
        self.register_buffer("v_template", v_template.to(dt))
        self.register_buffer("faces", faces.long())
        self.register_buffer("joint_regressor", joint_regressor.to(dt))
        self.register_buffer("parents", parents.long())
        self.register_buffer("lbs_weights", lbs_weights.to(dt))
        self.register_buffer("shapedirs", shapedirs.to(dt))
        self.register_buffer("exprdirs", exprdirs.to(dt))
        self.register_buffer("posedirs", posedirs.to(dt))
        self.register_buffer("head_mask", head_mask.bool())
        self.register_buffer("vertex_normals", vertex_normals(self.v_template, self.faces))
        joint_exprdirs = (torch.einsum("jv,vck->jck", self.joint_regressor, self.exprdirs)
                          if self.joints_follow_expression else torch.zeros(J, 3, 0, dtype=dt))
        self.register_buffer("joint_exprdirs", joint_exprdirs, persistent=False)
        self.mouth = mouth

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        return self.parents.shape[0]

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def num_expressions(self) -> int:
        return self.exprdirs.shape[-1]

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"body model {self.name!r} has no joint named {name!r}") from None

    def _apply(self, fn, recurse: bool = True):  # keep the mouth definition on the module's device
        out = super()._apply(fn, recurse)
        self.mouth = self.mouth.to(self.v_template.device)
        return out

    # -- pure-ish evaluation (no state beyond buffers) -----------------------------------------
    def shaped_template(self, betas: Tensor | None = None) -> Tensor:
        """[B, V, 3] (B = 1 when betas is None)."""
        v = self.v_template[None]
        if betas is not None and self.num_betas:
            v = v + lbs.blend_shapes(betas[:, : self.num_betas], self.shapedirs[..., : betas.shape[1]])
        return v

    def rest_joints(self, betas: Tensor | None = None, expression: Tensor | None = None) -> Tensor:
        """[B, J, 3] rest joint locations for the given shape ``betas`` [B, S'] and, for a model whose
        joints follow the expression (SMPL-X), expression [B, E'] (ignored otherwise); B = 1 when both
        are None, and a batch of 1 broadcasts against the other."""
        joints = torch.einsum("jv,bvc->bjc", self.joint_regressor, self.shaped_template(betas))
        if expression is not None and self.joints_follow_expression and self.num_expressions:
            E = min(expression.shape[1], self.num_expressions)
            joints = joints + torch.einsum("bk,jck->bjc", expression[:, :E].to(joints), self.joint_exprdirs[..., :E])
        return joints

    def zero_pose(self, batch: int = 1) -> Tensor:
        return torch.zeros(batch, self.num_joints, 3, device=self.v_template.device)

    def forward(
        self,
        pose: Tensor,
        betas: Tensor | None = None,
        expression: Tensor | None = None,
        transl: Tensor | None = None,
        pose_correctives: bool = True,
    ) -> BodyOutput:
        """Pose the mesh. ``pose`` [B, J, 3] axis-angle; ``betas`` [B, S']; ``expression`` [B, E'];
        ``transl`` [B, 3]. Fewer coefficients than the basis holds are allowed (the rest are zero)."""
        if pose.dim() != 3 or pose.shape[1:] != (self.num_joints, 3):
            raise ValueError(f"pose must be [B, {self.num_joints}, 3], got {tuple(pose.shape)}")
        B = pose.shape[0]
        v = self.shaped_template(betas).expand(B, -1, -1)
        joints = self.rest_joints(betas, expression).expand(B, -1, -1)
        if expression is not None and self.num_expressions:
            E = min(expression.shape[1], self.num_expressions)
            v = v + lbs.blend_shapes(expression[:, :E], self.exprdirs[..., :E])
        rot = lbs.axis_angle_to_matrix(pose)
        if pose_correctives and self.posedirs.shape[0]:
            v = v + (lbs.pose_feature(rot) @ self.posedirs).reshape(B, -1, 3)
        kin = lbs.forward_kinematics(rot, joints, self.parents)
        verts, _ = lbs.linear_blend_skinning(v, self.lbs_weights, kin.skinning_transforms)
        posed_joints = kin.posed_joints
        if transl is not None:
            verts = verts + transl[:, None]
            posed_joints = posed_joints + transl[:, None]
            kin = lbs.Kinematics(
                global_transforms=_translate(kin.global_transforms, transl),
                skinning_transforms=_translate(kin.skinning_transforms, transl),
                posed_joints=posed_joints,
            )
        return BodyOutput(vertices=verts, joints=posed_joints, rest_vertices=v, rest_joints=joints, kinematics=kin)


def _translate(t: Tensor, transl: Tensor) -> Tensor:
    out = t.clone()
    out[..., :3, 3] = out[..., :3, 3] + transl[:, None]
    return out


# Re-exported so callers need one import.
axis_angle_to_matrix = lbs.axis_angle_to_matrix
