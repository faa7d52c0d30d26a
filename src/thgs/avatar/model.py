"""``THGSAvatar``: canonical Gaussians + LEB + SAAM + skinning + per-frame refinements (Eq. 4-7).

For one frame the forward pass computes, per Gaussian i with parent vertex p(i):

    mu_e = mu + B_S(beta)[p] + B_E_hat(psi + d_psi)[p] + B_P(theta + d_theta)[p] + SAAM(mu, A)   (Eq. 5)
    M    = sum_j w_j(mu_e) T_j(theta + d_theta)                                               (Eq. 6)
    mu_theta = M_rot mu_e + M_t,   r_theta = polar(M_rot) r                                    (Eq. 7)

Blend-shape values come from the parent vertex (every Gaussian is born on a vertex and keeps its
parent through densification). ``polar`` is the Gram-Schmidt projection of the blended 3x3 block
onto a rotation (cheap and differentiable everywhere, unlike an SVD near repeated singular values).
The SAAM deltas act only on mouth Gaussians (inside the teeth box, see :func:`mouth_box`); its
rotation delta is added to the raw quaternion and its scale delta to the log-scale. Which Gaussians are
mouth Gaussians is kept in the per-Gaussian ``mouth`` flag of the state (saved with it): set from the
canonical means when the avatar is built, and refreshed by :meth:`THGSAvatar.refresh_mouth` when the set of
Gaussians changes (the trainer calls it when SAAM starts and after each densification), so the forward pass
never reads a value back from the device to find them.

Module groups (``pose``, ``expression``, ``skinning``, ``blendshapes``, ``saam``) start frozen
(no gradient reaches them); the trainer calls :meth:`THGSAvatar.set_group_active` at each group's
start step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor, nn

from thgs.avatar import gaussians as G
from thgs.avatar import posing
from thgs.avatar.posing import PoseConstants
from thgs.avatar.leb import LearnableExpressionBlendshapes
from thgs.avatar.refine import FrameRefinements
from thgs.avatar.saam import SAAM
from thgs.avatar.state import GaussianState
from thgs.body.model import BodyModel
from thgs.core import lbs
from thgs.core.rotations import normalize_quaternion
from thgs.render.base import GaussianSet

GROUPS = ("pose", "expression", "skinning", "blendshapes", "saam")


@dataclass
class AvatarOptions:
    """Which components the avatar has (the ablation switches) and their sizes."""

    leb: bool = True  # Learnable Expression Blendshapes (section 4.3)
    saam: bool = True  # Spatial Audio Attention Module (section 4.4)
    use_expression: bool = True  # feed the tracked expression coefficients through the blend shapes
    use_audio: bool = True  # feed audio to SAAM (off: SAAM is absent)
    joint_opt: bool = True  # per-frame pose/expression residuals and the skinning residual (section 4.5)
    pose_correctives: bool = True  # the body's pose-dependent blend shapes B_P, if it has them
    skinning: str = "grid"  # "grid": voxel skinning grid with learnable residual (Eq. 18); "parent": parent vertex weights
    grid_resolution: int = 64
    grid_padding: float = 0.1
    grid_band: int = 2  # grid skinning: the residual lives on the grid points within this band of the template (-1: dense)
    fused_skinning: bool = False  # grid skinning: blend the joint transforms into the grid, one look-up per point
    mouth_margin: float = 0.02  # grown mouth box, units for a 1.7 m body (scaled by body height)
    audio_dim: int = 32
    saam_hidden: int = 64
    hash_levels: int = 12
    hash_features: int = 2
    hash_base_resolution: int = 16
    hash_max_resolution: int = 256
    hash_log2_table: int = 14
    init: G.InitOptions = field(default_factory=G.InitOptions)


@dataclass
class FrameInputs:
    """One frame's driving signals.

    pose [J, 3] axis-angle; transl [3]; betas [S] or None; expression [E] or None;
    audio_window [8, 16, C] or None; frame_index: the subject frame (selects refinements) or None; an int, or
    a one-element long tensor on the model's device (a recorded training step reads no index from the host).
    """

    pose: Tensor
    transl: Tensor
    betas: Tensor | None = None
    expression: Tensor | None = None
    audio_window: Tensor | None = None
    frame_index: int | Tensor | None = None


@dataclass
class AvatarOutput:
    """The posed Gaussians plus what losses and densification need."""

    gaussians: GaussianSet
    canonical_means: Tensor  # [N, 3] raw mu (before offsets), for the vertex loss
    mouth: Tensor  # [N] bool, the Gaussians SAAM acted on (all False when SAAM did not act)


class THGSAvatar(nn.Module):
    """The THGS avatar for one subject.

    Args:
        body: the body model (teeth already added with ``thgs.body.teeth.with_teeth`` if wanted).
        options: components and sizes.
        num_frames: frames of the subject (rows of the per-frame refinement tables).
        audio_channels: C of the audio windows (SAAM is built only when > 0 and enabled).
    """

    def __init__(self, body: BodyModel, options: AvatarOptions | None = None, num_frames: int = 0,
                 audio_channels: int = 0) -> None:
        super().__init__()
        o = options or AvatarOptions()
        self.options = o
        self.body = body
        self.state: GaussianState = G.init_state(body, o.init)
        self.sh_degree = o.init.sh_degree
        self.leb = LearnableExpressionBlendshapes(body.exprdirs, body.head_mask) if (o.leb and o.use_expression) else None
        self.refine = (FrameRefinements(num_frames, body.num_joints, body.num_expressions)
                       if (o.joint_opt and num_frames > 0) else None)
        self.skin_grid = None
        if o.skinning == "grid":
            from thgs.avatar.skinning_grid import SkinningGrid

            self.skin_grid = SkinningGrid.from_body(body, resolution=o.grid_resolution, padding=o.grid_padding,
                                                    band=o.grid_band if o.grid_band >= 0 else None)
        elif o.skinning != "parent":
            raise ValueError(f"avatar: skinning must be 'grid' or 'parent', got {o.skinning!r}")
        self.register_buffer("mouth_box", G.mouth_box(body, o.mouth_margin))
        means = self.state["means"].detach()  # built on the CPU, also for a body already on a GPU
        self.state.add_buffer("mouth", G.in_box(means, self.mouth_box.to(means.device)))
        self._mouth_cache: tuple[Tensor, Tensor] | None = None  # (the flag tensor, its indices)
        self.saam = None
        if o.saam and o.use_audio and audio_channels > 0:
            head = body.v_template[body.head_mask] if body.head_mask.any() else body.v_template
            grow = 0.05 * G.body_scale(body)
            box = torch.stack([head.min(0).values - grow, head.max(0).values + grow])
            self.saam = SAAM(audio_channels, box, audio_dim=o.audio_dim, hidden=o.saam_hidden,
                             levels=o.hash_levels, features=o.hash_features,
                             base_resolution=o.hash_base_resolution, max_resolution=o.hash_max_resolution,
                             log2_table=o.hash_log2_table)
        self.active: dict[str, bool] = {g: False for g in GROUPS}
        for g in GROUPS:
            self.set_group_active(g, False)

    # -- groups ------------------------------------------------------------------------------
    def group_parameters(self, group: str) -> list[nn.Parameter]:
        """The parameters of one optimisation group (empty if the component is switched off)."""
        if group == "pose":
            return [self.refine.pose] if self.refine is not None else []
        if group == "expression":
            return [self.refine.expression] if (self.refine is not None and self.options.use_expression) else []
        if group == "skinning":
            return [self.skin_grid.delta] if (self.skin_grid is not None and self.options.joint_opt) else []
        if group == "blendshapes":
            return [self.leb.delta] if self.leb is not None else []
        if group == "saam":
            return list(self.saam.parameters()) if self.saam is not None else []
        raise KeyError(f"unknown parameter group {group!r}; known: {GROUPS}")

    def is_active(self, group: str) -> bool:
        """Whether ``group`` takes part in the forward pass (the one place group activity is read)."""
        return bool(self.active[group])

    def active_groups(self) -> frozenset[str]:
        """The groups that take part in the forward pass now."""
        return frozenset(g for g, on in self.active.items() if on)

    @contextlib.contextmanager
    def groups_switched(self, **flags: bool) -> Iterator[None]:
        """Temporarily switch groups on or off for inference (e.g. the viewer's SAAM / LEB toggles); gradients
        are left as they are and the previous activity is restored on exit."""
        unknown = set(flags) - set(self.active)
        if unknown:
            raise KeyError(f"unknown parameter group(s) {sorted(unknown)}; known: {GROUPS}")
        before = dict(self.active)
        self.active.update({g: bool(v) for g, v in flags.items()})
        try:
            yield
        finally:
            self.active.update(before)

    def set_group_active(self, group: str, active: bool) -> None:
        """Switch a group on (its parameters take part and receive gradients) or off (frozen, unused)."""
        self.active[group] = bool(active)
        for p in self.group_parameters(group):
            p.requires_grad_(bool(active))
        if self.skin_grid is not None and group == "skinning" and hasattr(self.skin_grid, "delta"):
            self.skin_grid.delta.requires_grad_(bool(active) and self.options.joint_opt)

    @property
    def num_gaussians(self) -> int:
        return self.state.num

    # -- mouth Gaussians -----------------------------------------------------------------------
    def refresh_mouth(self) -> None:
        """Mark as mouth Gaussians those whose canonical mean lies in ``mouth_box`` now."""
        with torch.no_grad():
            self.state.set_buffer("mouth", G.in_box(self.state["means"].detach(), self.mouth_box))
        self._mouth_cache = None

    def mouth_indices(self) -> Tensor:
        """[M] long indices of the mouth Gaussians (the state's ``mouth`` flag). Computed once per flag tensor
        (a new one comes with every densification, refresh, load or device move), not once per frame."""
        flag = self.state["mouth"]
        if self._mouth_cache is None or self._mouth_cache[0] is not flag:
            self._mouth_cache = (flag, flag.nonzero(as_tuple=True)[0])
        return self._mouth_cache[1]

    # -- forward -----------------------------------------------------------------------------
    def vertex_offsets(self, pose: Tensor, betas: Tensor | None, expression: Tensor | None) -> Tensor:
        """Per-vertex canonical offsets B_S + B_E_hat + B_P of one frame: [V, 3]."""
        return posing.vertex_offsets(*self.blend_shapes(betas), lbs.axis_angle_to_matrix(pose[None]),
                                     expression[None] if expression is not None else None)[0]

    def blend_shapes(self, betas: Tensor | None = None, leb: bool = True) -> tuple[Tensor, Tensor | None,
                                                                                  Tensor | None]:
        """The blend shapes of the posing pass: the shape offsets ``B_S(beta)`` [V, 3], the expression basis in
        use [V, 3, K] (``E_hat`` with LEB; None: expressions have no effect) and the pose-corrective basis or
        None. ``leb``: False uses the body's fixed basis even when the learned one is active."""
        body, o = self.body, self.options
        v = body.v_template
        shape = torch.zeros_like(v)
        if betas is not None and body.num_betas:
            b = betas.reshape(-1).to(v)
            n = min(b.shape[-1], body.num_betas)
            shape = shape + torch.einsum("k,vck->vc", b[:n], body.shapedirs[..., :n])
        expr_basis = None
        if o.use_expression and body.num_expressions:
            expr_basis = (self.leb.blendshapes(learnable=leb and self.active["blendshapes"]) if self.leb is not None
                          else body.exprdirs)
        posedirs = body.posedirs if (o.pose_correctives and body.posedirs.shape[0]) else None
        return shape, expr_basis, posedirs

    def pose_constants(self, betas: Tensor | None = None, *, leb: bool = True, saam: bool = True) -> PoseConstants:
        """The frame-independent inputs of the posing pass (:class:`thgs.avatar.posing.PoseConstants`) from
        the parameters as they are, with their gradients: the training step builds them every step, the
        inference path (:class:`thgs.avatar.inference.Animator`) once, without gradients. ``leb``: as
        :meth:`blend_shapes`; ``saam``: False leaves the mouth rows empty (SAAM does not act)."""
        body, st, o = self.body, self.state, self.options
        shape, expr_basis, posedirs = self.blend_shapes(betas, leb)
        mouth = self.mouth_indices() if (saam and self.saam is not None and self.active["saam"]) else \
            torch.zeros(0, dtype=torch.long, device=body.v_template.device)
        grid: dict = dict(grid=None)
        if self.skin_grid is not None:
            sg = self.skin_grid
            grid = dict(sg.lookup(), fused=o.fused_skinning)
        return PoseConstants(
            means=st["means"], parent=st["parent"], shape_offsets=shape, expr_basis=expr_basis, posedirs=posedirs,
            quats=normalize_quaternion(st["quats"]), scales=G.activate_scales(st["log_scales"]), mouth=mouth,
            mouth_quats=st["quats"].index_select(0, mouth), mouth_log_scales=st["log_scales"].index_select(0, mouth),
            rest_joints=body.rest_joints(betas.reshape(1, -1) if betas is not None else None),
            joint_expr_basis=(body.joint_exprdirs if (expr_basis is not None and body.joints_follow_expression)
                              else None),
            parents=body.parents, jumps=self._ancestor_jumps(), lbs_weights=body.lbs_weights, **grid)

    def _ancestor_jumps(self) -> list[Tensor]:
        """:func:`lbs.ancestor_jumps` of the body, computed once per device."""
        dev = self.body.parents.device
        cache = self.__dict__.setdefault("_jumps_cache", {})
        if dev not in cache:
            cache[dev] = lbs.ancestor_jumps(self.body.parents)
        return cache[dev]

    def effective_inputs(self, frame: FrameInputs) -> tuple[Tensor, Tensor | None]:
        """The pose [J, 3] and expression [E] after adding active per-frame refinements."""
        pose, expr = frame.pose, frame.expression
        if self.refine is not None and frame.frame_index is not None:
            if self.active["pose"]:
                pose = pose + self.refine.pose_delta(frame.frame_index)
            if self.active["expression"] and expr is not None:
                k = min(expr.shape[-1], self.refine.expression.shape[1])
                d = self.refine.expression_delta(frame.frame_index)
                expr = torch.cat([expr[:k] + d[:k], expr[k:]])
        return pose, expr

    def saam_acts(self, frame: FrameInputs) -> bool:
        """Whether SAAM moves the mouth Gaussians in this frame (it exists, is active and the frame has audio)."""
        return self.saam is not None and self.active["saam"] and frame.audio_window is not None

    def posed_gaussians(self, frame: FrameInputs) -> tuple[Tensor, Tensor, Tensor]:
        """The frame-dependent part of the forward pass (Eq. 5-7, :func:`thgs.avatar.posing.pose_batch`):
        posed means [N, 3] in world space, unit quaternions [N, 4] and activated scales [N, 3]. It reads
        nothing back from the device, so a training step can record it as a CUDA graph
        (:mod:`thgs.train.graphed`)."""
        pose, expr = self.effective_inputs(frame)
        k = self.pose_constants(frame.betas, saam=self.saam_acts(frame))
        delta = None
        if k.mouth.numel():
            delta = self.saam.deltas(k.means.index_select(0, k.mouth), frame.audio_window)[None]
        means, quats, scales = posing.pose_batch(k, lbs.axis_angle_to_matrix(pose[None]),
                                                 expr[None] if expr is not None else None, delta,
                                                 frame.transl[None])
        return means[0], quats[0], scales[0]

    def skin(self, mu_e: Tensor, quats: Tensor, pose: Tensor, betas: Tensor | None, expression: Tensor | None,
             transl: Tensor) -> tuple[Tensor, Tensor]:
        """Skinning (Eq. 6-7, :func:`thgs.avatar.posing.skin_points`) of B frames: points ``mu_e`` [B, N, 3]
        with raw quaternions [B, N, 4], poses [B, J, 3] (axis-angle), betas [S] or None, expression [B, E] or
        None and translations [B, 3] -> posed means [B, N, 3] and unit quaternions [B, N, 4]."""
        return posing.skin_points(self.pose_constants(betas, saam=False), mu_e, normalize_quaternion(quats),
                                  lbs.axis_angle_to_matrix(pose), expression if self.options.use_expression
                                  else None, transl)

    def appearance(self) -> tuple[Tensor, Tensor, int | None]:
        """The frame-independent part: activated opacities [N], colours ([N, 3] RGB for SH degree 0, else the
        SH coefficients [N, K, 3]) and the SH degree to render them with (None for RGB)."""
        st = self.state
        if self.sh_degree == 0:
            colors, sh_degree = G.sh_to_rgb_dc(st["sh"]), None
        else:
            colors, sh_degree = st["sh"], self.sh_degree
        return G.activate_opacities(st["opacity_logits"]), colors, sh_degree

    def output(self, frame: FrameInputs, means: Tensor, quats: Tensor, scales: Tensor) -> AvatarOutput:
        """:class:`AvatarOutput` of ``frame`` from its posed means, quaternions and scales."""
        opacities, colors, sh_degree = self.appearance()
        mu = self.state["means"]
        mouth = (self.state["mouth"] if self.saam_acts(frame) and self.mouth_indices().numel()
                 else torch.zeros(mu.shape[0], dtype=torch.bool, device=mu.device))
        gs = GaussianSet(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                         sh_degree=sh_degree)
        return AvatarOutput(gaussians=gs, canonical_means=mu, mouth=mouth)

    def forward_full(self, frame: FrameInputs) -> AvatarOutput:
        """Posed, activated Gaussians in world space plus auxiliary outputs."""
        return self.output(frame, *self.posed_gaussians(frame))

    def forward(self, frame: FrameInputs) -> GaussianSet:
        return self.forward_full(frame).gaussians

    # -- regularisers --------------------------------------------------------------------------
    def parent_positions(self) -> Tensor:
        """[N, 3] the template vertex each Gaussian is bound to."""
        return self.body.v_template[self.state["parent"]]

    # -- checkpoints -------------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Like ``nn.Module.load_state_dict``, but first resizes the Gaussian state to the stored N."""
        if "state.params.means" in state_dict and "state.mouth" not in state_dict:  # written before the flag
            state_dict = dict(state_dict)
            box = state_dict.get("mouth_box", self.mouth_box)
            state_dict["state.mouth"] = G.in_box(state_dict["state.params.means"].detach(), box.to(
                state_dict["state.params.means"].device))
        shapes = {k[len("state."):]: v.shape for k, v in state_dict.items() if k.startswith("state.")}
        self.state.resize_like(shapes)
        self._mouth_cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


__all__ = ["AvatarOptions", "AvatarOutput", "FrameInputs", "GROUPS", "THGSAvatar"]
