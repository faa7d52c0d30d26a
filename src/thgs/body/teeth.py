"""Teeth inside the mouth of any body model (paper section 4.4).

Parametric bodies have no teeth; an open mouth then shows the back of the head. Like the THGS paper (and
GaussianAvatars before it) we append a teeth mesh inside the mouth: the upper teeth follow the head
joint, the lower teeth follow the jaw joint.

Geometry, from the body's :class:`~thgs.body.model.MouthDefinition` (centre c, forward f, up u, width
w, lateral l = u x f): two rows of ``teeth_per_row`` rounded boxes along parabolic arches
``c - f (a w + 0.50 w s^2) + l (h w s)`` for s in [-1, 1]; the upper arch (a = 0.10, h = 0.42) spans
[-0.04 w, 0.16 w] along u, the lower arch (a = 0.20, h = 0.40) sits behind it (an overbite) and spans
[-0.20 w, -0.02 w]; teeth are 0.10 w thick and up to 20 % shorter at the back. Every size is a multiple
of the mouth width, so the teeth fit any body in any unit.

Buffers of the appended vertices: skinning weights one-hot (head joint / jaw joint), inside the head
mask, zero pose-corrective deltas, zero joint-regressor columns. Expression deltas are zero, except for
bodies without a jaw bone (``jaw_joint == head_joint``, as in anny, whose jaw opens through the
``jawOpen`` expression): there the lower teeth translate with the mean expression motion of the lower
lip, so they follow the opening jaw. Shape deltas: by default
each row translates rigidly with the mean shape offset of its lip (upper teeth with the upper lip,
lower with the lower lip) so that the teeth stay in the mouth when the shape changes the head's size or
position; ``follow_shape=False`` gives zero shape deltas instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel, MouthDefinition
from thgs.body.primitives import assemble, ellipsoid, unit


def teeth_mesh(mouth: MouthDefinition, teeth_per_row: int = 8) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Build the teeth for a mouth.

    Returns:
        vertices [T, 3] float32, faces [F, 3] long (indices into the teeth vertices), and the local
        indices of the upper-teeth and lower-teeth vertices ([T/2] each).
    """
    if teeth_per_row < 2:
        raise ValueError(f"teeth_per_row must be at least 2, got {teeth_per_row}")
    c = mouth.center.detach().double().cpu().numpy()
    u = unit(mouth.up.detach().double().cpu().numpy())
    f = mouth.forward.detach().double().cpu().numpy()
    f = unit(f - u * (f @ u))
    lat = np.cross(u, f)
    w = float(mouth.width)
    if not w > 0:
        raise ValueError(f"mouth width must be positive, got {w}")
    thickness = 0.10 * w
    # per row: (half span of the arch, offset of its front behind c, bottom and top along u, both / w);
    # the lower arch sits behind the upper one (an overbite) and the rows overlap a little vertically
    layout = {"upper": (0.42, 0.10, -0.04, 0.16), "lower": (0.40, 0.20, -0.20, -0.02)}
    depth = 0.50 * w
    s = (np.arange(teeth_per_row) + 0.5) / teeth_per_row * 2 - 1
    verts, faces, rows = [], [], []
    count = 0
    for row, (span_f, front_f, lo_f, hi_f) in layout.items():
        half_span, front = span_f * w, front_f * w
        # arc length of the arch, for the tooth width
        dense = np.linspace(-1, 1, 401)[:, None]
        pts = lat[None] * (half_span * dense) - f[None] * (front + depth * dense ** 2)
        tooth_w = 0.9 * float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) / teeth_per_row
        for sk in s:
            on_arch = c + lat * (half_span * sk) - f * (front + depth * sk * sk)
            tangent = unit(lat * half_span - f * (2 * depth * sk))
            outward = np.cross(tangent, u)
            shrink = 0.2 * abs(sk) * (hi_f - lo_f) * w  # back teeth are shorter (towards the gum)
            lo, hi = lo_f * w, hi_f * w
            lo, hi = (lo + shrink, hi) if row == "upper" else (lo, hi - shrink)
            centre = on_arch + u * (lo + hi) / 2
            rings, poles, _ = ellipsoid(centre, u, outward, (thickness / 2, tooth_w / 2, (hi - lo) / 2), 5, 8,
                                        exponent=0.4)
            v, fc = assemble(rings, poles)
            verts.append(v)
            faces.append(fc + count)
            rows.append(np.full(len(v), 0 if row == "upper" else 1))
            count += len(v)
    V = torch.from_numpy(np.concatenate(verts)).float()
    F = torch.from_numpy(np.concatenate(faces)).long()
    r = torch.from_numpy(np.concatenate(rows))
    return V, F, torch.nonzero(r == 0)[:, 0], torch.nonzero(r == 1)[:, 0]


