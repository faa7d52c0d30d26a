"""3DGS-style adaptive density control on the avatar's canonical Gaussians.

After each backward pass :func:`accumulate_stats` adds, for every drawn Gaussian, the norm of the
screen-space gradient of its projected centre (in normalised device units: pixel gradient times
half the image size, as 3DGS measures it) to the ``grad_accum`` / ``grad_count`` buffers of the
:class:`GaussianState` and tracks the largest screen radius. Every ``interval`` steps
:func:`densify_and_prune`:

- clones Gaussians with a mean gradient above ``grad_threshold`` whose largest scale is at most
  ``percent_dense`` x the body height (small: under-reconstructed);
- splits the large ones into two samples drawn from the Gaussian, each scaled by 1/1.6;
- prunes Gaussians whose opacity fell below ``min_opacity``;
- caps the total at ``max_gaussians`` (highest gradients first).

Every operation goes through :class:`GaussianState`, so every per-Gaussian tensor -- the parent
vertex included -- and the optimiser moments stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from thgs.avatar.gaussians import activate_opacities, activate_scales
from thgs.avatar.state import GaussianState
from thgs.core.rotations import quaternion_to_matrix


@dataclass
class DensifyOptions:
    """When and how Gaussians are added and removed."""

    start: int = 500
    stop: int = 15000
    interval: int = 100
    grad_threshold: float = 2e-4
    percent_dense: float = 0.01
    min_opacity: float = 0.005
    max_gaussians: int = 300_000


def accumulate_stats(state: GaussianState, means2d: Tensor | None, radii: Tensor | None, width: int,
                     height: int) -> None:
    """Add one view's screen-space gradients to the densification statistics.

    means2d: the renderer's [N, 2] projected centres (their ``.grad`` set by backward); radii: [N].
    """
    if means2d is None or radii is None or means2d.grad is None:
        return
    with torch.no_grad():
        r = radii.detach()
        if r.dim() > 1:
            r = r.max(-1).values
        visible = r > 0
        g = means2d.grad.detach().reshape(-1, 2)
        # python scales, not a host-built [2] tensor (a copy to the device every step)
        norm = torch.stack([g[:, 0] * (width / 2.0), g[:, 1] * (height / 2.0)], -1).norm(dim=-1)
        state.set_buffer("grad_accum", state["grad_accum"] + torch.where(visible, norm, torch.zeros_like(norm)))
        state.set_buffer("grad_count", state["grad_count"] + visible.to(norm.dtype))
        state.set_buffer("max_radii", torch.maximum(state["max_radii"], r.to(norm.dtype)))


def reset_stats(state: GaussianState) -> None:
    for name in ("grad_accum", "grad_count", "max_radii"):
        state.set_buffer(name, torch.zeros_like(state[name]))


def densify_and_prune(state: GaussianState, options: DensifyOptions, extent: float,
                      optimizers: Iterable[torch.optim.Optimizer] = (), generator: torch.Generator | None = None
                      ) -> dict[str, int]:
    """Clone, split and prune; returns counts ``{cloned, split, pruned, total}``."""
    optimizers = list(optimizers)
    with torch.no_grad():
        n0 = state.num
        avg = state["grad_accum"] / state["grad_count"].clamp_min(1)
        big = avg >= options.grad_threshold
        scales = activate_scales(state["log_scales"])
        large = scales.max(-1).values > options.percent_dense * extent
        clone_mask = big & ~large
        split_mask = big & large
        room = max(0, options.max_gaussians - n0)
        # Each clone adds one Gaussian, each split adds one net (two new, the source removed).
        want = int(clone_mask.sum() + split_mask.sum())
        if want > room:
            score = torch.where(big, avg, torch.full_like(avg, -1.0))
            keep = torch.zeros_like(big)
            if room > 0:
                keep[torch.topk(score, room).indices] = True
            clone_mask &= keep
            split_mask &= keep
        clone_idx = clone_mask.nonzero(as_tuple=True)[0]
        split_idx = split_mask.nonzero(as_tuple=True)[0]
        if clone_idx.numel():
            state.append(clone_idx, optimizers=optimizers)
        if split_idx.numel():
            src = split_idx.repeat(2)
            s = activate_scales(state["log_scales"][src])
            rot = quaternion_to_matrix(state["quats"][src])
            noise = torch.randn(s.shape, generator=generator, device="cpu").to(s.device) * s
            means = state["means"][src] + (rot @ noise[:, :, None])[:, :, 0]
            log_scales = torch.log(s / 1.6)
            state.append(src, overrides={"means": means, "log_scales": log_scales}, optimizers=optimizers)
            # The split sources were shrunk into the two samples: remove them.
            drop = torch.zeros(state.num, dtype=torch.bool, device=split_idx.device)
            drop[split_idx] = True
            state.prune(drop, optimizers)
        low = activate_opacities(state["opacity_logits"]) < options.min_opacity
        n_pruned = int(low.sum())
        if n_pruned and n_pruned < state.num:
            state.prune(low, optimizers)
        else:
            n_pruned = 0
        reset_stats(state)
        return {"cloned": int(clone_idx.numel()), "split": int(split_idx.numel()), "pruned": n_pruned,
                "total": state.num, "before": n0}


def in_window(step: int, options: DensifyOptions) -> bool:
    """Whether densification runs after ``step`` (1-based count of completed steps)."""
    return options.start <= step <= options.stop and step % options.interval == 0 and options.interval > 0


__all__ = ["DensifyOptions", "accumulate_stats", "densify_and_prune", "in_window", "reset_stats"]
