"""The avatar's posing pass and the loss terms, each with its backward, recorded as CUDA graphs and
replayed at every training step.

On a GPU a training step spends most of its wall time launching small kernels while the device waits: those
of the avatar's frame-dependent pass (the blend-shape offsets, SAAM on the mouth Gaussians, forward
kinematics, the skinning grid look-up, the rotation chain: :meth:`thgs.avatar.model.THGSAvatar.posed_gaussians`),
those of the loss terms (L1, D-SSIM, the vertex, LEB and skinning-TV regularisers, the normal term:
:func:`thgs.train.objective.loss_terms`) and their backward. Between two densifications nothing in them
changes shape, so each is recorded once with ``torch.cuda.make_graphed_callables`` (a forward graph and a
backward graph, with its tensor inputs and every parameter of the avatar as graph inputs) and replayed: the
step's inputs are copied into the recorded input buffers, the outputs come back in the recorded output
buffers, and the backward graph writes the gradients, which autograd then passes on and accumulates as usual.
The rasterizer (whose work depends on the image: gsplat sizes its buffers from the number of tile
intersections), the optimisers and densification run as before, between the recorded parts.

A recording is made again whenever something it was made with changes: a parameter or buffer tensor of the
avatar (densification and pruning replace them, the mouth flags are refreshed), a parameter's
``requires_grad`` or a group's activity (the schedule switches groups on), which inputs are given and their
shapes, or whether the normal term is on. The frame index enters as a one-element device tensor, so the
refinement rows are gathered on the device. Results equal the eager step's up to the order of atomic
additions (tests/train/test_step_speed_gpu.py compares the two over steps with a group switch and a
densification).
"""

from __future__ import annotations

import gc
import warnings
from typing import Any, Callable

import torch
from torch import Tensor, nn

from thgs.avatar.losses import LossWeights
from thgs.avatar.model import AvatarOutput, FrameInputs, THGSAvatar
from thgs.render.base import RenderResult
from thgs.train.objective import loss_terms, step_losses

OPTIONAL = ("betas", "expression", "audio_window", "frame_index")
"""The frame inputs that may be absent; which are present is part of what a recording is made for."""


def model_signature(model: THGSAvatar) -> tuple:
    """What a recording of ``model`` depends on besides its inputs: every parameter and buffer tensor (its
    storage and shape; a parameter's ``requires_grad`` too) and the active groups."""
    params = tuple((p.data_ptr(), p.shape, p.requires_grad) for p in model.parameters())
    buffers = tuple((b.data_ptr(), b.shape) for b in model.buffers())
    return params, buffers, tuple(sorted(model.active_groups()))


