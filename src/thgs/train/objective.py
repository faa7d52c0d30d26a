"""The training objective: every loss term of one step, by name, and their weighted total (Eq. 20-21).

``Eq. 20``: ``L_rgb = (1 - lambda_1) L1 + lambda_1 D-SSIM``; ``Eq. 21``: ``L = L_rgb + lambda_2 L_vertex
(+ L_normal)``, plus the LEB constraint of section 5.2 and the skinning residual's total variation. The pure
term functions are in :mod:`thgs.avatar.losses`; this module decides which of them apply to a step.
"""

from __future__ import annotations

from torch import Tensor

from thgs.avatar import losses as L
from thgs.avatar.model import AvatarOutput, THGSAvatar
from thgs.render.base import RenderResult


def step_losses(model: THGSAvatar, out: AvatarOutput, res: RenderResult, target: Tensor, weights: L.LossWeights,
                *, pixel_weights: Tensor | None = None, normal: bool = False) -> dict[str, Tensor]:
    """The loss terms of one training step (unweighted, as graph tensors) and ``"loss"``, their weighted sum.

    Args:
        model: the avatar (decides which module terms exist: LEB once its blendshapes are active, the
            skinning TV once the residual trains). out: its forward output. res: the render of ``out``.
        target: [H, W, 3] ground truth in [0, 1]. weights: the weights and term options.
        pixel_weights: per-pixel weights of the reconstruction loss, or None.
        normal: add the 2DGS normal-consistency term (the render must carry normals).
    Returns:
        {"recon", ["vertex"], ["leb"], ["skinning_tv"], ["normal"], "loss"}.
    """
    normals = ((res.normals, res.surf_normals, res.alpha)
               if normal and res.normals is not None and res.surf_normals is not None else None)
    return loss_terms(model, out.canonical_means, res.rgb, target, weights, pixel_weights=pixel_weights,
                      normals=normals)


def loss_terms(model: THGSAvatar, canonical_means: Tensor, rgb: Tensor, target: Tensor, weights: L.LossWeights, *,
               pixel_weights: Tensor | None = None,
               normals: tuple[Tensor, Tensor, Tensor] | None = None) -> dict[str, Tensor]:
    """:func:`step_losses` on tensors: the canonical means [N, 3], the rendered colour [H, W, 3] and, for the
    normal term, (rendered normals, depth normals, alpha); the same terms and total."""
    recon = L.reconstruction_loss(rgb, target, weights.dssim, pixel_weights)
    terms: dict[str, Tensor] = {"recon": recon}
    loss = recon
    if weights.vertex > 0:
        terms["vertex"] = L.vertex_loss(canonical_means, model.parent_positions(), margin=weights.vertex_margin)
        loss = loss + weights.vertex * terms["vertex"]
    if model.leb is not None and model.is_active("blendshapes") and weights.leb > 0:
        terms["leb"] = model.leb.l2()
        loss = loss + weights.leb * terms["leb"]
    grid = model.skin_grid
    if grid is not None and model.is_active("skinning") and weights.skinning_tv > 0 and grid.delta.requires_grad:
        terms["skinning_tv"] = grid.tv_loss()
        loss = loss + weights.skinning_tv * terms["skinning_tv"]
    if normals is not None:
        terms["normal"] = L.normal_consistency_loss(*normals, min_alpha=weights.normal_min_alpha,
                                                    detach_surface=weights.normal_detach_depth)
        loss = loss + weights.normal * terms["normal"]
    terms["loss"] = loss
    return terms


__all__ = ["loss_terms", "step_losses"]
