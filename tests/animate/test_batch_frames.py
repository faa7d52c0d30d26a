"""``render_frames`` renders the drive in batches (one Animator call and one ``render_batch`` per batch): the
same frames, in order, as rendering frame by frame."""

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def session(toy_run):
    from thgs.viewer.session import open_session

    return open_session(toy_run, device="cpu")  # the toy test split: 4 frames


def _frame_by_frame(s, drive, surfels=False):
    from thgs.animate.render import drive_animator, render_frame, to_uint8

    anim = drive_animator(s.model, drive)
    return [to_uint8(render_frame(s.model, drive, t, s.background, s.mode, animator=anim, surfels_as_3dgs=surfels))
            for t in range(len(drive))]


def _assert_same_frames(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == np.uint8
        # the batched animation may differ from the single-frame one by float rounding (1e-7): at most one level
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        assert (a != b).mean() < 1e-3


@pytest.mark.parametrize("batch", [1, 3, 4, 8])
def test_batched_frames_equal_frame_by_frame(session, batch):
    from thgs.animate.render import render_frames

    s = session
    assert len(s.drive) == 4  # batches of 3 leave a last batch of 1; 8 is one short batch
    seen = []
    got = list(render_frames(s.model, s.drive, s.background, s.mode, progress=seen.append, batch=batch))
    assert seen == list(range(4))
    want = _frame_by_frame(s, s.drive)
    _assert_same_frames(got, want)
    assert any(np.abs(want[0].astype(int) - w.astype(int)).max() > 0 for w in want[1:])  # the frames differ


@pytest.mark.parametrize("surfels", [False, True])
def test_batched_frames_with_one_camera_per_frame(session, surfels):
    from thgs.animate.drive import orbit, with_cameras
    from thgs.animate.render import render_frames

    s = session
    cam = s.drive.cameras[0]
    drive = with_cameras(s.drive, orbit(cam, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), len(s.drive), 90.0))
    got = list(render_frames(s.model, drive, s.background, s.mode, batch=3, surfels_as_3dgs=surfels))
    _assert_same_frames(got, _frame_by_frame(s, drive, surfels))


def test_render_frame_batch_checks_its_range(session):
    from thgs.animate.render import render_frame_batch, render_frames

    s = session
    with pytest.raises(ValueError, match="not within the drive"):
        render_frame_batch(s.model, s.drive, 3, 6, s.background, s.mode)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        list(render_frames(s.model, s.drive, s.background, s.mode, batch=0))
