"""Learnable Expression Blendshapes (section 4.3, Eq. 8-9).

``E_hat = E + dE * M_H``: the body's expression basis ``E`` [V, 3, K] stays fixed; a learnable
``dE`` (zero at start) is added on the head vertices only (``M_H``, the body's head mask). The
constraint ``||dE|| < eps`` is enforced softly by :meth:`LearnableExpressionBlendshapes.l2`, which the
trainer adds to the loss with weight 0.1 (section 5.2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LearnableExpressionBlendshapes(nn.Module):
    """Args: exprdirs [V, 3, K] fixed basis; head_mask [V] bool."""

    def __init__(self, exprdirs: Tensor, head_mask: Tensor) -> None:
        super().__init__()
        if exprdirs.dim() != 3 or exprdirs.shape[1] != 3:
            raise ValueError(f"LEB: exprdirs must be [V, 3, K], got {tuple(exprdirs.shape)}")
        if head_mask.shape != exprdirs.shape[:1]:
            raise ValueError(f"LEB: head_mask has shape {tuple(head_mask.shape)}, expected ({exprdirs.shape[0]},)")
        self.register_buffer("basis", exprdirs.detach().float().clone())
        self.register_buffer("mask", head_mask.detach().float()[:, None, None].clone())
        self.delta = nn.Parameter(torch.zeros_like(self.basis))

    @property
    def num_expressions(self) -> int:
        return self.basis.shape[-1]

    def masked_delta(self) -> Tensor:
        """``dE * M_H``: [V, 3, K]."""
        return self.delta * self.mask

    def blendshapes(self, learnable: bool = True) -> Tensor:
        """The basis in use, ``E_hat`` (Eq. 8) when ``learnable``, else ``E``: [V, 3, K]."""
        return self.basis + self.masked_delta() if learnable else self.basis

    def offsets(self, expression: Tensor, learnable: bool = True) -> Tensor:
        """Eq. 9: expression [B, K'] (K' <= K; missing coefficients are zero) -> per-vertex offsets [B, V, 3]."""
        k = min(expression.shape[-1], self.num_expressions)
        basis = self.blendshapes(learnable)[..., :k]
        return torch.einsum("bk,vck->bvc", expression[:, :k], basis)

    def l2(self) -> Tensor:
        """Sum of squares of the masked learnable part (scalar)."""
        return self.masked_delta().square().sum()


__all__ = ["LearnableExpressionBlendshapes"]
