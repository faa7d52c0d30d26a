from __future__ import annotations

import numpy as np
import pytest

from thgs.audio import subject_features
from thgs.cli import main
from thgs.data.format import SubjectError, default_split
from thgs.data.subject import FolderSubject, open_subject
from thgs.importers.talkingavatar import TalkingAvatarSubject, resample_ends, talkingavatar_split

from thgs_import_fixtures import fake_smplx_file, make_talkingavatar


def test_in_place_subject(tmp_path):
    root = make_talkingavatar(tmp_path / "Anna")
    s = open_subject(root)
    assert isinstance(s, TalkingAvatarSubject)
    assert (s.num_frames, s.width, s.height, s.fps, s.name) == (12, 32, 24, 30.0, "Anna")
    assert s.problems() == [] and s.warnings() == []
    K = s.camera.K.numpy()
    np.testing.assert_allclose(K, [[40, 0, 16], [0, 40, 12], [0, 0, 1]])
    np.testing.assert_allclose(s.camera.world_to_cam[:3, 3].numpy(), [-0.1, -0.2, 3.0], atol=1e-6)
    # composited on white outside the mask, untouched inside
    raw, img, m = s.raw_image(7), s.image(7), s.mask(7)
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 255}
    assert (img[m == 0] == 255).all() and (img[m == 255] == raw[m == 255]).all()
    assert s.background == (1.0, 1.0, 1.0)
    p = s.params()
    poses = np.load(root / "poses_optimized.npz")
    assert p["pose"].shape == (12, 55, 3)
    np.testing.assert_allclose(p["pose"][:, 0], poses["global_orient"][:, 0])
    np.testing.assert_allclose(p["pose"][:, 1:22].reshape(12, 63), poses["body_pose"])
    np.testing.assert_allclose(p["pose"][:, 22], poses["jaw_pose"])
    np.testing.assert_allclose(p["pose"][:, 40:55].reshape(12, 45), poses["right_hand_pose"])
    assert p["betas"].shape == (10,) and p["expression"].shape == (12, 10)
    assert p["keypoints"].shape == (12, 5, 3)
    audio, sr = s.audio()
    assert sr == 16000 and len(audio) == 12 * 16000 // 30
    eo = s.features("wav2vec2-eo")
    assert eo.shape == (12, 16, 44)
    seg0 = np.load(root / "Anna_output000" / "aud_eo.npy")
    np.testing.assert_allclose(eo[0], seg0[0]) and np.testing.assert_allclose(eo[5], seg0[-1])
    f = subject_features(s, "wav2vec2-eo")
    assert f.windows.shape == (12, 16, 44)
    assert s.face_labels(3).shape == (2, 24, 32)
    assert s.split == default_split(12)


def test_split_and_resampling_rules():
    sp = talkingavatar_split(1800)
    assert len(sp["train"]) == 375 and sp["train"][-1] == 1496 and sp["test"] == list(range(1500, 1800))
    a = np.arange(5, dtype=np.float32)[:, None]
    np.testing.assert_allclose(resample_ends(a, 9)[:, 0], np.arange(9) / 2)


def test_show_sign_camera_is_detected(tmp_path):
    root = make_talkingavatar(tmp_path / "B", avg_transl=(0.0, 0.0, 3.0))
    s = open_subject(root)
    np.testing.assert_allclose(s.camera.world_to_cam[:3, 3].numpy(), [0, 0, 3.0])
    assert any("avg_transl" in w for w in s.warnings())


def test_convert_roundtrip(tmp_path, capsys):
    root = make_talkingavatar(tmp_path / "Anna")
    out = tmp_path / "out"
    assert main(["import", "talkingavatar", str(root), str(out), "--quiet"]) == 0
    src, dst = open_subject(root), open_subject(out)
    assert isinstance(dst, FolderSubject)
    assert dst.problems(decode="all") == []
    assert (dst.num_frames, dst.width, dst.height, dst.fps) == (12, 32, 24, 30.0)
    for i in (0, 6, 11):
        np.testing.assert_array_equal(dst.image(i), src.image(i))
        np.testing.assert_array_equal(dst.mask(i), src.mask(i))
    for k, v in src.params().items():
        np.testing.assert_allclose(dst.params()[k], v, atol=1e-6)
    np.testing.assert_allclose(dst.features("wav2vec2-eo"), src.features("wav2vec2-eo"))
    assert abs(len(dst.audio()[0]) - len(src.audio()[0])) <= 1
    np.testing.assert_allclose(dst.camera.world_to_cam.numpy(), src.camera.world_to_cam.numpy())
    assert dst.background == (1.0, 1.0, 1.0) and dst.body["model"] == "smplx"
    assert "wrote" in capsys.readouterr().out


def test_errors_name_file_and_field(tmp_path, capsys):
    root = make_talkingavatar(tmp_path / "A")
    poses = dict(np.load(root / "poses_optimized.npz"))
    poses.pop("jaw_pose")
    np.savez(root / "poses_optimized.npz", **poses)
    with pytest.raises(SubjectError, match=r"poses_optimized.npz.*'jaw_pose'"):
        open_subject(root)
    root2 = make_talkingavatar(tmp_path / "B")
    poses = dict(np.load(root2 / "poses_optimized.npz"))
    poses["transl"] = poses["transl"][:-1]
    np.savez(root2 / "poses_optimized.npz", **poses)
    out = tmp_path / "o"
    assert main(["import", "talkingavatar", str(root2), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'transl'" in err and "(11, 3)" in err and not out.exists()
    root3 = make_talkingavatar(tmp_path / "C")
    (root3 / "Anna_output001" / "parsing_full_body" / "000002.png").unlink()
    s = TalkingAvatarSubject(root3)
    assert any("parsing_full_body" in p and "5 mask file(s) for 6 frames" in p for p in s.problems())


def test_hand_pca(tmp_path, capsys):
    root = make_talkingavatar(tmp_path / "P", hands=12)
    out = tmp_path / "o"
    assert main(["import", "talkingavatar", str(root), str(out), "--quiet"]) == 2
    assert "--smplx-model" in capsys.readouterr().err and not out.exists()
    assert main(["import", "talkingavatar", str(root), str(out), "--quiet", "--keep-hand-pca"]) == 0
    p = open_subject(out).params()
    assert p["hand_pca"].shape == (12, 2, 12) and not p["pose"][:, 25:].any()
    model = fake_smplx_file(tmp_path / "SMPLX_FAKE.npz")
    out2 = tmp_path / "o2"
    assert main(["import", "talkingavatar", str(root), str(out2), "--quiet", "--smplx-model", str(model)]) == 0
    p2 = open_subject(out2).params()
    z, poses = np.load(model), np.load(root / "poses_optimized.npz")
    expect_left = poses["left_hand_pose"] @ z["hands_componentsl"][:12] + z["hands_meanl"]
    np.testing.assert_allclose(p2["pose"][:, 25:40].reshape(12, 45), expect_left, atol=1e-5)
    assert "hand_pca" not in p2
