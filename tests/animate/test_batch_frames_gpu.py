"""On a CUDA GPU with gsplat: ``render_frames`` in batches (the Animator's CUDA graph of the batch, the shorter
last batch eagerly, one gsplat call per batch) gives the frames of ``render_frame`` one at a time."""

import numpy as np
import pytest

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


@pytest.mark.parametrize("surfels", [False, True])
def test_batched_frames_on_cuda_equal_frame_by_frame(toy_run, surfels):
    from thgs.animate.render import drive_animator, render_frame, render_frames, to_uint8
    from thgs.viewer.session import open_session

    s = open_session(toy_run, device="cuda")
    assert len(s.drive) == 4
    got = list(render_frames(s.model, s.drive, s.background, s.mode, backend="gsplat", batch=3,
                             surfels_as_3dgs=surfels))
    anim = drive_animator(s.model, s.drive)
    want = [to_uint8(render_frame(s.model, s.drive, t, s.background, s.mode, "gsplat", animator=anim,
                                  surfels_as_3dgs=surfels)) for t in range(len(s.drive))]
    assert len(got) == len(want) == 4
    for a, b in zip(got, want):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 1e-2
