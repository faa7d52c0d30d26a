"""Reference renderer vs gsplat on a CUDA GPU: same images (>= 40 dB) and gradients (cosine >= 0.99)."""

import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_reference_matches_gsplat(mode, sh_degree):
    from thgs.render._parity import COS_MIN, PSNR_MIN, compare

    res = compare(mode, n=3000, width=256, height=256, seed=0, sh_degree=sh_degree)
    assert res.psnr_rgb >= PSNR_MIN, res
    for name in ("means", "colors", "opacities"):
        assert res.cos[name] >= COS_MIN, (name, res)


def test_gsplat_backend_result_layout():
    from thgs.render._scenes import front_camera, random_cloud
    from thgs.render.base import GaussianSet, render

    g = random_cloud(500, seed=1)
    g = GaussianSet(*(t.cuda().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))
    cam = front_camera(64, 48)
    for mode in ("3dgs", "2dgs"):
        r = render(g, cam, torch.ones(3, device="cuda"), mode=mode, backend="gsplat")
        assert r.rgb.shape == (48, 64, 3) and r.alpha.shape == (48, 64, 1) and r.depth.shape == (48, 64, 1)
        assert r.radii.shape == (500,) and r.means2d.shape == (500, 2)
        if mode == "2dgs":
            assert r.normals.shape == (48, 64, 3) and r.surf_normals.shape == (48, 64, 3)
        r.rgb.sum().backward()
        assert r.means2d.grad is not None and r.means2d.grad.shape == (500, 2)
