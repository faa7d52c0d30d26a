"""2DGS normals on a CUDA GPU: gsplat's backend and the reference agree on the normal conventions (camera
frame, facing the camera), on the normal-consistency loss and on its gradients, for every variant the trainer
uses. Run by hand on a GPU machine (``pytest -m cuda tests/render``)."""

import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


def _camera(kind: str):
    from thgs.render._scenes import front_camera
    from thgs.render.base import Camera

    if kind == "front":  # identity rotation: a world/camera frame mix-up would not show here
        return front_camera(128, 128)
    # a camera turned about all axes (like a subject camera with world_to_cam rotation diag(1, -1, -1) and
    # more): the backend must hand back camera-frame normals whatever the rotation
    return Camera.look_at(torch.tensor([0.9, -0.5, 0.2]), torch.tensor([0.0, 0.0, 2.5]),
                          torch.tensor([0.3, -1.0, 0.1]), 45.0, 128, 128)


def _scene(kind: str):
    from thgs.render._scenes import body_like
    from thgs.render.base import GaussianSet

    g = body_like(4000, seed=0)
    params = [t.cuda().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    return GaussianSet(*params), _camera(kind), params


@pytest.mark.parametrize("kind", ["front", "turned"])
@pytest.mark.parametrize("min_alpha,detach", [(0.0, False), (0.5, False), (0.0, True), (0.5, True)])
def test_normal_loss_parity(kind, min_alpha, detach):
    from thgs.avatar.losses import normal_consistency_loss
    from thgs.render._parity import cosine
    from thgs.render.base import render

    out = {}
    for backend in ("reference", "gsplat"):
        g, cam, params = _scene(kind)
        r = render(g, cam, torch.ones(3, device="cuda"), mode="2dgs", backend=backend)
        loss = normal_consistency_loss(r.normals, r.surf_normals, r.alpha, min_alpha=min_alpha, detach_surface=detach)
        grads = torch.autograd.grad(loss, params[:4], allow_unused=True)
        out[backend] = (r, float(loss), grads)
    ref, gs = out["reference"], out["gsplat"]
    inner = ref[0].alpha[..., 0] > 0.5
    # same frame and orientation: splat normals and depth normals face the camera on both backends
    for r in (ref[0], gs[0]):
        assert float(r.normals[..., 2][inner].mean()) < -0.5
        assert float(r.surf_normals[..., 2][inner].mean()) < -0.5
    assert torch.allclose(ref[0].normals, gs[0].normals, atol=1e-3)
    assert abs(ref[1] - gs[1]) <= 1e-3 * max(1e-6, abs(ref[1]))
    for name, a, b in zip(("means", "quats", "scales", "opacities"), ref[2], gs[2]):
        if a is None and b is None:
            continue
        assert cosine(a, b) >= 0.99, name
