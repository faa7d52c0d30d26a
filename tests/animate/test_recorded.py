"""``RecordedFrames`` (animation + projection recorded, then gsplat's draw): on the CPU it has nothing to record
and draws through ``render_batch``; its inputs and cameras are checked."""

import pytest
import torch


def _session(toy_run):
    from thgs.viewer.session import open_session

    return open_session(toy_run, device="cpu")


def _inputs(drive, start, stop):
    sl = slice(start, stop)
    audio = drive.audio[sl] if drive.audio is not None else None
    return drive.pose[sl], drive.expression[sl], audio, drive.transl[sl]


def test_cpu_frames_are_render_batch_of_the_animator(toy_run):
    from thgs.animate.recorded import RecordedFrames
    from thgs.animate.render import drive_animator
    from thgs.render.base import render_batch

    s = _session(toy_run)
    anim = drive_animator(s.model, s.drive)
    cams = [s.drive.camera(t) for t in range(2)]
    frames = RecordedFrames(anim, cams, s.background, batch=2, mode=s.mode)
    assert not frames.record()  # nothing to record on the CPU
    assert not frames.recorded
    got = frames(*_inputs(s.drive, 0, 2))
    want = render_batch(anim.animate(*_inputs(s.drive, 0, 2)), cams, s.background, mode=s.mode, outputs="rgb",
                        surfels_as_3dgs=s.mode == "2dgs")
    assert got.rgb.shape == (2, cams[0].height, cams[0].width, 3)
    assert torch.equal(got.rgb, want.rgb) and torch.equal(got.alpha, want.alpha)
    assert got.depth is None
    assert float(got.alpha.amax()) > 0.5  # the avatar is in view


def test_checks_batch_cameras_and_sizes(toy_run):
    from thgs.animate.recorded import RecordedFrames
    from thgs.animate.render import drive_animator

    s = _session(toy_run)
    anim = drive_animator(s.model, s.drive)
    cam = s.drive.camera(0)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        RecordedFrames(anim, cam, s.background, batch=0)
    with pytest.raises(ValueError, match="mode must be"):
        RecordedFrames(anim, cam, s.background, mode="nerf")
    with pytest.raises(ValueError, match="cameras has 2 entries"):
        RecordedFrames(anim, [cam, cam], s.background, batch=3)
    frames = RecordedFrames(anim, cam, s.background, batch=2, mode=s.mode)
    with pytest.raises(ValueError, match="pose has 1 frames"):
        frames(*_inputs(s.drive, 0, 1))
    with pytest.raises(ValueError, match="these frames are"):
        frames.set_cameras(cam.scaled(2.0))
    moved = s.drive.camera(len(s.drive) - 1)
    frames.set_cameras(moved)  # same size: accepted, and used
    assert torch.equal(frames.viewmats[1, 0], moved.world_to_cam.float())
    assert torch.allclose(frames.campos[0, 0], moved.center.float())
