import numpy as np
import pytest

from thgs.data.format import (
    SubjectError,
    camera_problems,
    default_split,
    frame_file,
    frame_index,
    meta_problems,
    params_problems,
    split_problems,
)


def test_default_split_paper_rule():
    s = default_split(1800)  # the paper's subjects: train 0..1500 every 4th, test 1500..1800
    assert s["train"] == list(range(0, 1500, 4)) and len(s["train"]) == 375
    assert s["test"] == list(range(1500, 1800))
    for n in (1, 2, 5, 6, 7, 12, 13, 100, 601):
        s = default_split(n)
        n_test = max(n // 6, 1 if n >= 2 else 0)
        assert s["test"] == list(range(n - n_test, n))
        assert s["train"] == list(range(0, n - n_test, 4))
        assert not set(s["train"]) & set(s["test"]) and s["train"][0] == 0
    assert default_split(12) == {"train": [0, 4, 8], "test": [10, 11]}
    with pytest.raises(ValueError):
        default_split(0)


def test_frame_names():
    assert frame_file(7) == "000007.png" and frame_index("000007.png") == 7
    for bad in ("7.png", "000007.jpg", "00000a.png", "0000007.png", "000007.png.tmp"):
        assert frame_index(bad) is None


def test_params_problems_messages():
    a = {"pose": np.zeros((99, 55, 3), np.float32), "transl": np.zeros((100, 3)), "betas": np.zeros(10),
         "expression": np.zeros((100, 7))}
    msgs = params_problems(a, num_frames=100, num_joints=55, num_expressions=10)
    assert "params.npz: field 'pose' has shape (99, 55, 3), expected (100, 55, 3)" in msgs
    assert "params.npz: field 'expression' has shape (100, 7), expected (100, 10)" in msgs
    a["pose"] = np.zeros((100, 55, 3))
    a["pose"][3, 2, 1] = np.inf
    del a["betas"]
    msgs = params_problems(a, num_frames=100, where="params")
    assert "params: field 'betas' is missing" in msgs
    assert any("field 'pose'" in m and "inf at index (3, 2, 1)" in m for m in msgs)


def test_camera_and_split_problems():
    good = {"K": [[100, 0, 16], [0, 100, 12], [0, 0, 1]], "world_to_cam": np.eye(4).tolist()}
    assert camera_problems(good, "x: field 'camera") == []
    bad = {"K": [[-1, 0, 16], [0, 100, 12], [0, 0, 1]], "world_to_cam": (2 * np.eye(4)).tolist()}
    msgs = camera_problems(bad, "meta.json: field 'camera")
    assert any("'camera.K'" in m and "focal" in m for m in msgs)
    assert any("'camera.world_to_cam'" in m for m in msgs)
    msgs = split_problems({"train": [0, 4, 4], "test": [4, 12]}, 12, "meta.json: field 'split")
    assert any("'split.train' repeats indices 4" in m for m in msgs)
    assert any("'split.test' holds indices outside 0..11: 12" in m for m in msgs)
    msgs = split_problems({"train": [0, 4], "test": [4]}, 12, "meta.json: field 'split")
    assert msgs == ["meta.json: field 'split.test' and 'train' share frames 4"]


def test_meta_problems_types_and_version():
    msgs = meta_problems({"format": "thgs-subject", "version": 1})
    assert "meta.json: field 'fps' is missing" in msgs
    msgs = meta_problems({"format": "thgs-subject", "version": 2})
    assert any("'version' is 2" in m and "upgrade" in m for m in msgs)
    assert meta_problems([1, 2]) == ["meta.json: must hold a JSON object, got list"]


def test_subject_error_lists_problems():
    e = SubjectError("/x", ["a: one", "b: two"])
    assert isinstance(e, ValueError) and e.problems == ["a: one", "b: two"]
    assert "2 problems" in str(e) and "a: one" in str(e) and "b: two" in str(e)
