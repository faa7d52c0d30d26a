"""Closed lat-long surfaces for procedural meshes (the toy body, teeth).

A lat-long surface is laid out as ``[pole0, ring 0 (n vertices), ..., ring R-1, pole1]``; its faces
(:func:`latlong_faces`) close it, so every surface built here is watertight with outward normals.
All functions are plain numpy (float64), deterministic, and return arrays in metres (or whatever unit
the caller's points are in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def unit(v: np.ndarray) -> np.ndarray:
    """[3] -> [3] unit vector."""
    return v / np.linalg.norm(v)


def latlong_faces(num_rings: int, n: int) -> np.ndarray:
    """Triangles [2 * n * num_rings, 3] closing a surface laid out as [pole0, rings (n each), pole1].

    With rings ordered along the axis d and each ring's angle turning from e1 to e2 (e1 x e2 = d),
    the triangles face outwards.
    """
    j = np.arange(n)
    jn = (j + 1) % n
    out = [np.stack([np.zeros(n, dtype=np.int64), 1 + jn, 1 + j], 1)]
    for i in range(num_rings - 1):
        a, b = 1 + i * n, 1 + (i + 1) * n
        out.append(np.stack([a + j, a + jn, b + j], 1))
        out.append(np.stack([a + jn, b + jn, b + j], 1))
    last, pole1 = 1 + (num_rings - 1) * n, 1 + num_rings * n
    out.append(np.stack([last + j, last + jn, np.full(n, pole1)], 1))
    return np.concatenate(out).astype(np.int64)


def ring_angles(n: int, front_density: float = 0.0) -> np.ndarray:
    """[n] angles in [0, 2pi), symmetric under theta -> -theta; denser near 0 when front_density in (0, 1)."""
    u = np.arange(n) / n
    return 2 * np.pi * u - front_density * np.sin(2 * np.pi * u)


def signed_power(x: np.ndarray, e: float) -> np.ndarray:
    """sign(x) |x|^e, elementwise."""
    return np.sign(x) * np.abs(x) ** e


def frame(axis: np.ndarray, e1_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-handed frame (e1, e2, d): d = axis, e1 = e1_hint made orthogonal to d, e2 = d x e1."""
    d = unit(axis)
    e1 = unit(e1_hint - d * (e1_hint @ d))
    return e1, np.cross(d, e1), d


@dataclass(frozen=True)
class Rings:
    """How finely a tube is meshed: ``around`` vertices per ring, ``body`` rings from a to b inclusive,
    ``cap`` cap rings + 1 at each end."""

    around: int
    body: int
    cap: int


def tube(a: np.ndarray, b: np.ndarray, e1_hint: np.ndarray, profile: Sequence[tuple[float, float, float]],
         caps: tuple[float, float], rings: Rings, snap: Sequence[float] = (),
         squareness: float = 2.0) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A capsule-like tube from a to b with elliptic (or superelliptic) cross-sections.

    Args:
        a, b: [3] ends of the axis (the caps extend beyond them).
        e1_hint: [3] direction of the first cross-section axis (made orthogonal to b - a).
        profile: (t in [0, 1], r1, r2) control points, r1 along e1 and r2 along e2 = d x e1, linearly
            interpolated along the axis.
        caps: lengths of the rounded caps beyond a and beyond b.
        rings: the mesh resolution (:class:`Rings`).
        snap: axial coordinates (distance from a) where a ring must lie, e.g. joints.
        squareness: 2 = ellipse, larger = boxier cross-sections.
    Returns:
        rings [R, rings.around, 3], poles (start, end) [3] each, ring_s [R] axial coordinates.
    """
    n_around, n_body, n_cap = rings.around, rings.body, rings.cap
    e1, e2, d = frame(b - a, e1_hint)
    L = float(np.linalg.norm(b - a))
    s_body = np.linspace(0.0, L, n_body)
    for s in snap:
        s_body[int(np.argmin(np.abs(s_body - s)))] = s
    s_body = np.sort(s_body)
    phi = np.linspace(0, np.pi / 2, n_cap + 1)[1:-1]  # cap rings, excluding the equator and the pole
    c0, c1 = caps
    s_all = np.concatenate([-c0 * np.sin(phi[::-1]), s_body, L + c1 * np.sin(phi)])
    m_all = np.concatenate([np.cos(phi[::-1]), np.ones_like(s_body), np.cos(phi)])
    tp, r1p, r2p = (np.array(c, dtype=np.float64) for c in zip(*profile))
    t = np.clip(s_all / L, 0, 1)
    r1 = np.interp(t, tp, r1p) * m_all
    r2 = np.interp(t, tp, r2p) * m_all
    th = ring_angles(n_around)
    e = 2.0 / squareness
    C, S = signed_power(np.cos(th), e), signed_power(np.sin(th), e)
    pts = (a + s_all[:, None, None] * d + r1[:, None, None] * C[None, :, None] * e1
           + r2[:, None, None] * S[None, :, None] * e2)
    return pts, (a - c0 * d, b + c1 * d), s_all


def ellipsoid(center: np.ndarray, axis: np.ndarray, e1_hint: np.ndarray, radii: tuple[float, float, float],
              n_rings: int, n_around: int, exponent: float = 1.0
              ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A (super)ellipsoid with its poles along ``axis``.

    Args:
        radii: (along e1, along e2, along the axis).
        exponent: 1 = ellipsoid, below 1 = boxier (a rounded box near 0.3).
    Returns:
        rings [n_rings, n_around, 3], poles, ring_s [n_rings] axial coordinates from the centre.
    """
    e1, e2, d = frame(axis, e1_hint)
    phi = -np.pi / 2 + np.pi * np.arange(1, n_rings + 1) / (n_rings + 1)
    th = ring_angles(n_around)
    cp, sp = signed_power(np.cos(phi), exponent), signed_power(np.sin(phi), exponent)
    ct, st = signed_power(np.cos(th), exponent), signed_power(np.sin(th), exponent)
    rings = (center + (radii[2] * sp)[:, None, None] * d
             + (radii[0] * cp)[:, None, None] * ct[None, :, None] * e1
             + (radii[1] * cp)[:, None, None] * st[None, :, None] * e2)
    return rings, (center - radii[2] * d, center + radii[2] * d), radii[2] * sp


def assemble(rings: np.ndarray, poles: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """rings [R, n, 3] + poles -> (vertices [R * n + 2, 3], faces [F, 3]) of one closed surface."""
    R, n = rings.shape[:2]
    verts = np.concatenate([poles[0][None], rings.reshape(-1, 3), poles[1][None]])
    return verts, latlong_faces(R, n)


__all__ = ["assemble", "ellipsoid", "frame", "latlong_faces", "ring_angles", "signed_power", "tube", "unit"]
