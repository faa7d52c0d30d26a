"""Front-to-back alpha compositing of projected Gaussians on any torch device, differentiable by autograd.

Instead of walking 16x16 tiles pixel by pixel as the CUDA kernels do, the work is laid out as a flat
list of (Gaussian, pixel) pairs:

1. each drawn Gaussian gets a pixel box that provably holds every pixel where its alpha can reach
   1/255 (3DGS: the radius box; 2DGS: the box of the projected disk of the opacity-dependent extent
   together with the box of the screen-space filter), clipped to the tiles gsplat would assign it;
2. the pairs inside the boxes are enumerated in depth order, those below the alpha threshold are
   dropped, and a stable sort by pixel leaves every pixel's pairs contiguous and front to back;
3. transmittance is a segmented exclusive cumulative sum of log(1 - alpha) (float64), and a pair
   contributes while the transmittance after it stays above 1e-4 (gsplat's exclusive early stop);
4. weights alpha * T are scattered into the image with ``index_add``.

Only pairs that contribute are evaluated with autograd, so time and memory follow the number of
visible (Gaussian, pixel) pairs rather than tiles x Gaussians. Gaussians are processed in depth-ordered
chunks of at most ``pair_budget`` candidate pairs; pixels that are already opaque are skipped in later
chunks, which bounds memory for huge splats and saves work in dense scenes.

Per-pixel semantics equal gsplat 1.5.3's rasterize_to_pixels kernels: pixel centres at +0.5,
``alpha = min(0.999, opacity * exp(-sigma))``, pairs with ``sigma < 0`` or ``alpha < 1/255`` skipped,
stop before the pair that would bring T to 1e-4 or below.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from thgs.render._project import ALPHA_THRESHOLD, Projected, disk_extend, filter_radius

ALPHA_MAX = 0.999
"""Per-pair alpha clamp (gsplat 1.5.3's value; the original 3DGS rasterizer uses 0.99)."""

T_MIN = 1e-4
"""A pixel stops accepting Gaussians before its transmittance would fall to this or below."""

TILE_SIZE = 16
_LOG_T_MIN = math.log(T_MIN)
_BOX_MARGIN = 1e-3  # pixels; only widens the candidate boxes, never changes a result
_PX_LIMIT = float(1 << 30)  # pixel coordinates are saturated here before integer conversion


def pixel_boxes(p: Projected, width: int, height: int, mode: Literal["3dgs", "2dgs"],
                tile_size: int = TILE_SIZE) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Candidate pixel boxes [V] int64 (x0, x1, y0, y1; ends exclusive) for the projected Gaussians.

    Every pixel outside its box has alpha < 1/255 or lies in a tile gsplat does not assign to the
    Gaussian, so restricting evaluation to the boxes changes no pixel.
    """
    with torch.no_grad():
        m = p.means2d.detach()
        mx, my = m[:, 0], m[:, 1]
        r = p.radii.to(m.dtype)
        rx, ry = r[:, 0], r[:, 1]
        tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
        # gsplat's tile range (tile_min inclusive, tile_max exclusive), as pixels
        tx0 = torch.floor(mx / tile_size - rx / tile_size).clamp(0, tw).long() * tile_size
        tx1 = (torch.ceil(mx / tile_size + rx / tile_size).clamp(0, tw).long() * tile_size).clamp_max(width)
        ty0 = torch.floor(my / tile_size - ry / tile_size).clamp(0, th).long() * tile_size
        ty1 = (torch.ceil(my / tile_size + ry / tile_size).clamp(0, th).long() * tile_size).clamp_max(height)
        if mode == "3dgs":
            # the radius box holds the ellipse sigma <= extend^2 / 2, outside which alpha < 1/255
            bx0, bx1 = _to_px(torch.floor(mx - rx - _BOX_MARGIN)), _to_px(torch.ceil(mx + rx + _BOX_MARGIN))
            by0, by1 = _to_px(torch.floor(my - ry - _BOX_MARGIN)), _to_px(torch.ceil(my + ry + _BOX_MARGIN))
        else:
            bx0, bx1, by0, by1 = _disk_boxes(p)
        x0 = torch.maximum(bx0, tx0).clamp(0, width)
        x1 = torch.minimum(bx1, tx1).clamp(0, width)
        y0 = torch.maximum(by0, ty0).clamp(0, height)
        y1 = torch.minimum(by1, ty1).clamp(0, height)
        x1 = torch.maximum(x1, x0)
        y1 = torch.maximum(y1, y0)
    return x0, x1, y0, y1


def _disk_boxes(p: Projected) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """2DGS candidate boxes: (projected disk of radius k) union (filter disc around means2d).

    The disk u^2 + v^2 <= k^2 with k = min(3.33, sqrt(2 ln(255 opacity))) holds every point where the
    disk term reaches 1/255; its image is an ellipse when ``d_k < 0`` (the disk lies in front of the
    camera), otherwise the box is unbounded (later clipped to the tile range). The filter term
    opacity * exp(-|d|^2) reaches 1/255 only within sqrt(ln(255 opacity)) pixels of ``means2d``.
    """
    T = p.ray_transforms.detach().double()
    op = p.opacities.detach().double()
    k2 = disk_extend(op) ** 2
    M0, M1, M2 = T[:, 0], T[:, 1], T[:, 2]
    dk = k2 * (M2[:, 0] ** 2 + M2[:, 1] ** 2) - M2[:, 2] ** 2
    ellipse = dk < 0
    dk = torch.where(ellipse, dk, -torch.ones_like(dk))
    cx = (k2 * (M0[:, 0] * M2[:, 0] + M0[:, 1] * M2[:, 1]) - M0[:, 2] * M2[:, 2]) / dk
    cy = (k2 * (M1[:, 0] * M2[:, 0] + M1[:, 1] * M2[:, 1]) - M1[:, 2] * M2[:, 2]) / dk
    hx = torch.sqrt((cx * cx - (k2 * (M0[:, 0] ** 2 + M0[:, 1] ** 2) - M0[:, 2] ** 2) / dk).clamp_min(0))
    hy = torch.sqrt((cy * cy - (k2 * (M1[:, 0] ** 2 + M1[:, 1] ** 2) - M1[:, 2] ** 2) / dk).clamp_min(0))
    kx0 = _to_px(torch.where(ellipse, torch.floor(cx - hx - _BOX_MARGIN), torch.full_like(cx, -_PX_LIMIT)))
    kx1 = _to_px(torch.where(ellipse, torch.ceil(cx + hx + _BOX_MARGIN), torch.full_like(cx, _PX_LIMIT)))
    ky0 = _to_px(torch.where(ellipse, torch.floor(cy - hy - _BOX_MARGIN), torch.full_like(cy, -_PX_LIMIT)))
    ky1 = _to_px(torch.where(ellipse, torch.ceil(cy + hy + _BOX_MARGIN), torch.full_like(cy, _PX_LIMIT)))
    fr = filter_radius(op) + _BOX_MARGIN
    m = p.means2d.detach().double()
    fx0, fx1 = _to_px(torch.floor(m[:, 0] - fr)), _to_px(torch.ceil(m[:, 0] + fr))
    fy0, fy1 = _to_px(torch.floor(m[:, 1] - fr)), _to_px(torch.ceil(m[:, 1] + fr))
    return (torch.minimum(kx0, fx0), torch.maximum(kx1, fx1), torch.minimum(ky0, fy0), torch.maximum(ky1, fy1))


def _to_px(v: Tensor) -> Tensor:
    """Whole-pixel float coordinates -> int64, saturated (NaN -> -limit) so that boxes stay well defined."""
    return torch.nan_to_num(v, nan=-_PX_LIMIT).clamp(-_PX_LIMIT, _PX_LIMIT).long()


def row_params(p: Projected, mode: str) -> Tensor:
    """Per-Gaussian float64 rows [V, 6] (3DGS) or [V, 9] (2DGS) that bound, row by row, the pixels where
    alpha can reach 1/255 (see :func:`_row_spans`)."""
    with torch.no_grad():
        m = p.means2d.detach().double()
        op = p.opacities.detach().double()
        if mode == "3dgs":
            s_max = torch.log(op.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)  # sigma <= s_max
            return torch.cat([m, p.conics.detach().double(), s_max.unsqueeze(-1)], -1)
        A = gaussian_params(p, mode).detach().double()[:, 2:11].reshape(-1, 3, 3)  # rows C0, C1, C2
        A = A.transpose(-1, -2)  # c = A @ (px, py, 1)
        k2 = disk_extend(op) ** 2
        # the disk u^2 + v^2 <= k^2 seen through the pixels: p^T Q p <= 0, p = (px, py, 1)
        Q = (A[:, 0, :, None] * A[:, 0, None, :] + A[:, 1, :, None] * A[:, 1, None, :]
             - k2[:, None, None] * A[:, 2, :, None] * A[:, 2, None, :])
        fr2 = filter_radius(op) ** 2
        q = torch.stack([Q[:, 0, 0], Q[:, 0, 1], Q[:, 0, 2], Q[:, 1, 1], Q[:, 1, 2], Q[:, 2, 2]], -1)
        return torch.cat([m, q, fr2.unsqueeze(-1)], -1)


def _row_spans(mode: str, R: Tensor, y: Tensor, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """Columns [xs, xe) [rows] of pixel row ``y`` [rows] that can hold alpha >= 1/255 for Gaussians with
    :func:`row_params` rows ``R`` [rows, k], clipped to [x0, x1). Pixel column x is inside when its centre
    x + 0.5 lies in the interval where the row's quadratic is <= 0 (widened by a small margin)."""
    py = y.double() + 0.5
    dy = R[:, 1] - py
    if mode == "3dgs":
        a, b, c, s_max = R[:, 2], R[:, 3], R[:, 4], R[:, 5]
        # 0.5 a dx^2 + b dy dx + 0.5 c dy^2 <= s_max with dx = mx - px
        disc = 2.0 * a * s_max - (a * c - b * b) * dy * dy
        root = torch.sqrt(disc.clamp_min(0))
        lo = R[:, 0] + (b * dy - root) / a
        hi = R[:, 0] + (b * dy + root) / a
        empty = disc < 0
    else:
        q00, q01, q02, q11, q12, q22, fr2 = R[:, 2:9].unbind(-1)
        # disk: q00 px^2 + 2 (q01 py + q02) px + (q11 py^2 + 2 q12 py + q22) <= 0
        al = q00
        be = 2.0 * (q01 * py + q02)
        ga = q11 * py * py + 2.0 * q12 * py + q22
        disc = be * be - 4.0 * al * ga
        bounded = al > 0  # otherwise the region is not an interval: keep the whole row
        sq = torch.sqrt(disc.clamp_min(0))
        qq = -0.5 * (be + torch.where(be >= 0, sq, -sq))  # stable roots qq / al and ga / qq
        qq_safe = torch.where(qq == 0, torch.ones_like(qq), qq)
        r1 = torch.where(qq == 0, torch.zeros_like(qq), qq / torch.where(bounded, al, torch.ones_like(al)))
        r2 = torch.where(qq == 0, torch.zeros_like(qq), ga / qq_safe)
        d_lo, d_hi = torch.minimum(r1, r2), torch.maximum(r1, r2)
        d_empty = bounded & (disc < 0)
        d_lo = torch.where(bounded, d_lo, torch.full_like(d_lo, -_PX_LIMIT))
        d_hi = torch.where(bounded, d_hi, torch.full_like(d_hi, _PX_LIMIT))
        # filter: (mx - px)^2 + dy^2 <= fr^2
        f2 = fr2 - dy * dy
        f_empty = f2 < 0
        fh = torch.sqrt(f2.clamp_min(0))
        f_lo, f_hi = R[:, 0] - fh, R[:, 0] + fh
        inf = torch.full_like(d_lo, _PX_LIMIT)
        lo = torch.minimum(torch.where(d_empty, inf, d_lo), torch.where(f_empty, inf, f_lo))
        hi = torch.maximum(torch.where(d_empty, -inf, d_hi), torch.where(f_empty, -inf, f_hi))
        empty = d_empty & f_empty
    margin = _BOX_MARGIN + 1e-6 * (lo.abs() + hi.abs())
    xs = _to_px(torch.ceil(lo - 0.5 - margin))
    xe = _to_px(torch.floor(hi - 0.5 + margin)) + 1
    xs = torch.maximum(xs, x0)
    xe = torch.minimum(xe, x1)
    xe = torch.where(empty, xs, torch.maximum(xe, xs))
    return xs, xe


def _enumerate_rows(y0: Tensor, y1: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of the boxes [B]: box index [R] and row y [R]."""
    h = y1 - y0
    total = int(h.sum())
    idx = torch.repeat_interleave(torch.arange(len(h), device=y0.device), h, output_size=total)
    first = torch.cumsum(h, 0) - h
    return idx, y0[idx] + torch.arange(total, device=y0.device) - first[idx]


def _enumerate_runs(g: Tensor, y: Tensor, xs: Tensor, xe: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Pixels of the row runs [R] (Gaussian ``g``, row ``y``, columns [xs, xe)): Gaussian [P], pixel [P]."""
    n = xe - xs
    total = int(n.sum())
    idx = torch.repeat_interleave(torch.arange(len(n), device=g.device), n, output_size=total)
    base = y * width + xs - (torch.cumsum(n, 0) - n)
    return g[idx], base[idx] + torch.arange(total, device=g.device)


def _pair_sigma_alpha(mode: str, c: Sequence[Tensor], px: Tensor, py: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gaussian exponent ``sigma`` [P] and unclamped alpha [P] at pixel centres (px, py) [P], from the
    gathered parameter columns ``c`` (each [P]; see :func:`gaussian_params`). For 2DGS also a [P] bool
    mask of rays that are not parallel to the disk."""
    dx = c[0] - px
    dy = c[1] - py
    if mode == "3dgs":
        sigma = 0.5 * (c[2] * dx * dx + c[4] * dy * dy) + c[3] * dx * dy
        return sigma, c[5] * torch.exp(-sigma), None
    # (u, v, 1) ~ (px M2 - M0) x (py M2 - M1) = px (M1 x M2) + py (M2 x M0) + M0 x M1
    hx = px * c[2] + py * c[5] + c[8]
    hy = px * c[3] + py * c[6] + c[9]
    hz = px * c[4] + py * c[7] + c[10]
    ok = hz != 0
    hz = torch.where(ok, hz, torch.ones_like(hz))
    u = hx / hz
    v = hy / hz
    s3d = u * u + v * v
    s2d = 2.0 * (dx * dx + dy * dy)  # screen-space low-pass filter (gsplat's FILTER_INV_SQUARE_2DGS)
    sigma = 0.5 * torch.minimum(s3d, s2d)
    return sigma, c[11] * torch.exp(-sigma), ok


def gaussian_params(p: Projected, mode: str) -> Tensor:
    """Per-Gaussian rows consumed by :func:`_pair_sigma_alpha`.

    3DGS [V, 6]: (mx, my, a, b, c, opacity) with the conic [[a, b], [b, c]]. 2DGS [V, 12]: (mx, my,
    M1 x M2, M2 x M0, M0 x M1, opacity) for the ray-transform rows M0, M1, M2: the ray through pixel
    (px, py) meets the disk plane at (u, v) = (c_x / c_z, c_y / c_z) with
    c = px (M1 x M2) + py (M2 x M0) + M0 x M1, the cross product of the planes px M2 - M0 and py M2 - M1.
    """
    if mode == "3dgs":
        return torch.cat([p.means2d, p.conics, p.opacities.unsqueeze(-1)], -1)
    M0, M1, M2 = p.ray_transforms.unbind(-2)
    adj = [torch.linalg.cross(M1, M2), torch.linalg.cross(M2, M0), torch.linalg.cross(M0, M1)]
    return torch.cat([p.means2d, *adj, p.opacities.unsqueeze(-1)], -1)


def composite(
    p: Projected,
    features: Tensor,
    width: int,
    height: int,
    mode: Literal["3dgs", "2dgs"],
    pair_budget: int = 1 << 19,
) -> tuple[Tensor, Tensor, dict]:
    """Blend ``features`` [V, F] of the projected Gaussians ``p`` front to back.

    Returns ``acc`` [H*W, F] = sum_i w_i f_i with w_i = alpha_i T_i, ``log_t`` [H*W] float64, the log of
    the final transmittance (alpha = 1 - exp(log_t)), and stats (candidate pairs evaluated, pairs
    blended, chunks, Gaussians skipped because every pixel of their box was already opaque).
    """
    dev, dtype = features.device, features.dtype
    HW = width * height
    F = features.shape[1]
    # column-major tables: gathering [K, P] and unbinding rows keeps every per-pair vector contiguous
    # and makes the backward of the column split a single stack
    params_t = gaussian_params(p, mode).to(dtype).T.contiguous()  # [K, V]
    feats_t = features.T.contiguous()  # [F, V]
    params_d = params_t.detach()
    x0, x1, y0, y1 = pixel_boxes(p, width, height, mode)
    rparams = row_params(p, mode)
    counts = (x1 - x0) * (y1 - y0)
    cum = torch.cumsum(counts, 0)
    V = len(counts)

    acc = torch.zeros(F, HW, device=dev, dtype=dtype)
    log_t = torch.zeros(HW, device=dev, dtype=torch.float64)
    done = torch.zeros(HW, device=dev, dtype=torch.bool)
    stats = {"candidate_pairs": 0, "blended_pairs": 0, "chunks": 0, "occluded": 0}
    start = 0
    while start < V or stats["chunks"] == 0:  # one (empty) pass when nothing is drawn keeps the graph
        base = int(cum[start - 1]) if start > 0 else 0
        end = int(torch.searchsorted(cum, torch.tensor(base + pair_budget, device=dev), right=True))
        end = min(max(end, start + 1), V)
        first_chunk = stats["chunks"] == 0
        stats["chunks"] += 1
        with torch.no_grad():
            rg, ry = _enumerate_rows(y0[start:end], y1[start:end])
            rg = rg + start
            xs, xe = _row_spans(mode, rparams.index_select(0, rg), ry, x0.index_select(0, rg),
                                x1.index_select(0, rg))
            g, pix = _enumerate_runs(rg, ry, xs, xe, width)
            if not first_chunk:
                live = torch.nonzero(~done.index_select(0, pix)).squeeze(1)
                g, pix = g.index_select(0, live), pix.index_select(0, live)
            stats["candidate_pairs"] += len(g)
            px = (pix % width).to(dtype) + 0.5
            py = torch.div(pix, width, rounding_mode="floor").to(dtype) + 0.5
            sigma, alpha, ok = _pair_sigma_alpha(mode, params_d.index_select(1, g).unbind(0), px, py)
            alpha = alpha.clamp_max(ALPHA_MAX)
            keep = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
            if ok is not None:
                keep &= ok
            keep = torch.nonzero(keep).squeeze(1)
            pix = pix.index_select(0, keep)
            # stable: pairs were enumerated front to back, so each pixel's run stays in depth order
            perm = torch.sort(pix.int(), stable=True).indices
            order = keep.index_select(0, perm)  # into the arrays before the alpha test
            g, pix, alpha = g.index_select(0, order), pix.index_select(0, perm), alpha.index_select(0, order)
            logs = torch.log1p(-alpha.double())
            start_idx = _segment_starts(pix, HW)
            cs = torch.cumsum(logs, 0)
            incl = cs - (cs - logs).index_select(0, start_idx)
            if not first_chunk:
                incl = incl + log_t.detach().index_select(0, pix)
            contrib = incl > _LOG_T_MIN
            newly_done = not bool(contrib.all())
            if newly_done:
                done[pix[~contrib]] = True
                sel = torch.nonzero(contrib).squeeze(1)
                g, pix = g.index_select(0, sel), pix.index_select(0, sel)
                start_idx = _segment_starts(pix, HW)
        stats["blended_pairs"] += len(pix)

        px = (pix % width).to(dtype) + 0.5
        py = torch.div(pix, width, rounding_mode="floor").to(dtype) + 0.5
        _, alpha, _ = _pair_sigma_alpha(mode, params_t.index_select(1, g).unbind(0), px, py)
        alpha = alpha.clamp_max(ALPHA_MAX)
        logs = torch.log1p(-alpha.double())
        cs_ex = torch.cumsum(logs, 0) - logs
        log_before = cs_ex - cs_ex.index_select(0, start_idx)
        if not first_chunk:
            log_before = log_before + log_t.index_select(0, pix)
        w = alpha * torch.exp(log_before).to(dtype)
        acc = acc.index_add(1, pix, feats_t.index_select(1, g) * w)
        log_t = log_t.index_add(0, pix, logs)
        start = end
        if newly_done and start < V:
            with torch.no_grad():  # drop the remaining Gaussians whose whole box is already opaque
                sat = torch.nn.functional.pad(done.reshape(height, width).int().cumsum(0).cumsum(1), (1, 0, 1, 0))
                rest = slice(start, V)
                inside = (sat[y1[rest], x1[rest]] - sat[y0[rest], x1[rest]] - sat[y1[rest], x0[rest]]
                          + sat[y0[rest], x0[rest]])
                hidden = (inside == counts[rest]) & (counts[rest] > 0)
                if bool(hidden.any()):
                    stats["occluded"] += int(hidden.sum())
                    x1[rest] = torch.where(hidden, x0[rest], x1[rest])
                    counts = (x1 - x0) * (y1 - y0)
                    cum = torch.cumsum(counts, 0)
    return acc.T, log_t, stats


def _segment_starts(pix: Tensor, n: int) -> Tensor:
    """For pixel ids sorted ascending [P]: the index of the first pair of each pair's pixel [P]."""
    counts = torch.bincount(pix, minlength=n)
    first = torch.cumsum(counts, 0) - counts
    return first[pix]
