import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.body.model import BodyModel, MouthDefinition
from thgs.body.teeth import teeth_mesh, with_teeth
from thgs.core import lbs


@pytest.fixture(scope="module")
def bodies():
    base = toy.load()
    return base, with_teeth(base)


def test_teeth_are_appended_with_their_bookkeeping(bodies):
    base, body = bodies
    V = base.num_vertices
    s, e = body.meta["teeth_vertex_range"]
    assert (s, e) == (V, body.num_vertices) and e - s > 100
    up, lo = body.meta["upper_teeth_vertices"], body.meta["lower_teeth_vertices"]
    assert sorted(up + lo) == list(range(s, e)) and len(up) == len(lo)
    fs, fe = body.meta["teeth_face_range"]
    assert fe == body.faces.shape[0] and fs == base.faces.shape[0]
    assert (body.faces[fs:] >= V).all()
    assert torch.equal(body.v_template[:V], base.v_template) and torch.equal(body.faces[:fs], base.faces)
    # buffers of the teeth
    m = body.mouth
    assert torch.equal(body.lbs_weights[up, m.head_joint], torch.ones(len(up)))
    assert torch.equal(body.lbs_weights[lo, m.jaw_joint], torch.ones(len(lo)))
    assert torch.allclose(body.lbs_weights.sum(1), torch.ones(body.num_vertices), atol=1e-5)
    assert body.head_mask[s:e].all()
    assert (body.exprdirs[s:e] == 0).all()
    assert (body.joint_regressor[:, s:] == 0).all()
    assert torch.allclose(body.rest_joints(), base.rest_joints())
    assert body.meta["parts"]["teeth"] == (s, e)
    with pytest.raises(ValueError, match="already has teeth"):
        with_teeth(body)


def test_teeth_mesh_is_closed_and_outward():
    base = toy.load()
    v, f, _, _ = teeth_mesh(base.mouth)
    v, f = v.double().numpy(), f.numpy()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert set(map(tuple, e.tolist())) == set(map(tuple, e[:, ::-1].tolist())) and len(set(map(tuple, e.tolist()))) == len(e)
    vol = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert vol > 0


def test_teeth_sit_inside_the_head_behind_the_lips(bodies):
    _, body = bodies
    s, e = body.meta["teeth_vertex_range"]
    teeth = body.v_template[s:e]
    m = body.mouth
    head = body.v_template[: s][body.head_mask[:s]]
    assert (teeth >= head.min(0).values).all() and (teeth <= head.max(0).values).all()
    lips = body.v_template[torch.cat([m.upper_lip, m.lower_lip])]
    assert ((teeth - lips.mean(0)) @ m.forward < 0).all()  # behind the lips
    assert ((teeth - m.center).norm(dim=-1) < m.width).all()  # near the mouth
    up, lo = body.meta["upper_teeth_vertices"], body.meta["lower_teeth_vertices"]
    assert float((body.v_template[up] @ m.up).mean()) > float(m.center @ m.up) > float((body.v_template[lo] @ m.up).mean())
    width = float((teeth @ torch.linalg.cross(m.up, m.forward)).max() - (teeth @ torch.linalg.cross(m.up, m.forward)).min())
    assert 0.7 * m.width < width < 1.1 * m.width


def test_lower_teeth_follow_the_jaw_upper_teeth_the_head(bodies):
    _, body = bodies
    up, lo = body.meta["upper_teeth_vertices"], body.meta["lower_teeth_vertices"]
    m = body.mouth
    pose = body.zero_pose()
    pose[0, m.jaw_joint, 0] = 0.3
    out = body(pose)
    v = out.vertices[0]
    assert torch.allclose(v[up], body.v_template[up], atol=1e-6)
    assert (v[lo] - body.v_template[lo]).norm(dim=-1).min() > 0.005
    T = out.kinematics.skinning_transforms[:, m.jaw_joint:m.jaw_joint + 1].expand(-1, len(lo), -1, -1)
    assert torch.allclose(v[lo], lbs.transform_points(T, body.v_template[lo])[0], atol=1e-6)
    # turning the head carries both rows
    pose = body.zero_pose()
    pose[0, m.head_joint, 1] = 0.5
    out = body(pose)
    T = out.kinematics.skinning_transforms[:, m.head_joint:m.head_joint + 1].expand(-1, len(up) + len(lo), -1, -1)
    both = up + lo
    assert torch.allclose(out.vertices[0, both], lbs.transform_points(T, body.v_template[both])[0], atol=1e-6)


