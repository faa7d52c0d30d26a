"""Joint optimisation of the inputs (section 4.5): per-frame pose and expression residuals.

Both tables start at zero and are indexed by the subject's frame number; only frames that are
trained on receive gradients. The skinning residual lives in the skinning grid (``delta``). Each
group is switched on at its own start step and follows its own exponential learning-rate decay
(Table 1); see :func:`exponential_lr`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class FrameRefinements(nn.Module):
    """Residual body pose [T, J, 3] (axis-angle, added to the tracked pose) and expression [T, E]."""

    def __init__(self, num_frames: int, num_joints: int, num_expressions: int) -> None:
        super().__init__()
        self.pose = nn.Parameter(torch.zeros(num_frames, num_joints, 3))
        self.expression = nn.Parameter(torch.zeros(num_frames, num_expressions))

    @property
    def num_frames(self) -> int:
        return self.pose.shape[0]

    def pose_delta(self, frame_index: int | Tensor) -> Tensor:
        """[J, 3] residual of frame ``frame_index`` (an int, or a one-element long tensor on the device: then
        nothing is read back to check it, for a step recorded as a CUDA graph)."""
        return _row(self.pose, self._check(frame_index))

    def expression_delta(self, frame_index: int | Tensor) -> Tensor:
        """[E] residual of frame ``frame_index`` (as :meth:`pose_delta`)."""
        return _row(self.expression, self._check(frame_index))

    def _check(self, i: int | Tensor) -> int | Tensor:
        if isinstance(i, Tensor):
            return i
        if not 0 <= i < self.num_frames:
            raise IndexError(f"frame index {i} outside the {self.num_frames} refined frames")
        return i


def _row(table: Tensor, i: int | Tensor) -> Tensor:
    return table.index_select(0, i.reshape(1))[0] if isinstance(i, Tensor) else table[i]


def exponential_lr(step: int, start: int, total: int, lr_start: float, lr_final: float) -> float:
    """Learning rate at ``step`` for a group that starts at ``start``: 0 before it, then log-linear from
    ``lr_start`` (at ``start``) to ``lr_final`` (at ``total``), constant at ``lr_final`` after."""
    if step < start:
        return 0.0
    span = max(1, total - start)
    t = min(1.0, (step - start) / span)
    return math.exp((1 - t) * math.log(lr_start) + t * math.log(lr_final))


__all__ = ["FrameRefinements", "exponential_lr"]
