import json

from thgs.cli import main

from .subject_fixtures import T, break_subject


def test_check_ok(subject_dir, capsys):
    assert main(["check", str(subject_dir)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("ok: 12 frames, 32x24, 25 fps, body toy (55 joints), train 3 / test 2")
    assert main(["check", str(subject_dir), "--json", "--full"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == [] and report["summary"].startswith(f"{T} frames")


def test_check_prints_every_problem(subject_dir, capsys):
    break_subject(subject_dir, "missing_image")
    break_subject(subject_dir, "nan_pose")
    assert main(["check", str(subject_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "images/000005.png: missing (meta.json field 'num_frames' is 12)" in out
    assert any(line.startswith("params.npz: field 'pose' holds 1 non-finite value(s)") for line in out)
    assert main(["check", str(subject_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and len(report["problems"]) == 2


def test_check_broken_meta_and_bad_path(subject_dir, tmp_path, capsys):
    break_subject(subject_dir, "missing_meta_key")
    assert main(["check", str(subject_dir)]) == 1
    assert "meta.json: field 'fps' is missing" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_check_warnings(tmp_path, capsys):
    from thgs.data import write_subject

    from .subject_fixtures import make_inputs

    inp = make_inputs()
    for key in ("masks", "params", "body", "audio"):
        inp.pop(key)
    write_subject(tmp_path / "bare", **inp)
    assert main(["check", str(tmp_path / "bare")]) == 0
    out = capsys.readouterr().out
    assert "warning: masks/: no foreground masks" in out and "warning: params.npz: no body parameters" in out
    assert "ok: 12 frames" in out and "no body" in out


def _corrupt_frame(subject_dir, i: int):
    """Frame i's PNG with its pixel data cut short (the header still reads fine)."""
    path = subject_dir / "images" / f"{i:06d}.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_check_decodes_every_frame_by_default(subject_dir, capsys):
    _corrupt_frame(subject_dir, 7)  # not among the first, last or evenly spaced 3
    assert main(["check", str(subject_dir), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "images/000007.png: cannot be decoded, the file is truncated or corrupt" in out
    assert "sampled" not in out
    # sampling 3 frames (0, 6, 11) misses it, and says plainly that it sampled
    assert main(["check", str(subject_dir), "--sample", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sampled: decoded the images and masks of 3 of 12 frames" in out and out.strip().splitlines()[-1].startswith("ok:")
    assert main(["check", str(subject_dir), "--sample", "3", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decoded"] == "sample" and "3 of 12" in report["sampled"]
    assert main(["check", str(subject_dir), "--sample", "0"]) == 2
    assert "--sample must be at least 1" in capsys.readouterr().err


def test_check_shows_progress_on_stderr(subject_dir, capsys):
    assert main(["check", str(subject_dir)]) == 0
    captured = capsys.readouterr()
    assert "decoding images" in captured.err and captured.out.startswith("ok:")


def test_reading_a_corrupt_frame_raises_subject_error_naming_it(subject_dir):
    import pytest

    from thgs.data import SubjectError, open_subject

    _corrupt_frame(subject_dir, 4)
    subject = open_subject(subject_dir)
    subject.image(3)
    with pytest.raises(SubjectError) as err:
        subject.image(4)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{subject_dir}: images/000004.png: cannot be decoded")
