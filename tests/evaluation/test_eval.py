import csv
import json

import av
import numpy as np
import pytest
import torch

from thgs.cli import main
from thgs.evaluation.frames import error_heatmap, side_by_side
from thgs.evaluation.evaluate import rows_to_csv, summarize_rows


def test_heatmap_and_side_by_side():
    a = torch.rand(6, 5, 3)
    assert torch.allclose(error_heatmap(a, a), torch.zeros(6, 5, 3))
    hot = error_heatmap(torch.ones(6, 5, 3), torch.zeros(6, 5, 3))
    assert torch.allclose(hot, torch.tensor([1.0, 1.0, 0.75]).expand(6, 5, 3))
    sbs = side_by_side(a, torch.zeros_like(a))
    assert sbs.shape == (6, 15, 3) and sbs.dtype.name == "uint8"
    assert (sbs[:, 5:10] == 0).all()
    with pytest.raises(ValueError):
        error_heatmap(a, a[:3])


def test_summarize_rows_and_csv():
    rows = [{"view": "test", "frame": 1, "psnr": 20.0, "lpips_alex": 0.1, "head_psnr": 10.0},
            {"view": "test", "frame": 2, "psnr": 30.0, "lpips_alex": 0.3}]
    s = summarize_rows(rows)
    assert s["psnr"] == 25.0 and abs(s["lpips_alex_x100"] - 20.0) < 1e-9 and s["frames"] == 2
    assert summarize_rows(rows, "head_") == {"psnr": 10.0, "frames": 1.0}
    text = rows_to_csv(rows)
    parsed = list(csv.DictReader(text.splitlines()))
    assert parsed[0]["view"] == "test" and parsed[1]["head_psnr"] == ""


def test_eval_command_writes_every_metric(eval_run, eval_subject, tmp_path):
    from thgs.data.subject import open_subject
    from thgs.metrics.image import psnr
    from thgs.runs.avatar_io import load_avatar
    from thgs.runs.frames import composite, load_audio_windows, subject_background

    out = tmp_path / "ev"
    assert main(["eval", str(eval_run), "--out", str(out), "--lpips", "alex", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    subject = open_subject(eval_subject)
    n_test = len(subject.split["test"])
    assert m["test"]["frames"] == n_test == 10
    rows = list(csv.DictReader((out / "frames.csv").read_text().splitlines()))
    test_rows = [r for r in rows if r["view"] == "test"]
    for region, prefix in (("full", ""), ("head", "head_"), ("mouth", "mouth_")):
        r = m["test"][region]  # the summary is the mean of the per-frame rows
        assert r["psnr"] == pytest.approx(sum(float(x[prefix + "psnr"]) for x in test_rows) / n_test, abs=1e-3)
        assert 0 < r["ssim"] <= 1 and r["lpips_alex_x100"] > 0
    # the avatar is much closer to the ground truth than the bare background is (measured: 20.0 vs 11.6 dB)
    bg = subject_background(subject)
    blank = []
    for f in subject.split["test"]:
        gt = composite(np.asarray(subject.image(f)), subject.mask(f), bg).float() / 255.0
        blank.append(float(psnr(bg.expand_as(gt), gt)))
    assert m["test"]["full"]["psnr"] > sum(blank) / len(blank) + 3.0
    lip = m["lip_sync"]
    assert {"opening_mae", "opening_corr", "mouth_psnr", "mouth_lpips_alex_x100"} <= set(lip["with_ground_truth"])
    for who in ("render", "ground_truth"):
        assert set(lip["av_sync"][who]) == {"offset", "peak_corr", "confidence"}
        assert abs(lip["av_sync"][who]["offset"]) <= lip["av_sync"]["max_offset"]
    assert "skipped" in lip["syncnet"]
    view_rows = [r for r in rows if r["view"] == "yaw20"]
    assert set(m["novel_views"]) == {"yaw20"} and len(view_rows) == len(subject.views["yaw20"]["frames"])
    assert m["novel_view_mean"]["psnr"] == pytest.approx(sum(float(r["psnr"]) for r in view_rows) / len(view_rows),
                                                         abs=1e-3)
    # the first row is the PSNR of the first test frame rendered and composited independently
    from thgs.animate.drive import subject_drive
    from thgs.animate.render import render_frame
    from thgs.runs.frames import subject_camera

    model, cfg, _ = load_avatar(eval_run / "avatar.pt", subject)
    first = int(subject.split["test"][0])
    drive = subject_drive(subject, [first], subject_camera(subject), load_audio_windows(subject, cfg))
    bgc = subject_background(subject, cfg.background)
    pred = render_frame(model, drive, 0, bgc, cfg.render.mode)
    gt = composite(np.asarray(subject.image(first)), subject.mask(first), bgc).float() / 255.0
    assert float(rows[0]["psnr"]) == pytest.approx(float(psnr(pred.cpu(), gt)), abs=1e-3)
    assert len(rows) == n_test + len(subject.views["yaw20"]["frames"])
    with av.open(str(out / "side_by_side.mp4")) as f:
        kinds = sorted(s.type for s in f.streams)
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    assert kinds == ["audio", "video"] and len(frames) == n_test
    assert frames[0].shape[1] == 3 * subject.width + (3 * subject.width) % 2


def test_eval_syncnet_path_with_user_weights(eval_run, tmp_path, capsys):
    from thgs.metrics.syncnet import SyncNet

    torch.manual_seed(0)
    weights = tmp_path / "syncnet.pt"
    torch.save(SyncNet().state_dict(), weights)
    assert main(["eval", str(eval_run), "--out", str(tmp_path / "ev"), "--lpips", "none", "--no-views",
                 "--no-video", "--no-progress", "--max-frames", "7", "--syncnet-weights", str(weights), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    sn = m["lip_sync"]["syncnet"]
    for who in ("render", "ground_truth"):
        assert set(sn[who]) == {"av_offset", "min_dist", "confidence"} and sn[who]["min_dist"] >= 0
    assert not (tmp_path / "ev" / "side_by_side.mp4").exists()
    assert m["lpips_nets"] == [] and "lpips_alex" not in m["test"]["full"]
    assert "too few" in m["lip_sync"]["av_sync"]["skipped"]


def test_eval_bad_input_changes_nothing(eval_run, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", str(eval_run), "--out", str(out), "--lpips", "squeeze"]) == 2
    assert "unknown network 'squeeze'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    torch.save({"x": torch.zeros(1)}, bad)
    assert main(["eval", str(eval_run), "--out", str(out), "--syncnet-weights", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--out", str(out)]) == 2
    assert not out.exists()
