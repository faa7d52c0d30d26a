"""``thgs eval --lipsync-landmarks``: the face-mesh score lands in metrics.json; off by default on a synthetic
subject (it has truth.npz)."""

import json

import pytest

from thgs.cli import main
from thgs.metrics.lipsync_landmarks import mediapipe_available


@pytest.mark.skipif(not mediapipe_available(), reason="mediapipe is not installed")
def test_eval_with_landmark_lipsync(eval_run, tmp_path):
    out = tmp_path / "ev"
    assert main(["eval", str(eval_run), "--out", str(out), "--lpips", "none", "--no-views", "--no-video",
                 "--no-progress", "--lipsync-landmarks"]) == 0
    lm = json.loads((out / "metrics.json").read_text())["lip_sync"]["landmarks"]
    n = json.loads((out / "metrics.json").read_text())["test"]["frames"]
    for who in ("render", "ground_truth"):
        assert lm[who]["frames"] == n and 0 <= lm[who]["frames_with_face"] <= n
    assert "lip_lmd_px" in lm and "opening_corr" in lm and lm["detector"].startswith("mediapipe")


def test_landmark_lipsync_is_off_by_default_on_synthetic_subjects(eval_run, tmp_path):
    out = tmp_path / "ev"
    assert main(["eval", str(eval_run), "--out", str(out), "--lpips", "none", "--no-views", "--no-video",
                 "--no-progress"]) == 0
    assert "landmarks" not in json.loads((out / "metrics.json").read_text())["lip_sync"]
