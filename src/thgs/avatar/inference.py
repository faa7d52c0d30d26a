"""Fast inference path of a trained :class:`~thgs.avatar.model.THGSAvatar`: everything that does not
depend on the frame is computed once, the rest runs in a fixed, short sequence of batched operations
that can be recorded in a CUDA graph.

:class:`Animator` gives the same Gaussians as ``model(FrameInputs(...))`` with ``frame_index=None``
(no per-frame refinements: inference frames have none) for fixed betas, through the same posing function
(:func:`thgs.avatar.posing.pose_batch`). What it keeps from building:

- the posing constants (:meth:`THGSAvatar.pose_constants`, built once without gradients): the normalised
  quaternions and activated scales of all Gaussians (SAAM only replaces the mouth rows), the mouth
  Gaussians' indices with their raw quaternions and log-scales, the shape offsets of the given betas, the
  rest joints, the ancestor tables (see :func:`thgs.core.lbs.forward_kinematics_jumps`), the expression
  basis in use (``E_hat`` with LEB, else the body's) and, for grid skinning, the clamped grid, always
  sampled once per point with the transforms blended into it (see
  :func:`thgs.avatar.skinning_grid.blend_grid_transforms`);
- activated opacities and colours (RGB for SH degree 0, else the coefficients);
- every part of SAAM that does not depend on the audio: the tri-plane hash features, the region attention
  ``ReLU(f W_k) W_v`` (Eq. 11) and the feature half of the decoder's first layer.

Per frame: Rodrigues, SAAM's audio encoder and decoder on the mouth rows, then ``pose_batch``: the
expression and pose-corrective offsets, forward kinematics by pointer jumping, one 13-channel grid look-up, and
the rotation chain (6D Gram-Schmidt of the blended 3x3 block, quaternion, product with the normalised
Gaussian quaternion).

The Animator is a snapshot: rebuild it (``Animator.from_model``) after changing the model's weights
or active groups (:func:`model_fingerprint` tells when).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from thgs.avatar.model import THGSAvatar
from thgs.avatar.posing import pose_batch
from thgs.core import lbs
from thgs.render.base import GaussianBatch, GaussianSet


def model_fingerprint(model: THGSAvatar, saam: bool = True, leb: bool = True) -> tuple:
    """A cheap key that changes whenever an :class:`Animator` built from ``model`` with these flags would
    differ: identities and in-place version counters of every parameter and buffer, the active groups
    and the flags."""
    tensors = tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))
    return (id(model), bool(saam), bool(leb), tuple(sorted(model.active_groups())), tensors)




def record_graph(fn: Callable[[], Any], device: torch.device, warmup: int = 3) -> tuple[Any, Any]:
    """Run ``fn`` ``warmup`` times on a side stream, then record one call into a ``torch.cuda.CUDAGraph``; returns
    (graph, the recorded call's outputs, which every replay overwrites). ``fn`` reads and writes only tensors
    that outlive the graph (static inputs, its own outputs)."""
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(max(1, warmup)):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


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
        dev = st["means"].device
        self.device = dev
        self.num_gaussians = st.num
        self.num_joints = body.num_joints
        b = betas.detach().to(dev, torch.float32).reshape(-1) if betas is not None else None
        use_saam = bool(saam) and model.saam is not None and model.is_active("saam")
        # The posing pass's constants, once (the transforms always blended into the grid before its look-up).
        k = model.pose_constants(b, leb=bool(leb), saam=use_saam)
        self.k = replace(k, fused=True)
        self.num_expressions = self.k.num_expressions
        # Appearance: activated opacities [N] and colours (RGB, or the SH coefficients).
        opacities, colors, self.sh_degree = model.appearance()
        self.opacities, self.colors = opacities.detach(), colors.detach()
        # SAAM: everything that does not depend on the audio, for the mouth rows.
        self.saam = model.saam if (use_saam and self.k.mouth.numel()) else None
        self.mouth = self.k.mouth
        if self.saam is not None:
            s = self.saam
            f = s.encoding(s.normalise(self.k.means.index_select(0, self.mouth)))  # [M, Fd] (Eq. 14)
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
        return self.k.expr_basis is not None

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

    def animate_eager(self, pose: Tensor, expression: Tensor | None, audio: Tensor | None,
                      transl: Tensor) -> GaussianBatch:
        """:meth:`animate` without a recorded graph and without the input checks (every input given; what a
        recording records)."""
        delta = None
        if self.saam is not None and audio is not None:
            a = self._audio_codes(audio)  # [B, D]
            q = self.mouth_attention * a[:, None]  # [B, M, D] (Eq. 12)
            delta = self.decoder_rest(self.mouth_pre + F.linear(q, self.decoder_q_weight))  # [B, M, 10] (Eq. 15)
        means, quats, scales = pose_batch(self.k, lbs.axis_angle_to_matrix(pose), expression, delta, transl)
        return GaussianBatch(means=means, quats=quats, scales=scales, opacities=self.opacities, colors=self.colors,
                             sh_degree=self.sh_degree)

    def check_inputs(self, pose: Tensor, expression: Tensor | None, audio: Tensor | None, transl: Tensor) -> None:
        """ValueError naming the input whose shape does not fit B frames of this avatar."""
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
        self.check_inputs(pose, expression, audio, transl)
        g = self._graphs.get(pose.shape[0])
        if g is not None and self.fits(g.inputs, expression, audio):
            return self._replay(g, pose, expression, audio, transl)
        return self.animate_eager(pose, expression, audio, transl)

    def __call__(self, pose: Tensor, expression: Tensor | None = None, audio_window: Tensor | None = None,
                 transl: Tensor | None = None) -> GaussianSet:
        """One frame: pose [J, 3], expression [E] or None, audio_window [8, 16, C] or None, transl [3]
        (None: zero) -> the posed :class:`GaussianSet` (the same as ``model(FrameInputs(...))``)."""
        out = self.animate(pose[None], expression[None] if expression is not None else None,
                           audio_window[None] if audio_window is not None else None,
                           transl[None] if transl is not None else None)
        return out.frame(0)

    # -- CUDA graphs -------------------------------------------------------------------------------
    def fits(self, ins: dict[str, Tensor | None], expression: Tensor | None, audio: Tensor | None) -> bool:
        """Whether a call with these inputs is what a recording with static inputs ``ins`` took (the same inputs
        present, the same audio shape)."""
        if (ins["expression"] is not None) != (expression is not None and self.uses_expression):
            return False
        ga = ins["audio"]
        if (ga is not None) != (audio is not None and self.uses_audio):
            return False
        return ga is None or tuple(ga.shape) == tuple(audio.shape)  # type: ignore[union-attr]

    def load_inputs(self, ins: dict[str, Tensor | None], pose: Tensor, expression: Tensor | None,
                    audio: Tensor | None, transl: Tensor) -> None:
        """Copy a call's inputs into a recording's static inputs ``ins`` (:meth:`static_inputs`)."""
        ins["pose"].copy_(pose)  # type: ignore[union-attr]
        ins["transl"].copy_(transl)  # type: ignore[union-attr]
        e = ins["expression"]
        if e is not None and expression is not None:
            k = min(expression.shape[-1], e.shape[-1])
            e.zero_()
            e[:, :k].copy_(expression[:, :k])
        if ins["audio"] is not None and audio is not None:
            ins["audio"].copy_(audio)

    def _replay(self, g: _Graph, pose: Tensor, expression: Tensor | None, audio: Tensor | None,
                transl: Tensor) -> GaussianBatch:
        self.load_inputs(g.inputs, pose, expression, audio, transl)
        g.graph.replay()
        return g.output

    def static_inputs(self, batch: int, audio_shape: tuple[int, int, int] = (8, 16, 0)) -> dict[str, Tensor | None]:
        """Zero tensors for a recording of ``batch`` frames: pose, transl, and expression and audio (windows of
        ``audio_shape`` W, T, C; C = 0: the SAAM encoder's channels) where the avatar uses them, else None."""
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
        return ins

    def posing_function(self, compile: bool = False) -> Callable[..., GaussianBatch]:
        """:meth:`animate_eager`, or with ``compile`` its ``torch.compile`` (whole graph, static shapes; built once
        and kept, each new input shape compiles again): the element-wise chains (rotations, quaternions,
        SAAM's decoder) fused into few kernels, which a recorded graph then replays. Compiling takes tens of
        seconds."""
        if not compile:
            return self.animate_eager
        if self.__dict__.get("_compiled") is None:
            self._compiled = torch.compile(self.animate_eager, fullgraph=True, dynamic=False)
        return self._compiled

    @torch.no_grad()
    def capture(self, batch: int = 1, audio_shape: tuple[int, int, int] = (8, 16, 0), warmup: int = 3,
                compile: bool = False) -> bool:
        """Record the whole animation of ``batch`` frames into a ``torch.cuda.CUDAGraph``.

        The graph takes expressions if the avatar uses them and audio windows of ``audio_shape`` (W, T, C;
        C = 0: the SAAM encoder's channels) if it uses SAAM; later calls with the same batch and the same
        inputs present replay it. ``compile`` records the compiled posing (:meth:`posing_function`). On a device
        other than CUDA nothing happens and False is returned.
        """
        if self.device.type != "cuda":
            return False
        ins = self.static_inputs(batch, audio_shape)
        fn = self.posing_function(compile)
        graph, out = record_graph(lambda: fn(ins["pose"], ins["expression"], ins["audio"], ins["transl"]),
                                  self.device, warmup)
        self._graphs[batch] = _Graph(graph, ins, out)
        return True

    @property
    def captured(self) -> list[int]:
        """Batch sizes with a recorded graph."""
        return sorted(self._graphs)


__all__ = ["Animator", "model_fingerprint", "record_graph"]
