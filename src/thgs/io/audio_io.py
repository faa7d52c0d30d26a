"""Audio input and output: decode any audio (WAV, or the audio track of a video) with PyAV,
mix down to mono, resample, and write 16-bit PCM WAV files atomically.

Samples are float32 in [-1, 1]. Multichannel arrays are channels-first: ``[C, N]``.
"""

from __future__ import annotations

import os
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from thgs.errors import ThgsError
from thgs.utils.io import atomic_path


class AudioError(ThgsError, ValueError):
    """The audio input is unreadable or unusable; the message names the file or array and the problem."""


def read_audio(path: str | os.PathLike, *, mono: bool = True, stream_index: int | None = None
               ) -> tuple[np.ndarray, int]:
    """Decode the (first, or ``stream_index``-th) audio stream of ``path``.

    Returns ``(samples, sample_rate)``; ``samples`` is float32 ``[N]`` when ``mono`` (channels averaged),
    else ``[C, N]``. Raises :class:`AudioError` when the file cannot be opened, has no audio stream, or
    holds no decodable samples. Plain PCM WAV files (what subject folders hold) are read without PyAV.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    pcm = _read_pcm_wav(path)
    if pcm is not None and (stream_index or 0) == 0:
        samples, sample_rate = pcm
        if samples.shape[1] == 0:
            raise AudioError(f"{path}: audio stream holds no samples")
        return (to_mono(samples) if mono else samples), sample_rate
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise AudioError(f"{path}: cannot open as audio ({exc})") from exc
    with container:
        streams = list(container.streams.audio)
        if not streams:
            raise AudioError(f"{path}: has no audio stream")
        idx = stream_index or 0
        if idx >= len(streams):
            raise AudioError(f"{path}: audio stream {idx} requested but the file has {len(streams)}")
        stream = streams[idx]
        chunks: list[np.ndarray] = []
        sample_rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        try:
            for frame in container.decode(stream):
                sample_rate = int(frame.sample_rate)
                chunks.append(_frame_to_array(frame))
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise AudioError(f"{path}: audio stream is corrupt ({exc})") from exc
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise AudioError(f"{path}: audio stream holds no samples")
    channels = max(c.shape[0] for c in chunks)
    chunks = [c if c.shape[0] == channels else np.repeat(c[:1], channels, axis=0) for c in chunks]
    samples = np.concatenate(chunks, axis=1)
    if sample_rate <= 0:
        raise AudioError(f"{path}: audio stream has no sample rate")
    return (to_mono(samples) if mono else samples.astype(np.float32, copy=False)), sample_rate


def _read_pcm_wav(path: Path) -> tuple[np.ndarray, int] | None:
    """A 16-bit (or 8/32-bit integer) PCM WAV file as float32 ``[C, N]``; None when ``path`` is not one."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError):
        return None
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        return None
    if rate <= 0 or channels <= 0:
        return None
    n = data.size // channels
    return data[: n * channels].reshape(n, channels).T.copy(), rate


def _frame_to_array(frame) -> np.ndarray:
    """One decoded PyAV audio frame as float32 ``[C, n]`` in [-1, 1]."""
    arr = frame.to_ndarray()
    fmt = frame.format.name
    channels = len(frame.layout.channels)
    planar = frame.format.is_planar
    if not planar:  # packed: [1, n*C] interleaved
        arr = arr.reshape(-1, channels).T
    base = fmt.rstrip("p")
    if base in ("flt", "dbl"):
        out = arr.astype(np.float32)
    elif base == "s16":
        out = arr.astype(np.float32) / 32768.0
    elif base == "s32":
        out = arr.astype(np.float32) / 2147483648.0
    elif base == "u8":
        out = (arr.astype(np.float32) - 128.0) / 128.0
    elif base == "s64":
        out = (arr.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    else:  # pragma: no cover - every PyAV sample format is listed above
        raise AudioError(f"unsupported audio sample format {fmt!r}")
    return np.ascontiguousarray(out)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: ``[N]`` stays, ``[C, N]`` or ``[N, C]`` (the channel axis is the shorter one,
    at most 16 long) becomes float32 ``[N]``."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.ndim != 2:
        raise AudioError(f"audio samples must be [N] or [C, N], got shape {tuple(samples.shape)}")
    axis = 0 if samples.shape[0] <= samples.shape[1] else 1
    if samples.shape[axis] > 16:
        raise AudioError(f"audio samples of shape {tuple(samples.shape)}: cannot tell the channel axis "
                         "(expected [N] or [C, N] with at most 16 channels)")
    return samples.astype(np.float32).mean(axis=axis)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling of mono ``[N]`` (or ``[C, N]`` along the last axis) from ``sr_in`` to ``sr_out`` Hz.

    The output has ``round(N * sr_out / sr_in)`` samples.
    """
    from scipy.signal import resample_poly

    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    samples = np.asarray(samples, dtype=np.float32)
    if sr_in == sr_out:
        return samples
    ratio = Fraction(sr_out, sr_in)
    out = resample_poly(samples, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
    n_out = int(round(samples.shape[-1] * sr_out / sr_in))
    return np.ascontiguousarray(out[..., :n_out])


def load_audio(audio: str | os.PathLike | tuple[np.ndarray, int], sample_rate: int | None = None,
               *, name: str = "audio") -> tuple[np.ndarray, int]:
    """Accept a path or ``(samples, sample_rate)``; return float32 mono ``[N]`` at ``sample_rate``
    (or the native rate when ``None``). Stereo input is mixed down."""
    if isinstance(audio, (str, os.PathLike)):
        samples, sr = read_audio(audio)
        name = str(audio)
    elif isinstance(audio, tuple) and len(audio) == 2:
        samples, sr = audio
        if isinstance(samples, (str, os.PathLike)):
            raise AudioError(f"{name}: give a path or (samples, sample_rate), not ({samples!r}, {sr!r})")
        try:
            samples = to_mono(np.asarray(samples))
        except AudioError as exc:
            raise AudioError(f"{name}: {exc}") from exc
        sr = int(sr)
    else:
        raise AudioError(f"{name}: expected a path or a (samples, sample_rate) tuple, got {type(audio).__name__}")
    if sr <= 0:
        raise AudioError(f"{name}: sample rate must be positive, got {sr}")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: samples contain NaN or infinite values")
    if sample_rate is not None and sr != sample_rate:
        samples, sr = resample(samples, sr, sample_rate), int(sample_rate)
    return samples, sr


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write ``[N]`` mono or ``[C, N]`` float samples as 16-bit PCM WAV (clipped to [-1, 1]), atomically."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    if samples.ndim != 2 or samples.shape[0] > 16:
        raise AudioError(f"{path}: samples must be [N] or [C, N], got shape {tuple(samples.shape)}")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: samples contain NaN or infinite values")
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2").T.copy()
    path = Path(path)
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(samples.shape[0])
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())
    return path


def audio_duration(samples: np.ndarray, sample_rate: int) -> float:
    """Seconds of audio in ``[N]`` or ``[C, N]`` samples."""
    return float(np.asarray(samples).shape[-1]) / float(sample_rate)