class _Recording:
    """One recorded callable: made again when its signature changes, released with its memory pool."""

    def __init__(self, model: THGSAvatar, warmup: int) -> None:
        self.model = model
        self.warmup = int(warmup)
        self.recordings = 0
        self._key: tuple | None = None
        self._module: nn.Module | None = None
        self.failed: str | None = None  # why recording failed, once it has (the pass then runs eagerly)
        self._eager: nn.Module | None = None

    def _replay(self, module: Callable[[], nn.Module], tensors: tuple[Tensor, ...], key: tuple) -> Any:
        if self.failed is not None:
            return self._eager(*tensors)
        if key != self._key:
            self.release()
            self.model.mouth_indices()  # found (a device read) before recording, then cached with the flags
            # the recording's inputs need the real ones' requires_grad: the backward graph computes the gradient
            # of those (the rendered image's, say) and of no other
            samples = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)
            warmup = self.warmup if self.recordings == 0 else 1  # the libraries' lazy set-up happened the first time
            # Garbage from before (an evaluation's own CUDA graphs, say) is freed now, not by a collection that
            # happens to run while the stream is being recorded; no collection runs during the recording.
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            collecting = gc.isenabled()
            gc.disable()
            try:
                with warnings.catch_warnings():  # the warm-up's backward runs on a side stream, by design
                    warnings.filterwarnings("ignore", message=".*AccumulateGrad node's stream does not match")
                    self._module = torch.cuda.make_graphed_callables(module().train(), samples,
                                                                     num_warmup_iters=warmup, allow_unused_input=True)
            except (RuntimeError, AssertionError) as exc:  # noqa: PERF203 - once per recording
                self._fail(module, exc)
                return self._eager(*tensors)
            finally:
                if collecting:
                    gc.enable()
            self._key = key
            self.recordings += 1
        assert self._module is not None
        return self._module(*tensors)

    def _fail(self, module: Callable[[], nn.Module], exc: BaseException) -> None:
        """A recording failed: this run goes on with the eager pass (the same results, more launches)."""
        self.release()
        self.failed = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        self._eager = module()
        warnings.warn(f"thgs: recording the training step as a CUDA graph failed ({self.failed}); training goes on "
                      f"without CUDA graphs (--no-cuda-graphs does this from the start)", RuntimeWarning,
                      stacklevel=3)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def release(self) -> None:
        """Drop the recording (its memory pool is freed with it)."""
        if self._module is not None:
            self._module.__dict__.pop("forward", None)  # the graphed forward refers back to the module
        self._module, self._key = None, None