def test_teeth_follow_the_mouth_when_the_shape_changes(bodies):
    base, body = bodies
    up = body.meta["upper_teeth_vertices"]
    betas = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # taller, bigger head
    moved = body.shaped_template(betas)[0]
    lip_shift = (moved[: base.num_vertices][body.mouth.upper_lip] - body.v_template[body.mouth.upper_lip]).mean(0)
    assert torch.allclose(moved[up] - body.v_template[up], lip_shift.expand(len(up), 3), atol=1e-6)
    still = with_teeth(base, follow_shape=False)
    assert (still.shapedirs[still.meta["teeth_vertex_range"][0]:] == 0).all()


def test_teeth_scale_with_the_mouth_in_any_unit():
    base = toy.load()
    m = base.mouth
    in_cm = MouthDefinition(center=m.center * 100, forward=m.forward, up=m.up, width=m.width * 100,
                            upper_lip=m.upper_lip, lower_lip=m.lower_lip, head_joint=m.head_joint, jaw_joint=m.jaw_joint)
    v_m, f_m, _, _ = teeth_mesh(m, teeth_per_row=6)
    v_cm, f_cm, _, _ = teeth_mesh(in_cm, teeth_per_row=6)
    assert torch.equal(f_m, f_cm)
    assert torch.allclose(v_cm, v_m * 100, rtol=1e-5, atol=1e-4)


def test_teeth_pad_pose_correctives():
    base = toy.load()
    V, J = base.num_vertices, base.num_joints
    gen = torch.Generator().manual_seed(0)
    posedirs = torch.zeros((J - 1) * 9, V * 3)
    posedirs[::5, ::3] = torch.randn(((J - 1) * 9 + 4) // 5, V, generator=gen) * 1e-3
    b = BodyModel(name="with-posedirs", v_template=base.v_template, faces=base.faces,
                  joint_regressor=base.joint_regressor, parents=base.parents, joint_names=base.joint_names,
                  lbs_weights=base.lbs_weights, shapedirs=base.shapedirs, exprdirs=base.exprdirs, posedirs=posedirs,
                  head_mask=base.head_mask, mouth=base.mouth, expression_names=base.expression_names)
    t = with_teeth(b)
    assert t.posedirs.shape == ((J - 1) * 9, t.num_vertices * 3)
    assert torch.equal(t.posedirs[:, : V * 3], posedirs) and (t.posedirs[:, V * 3:] == 0).all()
    pose = torch.randn(1, J, 3, generator=gen) * 0.2
    assert torch.allclose(t(pose).vertices[0, :V], b(pose).vertices[0], atol=1e-5)


def test_toy_load_with_teeth():
    b = toy.load(teeth=True)
    assert "teeth_vertex_range" in b.meta and b.num_vertices > toy.load().num_vertices


def test_lower_teeth_follow_expression_when_the_body_has_no_jaw_bone():
    import dataclasses

    import torch

    from thgs.body import toy
    from thgs.body.model import BodyModel
    from thgs.body.teeth import with_teeth

    body = toy.load()
    # The same body, but with the jaw carried by the head joint: jaw opening is then expression-only.
    m = dataclasses.replace(body.mouth, jaw_joint=body.mouth.head_joint)
    nojaw = BodyModel(name="nojaw", v_template=body.v_template, faces=body.faces,
                      joint_regressor=body.joint_regressor, parents=body.parents, joint_names=body.joint_names,
                      lbs_weights=body.lbs_weights, shapedirs=body.shapedirs, exprdirs=body.exprdirs,
                      posedirs=body.posedirs, head_mask=body.head_mask, mouth=m,
                      expression_names=body.expression_names)
    t = with_teeth(nojaw)
    lo = torch.tensor(t.meta["lower_teeth_vertices"])
    up = torch.tensor(t.meta["upper_teeth_vertices"])
    e = torch.zeros(1, t.num_expressions)
    e[0, t.expression_names.index("jaw_open")] = 1.0
    out0 = t(t.zero_pose(), expression=torch.zeros_like(e))
    out1 = t(t.zero_pose(), expression=e)
    lip_motion = (body.exprdirs[body.mouth.lower_lip, :, t.expression_names.index("jaw_open")]).mean(0)
    lo_motion = (out1.vertices[0, lo] - out0.vertices[0, lo]).mean(0)
    assert torch.allclose(lo_motion, lip_motion, atol=1e-6)
    assert lo_motion.norm() > 1e-3
    assert torch.allclose(out1.vertices[0, up], out0.vertices[0, up], atol=1e-7)
