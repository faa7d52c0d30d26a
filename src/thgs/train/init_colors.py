"""Colour initialisation from the training frames (speeds up the first steps a lot).

For a few training frames spread over the sequence, every canonical Gaussian is posed, projected and
tested for visibility: it must lie within ``depth_tol`` of the rendered depth
at its pixel (so occluded Gaussians do not take the colour of what is in front of them), and the
rendered coverage there must exceed one half. When the subject has masks, the pixel must also lie inside
the person's mask, eroded by ``mask_erode`` pixels: with an imperfect body fit (real video) a Gaussian that
projects beside the person would otherwise take the background's colour. Its colour is
the mean of the ground-truth pixel colours over the frames where it was visible; Gaussians never seen
get the mean colour of the ones that were. Only the SH DC term is set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thgs.avatar.gaussians import body_scale, rgb_to_sh_dc
from thgs.avatar.model import THGSAvatar
from thgs.render.base import Camera, render
from thgs.runs.frames import frame_inputs
from thgs.train.data import TrainingData


def _bilinear(img: Tensor, xy: Tensor) -> Tensor:
    """img [H, W, 3], xy [N, 2] pixel coordinates (pixel centres at +0.5) -> [N, 3]."""
    H, W = img.shape[:2]
    grid = torch.stack([xy[:, 0] / W * 2 - 1, xy[:, 1] / H * 2 - 1], -1)[None, None]
    out = torch.nn.functional.grid_sample(img.permute(2, 0, 1)[None], grid, align_corners=False, mode="bilinear")
    return out[0, :, 0].T


@torch.no_grad()
def init_colors_from_frames(model: THGSAvatar, data: TrainingData, camera: Camera, background: Tensor,
                            num_frames: int = 8, mode: str = "3dgs", backend: str = "auto",
                            depth_tol: float = 0.03, mask_erode: int = 1) -> int:
    """Set every Gaussian's base colour from ``num_frames`` training frames; returns how many were seen."""
    dev = model.state["means"].device
    frames = data.frames
    if not frames:
        return 0
    pick = [frames[round(k * (len(frames) - 1) / max(1, num_frames - 1))] for k in range(min(num_frames, len(frames)))]
    N = model.num_gaussians
    acc = torch.zeros(N, 3, device=dev)
    cnt = torch.zeros(N, device=dev)
    tol = depth_tol * body_scale(model.body)
    w2c = camera.world_to_cam.to(dev)
    K = camera.K.to(dev)
    for f in dict.fromkeys(pick):
        gs = model(frame_inputs(data.params.to(dev), None, f, refine=False))
        res = render(gs, camera, background, mode=mode, backend=backend)  # type: ignore[arg-type]
        cam_pts = gs.means @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam_pts[:, 2]
        uv = cam_pts @ K.T
        xy = uv[:, :2] / uv[:, 2:3].clamp_min(1e-6)
        inside = (z > camera.near) & (xy[:, 0] >= 0) & (xy[:, 0] < camera.width) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.height)
        depth = _bilinear(res.depth.expand(-1, -1, 3), xy)[:, 0]
        alpha = _bilinear(res.alpha.expand(-1, -1, 3), xy)[:, 0]
        visible = inside & (alpha > 0.5) & (z <= depth + tol)
        mask = data.mask(f, dev) if hasattr(data, "mask") else None
        if mask is not None:
            person = (mask[..., 0] >= 0.5).float()[None, None]
            if mask_erode > 0:
                k = 2 * mask_erode + 1
                person = -torch.nn.functional.max_pool2d(-person, k, stride=1, padding=mask_erode)
            px = xy.floor().long()
            px[:, 0] = px[:, 0].clamp(0, camera.width - 1)
            px[:, 1] = px[:, 1].clamp(0, camera.height - 1)
            visible &= person[0, 0][px[:, 1], px[:, 0]] > 0.5
        gt = data.image(f, dev)
        col = _bilinear(gt, xy)
        acc[visible] += col[visible]
        cnt[visible] += 1
    seen = cnt > 0
    if not seen.any():
        return 0
    rgb = torch.empty(N, 3, device=dev)
    rgb[seen] = acc[seen] / cnt[seen, None]
    rgb[~seen] = rgb[seen].mean(0)
    sh = model.state.params["sh"]
    sh.data[:, 0] = rgb_to_sh_dc(rgb.clamp(0.02, 0.98))
    return int(seen.sum())


__all__ = ["init_colors_from_frames"]
