"""On a CUDA GPU with gsplat: colour-only renders equal full ones, the 3DGS-surfel image against true 2DGS
(PSNR printed), and the CPU twin of the 3DGS-surfel image against gsplat's."""

import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


def _scene(n=20000, seed=0):
    from thgs.render._scenes import body_like

    g = body_like(n, seed=seed)
    return type(g)(*(t.cuda() for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
def test_gsplat_colour_only_equals_full(mode):
    from thgs.render._parity import psnr
    from thgs.render._scenes import front_camera
    from thgs.render.base import render

    g, cam, bg = _scene(), front_camera(320, 240), torch.ones(3, device="cuda")
    full = render(g, cam, bg, mode=mode, backend="gsplat")
    rgb = render(g, cam, bg, mode=mode, backend="gsplat", outputs="rgb")
    assert rgb.depth is None and rgb.normals is None
    assert psnr(rgb.rgb, full.rgb) >= 60.0
    assert torch.equal(rgb.radii, full.radii)


def test_gsplat_surfels_as_3dgs_against_true_2dgs_and_the_cpu_twin():
    from thgs.render._parity import psnr
    from thgs.render._scenes import front_camera
    from thgs.render.base import render

    g, cam, bg = _scene(), front_camera(320, 240), torch.ones(3, device="cuda")
    fast = render(g, cam, bg, mode="2dgs", backend="gsplat", outputs="rgb", surfels_as_3dgs=True)
    true2d = render(g, cam, bg, mode="2dgs", backend="gsplat", outputs="rgb")
    p = psnr(fast.rgb, true2d.rgb)
    print(f"3DGS surfels vs 2DGS (gsplat, {len(g)} Gaussians, 320x240): PSNR {p:.2f} dB")
    assert p >= 25.0
    cpu = render(type(g)(*(t.cpu() for t in (g.means, g.quats, g.scales, g.opacities, g.colors))),
                 cam, bg.cpu(), mode="2dgs", backend="reference", outputs="rgb", surfels_as_3dgs=True)
    assert psnr(cpu.rgb, fast.rgb.cpu()) >= 40.0
