import math

import pytest
import torch

from thgs.body.model import BodyModel, MouthDefinition
from thgs.metrics.image import psnr
from thgs.metrics.regions import (Box, body_region_boxes, box_from_points, neck_joint_index, project_points,
                                  region_boxes, region_metrics, summarize)
from thgs.render.base import Camera


def _toy_body() -> BodyModel:
    """A column body, a sphere head at y=1.6 and two rows of lip vertices at its front."""
    g = torch.Generator().manual_seed(0)
    body = torch.rand(60, 3, generator=g) * torch.tensor([0.4, 1.0, 0.2]) + torch.tensor([-0.2, 0.4, -0.1])
    d = torch.nn.functional.normalize(torch.randn(80, 3, generator=g), dim=1)
    head = d * 0.1 + torch.tensor([0.0, 1.6, 0.0])
    xs = torch.linspace(-0.025, 0.025, 5)
    upper = torch.stack([xs, torch.full_like(xs, 1.555), torch.full_like(xs, 0.1)], 1)
    lower = torch.stack([xs, torch.full_like(xs, 1.545), torch.full_like(xs, 0.1)], 1)
    joints = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.42, 0.0], [0.0, 1.6, 0.0]])  # pelvis, neck, head
    v = torch.cat([body, head, upper, lower, joints])
    V = v.shape[0]
    n_b, n_h = 60, 80
    head_mask = torch.zeros(V, dtype=torch.bool)
    head_mask[n_b:n_b + n_h + 10] = True
    reg = torch.zeros(3, V)
    for j in range(3):
        reg[j, V - 3 + j] = 1.0
    w = torch.zeros(V, 3)
    w[:, 0] = 1
    mouth = MouthDefinition(center=torch.tensor([0.0, 1.55, 0.09]), forward=torch.tensor([0.0, 0, 1]),
                            up=torch.tensor([0.0, 1, 0]), width=0.05,
                            upper_lip=torch.arange(n_b + n_h, n_b + n_h + 5),
                            lower_lip=torch.arange(n_b + n_h + 5, n_b + n_h + 10), head_joint=2, jaw_joint=2)
    return BodyModel(name="metrics-toy", v_template=v, faces=torch.tensor([[0, 1, 2], [3, 4, 5]]),
                     joint_regressor=reg, parents=torch.tensor([-1, 0, 1]),
                     joint_names=["pelvis", "neck", "head"], lbs_weights=w, head_mask=head_mask, mouth=mouth)


def _camera(eye_x=0.0):
    return Camera.look_at(torch.tensor([eye_x, 1.2, 3.0]), torch.tensor([eye_x, 1.2, 0.0]),
                          torch.tensor([0.0, 1.0, 0.0]), 40.0, 640, 360)


def _project(body, cam, transl=None):
    pose = body.zero_pose()
    out = body(pose, transl=transl)
    v2 = project_points(out.vertices[0], cam.K, cam.world_to_cam)
    j2 = project_points(out.joints[0], cam.K, cam.world_to_cam)
    return v2, j2


def test_projection_matches_pinhole_formula():
    cam = _camera()
    p = torch.tensor([[0.0, 1.2, 0.0], [0.5, 1.2, 0.0], [0.0, 1.2, 10.0]])
    uv = project_points(p, cam.K, cam.world_to_cam)
    f = cam.K[0, 0]
    assert torch.allclose(uv[0], torch.tensor([320.0, 180.0]), atol=1e-4)
    assert torch.allclose(uv[1], torch.tensor([320.0 + f * 0.5 / 3.0, 180.0]), atol=1e-3)
    assert torch.isnan(uv[2]).all()  # behind the camera


