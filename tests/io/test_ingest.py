from __future__ import annotations

import json

import numpy as np
import pytest

from thgs.cli import main
from thgs.data.subject import open_subject


def _run(*argv: str) -> int:
    return main(["ingest", *argv, "--quiet"])


def test_ingest_h264_aac(tmp_path, video_factory, capsys):
    video = video_factory(n=12, fps=10.0, audio_seconds=1.3)
    out = tmp_path / "subj"
    assert _run(str(video), str(out)) == 0
    s = open_subject(out)
    assert (s.num_frames, s.width, s.height, s.fps) == (12, 64, 48, 10.0)
    assert abs(np.median(s.image(5)[20:, 20:, 0]) - 50) <= 3
    audio, sr = s.audio()
    assert sr == 16000 and abs(len(audio) / sr - 1.2) < 0.01  # cut to the video's length
    meta = json.loads((out / "meta.json").read_text())
    assert meta["has"]["masks"] is False and meta["has"]["body_params"] is False
    assert meta["camera"]["estimated"] is True
    assert meta["camera"]["K"][0][0] == pytest.approx(1.2 * 64)
    assert meta["source"].startswith("ingest:v.mp4")
    assert s.problems() == []
    warnings = " ".join(s.warnings())
    assert "no foreground masks" in warnings and "no body parameters" in warnings
    printed = capsys.readouterr().out
    assert "12 frames, 64x48 at 10 fps" in printed and "no body parameters" in printed


def test_ingest_options(tmp_path, video_factory):
    video = video_factory(name="p.mkv", n=30, fps=10.0, sr=16000, channels=1)
    out = tmp_path / "o"
    assert _run(str(video), str(out), "--start", "0.5", "--max-seconds", "1.6", "--fps", "5", "--size", "24") == 0
    s = open_subject(out)
    assert (s.num_frames, s.width, s.height, s.fps) == (8, 32, 24, 5.0)
    # frame 0 is source frame 5 (grey 50); frame 1 is source frame 7
    assert abs(np.median(s.image(0)[12:, 12:, 0]) - 50) <= 3
    assert abs(np.median(s.image(1)[12:, 12:, 0]) - 66) <= 3
    assert abs(len(s.audio()[0]) / 16000 - 1.6) < 0.01


def test_ingest_rotated(tmp_path, video_factory):
    video = video_factory(n=4, size=(32, 64), rotation=-90)
    out = tmp_path / "r"
    assert _run(str(video), str(out)) == 0
    s = open_subject(out)
    assert (s.width, s.height) == (32, 64)
    assert s.image(0)[:4, -4:].mean() > 200  # marker moved to the top-right corner


def _assert_refused(capsys, tmp_path, out, *words):
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]


def test_ingest_without_audio_is_refused(tmp_path, video_factory, capsys):
    video = video_factory(name="mute.mp4", audio=False)
    out = tmp_path / "m"
    assert _run(str(video), str(out)) == 2
    _assert_refused(capsys, tmp_path, out, "mute.mp4", "no audio track")


def test_ingest_corrupt_and_truncated(tmp_path, video_factory, capsys):
    video = video_factory(n=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size * 2 // 3])
    out = tmp_path / "c"
    assert _run(str(cut), str(out)) == 2
    _assert_refused(capsys, tmp_path, out, "cut.mp4")
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    assert _run(str(junk), str(out)) == 2
    _assert_refused(capsys, tmp_path, out, "junk.mov")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _run(str(empty), str(out)) == 2
    _assert_refused(capsys, tmp_path, out, "empty.mp4", "empty")


def test_ingest_zero_frames(tmp_path, capsys):
    import av

    for name, vcodec, acodec in (("zero.mkv", "mpeg4", "pcm_s16le"), ("zero.mp4", "libx264", "aac")):
        path = tmp_path / name
        with av.open(str(path), "w") as c:  # headers written, no frame encoded
            s = c.add_stream(vcodec, rate=25)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            a = c.add_stream(acodec, rate=16000)
            a.layout = "mono"
            c.start_encoding()
        out = tmp_path / "z"
        assert _run(str(path), str(out)) == 2
        _assert_refused(capsys, tmp_path, out, name, "no frames")


def test_ingest_bad_options_and_existing_output(tmp_path, video_factory, capsys):
    video = video_factory(n=6)
    out = tmp_path / "e"
    assert _run(str(video), str(out), "--start", "5") == 2
    _assert_refused(capsys, tmp_path, out, "past the end")
    assert _run(str(video), str(out), "--fps", "0") == 2
    assert "--fps" in capsys.readouterr().err
    assert _run(str(video), str(out)) == 0
    before = (out / "meta.json").read_text()
    assert _run(str(video), str(out), "--size", "24") == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "meta.json").read_text() == before
    assert _run(str(video), str(out), "--size", "24", "--overwrite") == 0
    assert open_subject(out).height == 24


def test_ingest_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ingest", "--help"])
    assert e.value.code == 0
    assert "--max-seconds" in capsys.readouterr().out


def test_ingest_short_audio(tmp_path, video_factory, capsys):
    video = video_factory(name="short.mkv", n=12, fps=10.0, audio_seconds=0.9, sr=16000, channels=1)
    out = tmp_path / "a"
    assert _run(str(video), str(out)) == 2
    _assert_refused(capsys, tmp_path, out, "short.mkv", "0.900 s", "--pad-audio")
    assert _run(str(video), str(out), "--pad-audio") == 0
    assert len(open_subject(out).audio()[0]) == 19200
    nearly = video_factory(name="nearly.mkv", n=12, fps=10.0, audio_seconds=1.15, sr=16000, channels=1)
    out2 = tmp_path / "b"
    assert _run(str(nearly), str(out2)) == 0  # 50 ms short: padded without asking
    assert "padded with 0.050 s" in capsys.readouterr().out
    assert len(open_subject(out2).audio()[0]) == 19200


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_ingest_refuses_a_truncated_faststart_mp4(tmp_path, capsys, fraction):
    """An mp4 whose index is at the front opens and decodes its first part without an error once cut; it is
    still refused, with one line naming the file, exit code 2 and nothing on disk."""
    from conftest import cut, write_textured_video

    video = write_textured_video(tmp_path / "fs.mp4", n=40, faststart=True)
    assert _run(str(video), str(tmp_path / "whole")) == 0
    assert open_subject(tmp_path / "whole").num_frames == 40
    capsys.readouterr()
    short = cut(video, fraction, "half.mp4")
    out = tmp_path / "s"
    assert _run(str(short), str(out)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    _assert_refused_text(err, tmp_path, out, "half.mp4", "truncated")


def _assert_refused_text(err, tmp_path, out, *words):
    for w in words:
        assert w in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]
