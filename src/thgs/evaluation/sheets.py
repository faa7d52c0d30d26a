"""Pictures of an evaluation: contact sheets of ground truth against renders, per region.

A sheet is a grid of labelled tiles. :func:`region_rows` turns one test frame's ground truth and renders
into tiles (full frame, then the head and mouth crops, each ground truth | render | error), and
:func:`grid` lays rows of tiles out into one uint8 image (:func:`thgs.utils.io.write_image` writes it).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from torch import Tensor

from thgs.animate.render import to_uint8
from thgs.evaluation.frames import error_heatmap
from thgs.metrics.regions import Box

LABEL_HEIGHT = 14


def label_tile(image: np.ndarray, label: str, height: int) -> np.ndarray:
    """``image`` (uint8 [h, w, 3]) resized to ``height`` pixels high (aspect kept) with ``label`` written
    in its top-left corner on a black band."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    width = max(1, round(w * height / max(h, 1)))
    pil = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR)
    if label:
        draw = ImageDraw.Draw(pil)
        draw.rectangle([0, 0, min(width, 6 * len(label) + 6), LABEL_HEIGHT], fill=(0, 0, 0))
        draw.text((3, 1), label, fill=(255, 255, 255))
    return np.asarray(pil)


def region_rows(truth: Tensor, renders: Mapping[str, Tensor], boxes: Mapping[str, Box],
                regions: Sequence[str] = ("full", "head", "mouth"), *, caption: str = "",
                max_error: float = 0.25) -> list[tuple[str, np.ndarray]]:
    """Tiles of one frame: for each region present in ``boxes`` ("full" is the whole image), the ground
    truth, then each render followed by its error heat map.

    Args:
        truth: float [H, W, 3] ground truth. renders: name -> float [H, W, 3] render (same size).
        boxes: region name -> :class:`Box` (a missing region is left out).
        caption: prefix of every tile's label (e.g. "frame 412").
    Returns:
        [(label, uint8 tile)], in order.
    """
    tiles: list[tuple[str, np.ndarray]] = []
    truth = truth.detach()
    for region in regions:
        box = None if region == "full" else boxes.get(region)
        if region != "full" and box is None:
            continue
        crop = (lambda img: img) if box is None else box.crop
        gt = crop(truth)
        head = f"{caption} {region}".strip()
        tiles.append((f"{head}: truth", to_uint8(gt)))
        for name, img in renders.items():
            pred = crop(img.detach().to(truth.device))
            tiles.append((name, to_uint8(pred)))
            tiles.append((f"{name} error", to_uint8(error_heatmap(pred, gt, max_error))))
    return tiles


def grid(rows: Sequence[Sequence[tuple[str, np.ndarray]]], tile_height: int = 192, gap: int = 4) -> np.ndarray:
    """Rows of labelled tiles as one white-separated uint8 image; every tile is resized to ``tile_height``."""
    if not rows or not any(rows):
        raise ValueError("a sheet needs at least one tile")
    made = [[label_tile(img, label, tile_height) for label, img in row] for row in rows if row]
    widths = [sum(t.shape[1] for t in row) + gap * (len(row) - 1) for row in made]
    W = max(widths)
    H = len(made) * tile_height + gap * (len(made) - 1)
    sheet = np.full((H, W, 3), 255, np.uint8)
    y = 0
    for row in made:
        x = 0
        for t in row:
            sheet[y:y + tile_height, x:x + t.shape[1]] = t
            x += t.shape[1] + gap
        y += tile_height + gap
    return sheet


def pick_evenly(count: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(count)`` (all of them when ``count <= n``)."""
    if count <= 0 or n <= 0:
        return []
    if count <= n:
        return list(range(count))
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)}) if n > 1 else [count // 2]


__all__ = ["grid", "label_tile", "pick_evenly", "region_rows"]
