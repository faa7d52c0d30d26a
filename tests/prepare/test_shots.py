"""Shot cuts, zooms, person switches and glitches on synthetic keypoint tracks."""

from __future__ import annotations

import numpy as np
import pytest

from thgs.prepare import layout
from thgs.prepare.shots import ShotOptions, find_shots, frame_ranges, usable_problem


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """A fixed upper-body layout of the pose points (pixels, around the origin)."""
    return rng.uniform(-60, 60, size=(layout.NUM_POSE, 2))


def track(T: int, seed: int = 0, centre=(320.0, 240.0), scale: float = 1.0, noise: float = 0.5) -> np.ndarray:
    """[T, 553, 3] keypoints of a person standing still (pose points only) with a little jitter."""
    rng = np.random.default_rng(seed)
    base = _skeleton(rng)
    kp = np.zeros((T, layout.NUM_KEYPOINTS, 3), np.float32)
    kp[:, layout.POSE, :2] = np.asarray(centre) + scale * base + rng.normal(scale=noise, size=(T, layout.NUM_POSE, 2))
    kp[:, layout.POSE, 2] = 0.95
    return kp


def test_a_steady_video_is_one_shot():
    kp = track(60)
    res = find_shots(kp, np.ones(60, bool))
    assert res.shots == [(0, 60)] and res.kept == (0, 60) and not res.cuts
    assert res.valid.all() and usable_problem(res) is None


def test_a_zoom_cuts_the_video_and_the_longest_shot_is_kept():
    kp = track(50)
    zoomed = track(50, scale=1.7)  # the same skeleton (seed), scaled about the same centre
    kp[20:] = zoomed[20:]
    res = find_shots(kp, np.ones(50, bool))
    assert [c.frame for c in res.cuts] == [20] and res.cuts[0].kind == "zoom"
    assert res.shots == [(0, 20), (20, 50)] and res.kept == (20, 50)
    assert res.valid[24:].all() and not res.valid[:24].any()  # 4 frames settle after the cut
    assert res.left_out["other shots"] == list(range(20))
    assert res.left_out["settling after a cut"] == [20, 21, 22, 23]


def test_a_jump_that_stays_is_a_person_switch():
    kp = track(40)
    kp[25:, layout.POSE, 0] += 200.0
    res = find_shots(kp, np.ones(40, bool))
    assert [(c.frame, c.kind) for c in res.cuts] == [(25, "switch")]
    assert res.kept == (0, 25)


def test_a_jump_that_returns_marks_frames_invalid_without_a_cut():
    kp = track(40)
    kp[10:12, layout.POSE, 0] += 200.0  # two frames on someone else, then back
    res = find_shots(kp, np.ones(40, bool))
    assert not res.cuts and res.shots == [(0, 40)]
    assert res.left_out["tracking jumps"] == [10, 11]
    assert not res.valid[10:12].any() and res.valid[12:].all()


def test_frames_without_the_person_are_left_out_and_no_jump_is_seen_where_they_return():
    kp = track(40)
    person = np.ones(40, bool)
    person[15:25] = False  # walked out of the image for 10 frames
    kp[25:, layout.POSE, 0] += 150.0  # ... and came back elsewhere
    res = find_shots(kp, person)
    assert not res.cuts and res.kept == (0, 40)
    assert res.left_out["person not shown"] == list(range(15, 25))
    assert res.valid.sum() == 30


def test_a_frame_cut_is_found_from_the_thumbnails():
    T = 30
    kp = track(T)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (32, 32)), rng.integers(0, 256, (32, 32))
    thumbs = np.stack([a if t < 18 else b for t in range(T)]).astype(np.uint8)
    thumbs = np.clip(thumbs.astype(int) + rng.integers(-2, 3, thumbs.shape), 0, 255).astype(np.uint8)
    res = find_shots(kp, np.ones(T, bool), thumbs)
    assert [(c.frame, c.kind) for c in res.cuts] == [(18, "cut")]  # the person did not change: no zoom
    assert res.kept == (0, 18)
    assert not find_shots(kp, np.ones(T, bool), thumbs, ShotOptions(frame_diff=False)).cuts


def test_no_usable_shot_is_refused_with_the_frame_numbers():
    kp = track(24)
    for start in (8, 16):  # three shots of 8 frames, each zoomed further
        kp[start:] = track(24, scale=1.6 ** (start // 8))[start:]
    res = find_shots(kp, np.ones(24, bool))
    assert res.shots == [(0, 8), (8, 16), (16, 24)]
    why = usable_problem(res)
    assert why is not None and "frames 0-7; frames 8-15; frames 16-23" in why and "zoom at frame 8" in why
    assert usable_problem(find_shots(track(24), np.zeros(24, bool))) is not None


def test_a_zoom_is_measured_on_the_face_mesh_when_there_is_one():
    from thgs.prepare.shots import compare

    kp = track(2)
    rng = np.random.default_rng(3)
    face = rng.uniform(-20, 20, size=(layout.NUM_FACE, 2))
    kp[:, layout.FACE, :2] = np.array([320.0, 150.0]) + face
    kp[:, layout.FACE, 2] = 1.0
    kp[1, layout.FACE, :2] = np.array([320.0, 150.0]) + 1.5 * face  # the face zoomed, the body points lag
    ratio, shift = compare(kp[0], kp[1], ShotOptions())
    assert ratio == pytest.approx(1.5, rel=1e-3) and shift < 0.05


def test_frame_ranges():
    assert frame_ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert frame_ranges([]) == ""


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        find_shots(np.zeros((5, 10, 3)), np.ones(5, bool))
