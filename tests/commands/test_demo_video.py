"""``thgs demo --video``: a real video in (a real person's frame, moved a pixel per frame, with sound), a
trained avatar, the evaluation, the report and its pictures out; the Table 7 alignment of the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thgs.cli import main

FIT = ["--fit-init-steps", "8", "--fit-calib-frames", "3", "--fit-calib-steps", "15", "--fit-root-steps", "8",
       "--fit-fma-steps", "10", "--fit-window", "10", "--shots-min-shot-frames", "4"]
FRAMES = 20


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> tuple[Path, Path]:
    pytest.importorskip("mediapipe")
    from PIL import Image

    from thgs.io.video import write_video

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "seated_woman_256x320.jpg"
    with Image.open(fixture) as im:
        person = np.asarray(im.convert("RGB")).copy()
    FPS = 25.0

    tmp = tmp_path_factory.mktemp("demo_video")
    video = tmp / "talk.mp4"
    sr = 16000
    t = np.arange(int(FRAMES / FPS * sr)) / sr
    write_video(video, [np.roll(person, k, axis=1) for k in range(FRAMES)], FPS, audio=((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr))
    out = tmp / "demo"
    argv = ["demo", "--video", str(video), "--out", str(out), "--preset", "smoke", "--size", "128", "--lpips", "none",
            "--orbit-frames", "3", "--sheet-frames", "2", "--quiet", *FIT]
    # --until stops after a stage; the next run continues from it
    assert main([*argv, "--until", "subject"]) == 0
    assert (out / "subject" / "params.npz").is_file() and not (out / "run").exists()
    assert main([*argv, "--until", "train"]) == 0
    assert (out / "run" / "avatar.pt").is_file() and not (out / "eval").exists()
    assert main(argv) == 0
    return out, video


def test_demo_video_writes_the_avatar_the_evaluation_and_a_report(demo_out, capsys):
    out, video = demo_out
    for name in ("metrics.json", "report.html", "report.md", "test.mp4", "orbit.mp4", "report/test_regions.png",
                 "report/orbit.png", "eval/metrics.json", "eval/frames.csv", "eval/side_by_side.mp4",
                 "run/avatar.pt", "subject/params.npz", "subject/prepare/contact_sheet.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    ev = json.loads((out / "eval" / "metrics.json").read_text())
    assert m["source"] == str(video) and m["preset"] == "smoke"
    assert m["test"]["psnr"] == ev["test"]["full"]["psnr"] and np.isfinite(m["test"]["psnr"])
    # the short-clip rule: the last 20% of the frames are the test split, every one of them scored
    assert m["test"]["frames"] == FRAMES // 5
    assert "landmarks" in ev["lip_sync"]  # the face-mesh lip-sync score is on for a real video
    page = (out / "report.html").read_text()
    assert "report/test_regions.png" in page and "subject/prepare/contact_sheet.png" in page
    assert "thgs demo --video" in (out / "report.md").read_text()
    from PIL import Image

    with Image.open(out / "report" / "test_regions.png") as im:  # 2 frames: one row each
        assert im.height == 2 * 192 + 4
    # a second run reuses every stage: nothing is trained again
    before = (out / "run" / "avatar.pt").stat().st_mtime_ns
    capsys.readouterr()
    argv = ["demo", "--video", str(video), "--out", str(out), "--preset", "smoke", "--size", "128", "--lpips", "none",
            "--orbit-frames", "3", "--sheet-frames", "2", "--quiet", *FIT]
    assert main(argv) == 0
    assert "train: reusing" in capsys.readouterr().out
    assert (out / "run" / "avatar.pt").stat().st_mtime_ns == before


def test_demo_video_refuses_bad_input(tmp_path, capsys):
    assert main(["demo", "--video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")
    assert main(["demo", "--video", str(video), "--body", "toy", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    capsys.readouterr()
    assert main(["demo", "--video", str(video), "--out", str(tmp_path / "o"), "--quiet"]) == 2  # not a video
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "v.mp4" in err[0]
    assert not (tmp_path / "o").exists()  # nothing written


def test_alignment_rows_follow_the_learnt_refinements(demo_out):
    import torch

    from thgs.data.subject import open_subject
    from thgs.evaluation.alignment import keypoint_alignment
    from thgs.runs.avatar_io import load_avatar

    out, _ = demo_out
    subject = open_subject(out / "subject")
    model, _, _ = load_avatar(out / "run" / "avatar.pt", subject)
    prep = json.loads((out / "subject" / "prepare.json").read_text())["fit"]
    with torch.no_grad():
        model.refine.pose.zero_()
        model.refine.expression.zero_()
    a = keypoint_alignment(model, subject)
    assert a["frames"] == FRAMES - FRAMES // 5
    assert a["before_fma"] == prep["lmd_before"] and a["after_fma"] == prep["lmd_after"]
    # without refinements the trained body is the FMA body: the same distances
    assert a["after_training"]["face"] == pytest.approx(a["after_fma_train"]["face"], abs=1e-6)
    # the same frames as prepare scored (all valid frames there, the training frames here): close
    assert a["after_fma_train"]["face"] == pytest.approx(prep["lmd_after"]["face"], rel=0.5)
    with torch.no_grad():  # a wrong head rotation learnt in "training" moves the face points away
        model.refine.pose[:, 0, 2] = 0.3  # a roll of the whole body about its root
    b = keypoint_alignment(model, subject)
    assert b["after_training"]["face"] > a["after_fma_train"]["face"] + 2.0
    assert b["after_fma_train"] == a["after_fma_train"]
