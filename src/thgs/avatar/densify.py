"""3DGS-style adaptive density control on the avatar's canonical Gaussians, as a strategy with hooks.

:class:`DensifyStrategy` owns the :class:`DensifyOptions` and the statistics it gathers, and the trainer
calls its three hooks once each per step, in this order (``step`` counts from 0, the step being trained):

- :meth:`~DensifyStrategy.step_pre_backward` (after the render): keep the gradient of the projected
  centres, which backward would otherwise drop;
- :meth:`~DensifyStrategy.step_post_backward` (after ``loss.backward()``, before the optimisers step):
  add, for every drawn Gaussian, the norm of the screen-space gradient of its projected centre (in
  normalised device units: pixel gradient times half the image size, as 3DGS measures it) to
  ``grad_accum`` / ``grad_count`` and track the largest screen radius in ``max_radii``, in place;
- :meth:`~DensifyStrategy.step_post_optimizer` (after the optimisers step): every ``interval`` steps in
  the window, :func:`densify_and_prune`:

  - clones Gaussians with a mean gradient above ``grad_threshold`` whose largest scale is at most
    ``percent_dense`` x the body height (small: under-reconstructed);
  - splits the large ones into two samples drawn from the Gaussian, each scaled by 1/1.6;
  - prunes Gaussians whose opacity fell below ``min_opacity``;
  - caps the total at ``max_gaussians`` (highest gradients first);

  and sets the statistics back to zero.

The statistics are buffers of the :class:`GaussianState` (:data:`STATS`, allocated with the Gaussians):
every structural operation goes through the state, so every per-Gaussian tensor -- the parent vertex and the
statistics included -- and the optimiser moments stay aligned, the statistics change size only when the
Gaussians do, and a checkpoint of the model holds them (a resumed run continues with them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from thgs.avatar.gaussians import activate_opacities, activate_scales
from thgs.avatar.state import GaussianState
from thgs.config import option
from thgs.core.rotations import quaternion_to_matrix


STATS = ("grad_accum", "grad_count", "max_radii")
"""The densification statistics, per-Gaussian buffers [N] of the :class:`GaussianState`."""


@dataclass
class DensifyOptions:
    """When and how Gaussians are added and removed: the ``densify`` group of
    :class:`thgs.runs.config.TrainConfig`, whose command-line flags keep the names below."""

    start: int = option(500, help="first step of densification", steps="start")
    stop: int = option(15_000, help="last step of densification", steps="start")
    interval: int = option(100, help="densify every this many steps", steps="interval")
    grad_threshold: float = option(2e-4, help="mean screen-space gradient that triggers clone/split")
    percent_dense: float = option(0.01, help="clone below / split above this fraction of the body height",
                                  flag="percent_dense")
    min_opacity: float = option(0.005, help="prune Gaussians below this opacity", flag="min_opacity")
    max_gaussians: int = option(300_000, help="never grow beyond this many Gaussians", flag="max_gaussians")

    def collects(self, step: int) -> bool:
        """Whether training step ``step`` (0-based) adds to the statistics."""
        return step < self.stop

    def densifies_after(self, step: int) -> bool:
        """Whether densification runs once training step ``step`` (0-based) is done."""
        done = step + 1
        return self.interval > 0 and self.start <= done <= self.stop and done % self.interval == 0


class DensifyStrategy:
    """Adaptive density control around each training step (see the module docstring for the hooks' order).

    Args:
        options: when and how to densify.
        extent: the body height (the scale ``percent_dense`` is a fraction of).
    """

    def __init__(self, options: DensifyOptions, extent: float) -> None:
        self.options = options
        self.extent = float(extent)

    def step_pre_backward(self, step: int, means2d: Tensor | None) -> None:
        """Keep the gradient of the projected centres [N, 2] for :meth:`step_post_backward` (steps that collect)."""
        if self.options.collects(step) and means2d is not None and means2d.requires_grad:
            means2d.retain_grad()

    def step_post_backward(self, state: GaussianState, step: int, means2d: Tensor | None, radii: Tensor | None,
                           width: int, height: int) -> None:
        """Add one view's screen-space gradients to the statistics, in place.

        means2d: the renderer's [N, 2] projected centres (their ``.grad`` set by backward); radii: [N] (or
        [N, 2]: the larger one counts); width, height: the image size in pixels."""
        if not self.options.collects(step) or means2d is None or radii is None or means2d.grad is None:
            return
        with torch.no_grad():
            r = radii.detach()
            if r.dim() > 1:
                r = r.max(-1).values
            visible = r > 0
            g = means2d.grad.detach().reshape(-1, 2)
            # python scales, not a host-built [2] tensor (a copy to the device every step)
            norm = torch.stack([g[:, 0] * (width / 2.0), g[:, 1] * (height / 2.0)], -1).norm(dim=-1)
            accum, count, radius = (state[name] for name in STATS)
            accum.add_(norm.masked_fill_(~visible, 0.0))
            count.add_(visible.to(count.dtype))
            torch.maximum(radius, r.to(radius.dtype), out=radius)

    def step_post_optimizer(self, state: GaussianState, step: int,
                            optimizers: Iterable[torch.optim.Optimizer] = ()) -> dict[str, int] | None:
        """Densify and prune when step ``step`` (0-based) ends a densification interval; the counts of
        :func:`densify_and_prune`, or None when it did not run."""
        if not self.options.densifies_after(step):
            return None
        return densify_and_prune(state, self.options, self.extent, optimizers=optimizers)


def reset_stats(state: GaussianState) -> None:
    """Set the densification statistics to zero, in place."""
    for name in STATS:
        state[name].zero_()


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


__all__ = ["STATS", "DensifyOptions", "DensifyStrategy", "densify_and_prune", "reset_stats"]