def with_teeth(body: BodyModel, teeth_per_row: int = 8, follow_shape: bool = True) -> BodyModel:
    """A new :class:`BodyModel` with upper and lower teeth appended (see the module docstring).

    ``meta`` gains ``teeth_vertex_range`` (start, stop), ``teeth_face_range``, and
    ``upper_teeth_vertices`` / ``lower_teeth_vertices`` (global vertex indices, lists).
    """
    if "teeth_vertex_range" in body.meta:
        raise ValueError(f"body model {body.name!r} already has teeth (meta['teeth_vertex_range'])")
    dev = body.v_template.device
    tv, tf, up_local, lo_local = teeth_mesh(body.mouth, teeth_per_row)
    tv, tf, up_local, lo_local = tv.to(dev), tf.to(dev), up_local.to(dev), lo_local.to(dev)
    V, J, T = body.num_vertices, body.num_joints, tv.shape[0]
    mouth = body.mouth

    weights = torch.zeros(T, J, device=dev)
    weights[up_local, mouth.head_joint] = 1.0
    weights[lo_local, mouth.jaw_joint] = 1.0

    shapedirs = torch.zeros(T, 3, body.num_betas, device=dev)
    if follow_shape and body.num_betas:
        shapedirs[up_local] = body.shapedirs[mouth.upper_lip].mean(0)
        shapedirs[lo_local] = body.shapedirs[mouth.lower_lip].mean(0)
    exprdirs = torch.zeros(T, 3, body.num_expressions, device=dev)
    if mouth.jaw_joint == mouth.head_joint and body.num_expressions:
        # No jaw bone (anny): the jaw opens through expressions, so the lower teeth translate with the
        # mean expression motion of the lower lip.
        exprdirs[lo_local] = body.exprdirs[mouth.lower_lip].mean(0)
    posedirs = torch.cat([body.posedirs, torch.zeros(body.posedirs.shape[0], T * 3, device=dev)], 1)

    meta = dict(body.meta)
    meta["teeth_vertex_range"] = (V, V + T)
    meta["teeth_face_range"] = (body.faces.shape[0], body.faces.shape[0] + tf.shape[0])
    meta["upper_teeth_vertices"] = (up_local + V).tolist()
    meta["lower_teeth_vertices"] = (lo_local + V).tolist()
    if isinstance(meta.get("parts"), dict):
        parts = dict(meta["parts"])
        parts["teeth"] = (V, V + T)
        meta["parts"] = parts

    return BodyModel(
        name=body.name,
        v_template=torch.cat([body.v_template, tv]),
        faces=torch.cat([body.faces, tf + V]),
        joint_regressor=torch.cat([body.joint_regressor, torch.zeros(J, T, device=dev)], 1),
        parents=body.parents.clone(),
        joint_names=list(body.joint_names),
        lbs_weights=torch.cat([body.lbs_weights, weights]),
        shapedirs=torch.cat([body.shapedirs, shapedirs]),
        exprdirs=torch.cat([body.exprdirs, exprdirs]),
        posedirs=posedirs,
        head_mask=torch.cat([body.head_mask, torch.ones(T, dtype=torch.bool, device=dev)]),
        mouth=mouth,
        expression_names=list(body.expression_names),
        up_axis=body.up_axis,
        meta=meta,
        joints_follow_expression=body.joints_follow_expression,
    )


__all__ = ["teeth_mesh", "with_teeth"]