class _Posing(nn.Module):
    """``posed_gaussians`` as a module of tensor arguments (the avatar is a submodule, so its parameters
    are inputs of the recorded backward)."""

    def __init__(self, model: THGSAvatar, present: tuple[bool, ...]) -> None:
        super().__init__()
        self.model = model
        self.present = present

    def forward(self, pose: Tensor, transl: Tensor, *rest: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        given = iter(rest)
        optional = {name: (next(given) if on else None) for name, on in zip(OPTIONAL, self.present)}
        return self.model.posed_gaussians(FrameInputs(pose=pose, transl=transl, **optional))


def graph_inputs(frame: FrameInputs, frame_ids: Tensor) -> tuple[tuple[Tensor, ...], tuple[bool, ...]]:
    """The frame as the recorded pass's tensor arguments (pose, transl, then each present optional input) and
    which optional inputs are present. An int frame index ``i`` becomes ``frame_ids[i:i + 1]`` (``frame_ids``:
    ``arange`` of the frames on the model's device, so nothing is copied from the host)."""
    present = tuple(getattr(frame, name) is not None for name in OPTIONAL)
    tensors = [frame.pose, frame.transl]
    for name, on in zip(OPTIONAL, present):
        if not on:
            continue
        value = getattr(frame, name)
        if name == "frame_index" and not isinstance(value, Tensor):
            if not 0 <= int(value) < frame_ids.shape[0]:
                raise IndexError(f"frame index {value} outside the {frame_ids.shape[0]} refined frames")
            value = frame_ids[int(value):int(value) + 1]
        tensors.append(value.reshape(1) if name == "frame_index" else value)
    return tuple(t.detach() for t in tensors), present


class GraphedForward(_Recording):
    """Drop-in for ``model.forward_full`` in training on CUDA: the posing pass replayed from CUDA graphs.

    Args:
        model: the avatar, on a CUDA device, in training (its parameters may be replaced between calls).
        warmup: eager forward/backward passes run on a side stream before each recording (the allocator
            and lazily built caches settle there, as the recording requires).

    ``recordings`` counts how many times the pass was recorded.
    """

    def __init__(self, model: THGSAvatar, warmup: int = 2) -> None:
        super().__init__(model, warmup)
        frames = model.refine.num_frames if model.refine is not None else 0
        self._frame_ids = torch.arange(frames, device=model.state["means"].device)

    def __call__(self, frame: FrameInputs, model_key: tuple | None = None) -> AvatarOutput:
        """``model_key``: :func:`model_signature` of the model now, when the caller has it."""
        if self.model.refine is None and frame.frame_index is not None:  # no refinements: the index is unused
            frame = FrameInputs(pose=frame.pose, transl=frame.transl, betas=frame.betas, expression=frame.expression,
                                audio_window=frame.audio_window)
        tensors, present = graph_inputs(frame, self._frame_ids)
        key = (present, tuple((t.shape, t.dtype) for t in tensors),
               model_key if model_key is not None else model_signature(self.model))
        means, quats, scales = self._replay(lambda: _Posing(self.model, present), tensors, key)
        return self.model.output(frame, means, quats, scales)


class _Objective(nn.Module):
    """``loss_terms`` as a module of tensor arguments (rgb, target, then the pixel weights and the normal
    term's three images when given)."""

    def __init__(self, model: THGSAvatar, weights: LossWeights, weighted: bool, normal: bool) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.weighted, self.normal = weighted, normal

    def forward(self, rgb: Tensor, target: Tensor, *rest: Tensor) -> dict[str, Tensor]:
        pixel_weights = rest[0] if self.weighted else None
        normals = tuple(rest[int(self.weighted):]) if self.normal else None
        return loss_terms(self.model, self.model.state["means"], rgb, target, self.weights,
                          pixel_weights=pixel_weights, normals=normals)  # type: ignore[arg-type]


class GraphedObjective(_Recording):
    """Drop-in for :func:`thgs.train.objective.step_losses` in training on CUDA: the loss terms and their
    backward replayed from CUDA graphs (the same terms, as recorded-buffer tensors)."""

    def __init__(self, model: THGSAvatar, weights: LossWeights, warmup: int = 2) -> None:
        super().__init__(model, warmup)
        self.weights = weights

    def __call__(self, out: AvatarOutput, res: RenderResult, target: Tensor, *, pixel_weights: Tensor | None = None,
                 normal: bool = False, model_key: tuple | None = None) -> dict[str, Tensor]:
        normal = normal and res.normals is not None and res.surf_normals is not None
        tensors = (res.rgb, target) + ((pixel_weights,) if pixel_weights is not None else ())
        if normal:
            tensors += (res.normals, res.surf_normals, res.alpha)  # type: ignore[operator]
        weighted = pixel_weights is not None
        key = (weighted, normal, tuple(t.shape for t in tensors),
               model_key if model_key is not None else model_signature(self.model))
        terms = self._replay(lambda: _Objective(self.model, self.weights, weighted, normal), tensors, key)
        return dict(terms)


def make_forward(model: THGSAvatar, cfg: Any, device: torch.device):
    """The training step's forward pass for ``cfg`` (a :class:`thgs.runs.config.TrainConfig`): recorded CUDA
    graphs (``cuda_graphs``, on a CUDA device), ``torch.compile`` (``compile``), or the eager pass."""
    if cfg.compile:
        return torch.compile(model.forward_full, dynamic=True)
    if cfg.cuda_graphs and device.type == "cuda":
        return GraphedForward(model)
    return model.forward_full


def make_objective(model: THGSAvatar, weights: LossWeights, cfg: Any, device: torch.device):
    """The training step's loss terms for ``cfg``: ``(out, res, target, pixel_weights=, normal=)`` -> terms,
    replayed from CUDA graphs with ``cuda_graphs`` on a CUDA device (unless ``compile``), else eager."""
    if cfg.cuda_graphs and not cfg.compile and device.type == "cuda":
        return GraphedObjective(model, weights)

    def eager(out: AvatarOutput, res: RenderResult, target: Tensor, *, pixel_weights: Tensor | None = None,
              normal: bool = False, model_key: tuple | None = None) -> dict[str, Tensor]:
        return step_losses(model, out, res, target, weights, pixel_weights=pixel_weights, normal=normal)

    return eager


__all__ = ["GraphedForward", "GraphedObjective", "OPTIONAL", "graph_inputs", "make_forward", "make_objective",
           "model_signature"]
