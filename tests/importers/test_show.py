from __future__ import annotations

import pickle

import numpy as np
import pytest

from thgs.cli import main
from thgs.data.subject import open_subject
from thgs.importers.common import ImportProblem
from thgs.importers.show import read_show, show_camera, show_params
from thgs.io.video import write_video

from thgs_import_fixtures import fake_smplx_file, show_dict


def _video(path, n, w=32, h=24, fps=30):
    frames = [np.full((h, w, 3), 20 * k, np.uint8) for k in range(n)]
    t = np.arange(int(n / fps * 16000)) / 16000
    return write_video(path, frames, fps, audio=((0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000))


def test_read_and_convert(show_pkl, tmp_path):
    d = read_show(show_pkl())
    assert "losses_to_log" in d
    cam = show_camera(d)
    np.testing.assert_allclose(np.array(cam["world_to_cam"])[:3, 3], [0.1, -0.2, 6.0], atol=1e-6)
    assert cam["K"][0][0] == 50.0 and cam["K"][0][2] == 16.0
    half = show_camera(d, 16, 12)
    assert half["K"][0][0] == 25.0 and half["K"][1][2] == 6.0
    with pytest.raises(ImportProblem, match="aspect"):
        show_camera(d, 32, 32)
    with pytest.raises(ImportProblem, match="--smplx-model"):
        show_params(d)
    params, body = show_params(d, keep_hand_pca=True)
    assert params["pose"].shape == (6, 55, 3) and params["betas"].shape == (300,)
    assert params["expression"].shape == (6, 100) and params["hand_pca"].shape == (6, 2, 12)
    np.testing.assert_allclose(params["pose"][:, 1:22].reshape(6, 63), d["body_pose_axis"])
    assert body["hand_pose"] == "pca"
    model = fake_smplx_file(tmp_path / "m.npz")
    params, body = show_params(d, smplx_model=model)
    z = np.load(model)
    expect = d["right_hand_pose"] @ z["hands_componentsr"][:12] + z["hands_meanr"]
    np.testing.assert_allclose(params["pose"][:, 40:].reshape(6, 45), expect, atol=1e-5)
    assert body["options"]["model_path"].endswith("m.npz")


def test_bad_pickles(show_pkl, tmp_path):
    with pytest.raises(ImportProblem, match=r"'transl'"):
        read_show(show_pkl("a.pkl", drop=("transl",)))
    d = show_dict()
    d["jaw_pose"] = d["jaw_pose"][:, :2]
    p = tmp_path / "b.pkl"
    p.write_bytes(pickle.dumps(d))
    with pytest.raises(ImportProblem, match=r"b.pkl: field 'jaw_pose' has shape \(6, 2\)"):
        show_params(read_show(p), keep_hand_pca=True, where="b.pkl")
    p.write_bytes(b"not a pickle")
    with pytest.raises(ImportProblem, match="b.pkl"):
        read_show(p)


def test_import_with_video(show_pkl, tmp_path, capsys):
    pkl = show_pkl()
    video = _video(tmp_path / "v.mp4", 6)
    out = tmp_path / "s"
    assert main(["import", "show", str(pkl), str(out), "--video", str(video), "--keep-hand-pca", "--quiet"]) == 0
    s = open_subject(out)
    assert s.problems() == [] and s.has_params and s.num_frames == 6
    assert s.body["model"] == "smplx" and s.params()["pose"].shape == (6, 55, 3)
    np.testing.assert_allclose(s.camera.K.numpy()[0, 0], 50.0)
    assert not any("estimate" in w for w in s.warnings())
    capsys.readouterr()
    long_video = _video(tmp_path / "long.mp4", 8)
    out2 = tmp_path / "s2"
    assert main(["import", "show", str(pkl), str(out2), "--video", str(long_video), "--keep-hand-pca",
                 "--quiet"]) == 2
    assert "6 frames" in capsys.readouterr().err and not out2.exists()


def test_import_into_ingested_subject(show_pkl, tmp_path, capsys):
    video = _video(tmp_path / "v.mp4", 6)
    subj = tmp_path / "subj"
    assert main(["ingest", str(video), str(subj), "--quiet"]) == 0
    before = open_subject(subj)
    img = before.image(3)
    assert main(["import", "show", str(show_pkl()), "--into", str(subj), "--keep-hand-pca", "--quiet"]) == 0
    after = open_subject(subj)
    assert after.has_params and after.problems() == []
    np.testing.assert_array_equal(after.image(3), img)
    assert len(after.audio()[0]) == len(before.audio()[0])
    assert after.camera.K[0, 0] == 50.0
    capsys.readouterr()
    bad = show_pkl("seven.pkl", n=7)
    assert main(["import", "show", str(bad), "--into", str(subj), "--keep-hand-pca", "--quiet"]) == 2
    assert "7 frames" in capsys.readouterr().err
    assert main(["import", "show", str(bad), "--quiet"]) == 2
