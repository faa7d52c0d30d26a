import math

import torch

from thgs.avatar import gaussians as G
from thgs.core.mesh import mean_adjacent_face_area
from thgs.core.rotations import quaternion_to_matrix


def test_init_on_vertices_with_normal_frames_and_area_scales(tiny_body):
    opts = G.InitOptions(scale_min=1e-4, scale_max=1.0)
    st = G.init_state(tiny_body, opts)
    assert torch.equal(st["means"].detach(), tiny_body.v_template)
    assert torch.equal(st["parent"], torch.arange(tiny_body.num_vertices))
    R = quaternion_to_matrix(st["quats"].detach())
    assert torch.allclose(R[..., 2], tiny_body.vertex_normals, atol=1e-5)  # disk normal = vertex normal
    assert torch.allclose(torch.det(R), torch.ones(len(R)), atol=1e-5)
    expect = torch.sqrt(mean_adjacent_face_area(tiny_body.v_template, tiny_body.faces) / math.pi)
    assert torch.allclose(st["log_scales"].detach().exp()[:, 0], expect, rtol=1e-5)
    # clamping, scaled by the body height relative to 1.7 m
    st2 = G.init_state(tiny_body, G.InitOptions(scale_min=0.02, scale_max=0.03))
    s = st2["log_scales"].detach().exp()
    k = G.body_scale(tiny_body)
    assert s.min() >= 0.02 * k - 1e-6 and s.max() <= 0.03 * k + 1e-6
    assert torch.allclose(G.activate_opacities(st["opacity_logits"]), torch.full((st.num,), 0.9))
    assert torch.allclose(G.sh_to_rgb_dc(st["sh"]), torch.full((st.num, 3), 0.5))


def test_mouth_box_uses_teeth_when_present_else_lips(tiny_body):
    box = G.mouth_box(tiny_body, margin=0.0)
    lips = torch.cat([tiny_body.mouth.upper_lip, tiny_body.mouth.lower_lip])
    assert G.in_box(tiny_body.v_template[lips], box).all()
    tiny_body.meta["teeth_vertex_range"] = (0, 3)
    box2 = G.mouth_box(tiny_body, margin=0.02)
    pts = tiny_body.v_template[:3]
    grow = 0.02 * G.body_scale(tiny_body)
    assert torch.allclose(box2[0], pts.min(0).values - grow) and torch.allclose(box2[1], pts.max(0).values + grow)
