import json
import wave

import numpy as np
import pytest
import torch

from thgs.data import SubjectError, SubjectWriter, add_features, default_split, open_subject, write_subject
from thgs.render.base import Camera

from .subject_fixtures import FPS, H, J, T, W, leftovers, make_inputs


def test_round_trip(tmp_path, inputs):
    views = {"left": {"camera": Camera.look_at(torch.tensor([-1.0, 0, -3]), torch.zeros(3),
                                               torch.tensor([0.0, -1, 0]), 30.0, 16, 12),
                      "frames": [10, 11],
                      "images": [np.full((12, 16, 3), k, np.uint8) for k in (3, 200)],
                      "masks": [np.ones((12, 16), bool), np.zeros((12, 16), bool)]}}
    truth = {"mouth": np.linspace(0, 1, T * 4).reshape(T, 4).astype(np.float32)}
    feats = {"mel": np.ones((T, 16, 8), np.float32)}
    out = write_subject(tmp_path / "a", **inputs, views=views, truth=truth, features=feats, name="anna")
    assert out == tmp_path / "a" and leftovers(tmp_path) == ["a"]
    s = open_subject(out)
    assert s.problems(decode="all") == [] and s.warnings() == []
    assert (s.name, s.num_frames, s.width, s.height, s.fps) == ("anna", T, W, H, FPS)
    for i in range(T):
        np.testing.assert_array_equal(s.image(i), inputs["frames"][i])
        np.testing.assert_array_equal(s.mask(i), inputs["masks"][i])
    p = s.params()
    for k, v in inputs["params"].items():
        np.testing.assert_array_equal(p[k], v)
    assert p["pose"].dtype == np.float32
    assert torch.allclose(s.camera.K, inputs["camera"].K) and torch.allclose(s.camera.world_to_cam,
                                                                             inputs["camera"].world_to_cam)
    assert (s.camera.width, s.camera.height) == (W, H)
    assert s.split == default_split(T) and s.background == (1.0, 1.0, 1.0)
    assert s.body == {"model": "toy", "options": {}, "num_joints": J, "num_betas": 10, "num_expressions": 10}
    samples, sr = s.audio()
    assert sr == 16000 and samples.dtype == np.float32 and len(samples) == round(T / FPS * 16000)
    t = np.arange(len(samples)) / 16000
    ref = 0.5 * np.sin(2 * np.pi * 440 * t)
    assert np.abs(samples - ref)[50:-50].max() < 2e-3  # resampled 22.05 -> 16 kHz, 16-bit
    with wave.open(str(s.audio_path())) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
    assert s.views["left"]["frames"] == [10, 11] and s.views["left"]["camera"].width == 16
    np.testing.assert_array_equal(s.view("left", 11), views["left"]["images"][1])
    assert s.view_mask("left", 10).min() == 255 and s.view_mask("left", 11).max() == 0
    with pytest.raises(KeyError):
        s.view("left", 3)
    np.testing.assert_array_equal(s.truth()["mouth"], truth["mouth"])
    assert s.feature_names == ["mel"] and s.features("mel").shape == (T, 16, 8)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["has"] == {"masks": True, "body_params": True, "audio_features": ["mel"], "views": ["left"]}
    assert meta["source"] == "test" and meta["audio"]["num_samples"] == len(samples)


def test_minimal_subject_and_iterable_frames(tmp_path):
    """Frames from a generator; no masks, params, audio: allowed, reported as warnings."""
    inp = make_inputs()
    gen = (f for f in inp["frames"])
    cam = {"K": inp["camera"].K.tolist(), "world_to_cam": inp["camera"].world_to_cam.numpy(), "estimated": True}
    out = write_subject(tmp_path / "m", frames=gen, fps=30, camera=cam, split={"train": [0, 1], "test": [5]},
                        progress=True)
    s = open_subject(out)
    assert s.num_frames == T and s.mask(0) is None and s.audio_path() is None and s.body is None
    assert s.split == {"train": [0, 1], "test": [5]}
    assert len(s.warnings()) == 4 and any("estimate" in w for w in s.warnings())
    with pytest.raises(SubjectError, match="has.body_params"):
        s.params()


def test_params_conveniences(tmp_path, inputs):
    p = inputs["params"]
    inputs["params"] = {"pose": p["pose"].reshape(T, -1).astype(np.float64), "transl": torch.from_numpy(p["transl"]),
                        "betas": p["betas"][None]}
    s = open_subject(write_subject(tmp_path / "c", **inputs))
    q = s.params()
    assert q["pose"].shape == (T, J, 3) and q["betas"].shape == (10,) and q["expression"].shape == (T, 0)
    assert s.body["num_expressions"] == 0


