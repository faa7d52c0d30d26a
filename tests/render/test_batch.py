"""``render_batch``: B frames of the same Gaussians in one call; on the reference backend exactly the per-frame
``render`` images, and clear errors for inconsistent inputs."""

import pytest
import torch

from thgs.render import GaussianBatch, render, render_batch
from thgs.render._scenes import body_like, ring_cameras, turning_batch
from thgs.render.base import Camera, flat_surfels


def _batch(B: int, sh_degree: int | None, n: int = 300) -> GaussianBatch:
    return turning_batch(n, B, seed=3, sh_degree=sh_degree)


def _cameras(B: int) -> list[Camera]:
    return ring_cameras(B, 40, 32)


CASES = [("3dgs", False), ("2dgs", False), ("2dgs", True)]


@pytest.mark.parametrize("mode,surfels", CASES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("sh_degree", [None, 1])
@pytest.mark.parametrize("shared", [True, False])
def test_reference_batch_equals_per_frame_renders(mode, surfels, B, sh_degree, shared):
    batch = _batch(B, sh_degree)
    cams = _cameras(B)
    cameras = cams[0] if shared else cams
    bg = torch.tensor([0.2, 0.5, 0.9])
    for outputs in ("rgb", "full"):
        res = render_batch(batch, cameras, bg, mode=mode, backend="reference", outputs=outputs, surfels_as_3dgs=surfels)
        assert len(res) == B and res.rgb.shape == (B, 32, 40, 3) and res.alpha.shape == (B, 32, 40, 1)
        assert res.radii.shape == (B, 300)
        for b in range(B):
            want = render(batch.frame(b), cams[0] if shared else cams[b], bg, mode=mode, backend="reference",
                          outputs=outputs, surfels_as_3dgs=surfels)
            assert torch.equal(res.rgb[b], want.rgb) and torch.equal(res.alpha[b], want.alpha)
            assert torch.equal(res.radii[b], want.radii)
            if outputs == "rgb":
                assert res.depth is None
            else:
                assert torch.equal(res.depth[b], want.depth)
            if mode == "2dgs" and not surfels and outputs == "full":
                assert torch.equal(res.normals[b], want.normals) and torch.equal(res.surf_normals[b], want.surf_normals)
            else:
                assert res.normals is None and res.surf_normals is None
    if B > 1:  # the frames differ: a wrong frame or camera would be seen
        assert (res.rgb[0] - res.rgb[1]).abs().max() > 0.05


def test_per_frame_backgrounds_and_repeated_views():
    g = body_like(200, seed=1)
    cams = _cameras(3)
    bgs = torch.eye(3)
    views = GaussianBatch.repeat(g, 3)
    assert views.means.stride(0) == 0 and len(views) == 3 and views.num_gaussians == 200  # views, no copies
    res = render_batch(views, cams, bgs, mode="3dgs", backend="reference")
    for b in range(3):
        assert torch.equal(res.rgb[b], render(g, cams[b], bgs[b], mode="3dgs", backend="reference", outputs="rgb").rgb)


def test_flat_surfels_of_a_batch_keeps_expanded_scales_expanded():
    g = body_like(50, seed=2)
    views = GaussianBatch.repeat(g, 4)
    flat = flat_surfels(views)
    assert isinstance(flat, GaussianBatch) and flat.scales.stride(0) == 0
    assert torch.equal(flat.scales[2], flat_surfels(g).scales)
    full = flat_surfels(_batch(2, None, n=50))
    assert torch.all(full.scales[..., 2] == 0) and full.scales.shape == (2, 50, 3)


def test_the_default_backend_on_the_cpu_draws_the_batch():
    batch = _batch(2, None, n=100)
    res = render_batch(batch, _cameras(2))
    assert res.rgb.shape == (2, 32, 40, 3) and res.depth is None  # colour only by default, black background
    assert torch.equal(res.rgb[1], render(batch.frame(1), _cameras(2)[1], outputs="rgb").rgb)


def test_a_backend_without_a_batched_method_draws_frame_by_frame(monkeypatch):
    from thgs.render import base

    calls = []

    class OneAtATime:
        name = "one"

        def __call__(self, gaussians, camera, background, mode, outputs="full"):
            calls.append(camera.width)
            return base.get_backend("reference")(gaussians, camera, background, mode, outputs=outputs)

    monkeypatch.setitem(base._INSTANCES, "one", OneAtATime())
    monkeypatch.setitem(base._BACKENDS, "one", OneAtATime)
    batch = _batch(3, None, n=100)
    res = render_batch(batch, _cameras(3), mode="3dgs", backend="one")
    assert len(calls) == 3 and res.rgb.shape == (3, 32, 40, 3)
    assert torch.equal(res.rgb[2], render(batch.frame(2), _cameras(3)[2], backend="reference", outputs="rgb").rgb)


def _with(batch: GaussianBatch, **fields) -> GaussianBatch:
    from dataclasses import replace

    return replace(batch, **fields)


@pytest.mark.parametrize("field,value", [
    ("means", torch.zeros(3, 100)),
    ("quats", torch.zeros(2, 100, 3)),
    ("scales", torch.zeros(3, 100, 3)),
    ("opacities", torch.zeros(2, 100)),
    ("colors", torch.zeros(99, 3)),
])
def test_shape_errors_name_the_field(field, value):
    batch = _with(_batch(2, None, n=100), **{field: value})
    with pytest.raises(ValueError, match=f"render_batch: {field} has shape"):
        render_batch(batch, _cameras(2), backend="reference")


def test_camera_and_background_errors():
    batch = _batch(2, None, n=100)
    with pytest.raises(ValueError, match="cameras has 3 entries, expected 1 .* or 2"):
        render_batch(batch, _cameras(3), backend="reference")
    cams = _cameras(2)
    cams[1] = cams[1].scaled(2.0)
    with pytest.raises(ValueError, match=r"cameras\[1\] is 80x64 but cameras\[0\] is 40x32"):
        render_batch(batch, cams, backend="reference")
    with pytest.raises(ValueError, match="background has shape"):
        render_batch(batch, _cameras(2), torch.zeros(3, 3), backend="reference")
    with pytest.raises(ValueError, match="mode must be"):
        render_batch(batch, _cameras(2), mode="4dgs", backend="reference")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outputs must be"):
        render_batch(batch, _cameras(2), outputs="normals", backend="reference")  # type: ignore[arg-type]
