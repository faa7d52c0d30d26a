"""Normal conventions of the 2DGS outputs: splat normals and depth-derived normals are both in the camera
frame, face the camera (negative z) and agree on a surface of surface-aligned disks."""

import pytest
import torch

from thgs.avatar.losses import interior_mask, normal_consistency_loss
from thgs.render._scenes import body_like, front_camera
from thgs.render.base import Camera, GaussianSet, render


def test_fronto_parallel_disk_faces_the_camera():
    # one large disk at z = 3 whose own normal (+z, quaternion identity) points away from the camera
    g = GaussianSet(torch.tensor([[0.0, 0.0, 3.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                    torch.tensor([[0.5, 0.5, 0.01]]), torch.tensor([0.99]), torch.tensor([[0.2, 0.4, 0.6]]))
    r = render(g, front_camera(32, 32), torch.ones(3), mode="2dgs", backend="reference")
    c = r.normals[16, 16] / r.alpha[16, 16]
    assert torch.allclose(c, torch.tensor([0.0, 0.0, -1.0]), atol=1e-4)
    assert torch.allclose(r.surf_normals[16, 16], torch.tensor([0.0, 0.0, -1.0]), atol=1e-4)
    assert float(r.depth[16, 16]) == 3.0


@pytest.mark.parametrize("turned", [False, True])
def test_splat_and_depth_normals_agree_on_a_body_like_surface(turned):
    g = body_like(2000, seed=0)
    cam = front_camera(64, 64)
    if turned:  # a rotated camera: both normals must still be in its frame
        cam = Camera.look_at(torch.tensor([0.9, -0.5, 0.2]), torch.tensor([0.0, 0.0, 2.5]),
                             torch.tensor([0.3, -1.0, 0.1]), 45.0, 64, 64)
    r = render(g, cam, torch.ones(3), mode="2dgs", backend="reference")
    inner = interior_mask(r.alpha, 0.5)[..., 0] > 0
    assert int(inner.sum()) > 500
    n = torch.nn.functional.normalize(r.normals, dim=-1)
    cos = (n * r.surf_normals).sum(-1)[inner]
    assert float(cos.median()) > 0.95 and float(cos.mean()) > 0.85
    assert float(n[..., 2][inner].max()) < 0 and float((r.surf_normals[..., 2][inner] < 0).float().mean()) > 0.97
    # the loss is small on this consistent surface and excludes the silhouette when asked
    plain = normal_consistency_loss(r.normals, r.surf_normals, r.alpha)
    interior = normal_consistency_loss(r.normals, r.surf_normals, r.alpha, min_alpha=0.5)
    assert 0 < float(interior) < float(plain) < 0.1


def test_detached_depth_normals_stop_only_the_depth_path():
    g = body_like(300, seed=1)
    means = g.means.clone().requires_grad_(True)
    gs = GaussianSet(means, g.quats, g.scales, g.opacities, g.colors)
    r = render(gs, front_camera(32, 32), torch.ones(3), mode="2dgs", backend="reference")
    full, = torch.autograd.grad(normal_consistency_loss(r.normals, r.surf_normals, r.alpha), means, retain_graph=True)
    det, = torch.autograd.grad(normal_consistency_loss(r.normals, r.surf_normals, r.alpha, detach_surface=True),
                               means, retain_graph=True)
    const, = torch.autograd.grad(normal_consistency_loss(r.normals, r.surf_normals.detach().clone(), r.alpha), means)
    assert torch.allclose(det, const) and not torch.allclose(det, full, atol=1e-4)
