import hashlib
import wave

import numpy as np
import pytest

from thgs.cli import main
from thgs.data.subject import open_subject
from thgs.synth import speech as sp
from thgs.synth.generate import array_to_names, names_to_array


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "s"
    assert main(["synth", str(out), "--seconds", "4", "--size", "128", "--body", "toy"]) == 0
    return out


def test_synth_toy_subject_passes_check(subject, capsys):
    sub = open_subject(subject)
    assert sub.problems() == []
    assert main(["check", str(subject)]) == 0
    assert (sub.num_frames, sub.width, sub.height, sub.fps) == (100, 228, 128, 25.0)
    assert sub.body["model"] == "toy"
    assert sub.split["test"] == list(range(84, 100)) and sub.split["train"] == list(range(0, 84, 4))
    p = sub.params()
    assert p["pose"].shape == (100, 55, 3) and p["expression"].shape == (100, 8) and p["betas"].shape == (4,)
    assert sorted(sub.views) == ["yaw-15", "yaw-30", "yaw15", "yaw30"]


def test_frames_masks_and_views_are_consistent(subject):
    sub = open_subject(subject)
    img, mask = sub.image(90), sub.mask(90)
    assert mask is not None and 0.1 < (mask > 0).mean() < 0.6
    assert ((mask > 0) & (mask < 255)).any()  # anti-aliased edges
    assert (img[mask == 0] == 255).all()  # composited on white
    assert (img[mask == 255] < 250).any(axis=-1).mean() > 0.9
    front = img.astype(np.int32)
    for name in sub.views:
        v = sub.view(name, 90).astype(np.int32)
        assert v.shape == front.shape
        assert np.abs(v - front).mean() > 3  # another viewpoint
    # the two mirrored views differ (the body is not symmetric in motion)
    assert not np.array_equal(sub.view("yaw15", 90), sub.view("yaw-15", 90))


def test_fine_detail_punishes_blur(subject):
    sub = open_subject(subject)
    img = sub.image(50).astype(np.float64)
    m = sub.mask(50) == 255
    k = np.ones(3) / 3
    blur = img.copy()
    for axis in (0, 1):
        blur = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), axis, blur)
    mse = ((img - blur)[m] ** 2).mean()
    psnr = 10 * np.log10(255.0 ** 2 / mse)
    assert psnr < 32  # a 3x3 box blur already costs a lot inside the person


def test_truth_mouth_is_a_function_of_the_saved_audio(subject):
    sub = open_subject(subject)
    truth = sub.truth()
    assert array_to_names(truth["mouth_names"]) == list(sp.MOUTH_NAMES)
    assert array_to_names(truth["phone_names"]) == list(sp.PHONES)
    track = sp.PhoneTrack.from_array(truth["phone_segments"])
    audio, sr = sub.audio()
    assert sr == sp.SAMPLE_RATE and len(audio) == track.num_samples == 4 * sp.SAMPLE_RATE
    again = sp.mouth_from_audio(audio, track.per_sample(), sub.fps, sub.num_frames)
    assert np.array_equal(again, truth["mouth"])
    assert np.array_equal(track.per_frame(sub.fps, sub.num_frames), truth["phone_frames"])
    # the mouth drives the body: the toy's jaw joint opens with jaw_open
    jaw = sub.params()["pose"][:, 22, 0]
    assert np.corrcoef(jaw, truth["mouth"][:, 0])[0, 1] > 0.999


def _digest(path):
    sub = open_subject(path)
    h = hashlib.sha256()
    for i in (0, 5, sub.num_frames - 1):
        h.update(sub.image(i).tobytes())
        h.update(sub.mask(i).tobytes())
    for name in sorted(sub.views):
        h.update(sub.view(name, sub.split["test"][0]).tobytes())
    with wave.open(str(path / "audio.wav")) as w:
        h.update(w.readframes(w.getnframes()))
    for k, v in sorted(sub.params().items()):
        h.update(k.encode() + v.tobytes())
    for k, v in sorted(sub.truth().items()):
        h.update(k.encode() + v.tobytes())
    return h.hexdigest()


def test_same_seed_same_subject(tmp_path):
    args = ["--body", "toy", "--seconds", "1.2", "--size", "40", "--views", "20", "--no-progress"]
    assert main(["synth", str(tmp_path / "a"), *args]) == 0
    assert main(["synth", str(tmp_path / "b"), *args]) == 0
    assert main(["synth", str(tmp_path / "c"), *args, "--seed", "1"]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert open_subject(tmp_path / "a").width == 71  # 16:9
    assert main(["synth", str(tmp_path / "p"), *args, "--portrait"]) == 0
    assert (open_subject(tmp_path / "p").width, open_subject(tmp_path / "p").height) == (22, 40)


def test_bad_input_changes_nothing(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["synth", str(out), "--seconds", "0.2", "--body", "toy"]) == 2
    assert "--seconds" in capsys.readouterr().err and not out.exists()
    assert main(["synth", str(out), "--size", "8", "--body", "toy"]) == 2
    assert main(["synth", str(out), "--views", "10", "10", "--body", "toy"]) == 2
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["synth", str(out), "--seconds", "1", "--size", "32", "--body", "toy", "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_names_round_trip():
    names = ("jaw_open", "lip_round", "x1")
    arr = names_to_array(names)
    assert arr.dtype == np.uint8 and array_to_names(arr) == list(names)


def test_anny_subject(tmp_path):
    from thgs.body import anny

    out = tmp_path / "a"
    assert main(["synth", str(out), "--seconds", "1.2", "--size", "64", "--views", "15", "--no-progress"]) == 0
    sub = open_subject(out)
    assert sub.problems() == [] and sub.body["model"] == "anny"
    body = anny.load()
    p, truth = sub.params(), sub.truth()
    assert p["pose"].shape == (sub.num_frames, body.num_joints, 3)
    # no jaw bone: the mouth opens through the jawOpen expression
    jaw_open = p["expression"][:, body.expression_names.index("jawOpen")]
    assert np.corrcoef(jaw_open, truth["mouth"][:, 0])[0, 1] > 0.999
    assert (sub.mask(10) > 0).mean() > 0.05


def test_contact_sheet(subject, tmp_path):
    from PIL import Image

    from thgs.synth.contact import contact_sheet, pick_frames

    picks = pick_frames(open_subject(subject).truth())
    assert len(picks) >= 4 and len({i for i, _ in picks}) == len(picks)
    png = contact_sheet(subject, tmp_path / "sheet.png")
    w, h = Image.open(png).size
    cw = round(128 * 0.7)
    assert w == 5 * cw and h == 2 * 128 + cw


def test_parallel_rendering_gives_identical_images():
    import numpy as np

    from thgs.synth.generate import SynthConfig, synthesize

    cfg = SynthConfig(body="toy", seconds=2.4, size=48, views=(20.0,))
    one = synthesize(cfg, workers=1)
    two = synthesize(cfg, workers=2)
    assert len(one.frames) == len(two.frames) == 60
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, two.frames))
    assert all(np.array_equal(a, b) for a, b in zip(one.masks, two.masks))
    v1, v2 = one.views["yaw20"], two.views["yaw20"]
    assert v1["frames"] == v2["frames"] and len(v1["frames"]) == 10
    assert all(np.array_equal(a, b) for a, b in zip(v1["images"], v2["images"]))
