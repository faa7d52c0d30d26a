"""Fast inference path of a trained :class:`~thgs.avatar.model.THGSAvatar`: everything that does not
depend on the frame is computed once, the rest runs in a fixed, short sequence of batched operations
that can be recorded in a CUDA graph.

:class:`Animator` gives the same Gaussians as ``model(FrameInputs(...))`` with ``frame_index=None``
(no per-frame refinements: inference frames have none) for fixed betas. What it precomputes:

- activated opacities, colours (RGB for SH degree 0, else the coefficients), activated scales and
  normalised quaternions of all Gaussians (SAAM only replaces the mouth rows);
- the mouth Gaussians' indices (the mouth-box test on the canonical means does not depend on the
  frame), their raw quaternions and log-scales, and every part of SAAM that does not depend on the
  audio: the tri-plane hash features, the region attention ``ReLU(f W_k) W_v`` (Eq. 11) and the
  feature half of the decoder's first layer;
- the shape offsets of the given betas, the rest joints (plus, for a body whose joints follow the
  expression, the joint-space expression basis), the kinematic levels (see
  :func:`thgs.core.lbs.forward_kinematics_levels`), the expression basis in use (``E_hat`` with LEB,
  else the body's) and, for grid skinning, the clamped grid (see
  :func:`thgs.avatar.skinning_grid.blend_grid_transforms`; for parent skinning, transforms are blended
  per template vertex and gathered per Gaussian).

Per frame: Rodrigues, the expression and pose-corrective offsets, SAAM's audio encoder and decoder on
the mouth rows, forward kinematics by depth level, one 13-channel grid look-up, and the rotation
chain of the model (6D Gram-Schmidt of the blended 3x3 block, quaternion, product with the normalised
Gaussian quaternion).

The Animator is a snapshot: rebuild it (``Animator.from_model``) after changing the model's weights
or active groups (:func:`model_fingerprint` tells when).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from thgs.avatar import gaussians as G
from thgs.avatar.model import THGSAvatar
from thgs.avatar.skinning_grid import blend_grid_transforms
from thgs.core import lbs
from thgs.core.rotations import blended_rotation_quaternion, normalize_quaternion, quaternion_multiply
from thgs.render.base import GaussianBatch, GaussianSet


def model_fingerprint(model: THGSAvatar, saam: bool = True, leb: bool = True) -> tuple:
    """A cheap key that changes whenever an :class:`Animator` built from ``model`` with these flags would
    differ: identities and in-place version counters of every parameter and buffer, the active groups
    and the flags."""
    tensors = tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))
    return (id(model), bool(saam), bool(leb), tuple(sorted(model.active_groups())), tensors)


AnimatedGaussians = GaussianBatch
"""B posed frames of the same Gaussians: the renderer's batched input (:class:`thgs.render.base.GaussianBatch`,
drawn by :func:`thgs.render.base.render_batch`); scales may be an expanded view of one [N, 3] when no frame
changes them. Outputs of a replayed CUDA graph are overwritten by the next replay."""


class _Graph:
    """One recorded animation: the graph, its static inputs and outputs."""

    def __init__(self, graph: Any, inputs: dict[str, Tensor | None], output: GaussianBatch) -> None:
        self.graph = graph
        self.inputs = inputs
        self.output = output


class Animator:
    """Poses a trained avatar's Gaussians quickly (see the module docstring). Build with :meth:`from_model`.

    Call with one frame (``animator(pose, expression, audio_window, transl)`` -> :class:`GaussianSet`) or
    a batch (:meth:`animate` -> :class:`~thgs.render.base.GaussianBatch`, which
    :func:`~thgs.render.base.render_batch` draws in one call). After :meth:`capture` on CUDA, calls whose
    shapes match the captured batch replay the graph; others run eagerly.
    """

    def __init__(self) -> None:  # use from_model
        self._graphs: dict[int, _Graph] = {}

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def from_model(cls, model: THGSAvatar, *, betas: Tensor | None = None, saam: bool = True,
                   leb: bool = True) -> Animator:
        """Precompute everything frame-independent of ``model`` (put it in eval mode first).

        Args:
            model: the trained avatar; its active groups decide, as in ``model(...)``, whether SAAM and the
                learned expression residual take part.
            betas: [S] the subject's shape (None: the template shape, as ``FrameInputs.betas=None``).
            saam: False drops SAAM (the viewer's toggle); True uses it when the model has it and it is active.
            leb: False uses the body's fixed expression basis (as the model with its "blendshapes" group
                inactive); True uses the learned basis when the model has it and it is active.
        """
        self = cls()
        body = model.body
        st = model.state
        opts = model.options
        mu = st["means"].detach()
        dev = mu.device
        self.device = dev
        parent = st["parent"]
        self.parent = parent
        self.mu = mu
        self.num_gaussians = mu.shape[0]
        self.num_joints = body.num_joints
        # Frame-independent vertex offsets (shape) and rest joints.
        off = torch.zeros_like(body.v_template)
        b = None
        if betas is not None:
            b = betas.detach().to(dev, torch.float32).reshape(-1)
            if body.num_betas:
                k = min(b.shape[-1], body.num_betas)
                off = off + torch.einsum("k,vck->vc", b[:k], body.shapedirs[..., :k])
        self.shape_offsets = off  # [V, 3]
        self.rest_joints = body.rest_joints(b[None] if b is not None else None)  # [1, J, 3]
        self.parents = body.parents
        self.levels = lbs.kinematic_levels(body.parents)
        # Expressions: the basis in use, [V, 3, K] (None: expressions have no effect).
        self.expr_basis: Tensor | None = None
        if opts.use_expression and body.num_expressions:
            if model.leb is not None:
                self.expr_basis = model.leb.blendshapes(learnable=bool(leb) and model.is_active("blendshapes")).detach()
            else:
                self.expr_basis = body.exprdirs
        self.num_expressions = 0 if self.expr_basis is None else self.expr_basis.shape[-1]
        # Joints that follow the expression (SMPL-X): the body's joint-space expression basis [J, 3, E].
        self.joint_expr_basis: Tensor | None = None
        if self.expr_basis is not None and body.joints_follow_expression:
            self.joint_expr_basis = body.joint_exprdirs
        self.posedirs = body.posedirs if (opts.pose_correctives and body.posedirs.shape[0]) else None
        # Skinning.
        self.grid: Tensor | None = None
        self.vertex_weights: Tensor | None = None
        if model.skin_grid is not None:
            sg = model.skin_grid
            self.grid = sg.grid().detach().contiguous()  # [J, R, R, R] clamped
            self.grid_lo, self.grid_hi, self.grid_eps = sg.lo, sg.hi, sg.eps
        else:
            self.vertex_weights = body.lbs_weights  # [V, J]
        # Appearance.
        self.quats = normalize_quaternion(st["quats"].detach())  # [N, 4]
        self.scales = G.activate_scales(st["log_scales"].detach())  # [N, 3]
        self.opacities = G.activate_opacities(st["opacity_logits"].detach())  # [N]
        if model.sh_degree == 0:
            self.colors, self.sh_degree = G.sh_to_rgb_dc(st["sh"].detach()), None
        else:
            self.colors, self.sh_degree = st["sh"].detach(), model.sh_degree
        # SAAM: the mouth rows and everything that does not depend on the audio.
        self.saam = model.saam if (saam and model.saam is not None and model.is_active("saam")) else None
        self.mouth = torch.zeros(0, dtype=torch.long, device=dev)
        if self.saam is not None:
            self.mouth = model.mouth_indices()
            if self.mouth.numel() == 0:
                self.saam = None
        if self.saam is not None:
            s = self.saam
            idx = self.mouth
            self.mouth_quats = st["quats"].detach()[idx]  # [M, 4] raw
            self.mouth_log_scales = st["log_scales"].detach()[idx]  # [M, 3]
            f = s.encoding(s.normalise(mu[idx]))  # [M, Fd] (Eq. 14)
            self.mouth_attention = s.w_v(torch.relu(s.w_k(f)))  # [M, D] (Eq. 11)
            first = s.decoder[0]
            fd = f.shape[-1]
            # decoder[0]([f, q]) = (W_f f + b) + W_q q: the first term is fixed.
            self.mouth_pre = F.linear(f, first.weight[:, :fd], first.bias)  # [M, H]
            self.decoder_q_weight = first.weight[:, fd:].detach()  # [H, D]
            self.decoder_rest = s.decoder[1:]
            self.audio_encoder = s.audio
        return self

    @property
    def uses_expression(self) -> bool:
        return self.expr_basis is not None

    @property
    def uses_audio(self) -> bool:
        return self.saam is not None

    # -- per frame ---------------------------------------------------------------------------------
    def _audio_codes(self, windows: Tensor) -> Tensor:
        """SAAM's audio encoder on B frames at once: windows [B, W, T, C] -> codes [B, D] (the maths of
        :class:`thgs.avatar.saam.AudioEncoder` per frame)."""
        enc = self.audio_encoder
        B, W = windows.shape[:2]
        codes = enc.encode(windows.reshape(B * W, *windows.shape[2:])).reshape(B, W, -1)  # [B, W, D]
        if not enc.smooth or W == 1:
            return codes[:, W // 2]
        if W != enc.att_fc.in_features:
            raise ValueError(f"audio smoothing expects {enc.att_fc.in_features} frames, got {W}")
        logits = enc.att_fc(enc.att_conv(codes.transpose(1, 2))[:, 0])  # [B, W]
        weights = torch.softmax(logits, dim=-1)
        return (weights[..., None] * codes).sum(1)

    def _animate_eager(self, pose: Tensor, expression: Tensor | None, audio: Tensor | None,
                       transl: Tensor) -> GaussianBatch:
        B = pose.shape[0]
        rot = lbs.axis_angle_to_matrix(pose)  # [B, J, 3, 3]
        # Canonical offsets per vertex (the order of THGSAvatar.vertex_offsets), then per Gaussian.
        off = self.shape_offsets.expand(B, -1, -1)
        if expression is not None and self.expr_basis is not None:
            k = min(expression.shape[-1], self.num_expressions)
            off = off + torch.einsum("bk,vck->bvc", expression[:, :k], self.expr_basis[..., :k])
        if self.posedirs is not None:
            off = off + (lbs.pose_feature(rot) @ self.posedirs).reshape(B, -1, 3)
        mu_e = self.mu + off.index_select(1, self.parent)  # [B, N, 3]
        quats = self.quats.expand(B, -1, -1)
        scales = self.scales.expand(B, -1, -1)
        if self.saam is not None and audio is not None:
            a = self._audio_codes(audio)  # [B, D]
            q = self.mouth_attention * a[:, None]  # [B, M, D] (Eq. 12)
            out = self.decoder_rest(self.mouth_pre + F.linear(q, self.decoder_q_weight))  # [B, M, 10] (Eq. 15)
            idx = self.mouth
            mu_e = mu_e.index_add(1, idx, out[..., :3])
            quats = quats.index_copy(1, idx, normalize_quaternion(self.mouth_quats + out[..., 3:7]))
            scales = scales.index_copy(1, idx, G.activate_scales(self.mouth_log_scales + out[..., 7:10]))
        # Skinning (Eq. 6-7).
        joints = self.rest_joints.expand(B, -1, -1)
        if expression is not None and self.joint_expr_basis is not None:
            k = min(expression.shape[-1], self.joint_expr_basis.shape[-1])
            joints = joints + torch.einsum("bk,jck->bjc", expression[:, :k], self.joint_expr_basis[..., :k])
        kin = lbs.forward_kinematics_levels(rot, joints, self.parents, self.levels)
        T = kin.skinning_transforms  # [B, J, 4, 4]
        if self.grid is not None:
            M = blend_grid_transforms(self.grid, self.grid_lo, self.grid_hi, self.grid_eps, mu_e, T)  # [B, N, 3, 4]
        else:
            top = T[:, :, :3, :].reshape(B, self.num_joints, 12)
            per_vertex = torch.matmul(self.vertex_weights, top)  # [B, V, 12]
            M = per_vertex.index_select(1, self.parent).view(B, -1, 3, 4)
        R = M[..., :3]
        means = (R @ mu_e[..., None])[..., 0] + M[..., 3] + transl[:, None]
        q = quaternion_multiply(blended_rotation_quaternion(R), quats)
        return GaussianBatch(means=means, quats=q, scales=scales, opacities=self.opacities, colors=self.colors,
                                 sh_degree=self.sh_degree)

    def _check(self, pose: Tensor, expression: Tensor | None, audio: Tensor | None, transl: Tensor) -> None:
        B = pose.shape[0]
        if pose.dim() != 3 or pose.shape[1:] != (self.num_joints, 3):
            raise ValueError(f"Animator: pose must be [B, {self.num_joints}, 3], got {tuple(pose.shape)}")
        if transl.shape != (B, 3):
            raise ValueError(f"Animator: transl must be [{B}, 3], got {tuple(transl.shape)}")
        if expression is not None and (expression.dim() != 2 or expression.shape[0] != B):
            raise ValueError(f"Animator: expression must be [{B}, E], got {tuple(expression.shape)}")
        if audio is not None and (audio.dim() != 4 or audio.shape[0] != B):
            raise ValueError(f"Animator: audio must be [{B}, W, T, C], got {tuple(audio.shape)}")

    @torch.no_grad()
    def animate(self, pose: Tensor, expression: Tensor | None = None, audio: Tensor | None = None,
                transl: Tensor | None = None) -> GaussianBatch:
        """Pose B frames: pose [B, J, 3] axis-angle, expression [B, E] or None, audio [B, 8, 16, C] (each
        frame's audio window) or None, transl [B, 3] (None: zero). Replays the captured graph when one
        matches the batch and the inputs given (its outputs are overwritten by the next replay)."""
        if transl is None:
            transl = torch.zeros(pose.shape[0], 3, dtype=pose.dtype, device=pose.device)
        self._check(pose, expression, audio, transl)
        g = self._graphs.get(pose.shape[0])
        if g is not None and self._fits(g, expression, audio):
            return self._replay(g, pose, expression, audio, transl)
        return self._animate_eager(pose, expression, audio, transl)

    def __call__(self, pose: Tensor, expression: Tensor | None = None, audio_window: Tensor | None = None,
                 transl: Tensor | None = None) -> GaussianSet:
        """One frame: pose [J, 3], expression [E] or None, audio_window [8, 16, C] or None, transl [3]
        (None: zero) -> the posed :class:`GaussianSet` (the same as ``model(FrameInputs(...))``)."""
        out = self.animate(pose[None], expression[None] if expression is not None else None,
                           audio_window[None] if audio_window is not None else None,
                           transl[None] if transl is not None else None)
        return out.frame(0)

    # -- CUDA graphs -------------------------------------------------------------------------------
    def _fits(self, g: _Graph, expression: Tensor | None, audio: Tensor | None) -> bool:
        """Whether a call with these inputs is what graph ``g`` recorded (same inputs present, same shapes)."""
        if (g.inputs["expression"] is not None) != (expression is not None and self.uses_expression):
            return False
        ga = g.inputs["audio"]
        if (ga is not None) != (audio is not None and self.uses_audio):
            return False
        return ga is None or tuple(ga.shape) == tuple(audio.shape)  # type: ignore[union-attr]

    def _replay(self, g: _Graph, pose: Tensor, expression: Tensor | None, audio: Tensor | None,
                transl: Tensor) -> GaussianBatch:
        ins = g.inputs
        ins["pose"].copy_(pose)  # type: ignore[union-attr]
        ins["transl"].copy_(transl)  # type: ignore[union-attr]
        e = ins["expression"]
        if e is not None and expression is not None:
            k = min(expression.shape[-1], e.shape[-1])
            e.zero_()
            e[:, :k].copy_(expression[:, :k])
        if ins["audio"] is not None and audio is not None:
            ins["audio"].copy_(audio)
        g.graph.replay()
        return g.output

    @torch.no_grad()
    def capture(self, batch: int = 1, audio_shape: tuple[int, int, int] = (8, 16, 0), warmup: int = 3) -> bool:
        """Record the whole animation of ``batch`` frames into a ``torch.cuda.CUDAGraph``.

        The graph takes expressions if the avatar uses them and audio windows of ``audio_shape`` (W, T, C;
        C = 0: the SAAM encoder's channels) if it uses SAAM; later calls with the same batch and the same
        inputs present replay it. On a device other than CUDA nothing happens and False is returned.
        """
        if self.device.type != "cuda":
            return False
        if batch < 1:
            raise ValueError(f"Animator.capture: batch must be >= 1, got {batch}")
        dev = self.device
        ins: dict[str, Tensor | None] = {
            "pose": torch.zeros(batch, self.num_joints, 3, device=dev),
            "transl": torch.zeros(batch, 3, device=dev),
            "expression": torch.zeros(batch, self.num_expressions, device=dev) if self.uses_expression else None,
            "audio": None,
        }
        if self.uses_audio:
            W, T, C = audio_shape
            ins["audio"] = torch.zeros(batch, W, T, C or self.audio_encoder.in_channels, device=dev)
        args = (ins["pose"], ins["expression"], ins["audio"], ins["transl"])
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(max(1, warmup)):
                self._animate_eager(*args)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._animate_eager(*args)
        self._graphs[batch] = _Graph(graph, ins, out)
        return True

    @property
    def captured(self) -> list[int]:
        """Batch sizes with a recorded graph."""
        return sorted(self._graphs)


__all__ = ["AnimatedGaussians", "Animator", "model_fingerprint"]
