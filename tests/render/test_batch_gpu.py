"""On a CUDA GPU with gsplat: ``render_batch`` draws B frames in one gsplat call with the images of one gsplat
``render`` per frame (float tolerance), and of the reference backend's batch (>= 40 dB)."""

import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]

CASES = [("3dgs", False), ("2dgs", False), ("2dgs", True)]


def _to(batch, device):
    from thgs.render.base import GaussianBatch

    return GaussianBatch(means=batch.means.to(device), quats=batch.quats.to(device), scales=batch.scales.to(device),
                         opacities=batch.opacities.to(device), colors=batch.colors.to(device),
                         sh_degree=batch.sh_degree)


def _close_where_drawn(got, want, alpha, atol):
    """``got`` and ``want`` [H, W, C] agree to ``atol`` wherever the pixel is mostly covered."""
    m = alpha[..., 0] > 0.5
    assert m.any()
    assert (got[m] - want[m]).abs().max().item() <= atol


@pytest.mark.parametrize("mode,surfels", CASES)
@pytest.mark.parametrize("sh_degree", [None, 1])
@pytest.mark.parametrize("shared", [True, False])
def test_one_gsplat_call_equals_one_render_per_frame(mode, surfels, sh_degree, shared):
    from thgs.render._scenes import ring_cameras, turning_batch
    from thgs.render.base import render, render_batch

    B = 4
    batch = _to(turning_batch(3000, B, seed=0, sh_degree=sh_degree), "cuda")
    cams = ring_cameras(B, 160, 120)
    bg = torch.tensor([0.2, 0.5, 0.9], device="cuda")
    for outputs in ("rgb", "full"):
        res = render_batch(batch, cams[0] if shared else cams, bg, mode=mode, backend="gsplat", outputs=outputs,
                           surfels_as_3dgs=surfels)
        assert res.rgb.shape == (B, 120, 160, 3) and res.alpha.shape == (B, 120, 160, 1) and res.radii.shape == (B, 3000)
        for b in range(B):
            want = render(batch.frame(b), cams[0] if shared else cams[b], bg, mode=mode, backend="gsplat",
                          outputs=outputs, surfels_as_3dgs=surfels)
            torch.testing.assert_close(res.rgb[b], want.rgb, atol=1e-4, rtol=0)
            torch.testing.assert_close(res.alpha[b], want.alpha, atol=1e-4, rtol=0)
            assert torch.equal(res.radii[b], want.radii)
            if outputs == "rgb":
                assert res.depth is None
            else:
                _close_where_drawn(res.depth[b], want.depth, want.alpha, 1e-3)
            if mode == "2dgs" and not surfels and outputs == "full":
                _close_where_drawn(res.normals[b], want.normals, want.alpha, 1e-3)
                assert res.surf_normals.shape == (B, 120, 160, 3)
                close = ((res.surf_normals[b] - want.surf_normals).abs().amax(-1) < 1e-2).float().mean().item()
                assert close > 0.99  # normals from depth differences: a few edge pixels may flip
            else:
                assert res.normals is None
    assert (res.rgb[0] - res.rgb[1]).abs().max() > 0.05  # the frames differ


@pytest.mark.parametrize("mode,surfels", CASES)
def test_gsplat_batch_matches_the_reference_batch(mode, surfels):
    from thgs.render._parity import PSNR_MIN, psnr
    from thgs.render._scenes import ring_cameras, turning_batch
    from thgs.render.base import render_batch

    B = 3
    cpu = turning_batch(2000, B, seed=1, sh_degree=1)
    cams = ring_cameras(B, 128, 96)
    bg = torch.ones(3)
    ref = render_batch(cpu, cams, bg, mode=mode, backend="reference", surfels_as_3dgs=surfels)
    gpu = render_batch(_to(cpu, "cuda"), cams, bg.cuda(), mode=mode, backend="gsplat", surfels_as_3dgs=surfels)
    for b in range(B):
        assert psnr(gpu.rgb[b].cpu(), ref.rgb[b]) >= PSNR_MIN, b


def test_expanded_views_render_like_copies():
    from thgs.render._scenes import body_like, ring_cameras
    from thgs.render.base import GaussianBatch, render_batch

    g = body_like(2000, seed=2)
    g = type(g)(*(t.cuda() for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))
    views = GaussianBatch.repeat(g, 3)  # stride-0 views of one pose
    copies = GaussianBatch(means=views.means.contiguous(), quats=views.quats.contiguous(),
                           scales=views.scales.contiguous(), opacities=g.opacities, colors=g.colors)
    cams = ring_cameras(3, 96, 64)
    a = render_batch(views, cams, backend="gsplat", mode="2dgs", surfels_as_3dgs=True)
    b = render_batch(copies, cams, backend="gsplat", mode="2dgs", surfels_as_3dgs=True)
    torch.testing.assert_close(a.rgb, b.rgb, atol=1e-6, rtol=0)
