"""What a render computes (``outputs``) and 2DGS surfels through the 3DGS rasterizer, on the CPU renderer."""

import pytest
import torch

from thgs.render._parity import psnr
from thgs.render._scenes import body_like, front_camera
from thgs.render.base import flat_surfels, render

BG = torch.tensor([1.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
def test_colour_only_renders_the_same_colour(mode):
    g = body_like(400, seed=2)
    cam = front_camera(40, 32)
    full = render(g, cam, BG, mode=mode, backend="reference")
    rgb = render(g, cam, BG, mode=mode, backend="reference", outputs="rgb")
    depth = render(g, cam, BG, mode=mode, backend="reference", outputs="depth")
    assert torch.equal(rgb.rgb, full.rgb) and torch.equal(rgb.alpha, full.alpha)
    assert rgb.depth is None and rgb.normals is None and rgb.surf_normals is None
    assert torch.equal(depth.depth, full.depth) and depth.normals is None
    assert torch.equal(rgb.radii, full.radii)
    if mode == "2dgs":
        assert full.normals is not None and full.surf_normals is not None


def test_colour_only_keeps_the_gradients():
    g = body_like(300, seed=3)
    cam = front_camera(32, 24)
    grads = []
    for outputs in ("full", "rgb"):
        means = g.means.clone().requires_grad_(True)
        gg = type(g)(means, g.quats, g.scales, g.opacities, g.colors)
        r = render(gg, cam, BG, mode="2dgs", backend="reference", outputs=outputs)
        r.rgb.square().sum().backward()
        grads.append((means.grad, r.means2d.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6, rtol=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-5)


def test_unknown_outputs_are_refused():
    g = body_like(10)
    with pytest.raises(ValueError, match="outputs"):
        render(g, front_camera(8, 8), BG, backend="reference", outputs="normals")  # type: ignore[arg-type]


def test_surfels_as_3dgs_are_flat_3d_gaussians_close_to_2dgs():
    g = body_like(600, seed=4)
    cam = front_camera(48, 40)
    flat = flat_surfels(g)
    assert torch.equal(flat.scales[:, :2], g.scales[:, :2]) and torch.all(flat.scales[:, 2] == 0)
    via = render(g, cam, BG, mode="2dgs", backend="reference", outputs="rgb", surfels_as_3dgs=True)
    direct = render(flat, cam, BG, mode="3dgs", backend="reference", outputs="rgb")
    true2d = render(g, cam, BG, mode="2dgs", backend="reference", outputs="rgb")
    assert torch.equal(via.rgb, direct.rgb)
    assert torch.isfinite(via.rgb).all()
    # the same disks: close to true 2DGS, but not the same function (no ray-disk intersection)
    p = psnr(via.rgb, true2d.rgb)
    assert 20.0 < p < 80.0, p
