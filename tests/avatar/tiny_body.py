"""A tiny procedural body (a capsule torso with a spherical head and a jaw) for the avatar and trainer tests."""

from __future__ import annotations

import math

import torch

from thgs.body.model import BodyModel, MouthDefinition


def _sphere(center, radius, n_lat=8, n_lon=12):
    verts = [[center[0], center[1] + radius, center[2]]]
    for i in range(1, n_lat):
        th = math.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append([center[0] + radius * math.sin(th) * math.cos(ph), center[1] + radius * math.cos(th),
                          center[2] + radius * math.sin(th) * math.sin(ph)])
    verts.append([center[0], center[1] - radius, center[2]])
    faces = []
    for j in range(n_lon):
        faces.append([0, 1 + (j + 1) % n_lon, 1 + j])
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        for j in range(n_lon):
            j2 = (j + 1) % n_lon
            faces.append([a + j, a + j2, b + j])
            faces.append([a + j2, b + j2, b + j])
    last = len(verts) - 1
    base = 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append([base + j, base + (j + 1) % n_lon, last])
    return torch.tensor(verts), torch.tensor(faces)


def make_tiny_body(with_posedirs: bool = True) -> BodyModel:
    torso_v, torso_f = _sphere((0.0, 1.0, 0.0), 0.3)
    torso_v[:, 1] = 1.0 + (torso_v[:, 1] - 1.0) * 2.0  # stretch into a capsule 0.4 .. 1.6
    head_v, head_f = _sphere((0.0, 1.8, 0.0), 0.15)
    v = torch.cat([torso_v, head_v]).float()
    f = torch.cat([torso_f, head_f + torso_v.shape[0]])
    V = v.shape[0]
    joints = torch.tensor([[0.0, 0.9, 0.0], [0.0, 1.3, 0.0], [0.0, 1.65, 0.0], [0.0, 1.75, 0.05]])
    parents = torch.tensor([-1, 0, 1, 2])
    J = 4
    w = torch.zeros(V, J)
    head = torch.zeros(V, dtype=torch.bool)
    head[torso_v.shape[0]:] = True
    y = v[:, 1]
    w[:, 0] = ((1.3 - y) / 0.4).clamp(0, 1)
    w[:, 1] = 1 - w[:, 0]
    lower_face = head & (y < 1.77) & (v[:, 2] > 0.05)
    w[head] = 0
    w[head, 2] = 1
    w[lower_face, 2] = 0.3
    w[lower_face, 3] = 0.7
    reg = torch.zeros(J, V)
    for j in range(J):
        d = (v - joints[j]).norm(dim=-1)
        near = d.topk(4, largest=False).indices
        reg[j, near] = 0.25
    # the regressor above does not reproduce joints exactly; fold the error into the template
    rest = reg @ v
    E = 2
    exprdirs = torch.zeros(V, 3, E)
    exprdirs[lower_face, 1, 0] = -0.01  # "jaw_open": lower face down
    exprdirs[head, 0, 1] = 0.005 * v[head, 0].sign()  # "smile": widen
    S = 2
    shapedirs = torch.zeros(V, 3, S)
    shapedirs[:, 1, 0] = 0.05 * (v[:, 1] - 1.0)  # height
    shapedirs[:, 0, 1] = 0.05 * v[:, 0]  # width
    posedirs = torch.randn((J - 1) * 9, V * 3, generator=torch.Generator().manual_seed(0)) * 1e-3 if with_posedirs else None
    lips = (head & (v[:, 2] > 0.1) & ((y - 1.76).abs() < 0.03)).nonzero(as_tuple=True)[0]
    mouth = MouthDefinition(center=torch.tensor([0.0, 1.76, 0.12]), forward=torch.tensor([0.0, 0, 1]),
                            up=torch.tensor([0.0, 1, 0]), width=0.06, upper_lip=lips[:2], lower_lip=lips[2:4],
                            head_joint=2, jaw_joint=3)
    return BodyModel(name="tiny", v_template=v, faces=f, joint_regressor=reg, parents=parents,
                     joint_names=["pelvis", "spine", "head", "jaw"], lbs_weights=w, shapedirs=shapedirs,
                     exprdirs=exprdirs, posedirs=posedirs, head_mask=head, mouth=mouth,
                     expression_names=["jaw_open", "smile"], meta={"rest_joints": rest})
