"""Per-frame helpers of the evaluation: region boxes from the posed body, error heat maps and the
side-by-side comparison frame (ground truth | render | error)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thgs.metrics.regions import Box, body_region_boxes, project_points
from thgs.render.base import Camera

# Anchor colours of the heat map (black -> purple -> red -> orange -> pale yellow), evenly spaced in [0, 1].
_HEAT = torch.tensor([[0.0, 0.0, 0.0], [0.32, 0.06, 0.45], [0.80, 0.20, 0.30], [0.98, 0.55, 0.10],
                      [1.0, 1.0, 0.75]])


@torch.no_grad()
def frame_boxes(body, pose: Tensor, betas: Tensor | None, expression: Tensor | None, transl: Tensor,
                camera: Camera) -> dict[str, Box]:
    """Region boxes of one frame from the posed body model.

    Args:
        body: the avatar's :class:`thgs.body.model.BodyModel`.
        pose: [J, 3] axis-angle; betas: [S] or None; expression: [E] or None; transl: [3].
        camera: the frame's camera.
    Returns:
        {"full", "head" (head and neck, Table 5), "mouth", "face" (head without the neck, the SyncNet
        crop's face box)}; "head"/"mouth"/"face" are absent when off-screen.
    """
    dev = body.v_template.device
    out = body(pose[None].to(dev), betas[None].to(dev) if betas is not None else None,
               expression[None].to(dev) if expression is not None else None, transl[None].to(dev))
    K, w2c = camera.K.to(dev), camera.world_to_cam.to(dev)
    v2 = project_points(out.vertices[0], K, w2c)
    j2 = project_points(out.joints[0], K, w2c)
    boxes = body_region_boxes(body, v2, camera.width, camera.height, joints_2d=j2)
    face = body_region_boxes(body, v2, camera.width, camera.height).get("head")
    if face is not None:
        boxes["face"] = face
    return boxes


def error_heatmap(pred: Tensor, target: Tensor, max_error: float = 0.25) -> Tensor:
    """Per-pixel error as colours: mean absolute error over channels / ``max_error`` (clipped to [0, 1])
    through a black-purple-red-yellow ramp.

    Args:
        pred, target: [H, W, 3] float in [0, 1].
    Returns:
        [H, W, 3] float in [0, 1].
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [H, W, 3]")
    e = ((pred - target).abs().mean(-1) / max_error).clamp(0, 1)
    pos = e * (_HEAT.shape[0] - 1)
    lo = pos.floor().long().clamp(max=_HEAT.shape[0] - 2)
    f = (pos - lo.to(pos.dtype))[..., None]
    ramp = _HEAT.to(pred.device, pred.dtype)
    return ramp[lo] * (1 - f) + ramp[lo + 1] * f


def side_by_side(target: Tensor, pred: Tensor, max_error: float = 0.25) -> np.ndarray:
    """One comparison frame: ground truth | render | error heat map, uint8 [H, 3W, 3]."""
    img = torch.cat([target, pred, error_heatmap(pred, target, max_error)], dim=1)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def crop_or_none(img: Tensor, box: Box | None) -> Tensor | None:
    """``box.crop(img)`` on the CPU, or None without a box."""
    return box.crop(img).detach().cpu().clone() if box is not None else None


__all__ = ["crop_or_none", "error_heatmap", "frame_boxes", "side_by_side"]