@pytest.mark.parametrize("case, expected", [
    ("params_frames", "params: field 'pose' has shape (11, 55, 3), expected (12, 55, 3)"),
    ("nan_pose", "params: field 'pose' holds 1 non-finite value(s) (NaN at index (2, 5, 1))"),
    ("expression_shape", "params: field 'expression' has shape (12, 10, 1), expected (12, E)"),
    ("expression_vs_body", "params: field 'expression' has shape (12, 7), expected (12, 10)"),
    ("audio_short", "audio: audio lasts"),
    ("body_model", "body: field 'model' is 'smpl'"),
    ("no_body", "body: required when params are given"),
    ("split", "split: field 'train' holds indices outside 0..11: 12"),
    ("frame_dtype", "frames[0]: must be uint8"),
    ("frame_size", "camera: field 'width' is 32, but the frames are 31x24"),
    ("masks_count", "masks: 11 given for 12 frames"),
    ("mask_01", "masks[0]: uint8 mask holds only 0 and 1"),
    ("fps", "fps: must be a positive number"),
    ("camera", "camera: field 'world_to_cam' rotation part is not a rotation"),
    ("view_frames", "views['v']: field 'frames' holds indices outside 0..11: 40"),
    ("audio_stereo", "audio: samples must be a 1-D mono array"),
])
def test_bad_input_raises_and_leaves_nothing(tmp_path, case, expected):
    inp = make_inputs()
    p = inp["params"]
    if case == "params_frames":
        p["pose"] = p["pose"][:11]
    elif case == "nan_pose":
        p["pose"][2, 5, 1] = np.nan
    elif case == "expression_shape":
        p["expression"] = p["expression"][..., None]
    elif case == "expression_vs_body":
        p["expression"] = p["expression"][:, :7]
        inp["body"]["num_expressions"] = 10
    elif case == "audio_short":
        a, sr = inp["audio"]
        inp["audio"] = (a[: int(sr * (T - 2) / FPS)], sr)
    elif case == "body_model":
        inp["body"] = {"model": "smpl"}
    elif case == "no_body":
        inp["body"] = None
    elif case == "split":
        inp["split"] = {"train": [0, 12], "test": [11]}
    elif case == "frame_dtype":
        inp["frames"][0] = inp["frames"][0].astype(np.float32)
    elif case == "frame_size":
        inp["frames"] = [f[:, :31] for f in inp["frames"]]
    elif case == "masks_count":
        inp["masks"] = inp["masks"][:11]
    elif case == "mask_01":
        inp["masks"][0] = (inp["masks"][0] > 0).astype(np.uint8)
    elif case == "fps":
        inp["fps"] = 0
    elif case == "camera":
        cam = inp["camera"]
        inp["camera"] = {"K": cam.K, "world_to_cam": cam.world_to_cam * 2}
    elif case == "view_frames":
        inp["views"] = {"v": {"camera": inp["camera"], "frames": [40], "images": [inp["frames"][0]]}}
    elif case == "audio_stereo":
        a, sr = inp["audio"]
        inp["audio"] = (np.stack([a, a]), sr)
    with pytest.raises(SubjectError) as err:
        write_subject(tmp_path / "bad", **inp)
    assert any(expected in m for m in err.value.problems), err.value.problems
    assert leftovers(tmp_path) == []


def test_error_midway_through_a_generator_leaves_nothing(tmp_path):
    inp = make_inputs()
    frames = list(inp.pop("frames"))
    frames[7] = frames[7][:, :, :2]
    with pytest.raises(SubjectError, match=r"frames\[7\]: has shape \(24, 32, 2\)"):
        write_subject(tmp_path / "bad", frames=iter(frames), **inp)
    assert leftovers(tmp_path) == []
    inp2 = make_inputs()
    inp2["params"]["pose"] = inp2["params"]["pose"][:11]  # unknown frame count: caught at the end
    with pytest.raises(SubjectError, match="expected \\(12, 55, 3\\)"):
        write_subject(tmp_path / "bad", frames=iter(inp2.pop("frames")), **inp2)
    assert leftovers(tmp_path) == []


def test_all_problems_listed_at_once(tmp_path, inputs):
    inputs["params"]["pose"][0, 0, 0] = np.inf
    inputs["fps"] = -1
    inputs["background"] = [2, 0, 0]
    with pytest.raises(SubjectError) as err:
        write_subject(tmp_path / "bad", **inputs)
    assert len(err.value.problems) >= 3


