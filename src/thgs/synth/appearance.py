"""The synthetic person's look: materials painted by a 3D solid texture on the canonical surface.

Every pixel's colour is computed from the *canonical (rest-pose) surface point* it shows (the template
vertex positions interpolated by the pixel's barycentrics), so the texture is glued to the body and moves
with it, plus the body part of the face it lies on. Nothing here depends on a particular body model:
parts come from each vertex's dominant skinning joint mapped to a semantic joint name (walking up the
kinematic tree for joints without one), and facial features are placed from the eye joints and the
:class:`~thgs.body.model.MouthDefinition`.

Materials: skin (low-frequency blotches and freckles), lips, eyebrows, hair on the scalp (fine strands),
eyes (sclera, a streaked iris, pupil) on eyeball vertices, teeth with gaps, a dark mouth interior (also
used for every back face seen through the mouth opening), a striped-and-checked shirt with short
sleeves and a printed emblem on the chest, a belt, checked trousers with a twill weave, and shoes.

Shading is Lambert with a fixed key light from the upper front-left, a weaker fill light and ambient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel
from thgs.synth.motion import semantic_joints

# Body parts (per vertex / per face).
PARTS: tuple[str, ...] = ("head", "neck", "torso", "hips", "upper_arm", "forearm", "hand", "leg", "foot",
                          "left_eye", "right_eye", "teeth", "cavity")
PART = {n: i for i, n in enumerate(PARTS)}

_SEMANTIC_PART = {
    "head": "head", "jaw": "head", "neck": "neck",
    "spine1": "torso", "spine2": "torso", "spine3": "torso", "left_collar": "torso", "right_collar": "torso",
    "pelvis": "hips", "left_hip": "leg", "right_hip": "leg", "left_knee": "leg", "right_knee": "leg",
    "left_ankle": "foot", "right_ankle": "foot", "left_foot": "foot", "right_foot": "foot",
    "left_shoulder": "upper_arm", "right_shoulder": "upper_arm", "left_elbow": "forearm",
    "right_elbow": "forearm", "left_wrist": "hand", "right_wrist": "hand",
    "left_eye": "left_eye", "right_eye": "right_eye",
}

def pixel_part(vertex_part: Tensor, tri: Tensor, bary: Tensor) -> Tensor:
    """Part at each pixel: the part whose vertices carry the largest share of the barycentric weight, so
    part boundaries run smoothly through the middle of the faces that straddle them.

    Args:
        vertex_part: [V] long; tri: [P, 3] the pixels' face vertex indices; bary: [P, 3] weights.
    Returns:
        [P] long.
    """
    vp = vertex_part[tri]  # [P, 3]
    score = torch.stack([(bary * (vp == vp[:, k: k + 1])).sum(1) for k in range(3)], 1)
    return vp.gather(1, score.argmax(1, keepdim=True))[:, 0]


# Materials (per pixel).
MATERIALS: tuple[str, ...] = ("background", "skin", "lips", "brow", "hair", "sclera", "iris", "pupil", "teeth",
                              "interior", "shirt", "print", "belt", "trousers", "shoe")
MAT = {n: i for i, n in enumerate(MATERIALS)}


@dataclass
class Palette:
    """Colours (RGB in 0..1) of one synthetic person."""

    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    shirt_a: tuple[float, float, float]
    shirt_b: tuple[float, float, float]
    shirt_line: tuple[float, float, float]
    trousers: tuple[float, float, float]
    print_a: tuple[float, float, float]
    print_b: tuple[float, float, float]


_SKINS = [(0.87, 0.69, 0.58), (0.78, 0.58, 0.45), (0.62, 0.44, 0.32), (0.93, 0.78, 0.68)]
_HAIRS = [(0.16, 0.10, 0.07), (0.30, 0.19, 0.10), (0.08, 0.07, 0.07), (0.45, 0.30, 0.16)]
_IRISES = [(0.25, 0.45, 0.65), (0.35, 0.25, 0.14), (0.30, 0.50, 0.32), (0.45, 0.35, 0.20)]
_SHIRTS = [((0.12, 0.22, 0.45), (0.92, 0.92, 0.88), (0.80, 0.20, 0.18)),
           ((0.55, 0.12, 0.14), (0.95, 0.90, 0.80), (0.15, 0.20, 0.35)),
           ((0.15, 0.40, 0.30), (0.93, 0.93, 0.90), (0.95, 0.75, 0.20)),
           ((0.30, 0.30, 0.33), (0.85, 0.65, 0.25), (0.90, 0.90, 0.92))]
_TROUSERS = [(0.22, 0.24, 0.30), (0.48, 0.42, 0.32), (0.18, 0.18, 0.18), (0.30, 0.26, 0.22)]


def make_palette(seed: int) -> Palette:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC010]))
    skin = _SKINS[rng.integers(len(_SKINS))]
    lips = tuple(float(np.clip(c, 0, 1)) for c in np.array(skin) * np.array([0.95, 0.62, 0.62]) + np.array([0.05, 0, 0]))
    sa, sb, sl = _SHIRTS[rng.integers(len(_SHIRTS))]
    return Palette(skin=skin, lips=lips, hair=_HAIRS[rng.integers(len(_HAIRS))],  # type: ignore[arg-type]
                   iris=_IRISES[rng.integers(len(_IRISES))], shirt_a=sa, shirt_b=sb, shirt_line=sl,
                   trousers=_TROUSERS[rng.integers(len(_TROUSERS))], print_a=(0.97, 0.80, 0.20),
                   print_b=(0.80, 0.15, 0.15))


# -- procedural noise ---------------------------------------------------------------------------

def _hash(ix: Tensor, iy: Tensor, iz: Tensor, seed: int) -> Tensor:
    """Integer lattice coordinates -> pseudo-random floats in [0, 1) (deterministic, int64 arithmetic)."""
    h = ix * 374761393 + iy * 668265263 + iz * 2147483629 + seed * 1013904223
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).float() / 65536.0


def value_noise(p: Tensor, scale: float, seed: int = 0) -> Tensor:
    """Smooth value noise in [0, 1): points [P, 3] (metres), feature size ``scale`` metres -> [P]."""
    q = p / scale
    i = torch.floor(q)
    f = q - i
    u = f * f * (3 - 2 * f)
    i = i.long()
    out = torch.zeros(p.shape[0], device=p.device)
    for dx in (0, 1):
        wx = u[:, 0] if dx else 1 - u[:, 0]
        for dy in (0, 1):
            wy = u[:, 1] if dy else 1 - u[:, 1]
            for dz in (0, 1):
                wz = u[:, 2] if dz else 1 - u[:, 2]
                out += wx * wy * wz * _hash(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed)
    return out


def spots(p: Tensor, cell: float, density: float, radius: tuple[float, float], seed: int) -> Tensor:
    """Random round spots (freckles): [P] in [0, 1], 1 at a spot's centre.

    Each lattice cell of size ``cell`` holds a spot with probability ``density``, placed at random but at
    least the largest radius away from the cell's walls, so only the point's own cell needs testing.
    """
    q = p / cell
    i = torch.floor(q).long()
    on = _hash(i[:, 0], i[:, 1], i[:, 2], seed) < density
    m = radius[1] / cell
    centre = torch.stack([_hash(i[:, 0], i[:, 1], i[:, 2], seed + k + 1) for k in range(3)], 1) * (1 - 2 * m) + m
    r = radius[0] + (radius[1] - radius[0]) * _hash(i[:, 0], i[:, 1], i[:, 2], seed + 7)
    d = ((q - i.float() - centre) * cell).norm(dim=1)
    return torch.clamp(1 - d / r, 0, 1) * on


def _smoothstep(e0: float, e1: float, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _band(x: Tensor, period: float, width: float, soft: float) -> Tensor:
    """Periodic bands: 1 within ``width`` of a multiple of ``period``, soft edges of ``soft`` (all metres)."""
    d = torch.remainder(x + 0.5 * period, period) - 0.5 * period
    return 1 - _smoothstep(0.5 * width - soft, 0.5 * width + soft, d.abs())


class Appearance:
    """Materials and shading of one body; built once per body, evaluated per pixel."""

    def __init__(self, body: BodyModel, seed: int = 0, teeth_vertices: Tensor | None = None) -> None:
        self.palette = make_palette(seed)
        self.seed = seed
        sem = semantic_joints(body)
        rest = body.rest_joints()[0].detach().float()
        self.rest_joints = rest
        J = body.num_joints
        # Joint -> part: the part of its nearest ancestor with a semantic name.
        inv = {}
        for name, j in sem.items():
            base = name.replace("_smplhf", "")
            part = _SEMANTIC_PART.get(base)
            if part is None:
                for fing in ("index", "middle", "ring", "pinky", "thumb"):
                    if fing in base:
                        part = "hand"
            if part is not None:
                inv.setdefault(j, part)
        parents = body.parents.tolist()
        joint_part = []
        for j in range(J):
            k = j
            while k >= 0 and k not in inv:
                k = parents[k]
            joint_part.append(PART[inv[k]] if k >= 0 else PART["torso"])
        dom = body.lbs_weights.argmax(1)
        vpart = torch.tensor(joint_part)[dom]
        self.eye_l, self.eye_r = self._eyes(rest, sem)
        m = body.mouth
        self.mouth_c = m.center.detach().float().cpu()
        self.mouth_w = float(m.width)
        vpart[self._hidden_behind_lips(body, vpart)] = PART["cavity"]
        if teeth_vertices is not None and len(teeth_vertices):
            vpart[teeth_vertices] = PART["teeth"]
        self.vertex_part = vpart
        fp = vpart[body.faces]
        a, b, c = fp.unbind(1)
        self.face_part = torch.where((a == b) | (a == c), a, torch.where(b == c, b, a))  # majority

        def joint(name: str, fallback: Tensor) -> Tensor:
            return rest[sem[name]] if name in sem else fallback

        centre = rest[0]
        head = joint("head", centre)
        self.head = head
        self.neck = joint("neck", head)
        self.spine3 = joint("spine3", centre)
        self.pelvis = joint("pelvis", centre)
        self.shoulders = (joint("left_shoulder", centre), joint("right_shoulder", centre))
        self.elbows = (joint("left_elbow", centre), joint("right_elbow", centre))
        # Surface z of the chest front (for the emblem) and the head's extent for the hairline.
        v = body.v_template.float()
        torso = vpart == PART["torso"]
        self.chest_front = float(v[torso, 2].max()) if torso.any() else float(self.spine3[2] + 0.1)
        headv = v[vpart == PART["head"]]
        self.head_top = float(headv[:, 1].max()) if len(headv) else float(head[1] + 0.2)
        self.face_front = float(headv[:, 2].max()) if len(headv) else float(head[2] + 0.1)

    @staticmethod
    def _eyes(rest: Tensor, sem: dict[str, int]) -> tuple[Tensor, Tensor]:
        head = rest[sem["head"]] if "head" in sem else rest[0]
        left = rest[sem["left_eye"]] if "left_eye" in sem else head + torch.tensor([0.032, 0.08, 0.08])
        right = rest[sem["right_eye"]] if "right_eye" in sem else head + torch.tensor([-0.032, 0.08, 0.08])
        return left, right

    def _hidden_behind_lips(self, body: BodyModel, vpart: Tensor) -> Tensor:
        """[V] bool: head vertices around and behind the mouth that the face itself hides from a frontal
        view of the rest pose (the mouth cavity, tongue, inner lips), found by z-buffering the head with an
        orthographic-like far camera at 0.5 mm per pixel (hidden: more than 4 mm behind the visible surface)."""
        from thgs.synth.raster import rasterize

        v = body.v_template.detach().float().cpu()
        mc, w = self.mouth_c, self.mouth_w
        d = v - mc[None]
        near = (vpart == PART["head"]) & (d[:, 0].abs() < 0.7 * w) & (d[:, 1] < 0.6 * w) & (d[:, 1] > -0.8 * w) & (d[:, 2] < 0)
        if not bool(near.any()):
            return near
        faces = body.faces.detach().cpu()
        fp = vpart[faces]
        head_faces = faces[((fp == PART["head"]) | (fp == PART["left_eye"]) | (fp == PART["right_eye"])).all(1)]
        dist, res = 20.0, 0.0005
        size = int(2 * w / res) + 1
        cam = torch.stack([v[:, 0] - mc[0], -(v[:, 1] - mc[1]), dist - (v[:, 2] - mc[2])], 1)
        K = torch.tensor([[dist / res, 0, size / 2], [0, dist / res, size / 2], [0, 0, 1]])
        frags = rasterize(cam, head_faces, K, size, size)
        uv = cam[:, :2] / cam[:, 2:3] * (dist / res) + size / 2
        col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        hidden = torch.zeros_like(near)
        idx = torch.nonzero(near & inside).squeeze(1)
        front_depth = frags.depth[row[idx], col[idx]]
        hidden[idx] = (frags.face[row[idx], col[idx]] >= 0) & (cam[idx, 2] > front_depth + 0.004)
        return hidden

    # -- materials ----------------------------------------------------------------------------
    def materials(self, p: Tensor, part: Tensor) -> Tensor:
        """Material of each point: canonical points [P, 3], parts [P] -> [P] long indices into
        :data:`MATERIALS` (geometric rules only; see :meth:`albedo` for the colours)."""
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        is_ = {n: part == i for n, i in PART.items()}
        mat = torch.full_like(part, MAT["skin"])

        def put(mask: Tensor, name: str) -> None:
            mat[mask] = MAT[name]

        # Clothing: shirt above the belt and on the upper arms (short sleeves), belt, trousers, shoes.
        belt_lo = float(self.pelvis[1]) + 0.055
        belt_hi = belt_lo + 0.03
        upper = is_["torso"] | is_["hips"]
        shirt = upper & (y >= belt_hi)
        for k in (0, 1):
            s, e = self.shoulders[k], self.elbows[k]
            axis = e - s
            t = ((p - s[None]) @ axis) / (float(axis @ axis) + 1e-12)
            shirt |= is_["upper_arm"] & (t < 0.55)
        # Crew neck: a round opening about the neck.
        nx, nz = x - float(self.neck[0]), z - float(self.neck[2])
        opening = (y > float(self.neck[1]) - 0.045) & (nx * nx + nz * nz < 0.095 ** 2)
        shirt &= ~opening
        put(shirt, "shirt")
        ex, ey = x - float(self.spine3[0]) - 0.09, y - float(self.spine3[1]) - 0.05
        er = (ex * ex + ey * ey).sqrt()
        put(shirt & is_["torso"] & (z > self.chest_front - 0.06) & (er < 0.035), "print")
        put(upper & (y < belt_hi) & (y >= belt_lo), "belt")
        put((upper & (y < belt_lo)) | is_["leg"], "trousers")
        put(is_["foot"], "shoe")
        put(is_["teeth"], "teeth")
        # Head: hair on the scalp, brows, lips, the mouth's interior.
        head = is_["head"]
        if bool(head.any()):
            eye_y = 0.5 * float(self.eye_l[1] + self.eye_r[1])
            eye_z = 0.5 * float(self.eye_l[2] + self.eye_r[2])
            behind = ((self.face_front - 0.03 - z) / 0.09).clamp(0, 1)
            hairline = eye_y + 0.052 - 0.085 * behind + 0.006 * torch.sin(x * 90)
            hair = (head | is_["neck"]) & (y > hairline)
            put(hair, "hair")
            for e in (self.eye_l, self.eye_r):
                dx = (x - float(e[0])).abs()
                arch = float(e[1]) + 0.021 + 0.004 * (1 - (dx / 0.02).clamp(max=1) ** 2)
                put(head & ~hair & (dx < 0.021) & ((y - arch).abs() < 0.0035 * (1.2 - dx / 0.03))
                    & (z > eye_z - 0.005), "brow")
            mc, w = self.mouth_c, self.mouth_w
            lx, ly, lz = x - float(mc[0]), y - float(mc[1]), z - float(mc[2])
            xn = lx / (0.5 * w * 1.08)
            h = torch.where(ly > 0, 0.17 * w, 0.2 * w) * (1 - xn.clamp(-1, 1) ** 2).clamp_min(0).sqrt()
            lips = head & (xn.abs() < 1) & (ly.abs() < h + 0.0008) & (lz > -0.025)  # front of the face only
            put(lips, "lips")
        put(is_["cavity"], "interior")
        # Eyeballs: sclera, iris, pupil by the angle from the eye's forward axis.
        for name, e in (("left_eye", self.eye_l), ("right_eye", self.eye_r)):
            m = is_[name]
            if not bool(m.any()):
                continue
            d = p - e[None]
            ang = torch.acos((d[:, 2] / d.norm(dim=1).clamp_min(1e-9)).clamp(-1, 1))
            put(m, "sclera")
            put(m & (ang < 0.5), "iris")
            put(m & (ang < 0.2), "pupil")
        return mat

    def albedo(self, p: Tensor, part: Tensor) -> Tensor:
        """Surface colour: canonical points [P, 3], parts [P] -> RGB [P, 3] in 0..1."""
        mat = self.materials(p, part)
        pal = self.palette
        col = torch.zeros(p.shape[0], 3)
        rgb = lambda c: torch.tensor(c, dtype=torch.float32)[None]

        def sel(name: str) -> Tensor:
            return torch.nonzero(mat == MAT[name]).squeeze(1)

        fine_all = value_noise(p, 0.004, self.seed + 12)
        # Skin: blotches, fine grain, freckles.
        i = sel("skin")
        if len(i):
            q = p[i]
            fr = spots(q, 0.006, 0.35, (0.0007, 0.0014), self.seed + 13)
            c = rgb(pal.skin) * (0.93 + 0.1 * value_noise(q, 0.025, self.seed + 11)[:, None]
                                 + 0.04 * fine_all[i, None])
            col[i] = c * (1 - 0.35 * fr[:, None]) + rgb((0.45, 0.25, 0.15)) * 0.35 * fr[:, None]
        i = sel("lips")
        if len(i):
            ly = (p[i, 1] - float(self.mouth_c[1])).abs()
            col[i] = rgb(pal.lips) * (0.9 + 0.15 * fine_all[i, None]) * (1 - 0.25 * (1 - _smoothstep(0.0, 0.003, ly))[:, None])
        i = sel("brow")
        if len(i):
            col[i] = rgb(pal.hair) * (0.8 + 0.3 * fine_all[i, None])
        i = sel("hair")
        if len(i):
            q = p[i]
            strands = torch.sin(2 * math.pi * (q[:, 0] * 0.3 + q[:, 2]) / 0.0035
                                + 6.0 * value_noise(q, 0.02, self.seed + 21))
            col[i] = rgb(pal.hair) * (0.75 + 0.2 * strands[:, None] + 0.3 * fine_all[i, None])
        i = sel("sclera")
        if len(i):
            col[i] = rgb((0.93, 0.91, 0.88))
        i = sel("iris")
        if len(i):
            d = p[i] - torch.where((part[i] == PART["left_eye"])[:, None], self.eye_l[None], self.eye_r[None])
            az = torch.atan2(d[:, 1], d[:, 0])
            ang = torch.acos((d[:, 2] / d.norm(dim=1).clamp_min(1e-9)).clamp(-1, 1))
            c = rgb(pal.iris) * (0.75 + 0.25 * torch.sin(az * 23)[:, None] + 0.15 * fine_all[i, None])
            col[i] = torch.where((ang > 0.44)[:, None], rgb((0.12, 0.12, 0.12)), c)
        i = sel("pupil")
        if len(i):
            col[i] = rgb((0.03, 0.03, 0.03))
        i = sel("teeth")
        if len(i):
            gaps = _band(p[i, 0] - float(self.mouth_c[0]), 0.0045, 0.0006, 0.0003)
            col[i] = rgb((0.94, 0.92, 0.84)) * (1 - 0.35 * gaps[:, None])
        i = sel("interior")
        if len(i):
            depth = (float(self.mouth_c[2]) - p[i, 2]).clamp_min(0)  # darker deeper inside
            col[i] = self.interior_colour()[None] * (1.0 - depth / 0.04).clamp(0.3, 1.0)[:, None]
        i = sel("shirt")
        if len(i):
            q = p[i]
            stripes = _band(q[:, 1], 0.045, 0.022, 0.0015)
            lines = _band(q[:, 0], 0.03, 0.004, 0.0008) * (1 - stripes)
            c = rgb(pal.shirt_a) * stripes[:, None] + rgb(pal.shirt_b) * (1 - stripes[:, None])
            c = c * (1 - lines[:, None]) + rgb(pal.shirt_line) * lines[:, None]
            nr = ((q[:, 0] - float(self.neck[0])) ** 2 + (q[:, 2] - float(self.neck[2])) ** 2).sqrt()
            collar = (q[:, 1] > float(self.neck[1]) - 0.065) & (nr < 0.115)
            c = torch.where(collar[:, None], rgb(pal.shirt_a) * 0.8, c)
            col[i] = c * (0.95 + 0.08 * fine_all[i, None])
        i = sel("print")
        if len(i):
            q = p[i]
            ex, ey = q[:, 0] - float(self.spine3[0]) - 0.09, q[:, 1] - float(self.spine3[1]) - 0.05
            er = (ex * ex + ey * ey).sqrt()
            th = torch.atan2(ey, ex) - math.pi / 2
            star_r = 0.026 * (0.55 + 0.45 * torch.cos(5 * torch.remainder(th, 2 * math.pi / 5) - math.pi))
            c = torch.where((er < star_r.abs())[:, None], rgb(pal.print_b), rgb(pal.print_a))
            col[i] = torch.where((er > 0.031)[:, None], rgb((0.1, 0.1, 0.1)), c)
        i = sel("belt")
        if len(i):
            buckle = ((p[i, 0] - float(self.pelvis[0])).abs() < 0.02) & (p[i, 2] > float(self.pelvis[2]))
            col[i] = torch.where(buckle[:, None], rgb((0.75, 0.70, 0.45)),
                                 rgb((0.25, 0.15, 0.09)) * (0.85 + 0.2 * fine_all[i, None]))
        i = sel("trousers")
        if len(i):
            q = p[i]
            twill = torch.sin(2 * math.pi * (q[:, 0] + q[:, 1] + q[:, 2]) / 0.006)
            check = torch.maximum(_band(q[:, 0], 0.06, 0.003, 0.0008), _band(q[:, 1], 0.06, 0.003, 0.0008))
            col[i] = rgb(pal.trousers) * (0.92 + 0.06 * twill[:, None] + 0.35 * check[:, None])
        i = sel("shoe")
        if len(i):
            col[i] = rgb((0.18, 0.11, 0.07)) * (0.9 + 0.2 * fine_all[i, None])
        return col.clamp(0, 1)

    def interior_colour(self) -> Tensor:
        return torch.tensor([0.32, 0.08, 0.09])


LIGHT_KEY = torch.nn.functional.normalize(torch.tensor([0.45, 0.55, 0.7]), dim=0)
LIGHT_FILL = torch.nn.functional.normalize(torch.tensor([-0.6, 0.1, 0.5]), dim=0)


def shade(albedo: Tensor, normals: Tensor, front: Tensor, interior: Tensor) -> Tensor:
    """Lambert shading with a fixed world-space key and fill light.

    Args:
        albedo: [P, 3]; normals: [P, 3] world-space unit normals of the visible faces; front: [P] bool
        (False: a back face, seen from inside the body, drawn as mouth interior); interior: [3] colour.
    Returns:
        [P, 3] RGB in 0..1.
    """
    n = torch.nn.functional.normalize(normals, dim=1)
    light = 0.42 + 0.62 * (n @ LIGHT_KEY).clamp_min(0) + 0.16 * (n @ LIGHT_FILL).clamp_min(0)
    rgb = albedo * light[:, None]
    rgb = torch.where(front[:, None], rgb, interior[None] * 0.6)
    return rgb.clamp(0, 1)
