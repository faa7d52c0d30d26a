from __future__ import annotations

import numpy as np
import pytest

from thgs.io.audio_io import read_audio, resample, to_mono, write_wav
from thgs.io.video import VideoError, iter_frames, output_size, probe_video, read_video_audio


def test_probe_and_decode_all_frames(video_factory):
    p = video_factory(n=12, fps=10.0)
    info = probe_video(p)
    assert (info.width, info.height, info.fps, info.rotation) == (64, 48, 10.0, 0)
    assert info.has_audio and info.audio_codec in ("aac", "pcm_s16le") and not info.variable_rate
    frames = list(iter_frames(p))
    assert [f.source_index for f in frames] == list(range(12))
    levels = [int(np.median(f.image[20:, 20:, 1])) for f in frames]
    assert all(abs(lv - (10 + 8 * k)) <= 3 for k, lv in enumerate(levels))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8


@pytest.mark.parametrize("rotation,corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_rotation_metadata_makes_frames_upright(video_factory, rotation, corner):
    # stored pixels: 64 wide x 32 high, marker top-left; the display matrix turns them counter-clockwise
    p = video_factory(n=3, size=(32, 64), rotation=rotation)
    info = probe_video(p)
    img = next(iter_frames(p)).image
    assert info.rotation == rotation
    expect = (32, 64, 3) if rotation == 180 else (64, 32, 3)
    assert img.shape == expect and (info.height, info.width) == expect[:2]
    h, w = img.shape[:2]
    corners = {"top-left": img[:4, :4], "top-right": img[:4, w - 4:], "bottom-left": img[h - 4:, :4],
               "bottom-right": img[h - 4:, w - 4:]}
    bright = [k for k, v in corners.items() if v.mean() > 200]
    assert bright == [corner]


def test_fps_selection_start_and_size(video_factory):
    p = video_factory(n=20, fps=10.0)
    five = list(iter_frames(p, fps=5.0))
    assert [f.source_index for f in five] == list(range(0, 20, 2))
    part = list(iter_frames(p, start=0.5, max_seconds=0.8))
    assert [f.source_index for f in part] == list(range(5, 13))
    small = next(iter_frames(p, height=24)).image
    assert small.shape == (24, 32, 3)
    assert output_size(1080, 1920, 513) == (288, 513)
    assert output_size(700, 700, 301)[0] % 2 == 0


def test_variable_rate_keeps_timing(tmp_path):
    import av
    from fractions import Fraction

    path = tmp_path / "vfr.mkv"
    kept = [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 14]  # frames 3, 7, 13 of a 30 fps grid were dropped
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 30)
        for k in kept:
            fr = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 + 15 * k, np.uint8), format="rgb24")
            fr.pts, fr.time_base = k, Fraction(1, 30)
            for pkt in s.encode(fr):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    frames = list(iter_frames(path))
    assert probe_video(path).fps == pytest.approx(30.0)
    # every grid slot is filled; a dropped frame repeats its predecessor
    assert [f.source_index for f in frames][:15] == [0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 10, 11]


def test_audio_alignment(video_factory):
    p = video_factory(name="a.mkv", n=20, fps=10.0, sr=48000, click_at=1.2)
    a = read_video_audio(p, start=0.5)
    assert abs(int(np.argmax(a)) / 16000 - 0.7) < 0.004
    b = read_video_audio(p, start=0.0, duration=1.0)
    assert b.shape == (16000,)


def test_errors_name_the_file(tmp_path, video_factory):
    bad = tmp_path / "junk.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="junk.mp4"):
        probe_video(bad)
    with pytest.raises(VideoError, match="no such video"):
        probe_video(tmp_path / "missing.mp4")
    p = video_factory(n=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        list(iter_frames(cut))
    silent = video_factory(name="silent.mp4", audio=False)
    with pytest.raises(VideoError, match="no audio track"):
        read_video_audio(silent)


def test_audio_io_roundtrip(tmp_path):
    sr = 22050
    x = np.sin(np.arange(sr) / sr * 2 * np.pi * 200).astype(np.float32) * 0.5
    p = write_wav(tmp_path / "s.wav", np.stack([x, -x * 0.5]), sr)
    y, r = read_audio(p, mono=False)
    assert r == sr and y.shape == (2, sr)
    np.testing.assert_allclose(y[1], -x * 0.5, atol=1e-4)
    m, _ = read_audio(p)
    np.testing.assert_allclose(m, to_mono(np.stack([x, -x * 0.5])), atol=1e-4)
    z = resample(x, sr, 16000)
    assert z.shape == (16000,)
    assert list(tmp_path.iterdir()) == [p]


@pytest.mark.parametrize("name,faststart", [("fs.mp4", True), ("plain.mp4", False), ("v.mkv", False)])
def test_truncated_videos_are_refused_whatever_the_layout(tmp_path, name, faststart):
    from conftest import cut, write_textured_video

    video = write_textured_video(tmp_path / name, n=40, faststart=faststart)
    if faststart:
        data = video.read_bytes()
        assert data.find(b"moov") < data.find(b"mdat")  # the index really is at the front
    assert sum(1 for _ in iter_frames(video)) == 40  # the whole file decodes and passes the checks
    for fraction in (0.5, 0.95):
        short = cut(video, fraction, f"cut{int(fraction * 100)}{video.suffix}")
        with pytest.raises(VideoError, match=rf"cut{int(fraction * 100)}{video.suffix}.*(truncated|corrupt)"):
            list(iter_frames(short))
    # stopping before the damage reads the intact part (a span of a long file)
    short = cut(video, 0.8, "cut-span" + video.suffix)
    try:
        frames = list(iter_frames(short, max_seconds=0.4))
    except VideoError as exc:  # an index-at-the-end file cannot be opened at all once cut
        assert not faststart and "cut-span" in str(exc)
    else:
        assert len(frames) == 10


def test_corrupt_packets_in_a_faststart_mp4_are_refused(tmp_path):
    from conftest import write_textured_video

    video = write_textured_video(tmp_path / "ok.mp4", n=40, faststart=True, audio=False)
    data = bytearray(video.read_bytes())
    start = data.find(b"mdat") + 8
    mid = start + (len(data) - start) // 2
    data[mid:mid + 3000] = np.random.default_rng(1).integers(0, 255, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "scrambled.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="scrambled.mp4"):
        list(iter_frames(bad))