def test_overwrite(tmp_path, inputs):
    out = write_subject(tmp_path / "s", **inputs)
    with pytest.raises(SubjectError, match="exists and is not empty"):
        write_subject(out, **inputs)
    inputs2 = make_inputs(seed=1)
    write_subject(out, **inputs2, overwrite=True)
    np.testing.assert_array_equal(open_subject(out).image(0), inputs2["frames"][0])
    assert leftovers(tmp_path) == ["s"]
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(SubjectError, match="not a thgs subject"):
        write_subject(other, **inputs, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    write_subject(tmp_path / "empty", **inputs)  # an empty folder is fine
    assert open_subject(tmp_path / "empty").num_frames == T


def test_streaming_writer(tmp_path, inputs):
    with SubjectWriter(tmp_path / "st", fps=FPS, width=W, height=H) as sw:
        for img, m in zip(inputs["frames"], inputs["masks"]):
            sw.add_frame(img, m)
        with pytest.raises(SubjectError, match="all frames or none"):
            sw.add_frame(inputs["frames"][0])  # rejected, writer still usable
        assert sw.num_frames == T
        sw.finish(camera=inputs["camera"], audio=inputs["audio"], params=inputs["params"], body=inputs["body"])
    s = open_subject(tmp_path / "st")
    assert s.problems() == [] and s.num_frames == T
    np.testing.assert_array_equal(s.image(T - 1), inputs["frames"][-1])
    # an exception inside the block, a failing finish, and abort() all leave nothing
    with pytest.raises(RuntimeError):
        with SubjectWriter(tmp_path / "x", fps=FPS, width=W, height=H) as sw:
            sw.add_frame(inputs["frames"][0])
            raise RuntimeError("boom")
    sw = SubjectWriter(tmp_path / "y", fps=FPS, width=W, height=H)
    sw.add_frame(inputs["frames"][0])
    with pytest.raises(SubjectError, match="params: field 'pose' has shape"):
        sw.finish(camera=inputs["camera"], params=inputs["params"], body=inputs["body"])
    with pytest.raises(RuntimeError, match="closed"):
        sw.add_frame(inputs["frames"][0])
    sw = SubjectWriter(tmp_path / "z", fps=FPS, width=W, height=H)
    sw.add_frame(inputs["frames"][0])
    sw.abort()
    assert leftovers(tmp_path) == ["st"]


def test_audio_from_file(tmp_path, inputs):
    """A 44.1 kHz stereo WAV is decoded (PyAV), mixed to mono and resampled to 16 kHz."""
    sr = 44100
    t = np.arange(int(T / FPS * sr) + 400) / sr
    left = 0.4 * np.sin(2 * np.pi * 300 * t)
    pcm = (np.stack([left, left], axis=1) * 32767).astype("<i2")
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(pcm.tobytes())
    inputs["audio"] = wav
    s = open_subject(write_subject(tmp_path / "s", **inputs))
    samples, rate = s.audio()
    assert rate == 16000 and abs(len(samples) - len(t) * 16000 / sr) <= 2
    ref = 0.4 * np.sin(2 * np.pi * 300 * np.arange(len(samples)) / 16000)
    assert np.abs(samples - ref)[100:-100].max() < 0.02
    inputs["audio"] = tmp_path / "missing.wav"
    with pytest.raises(SubjectError, match="audio: no such file"):
        write_subject(tmp_path / "t", **inputs)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    inputs["audio"] = tmp_path / "junk.wav"
    with pytest.raises(SubjectError, match="audio: cannot decode"):
        write_subject(tmp_path / "t", **inputs)
    assert not (tmp_path / "t").exists()


def test_add_features(subject_dir):
    add_features(subject_dir, "mel", np.zeros((T, 16, 4), np.float32))
    s = open_subject(subject_dir)
    assert s.feature_names == ["mel"] and s.features("mel").shape == (T, 16, 4)
    assert json.loads((subject_dir / "meta.json").read_text())["has"]["audio_features"] == ["mel"]
    with pytest.raises(SubjectError, match="first dimension num_frames = 12"):
        add_features(subject_dir, "bad", np.zeros((T + 1, 3)))
    with pytest.raises(SubjectError, match="not usable as a file name"):
        add_features(subject_dir, "../x", np.zeros((T, 3)))
    assert s.problems() == []
