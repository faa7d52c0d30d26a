"""The landmark lip-sync score: signal maths on landmark tracks, and the face-mesh detector on a real frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thgs.metrics import lipsync_landmarks as LL

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lipsync" / "head_1_frame30_face.png"


def _track(opening: np.ndarray, seed: int = 0, eye_px: float = 80.0) -> np.ndarray:
    """A [T, 478, 2] track: a random static face whose outer eye corners lie ``eye_px`` apart and whose three
    inner-lip pairs are ``opening * eye_px`` apart (so mouth_opening == opening)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(50, 150, size=(LL.NUM_LANDMARKS, 2))
    base[LL.EYE_OUTER[0]] = (60.0, 70.0)
    base[LL.EYE_OUTER[1]] = (60.0 + eye_px, 70.0)
    T = len(opening)
    lm = np.repeat(base[None], T, 0)
    for k, (u, d) in enumerate(LL.INNER_LIP_PAIRS):
        x = 90.0 + 10 * k
        lm[:, u] = np.stack([np.full(T, x), 120.0 - 0.5 * opening * eye_px], -1)
        lm[:, d] = np.stack([np.full(T, x), 120.0 + 0.5 * opening * eye_px], -1)
    return lm


def _speech_like(T: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.random(T + 6), np.ones(4) / 4, mode="same")[3:T + 3]
    return 0.05 + 0.3 * (x - x.min()) / (x.max() - x.min())


def test_lip_indices_are_the_face_mesh_lips():
    assert len(LL.LIPS) == 40 and len(set(LL.LIPS)) == 40
    for u, d in LL.INNER_LIP_PAIRS:
        assert u in LL.LIPS and d in LL.LIPS
    if LL.mediapipe_available():
        import mediapipe as mp

        assert set(LL.LIPS) == {i for e in mp.solutions.face_mesh.FACEMESH_LIPS for i in e}


def test_mouth_opening_is_scale_free():
    op = _speech_like(40)
    np.testing.assert_allclose(LL.mouth_opening(_track(op)), op, atol=1e-9)
    np.testing.assert_allclose(LL.mouth_opening(_track(op, eye_px=200.0)), op, atol=1e-9)


def test_ground_truth_against_itself():
    op = _speech_like(60)
    gt = _track(op)
    s = LL.landmark_lipsync(gt, gt.copy(), envelope=op, max_offset=10)
    assert s["opening_corr"] == pytest.approx(1.0)
    assert s["opening_lag"] == 0
    assert s["lip_lmd_px"] == 0.0 and s["frames_both"] == 60
    assert s["render"]["av_sync"]["offset"] == 0 == s["ground_truth"]["av_sync"]["offset"]
    assert s["render"]["av_sync"]["peak_corr"] == pytest.approx(1.0)


@pytest.mark.parametrize("shift", [3, -2])
def test_time_shifted_copy_gives_the_known_offset(shift):
    T = 80
    op = _speech_like(T + 10)
    gt_op = op[5:T + 5]
    render_op = op[5 - shift:T + 5 - shift]  # render[t] = gt[t - shift]: the render lags by `shift`
    s = LL.landmark_lipsync(_track(render_op), _track(gt_op), envelope=gt_op, max_offset=8)
    assert s["opening_lag"] == shift
    assert s["ground_truth"]["av_sync"]["offset"] == 0
    assert s["render"]["av_sync"]["offset"] == shift
    assert s["opening_corr"] < 0.99
    assert s["lip_lmd_px"] > 0


def test_missing_faces_are_left_out():
    op = _speech_like(40)
    gt = _track(op)
    render = gt.copy()
    render[[3, 10, 11]] = np.nan
    s = LL.landmark_lipsync(render, gt, envelope=op, max_offset=5)
    assert s["frames_both"] == 37 and s["render"]["frames_with_face"] == 37
    assert s["opening_corr"] == pytest.approx(1.0) and s["lip_lmd_px"] == 0.0
    assert s["render"]["av_sync"]["offset"] == 0


def test_too_few_frames_and_bad_shapes():
    op = _speech_like(5)
    s = LL.landmark_lipsync(_track(op), _track(op), envelope=op)
    assert np.isnan(s["opening_corr"]) and s["opening_lag"] is None
    assert "skipped" in s["render"]["av_sync"]
    with pytest.raises(ValueError, match="478"):
        LL.mouth_opening(np.zeros((4, 68, 2)))
    with pytest.raises(ValueError, match="envelope"):
        LL.landmark_lipsync(_track(op), _track(op), envelope=np.zeros(3))


@pytest.mark.skipif(not LL.mediapipe_available(), reason="mediapipe is not installed")
def test_face_mesh_on_a_real_frame():
    from PIL import Image

    img = np.asarray(Image.open(FIXTURE).convert("RGB"))
    with LL.FaceMeshTracker() as tracker:
        whole = tracker.track(img)
    assert whole is not None and whole.shape == (LL.NUM_LANDMARKS, 2)
    assert np.all((whole > 0) & (whole < 192))
    opening = float(LL.mouth_opening(whole[None])[0])
    assert 0.02 < opening < 0.3  # the speaker's lips are slightly parted in this frame
    # the same face found through a zoomed crop lands on the same pixels
    with LL.FaceMeshTracker() as tracker:
        zoomed = tracker.track(img, (40, 40, 150, 150))
    assert zoomed is not None
    assert float(np.abs(zoomed - whole).mean()) < 3.0
    # a blank frame holds no face
    with LL.FaceMeshTracker() as tracker:
        assert tracker.track(np.full((192, 192, 3), 255, np.uint8)) is None
