"""Video decoding and encoding with PyAV.

Decoding streams frame by frame (never the whole video in memory), turns frames upright according to the
stream's display matrix (phone videos store landscape pixels plus a rotation), resamples to a constant frame
rate by frame selection, and optionally scales to a target height. Times are seconds from the first decoded
video frame.

Rotation convention: PyAV's ``VideoFrame.rotation`` is the display matrix's counter-clockwise angle (FFmpeg's
``av_display_rotation_get``); the picture is shown upright after rotating the decoded pixels that many degrees
counter-clockwise, which is ``np.rot90(image, k=rotation // 90)``. A legacy ``rotate`` stream tag (clockwise
degrees) is honoured when no display matrix is present.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from thgs.errors import ThgsError
from thgs.utils.io import atomic_path


class VideoError(ThgsError, ValueError):
    """The video is unreadable or unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` finds. ``width``/``height`` are the upright (displayed) size."""

    path: Path
    width: int
    height: int
    fps: float
    rate: Fraction
    duration: float | None
    num_frames: int | None  # the container's count (may be absent or approximate)
    rotation: int  # counter-clockwise degrees applied for display: 0, 90, 180 or -90
    variable_rate: bool  # frame times do not lie on a constant-rate grid at the average rate
    codec: str
    has_audio: bool
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None


@dataclass(frozen=True)
class DecodedFrame:
    """One output frame: ``index`` in the output sequence, ``time`` (s, from the first decoded frame),
    ``source_index`` the decoded frame it came from, ``image`` uint8 ``[H, W, 3]`` upright RGB."""

    index: int
    time: float
    source_index: int
    image: np.ndarray


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty")
    try:
        container = av.open(str(path))
    except av.error.EOFError as exc:  # type: ignore[attr-defined]
        raise VideoError(f"{path}: holds no frames (the file ends before any media data: a zero-length or "
                         "truncated recording)") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise VideoError(f"{path}: cannot open as a video ({exc.__class__.__name__}: {exc}); the file may be "
                         "truncated or corrupt") from exc
    if len(container.streams) == 0:
        container.close()
        raise VideoError(f"{path}: holds no frames (the container has no audio or video streams)")
    return container


def _tag_rotation(stream) -> int:
    tag = stream.metadata.get("rotate") if stream.metadata else None
    if tag is None:
        return 0
    try:
        return -int(round(float(tag)))  # the tag is clockwise
    except ValueError:
        return 0


def _norm_rotation(deg: float) -> int:
    """Round to a multiple of 90 in {0, 90, 180, -90}."""
    q = int(round(float(deg) / 90.0)) % 4
    return {0: 0, 1: 90, 2: 180, 3: -90}[q]


def _frame_rotation(frame, stream) -> int:
    rot = int(getattr(frame, "rotation", 0) or 0)
    return _norm_rotation(rot if rot else _tag_rotation(stream))


def stream_rate(stream) -> tuple[Fraction | None, bool]:
    """The frame rate to decode ``stream`` at, and whether its frame rate is variable.

    A constant-rate stream's average rate equals its base rate (FFmpeg's ``r_frame_rate``, the lowest rate on
    whose grid every timestamp lies). When they differ (dropped or repeated frames, e.g. phone recordings)
    the base rate is used, up to 120 fps, so that frame timing (and lip sync) is kept: gaps repeat the
    previous frame. Otherwise the average rate.
    """
    avg = stream.average_rate
    base = stream.base_rate
    if avg and base and float(avg) > 0 and float(base) > 0:
        if abs(float(avg) - float(base)) <= 1e-3 * float(base):
            return Fraction(avg), False
        if float(base) <= 120.0 and float(base) > float(avg):
            return Fraction(base), True
        return Fraction(avg), True
    rate = avg or stream.guessed_rate or base
    return (Fraction(rate) if rate and float(rate) > 0 else None), False


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open ``path``, decode its first frame (to read size and rotation) and describe it.

    Raises :class:`VideoError` when the file is missing, unreadable, has no video stream or no decodable frame.
    """
    import av

    path = Path(path)
    container = _open(path)
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        rate, variable = stream_rate(stream)
        if rate is None:
            raise VideoError(f"{path}: video stream has no frame rate")
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise VideoError(f"{path}: video stream is corrupt ({exc})") from exc
        if first is None:
            raise VideoError(f"{path}: video stream holds no frames")
        rotation = _frame_rotation(first, stream)
        w, h = int(first.width), int(first.height)
        if rotation in (90, -90):
            w, h = h, w
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000.0
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path, width=w, height=h, fps=float(rate), rate=Fraction(rate), duration=duration,
            num_frames=int(stream.frames) if stream.frames else None, rotation=rotation, variable_rate=variable,
            codec=stream.codec_context.name, has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
        )


def output_size(width: int, height: int, target_height: int | None) -> tuple[int, int]:
    """The output ``(width, height)``: unchanged without a target; else the target height and the width
    that keeps the aspect ratio, rounded to the nearest even number (at least 2)."""
    if target_height is None:
        return int(width), int(height)
    if target_height < 2:
        raise VideoError(f"output height must be >= 2, got {target_height}")
    w = max(2, int(round(width * target_height / height / 2.0)) * 2)
    return w, int(target_height)


def iter_frames(path: str | os.PathLike, *, start: float = 0.0, max_seconds: float | None = None,
                fps: float | None = None, height: int | None = None) -> Iterator[DecodedFrame]:
    """Decode ``path`` into upright RGB frames at a constant rate.

    Output frame ``k`` shows the source frame on screen at time ``start + k / fps`` (the last decoded frame
    whose time is at most a quarter of a source frame after it); ``fps`` defaults to :func:`stream_rate`,
    which reproduces every frame of a constant-rate video and keeps the timing of a variable-rate one.
    Stops after ``max_seconds`` of output.
    ``height`` scales frames to that height (even width, aspect kept; area filter when shrinking).

    Raises :class:`VideoError` (naming the file) when the video cannot be decoded, or, once decoding
    reaches the end of the stream, when it is truncated or corrupt (:func:`check_complete`).
    """
    import av

    path = Path(path)
    if start < 0:
        raise VideoError(f"{path}: start must be >= 0 s, got {start}")
    if max_seconds is not None and max_seconds <= 0:
        raise VideoError(f"{path}: max_seconds must be > 0, got {max_seconds}")
    if fps is not None and fps <= 0:
        raise VideoError(f"{path}: fps must be > 0, got {fps}")
    container = _open(path)
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate, _ = stream_rate(stream)
        src_rate = float(rate) if rate else None
        out_fps = float(fps) if fps else src_rate
        if not out_fps:
            raise VideoError(f"{path}: video stream has no frame rate; pass fps")
        tol = 0.25 / (src_rate or out_fps)
        end = start + max_seconds if max_seconds is not None else math.inf
        t0: float | None = None
        held = None  # (source_index, time, frame)
        k = 0
        j = -1

        def emit_until(limit: float) -> Iterator[DecodedFrame]:
            """Emit the held frame for every output time before ``limit``."""
            nonlocal k
            assert held is not None
            src_i, src_t, frame = held
            image = None
            while True:
                tk = start + k / out_fps
                if tk >= end - 1e-9 or tk >= limit - tol:
                    return
                if tk >= src_t - tol:
                    if image is None:
                        image = _to_rgb(frame, stream, height)
                    yield DecodedFrame(index=k, time=tk, source_index=src_i, image=image)
                k += 1

        packets = discarded = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
                    discarded += bool(packet.is_discard)
                    if packet.is_corrupt:
                        raise VideoError(f"{path}: video stream is truncated or corrupt: packet {packets} is "
                                         f"damaged (after {j + 1} decoded frame(s))")
                for frame in packet.decode():
                    j += 1
                    t = frame.time
                    if t is None:
                        t = j / (src_rate or out_fps)
                    if t0 is None:
                        t0 = t
                    t = t - t0
                    if held is not None:
                        yield from emit_until(t)
                        if start + k / out_fps >= end - 1e-9:
                            return
                    held = (j, t, frame)
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise VideoError(f"{path}: video stream is corrupt after {j + 1} decoded frame(s) ({exc})") from exc
        if held is None:
            raise VideoError(f"{path}: video stream holds no frames")
        duration = float(held[2].duration * held[2].time_base) if held[2].duration and held[2].time_base \
            else 1.0 / (src_rate or out_fps)
        check_complete(path, stream, packets=packets, discarded=discarded, decoded=j + 1,
                       decoded_end=(held[1] + duration), frame_period=1.0 / (src_rate or out_fps))
        yield from emit_until(held[1] + duration)


def declared_duration(stream) -> float | None:
    """The video stream's own duration in seconds, as its container declares it (an mp4/mov track
    duration, or a Matroska track's ``DURATION`` tag), or None."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:
        try:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


def check_complete(path: Path, stream, *, packets: int, decoded: int, decoded_end: float, frame_period: float,
                   discarded: int = 0) -> None:
    """Refuse a video stream decoded to its end that is shorter than its container declares.

    A truncated file whose index comes first (an mp4 written with ``movflags=faststart``, cut) opens and
    decodes its first part without an error; frame-threaded decoding also drops the frames of packets it
    cannot decode without raising. So, at the end of the stream: fewer packets than the container's frame
    count, fewer decoded frames than packets (less those the container marks to discard), or decoded frames
    ending more than half a frame period before the stream's declared duration all mean a truncated or
    corrupt file. Raises :class:`VideoError` naming the file and the figures.
    """
    declared = int(stream.frames or 0)
    if declared and packets < declared:
        raise VideoError(f"{path}: video is truncated: its container declares {declared} frames but only "
                         f"{packets} are in the file")
    if decoded < packets - discarded:
        raise VideoError(f"{path}: video stream is corrupt: {packets - discarded - decoded} of its {packets} "
                         "frames could not be decoded")
    dur = declared_duration(stream)
    if dur is not None and decoded_end < dur - 0.5 * frame_period:
        raise VideoError(f"{path}: video is truncated: its frames end at {decoded_end:.3f} s but its container "
                         f"declares {dur:.3f} s")


def _to_rgb(frame, stream, height: int | None) -> np.ndarray:
    rotation = _frame_rotation(frame, stream)
    w, h = int(frame.width), int(frame.height)
    if rotation in (90, -90):
        w, h = h, w  # upright size
    if height is not None and (height != h):
        ow, oh = output_size(w, h, height)
        if rotation in (90, -90):
            ow, oh = oh, ow
        interp = "AREA" if oh < frame.height else "BICUBIC"
        img = frame.reformat(width=ow, height=oh, format="rgb24", interpolation=interp).to_ndarray()
    else:
        img = frame.to_ndarray(format="rgb24")
    if rotation:
        img = np.rot90(img, k=rotation // 90)
    return np.ascontiguousarray(img)


def read_video_audio(path: str | os.PathLike, *, start: float = 0.0, duration: float | None = None,
                     sample_rate: int = 16000) -> np.ndarray:
    """The audio of ``path`` aligned to its video frames, mono float32 at ``sample_rate``.

    Sample ``n`` is the sound at video time ``start + n / sample_rate`` (video time 0 = the first decoded video
    frame); where the audio starts late or ends early it is filled with silence up to ``duration``. Decodes
    chunk by chunk, resampling with FFmpeg's resampler, channels averaged
    (:class:`thgs.io.audio_io.StreamResampler`).

    Raises :class:`VideoError` when the file has no audio stream or it is undecodable.
    """
    import av

    from thgs.io.audio_io import StreamResampler

    path = Path(path)
    container = _open(path)
    with container:
        if not container.streams.audio:
            raise VideoError(f"{path}: has no audio track")
        astream = container.streams.audio[0]
        t_video = _first_video_time(path)
        resampler = StreamResampler(int(sample_rate))
        chunks: list[np.ndarray] = []
        t_audio: float | None = None
        have = 0
        need_end = None if duration is None else start + duration
        try:
            for frame in container.decode(astream):
                if t_audio is None:
                    t_audio = frame.time if frame.time is not None else 0.0
                arr = resampler.push(frame)
                chunks.append(arr)
                have += arr.shape[0]
                if need_end is not None and t_audio + have / sample_rate - (t_video or 0.0) > need_end + 0.5:
                    break
            else:
                arr = resampler.flush()
                chunks.append(arr)
                have += arr.shape[0]
                declared = declared_duration(astream)
                if have and declared is not None and (t_audio or 0.0) + have / sample_rate < declared - 0.1:
                    raise VideoError(f"{path}: audio track is truncated: its samples end at "
                                     f"{(t_audio or 0.0) + have / sample_rate:.3f} s but its container declares "
                                     f"{declared:.3f} s")
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise VideoError(f"{path}: audio track is truncated or corrupt ({exc})") from exc
    if have == 0:
        raise VideoError(f"{path}: audio track holds no samples")
    samples = np.concatenate(chunks)
    offset = (t_audio or 0.0) - (t_video or 0.0)  # audio time 0 relative to video time 0
    first = int(round((start - offset) * sample_rate))
    if first < 0:
        samples = np.concatenate([np.zeros(-first, np.float32), samples])
        first = 0
    samples = samples[first:]
    if duration is not None:
        n = int(round(duration * sample_rate))
        samples = samples[:n]
    return np.ascontiguousarray(samples, dtype=np.float32)


def _first_video_time(path: Path) -> float | None:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return None
            for frame in c.decode(c.streams.video[0]):
                return frame.time
    except av.error.FFmpegError:  # type: ignore[attr-defined]
        return None
    return None


# ------------------------------------------------------------------------------------------- encoding
def pick_video_codec(preferred: Iterable[str] = ("libx264", "mpeg4")) -> str:
    """The first encoder in ``preferred`` that PyAV's FFmpeg provides."""
    import av

    for name in preferred:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # noqa: BLE001 - listed but not usable as an encoder
                continue
    raise VideoError(f"none of the video encoders {', '.join(preferred)} is available in PyAV's FFmpeg")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *,
                audio: tuple[np.ndarray, int] | None = None, codec: str | None = None,
                audio_codec: str | None = None, rotation: int = 0, crf: int = 18) -> Path:
    """Encode uint8 ``[H, W, 3]`` RGB frames (even width and height for yuv420p codecs) to ``path``,
    atomically. ``audio``: ``(samples [N] or [C, N] float in [-1, 1], sample_rate)``. ``rotation``
    (counter-clockwise degrees) is written as display metadata. ``codec`` defaults to libx264 (else mpeg4);
    ``audio_codec`` to AAC for .mp4/.m4a and 16-bit PCM otherwise.
    """
    import av

    path = Path(path)
    codec = codec or pick_video_codec()
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as out:
            vs = out.add_stream(codec, rate=rate)
            vs.pix_fmt = "yuv420p"
            if codec == "libx264":
                vs.options = {"crf": str(crf), "preset": "veryfast"}
            as_ = None
            if audio is not None:
                samples, sr = audio
                samples = np.asarray(samples, dtype=np.float32)
                if samples.ndim == 1:
                    samples = samples[None]
                acodec = audio_codec or ("aac" if path.suffix.lower() in (".mp4", ".m4a", ".mov") else
                                         "pcm_s16le")
                as_ = out.add_stream(acodec, rate=int(sr))
                as_.layout = "mono" if samples.shape[0] == 1 else "stereo"
            first = True
            n = 0
            for img in frames:
                img = np.ascontiguousarray(img, dtype=np.uint8)
                if first:
                    vs.height, vs.width = img.shape[:2]
                    if rotation:
                        vs.set_display_rotation(int(rotation))
                    first = False
                for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
                n += 1
            if n == 0:
                raise VideoError(f"{path}: no frames to write")
            for pkt in vs.encode():
                out.mux(pkt)
            if as_ is not None:
                _encode_audio(out, as_, samples, int(sr))
    return path


def _encode_audio(out, stream, samples: np.ndarray, sr: int) -> None:
    import av

    fmt = stream.codec_context.codec.audio_formats[0].name if stream.codec_context.codec.audio_formats else "s16"
    resampler = av.AudioResampler(format=fmt, layout=stream.layout.name, rate=sr)
    frame_size = stream.codec_context.frame_size or 1024
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    layout = "mono" if pcm.shape[0] == 1 else "stereo"
    pts = 0
    for s in range(0, pcm.shape[1], frame_size):
        chunk = pcm[:, s:s + frame_size]
        frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = sr
        frame.pts = pts
        pts += chunk.shape[1]
        for f in resampler.resample(frame):
            for pkt in stream.encode(f):
                out.mux(pkt)
    for f in resampler.resample(None):
        for pkt in stream.encode(f):
            out.mux(pkt)
    for pkt in stream.encode():
        out.mux(pkt)