def test_head_and_mouth_boxes_contain_the_projected_geometry():
    body = _toy_body()
    cam = _camera()
    v2, j2 = _project(body, cam)
    boxes = body_region_boxes(body, v2, cam.width, cam.height, joints_2d=j2)
    assert boxes["full"].as_tuple() == (0, 0, 640, 360)
    head, mouth = boxes["head"], boxes["mouth"]
    assert head.contains(v2[body.head_mask]).all()
    assert head.contains(j2[1:2]).all()  # the neck joint
    # the head box stops above the shoulders: body vertices well below the neck are outside
    low_body = v2[:60][v2[:60, 1] > j2[1, 1] + 10]
    assert low_body.shape[0] > 0 and not head.contains(low_body).any()
    lips = torch.cat([body.mouth.upper_lip, body.mouth.lower_lip])
    assert mouth.contains(v2[lips]).all()
    assert mouth.width == mouth.height >= 32
    assert head.x0 <= mouth.x0 and head.y0 <= mouth.y0 and mouth.x1 <= head.x1 and mouth.y1 <= head.y1
    # without joints the box holds the head only and is shorter
    no_neck = body_region_boxes(body, v2, cam.width, cam.height)["head"]
    assert no_neck.y1 < head.y1
    assert neck_joint_index(["pelvis", "spine", "Neck01", "neck02"]) == 2
    assert neck_joint_index(["pelvis"]) is None


def test_boxes_are_clipped_at_the_border_and_dropped_off_screen():
    body = _toy_body()
    cam = _camera(eye_x=0.0)
    v2, j2 = _project(body, cam, transl=torch.tensor([[1.94, 0.0, 0.0]]))  # head half out on the right
    boxes = body_region_boxes(body, v2, cam.width, cam.height, joints_2d=j2)
    h = boxes["head"]
    assert 0 <= h.x0 < h.x1 == cam.width and 0 <= h.y0 < h.y1 <= cam.height
    v2, j2 = _project(body, cam, transl=torch.tensor([[5.0, 0.0, 0.0]]))  # far out of view
    boxes = body_region_boxes(body, v2, cam.width, cam.height, joints_2d=j2)
    assert set(boxes) == {"full"}


def test_box_from_points_margin_min_size_and_square():
    pts = torch.tensor([[100.0, 50.0], [140.0, 60.0]])
    b = box_from_points(pts, 640, 360, margin=0.5, min_size=1)
    assert (b.width, b.height) == (80, 20) and (b.x0, b.y0) == (80, 45)
    b = box_from_points(pts, 640, 360, margin=0.0, min_size=32)
    assert (b.width, b.height) == (40, 32)
    b = box_from_points(pts, 640, 360, margin=0.0, min_size=1, square=True)
    assert b.width == b.height == 40
    b = box_from_points(torch.tensor([[2.0, 2.0]]), 640, 360, min_size=32)
    assert b.as_tuple() == (0, 0, 32, 32)
    assert box_from_points(torch.tensor([[-50.0, 20.0]]), 640, 360) is None
    with pytest.raises(ValueError, match="\\[N, 2\\]"):
        box_from_points(torch.zeros(3, 3), 10, 10)
    with pytest.raises(ValueError, match="lip vertex indices"):
        region_boxes(torch.zeros(4, 2), 10, 10, torch.zeros(4, dtype=torch.bool), torch.tensor([7]))


def test_region_metrics_and_summary():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(64, 80, 3, generator=g)
    pred = target.clone()
    pred[40:, :] = (pred[40:, :] + 0.2).clamp(0, 1)  # error only in the lower part
    boxes = {"full": Box(0, 0, 80, 64), "head": Box(0, 0, 40, 32), "mouth": Box(10, 40, 50, 64)}
    m = region_metrics(pred, target, boxes, lpips_net=None)
    assert m["full"]["psnr"] == pytest.approx(float(psnr(pred, target)), rel=1e-6)
    assert math.isinf(m["head"]["psnr"]) and m["head"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert m["mouth"]["psnr"] < m["full"]["psnr"] and m["mouth"]["ssim"] < 1
    with pytest.raises(ValueError, match="region 'bad'"):
        region_metrics(pred, target, {"bad": Box(0, 0, 100, 10)}, lpips_net=None)
    s = summarize([{"full": {"psnr": 20.0, "lpips": 0.1}}, {"full": {"psnr": 30.0, "lpips": 0.3}},
                   {"mouth": {"psnr": 10.0}}])
    assert s["full"]["psnr"] == 25.0 and s["full"]["lpips_x100"] == pytest.approx(20.0)
    assert s["full"]["frames"] == 2 and s["mouth"]["frames"] == 1
