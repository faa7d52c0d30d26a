"""On a CUDA GPU with gsplat: ``RecordedFrames`` (the animation and gsplat's projection recorded as one CUDA graph,
then the tile sort and rasterization) gives the images of ``render_batch`` of the Animator's Gaussians, colour only,
surfels through the 3DGS rasterizer, recorded or not, and follows camera changes without recording again."""

import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


def _inputs(drive, start, stop):
    sl = slice(start, stop)
    audio = drive.audio[sl].cuda() if drive.audio is not None else None
    return drive.pose[sl].cuda(), drive.expression[sl].cuda(), audio, drive.transl[sl].cuda()


@pytest.mark.parametrize("batch", [1, 3])
def test_recorded_frames_equal_render_batch(toy_run, batch):
    from thgs.animate.recorded import RecordedFrames
    from thgs.animate.render import drive_animator
    from thgs.render.base import render_batch
    from thgs.viewer.session import open_session

    s = open_session(toy_run, device="cuda")
    anim = drive_animator(s.model, s.drive)
    cams = [s.drive.camera(t) for t in range(batch)]
    frames = RecordedFrames(anim, cams, s.background, batch=batch, mode=s.mode, backend="gsplat")
    eager = frames(*_inputs(s.drive, 0, batch))  # staged, not recorded
    eager_rgb = eager.rgb.clone()
    audio_shape = tuple(s.drive.audio.shape[1:]) if s.drive.audio is not None else (8, 16, 0)
    assert frames.record(audio_shape=audio_shape)
    for start in (0, 1):
        got = frames(*_inputs(s.drive, start, start + batch))
        want = render_batch(anim.animate(*_inputs(s.drive, start, start + batch)), cams, s.background, mode=s.mode,
                            backend="gsplat", outputs="rgb", surfels_as_3dgs=s.mode == "2dgs")
        assert torch.allclose(got.rgb, want.rgb, atol=1e-5), float((got.rgb - want.rgb).abs().max())
        assert torch.allclose(got.alpha, want.alpha, atol=1e-5)
        assert torch.equal(got.radii, want.radii)
        if start == 0:
            assert torch.allclose(got.rgb, eager_rgb, atol=1e-5)
    # a new camera of the same size is read by the same graph
    moved = s.drive.camera(0).scaled(1.0)
    moved.world_to_cam = moved.world_to_cam.clone()
    moved.world_to_cam[0, 3] += 0.05
    frames.set_cameras(moved)
    got = frames(*_inputs(s.drive, 0, batch))
    want = render_batch(anim.animate(*_inputs(s.drive, 0, batch)), moved, s.background, mode=s.mode,
                        backend="gsplat", outputs="rgb", surfels_as_3dgs=s.mode == "2dgs")
    assert torch.allclose(got.rgb, want.rgb, atol=1e-5)
    assert not torch.allclose(got.rgb, eager_rgb[:batch], atol=1e-3)  # the view did move


def test_recorded_frames_with_the_posing_compiled(toy_run):
    from thgs.animate.recorded import RecordedFrames
    from thgs.animate.render import drive_animator
    from thgs.render.base import render_batch
    from thgs.viewer.session import open_session

    s = open_session(toy_run, device="cuda")
    anim = drive_animator(s.model, s.drive)
    cams = [s.drive.camera(t) for t in range(2)]
    frames = RecordedFrames(anim, cams, s.background, batch=2, mode=s.mode, backend="gsplat")
    audio_shape = tuple(s.drive.audio.shape[1:]) if s.drive.audio is not None else (8, 16, 0)
    assert frames.record(audio_shape=audio_shape, compile=True)
    got = frames(*_inputs(s.drive, 1, 3))
    want = render_batch(anim.animate(*_inputs(s.drive, 1, 3)), cams, s.background, mode=s.mode, backend="gsplat",
                        outputs="rgb", surfels_as_3dgs=s.mode == "2dgs")
    diff = (got.rgb - want.rgb).abs()
    assert float(diff.max()) < 2e-3 and float(diff.mean()) < 1e-5  # the fused kernels round differently
    # the compiled posing itself against the eager one
    ins = _inputs(s.drive, 1, 3)
    a, b = anim.posing_function(compile=True)(*ins), anim.animate_eager(*ins)
    assert torch.allclose(a.means, b.means, atol=1e-5) and torch.allclose(a.scales, b.scales, atol=1e-6)
