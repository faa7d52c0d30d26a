"""Audio input and output, the one place thgs decodes and resamples sound: decode any audio (WAV, or the
audio track of any container PyAV reads), mix down to mono, resample, and write 16-bit PCM WAV files
atomically.

Samples are float32 in [-1, 1]. Multichannel arrays are channels-first: ``[C, N]``.

Two resamplers, one for each kind of input: a file decoded at a target rate is resampled by FFmpeg while it
decodes (:class:`StreamResampler`, chunk by chunk, so a long recording is never held at its native rate);
an array in memory by polyphase filtering (:func:`resample`).
"""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from thgs.errors import ThgsError
from thgs.utils.io import atomic_path


class AudioError(ThgsError, ValueError):
    """The audio input is unreadable or unusable; the message names the file or array and the problem."""


class StreamResampler:
    """FFmpeg's resampler for one decoded audio stream: each PyAV audio frame pushed in comes out as planar
    float32 at ``sample_rate``; :meth:`flush` returns what the filter still holds at the end of the stream.

    Outputs are ``[C, n]``, or ``[n]`` with the channels averaged when ``mono`` (FFmpeg's own downmix to
    mono scales each channel by -3 dB, which would change the level)."""

    def __init__(self, sample_rate: int, *, mono: bool = True):
        import av

        self.sample_rate = int(sample_rate)
        self.mono = mono
        self._resampler = av.AudioResampler(format="fltp", rate=self.sample_rate)

    def _join(self, frames: list) -> np.ndarray:
        arrays = [f.to_ndarray().astype(np.float32, copy=False) for f in frames]
        arrays = [a.mean(axis=0) for a in arrays] if self.mono else arrays
        if not arrays:
            return np.zeros(0 if self.mono else (1, 0), np.float32)
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=-1)

    def push(self, frame) -> np.ndarray:
        """The samples FFmpeg returns for one decoded frame (possibly none yet)."""
        return self._join(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples left in the filter at the end of the stream."""
        return self._join(self._resampler.resample(None))


def read_audio(path: str | os.PathLike, *, mono: bool = True, stream_index: int | None = None,
               sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode the (first, or ``stream_index``-th) audio stream of ``path``.

    Returns ``(samples, sample_rate)``; ``samples`` is float32 ``[N]`` when ``mono`` (channels averaged),
    else ``[C, N]``. ``sample_rate`` None keeps the file's rate; a rate resamples while decoding
    (:class:`StreamResampler`). Raises :class:`AudioError` when the file cannot be opened, has no audio
    stream, or holds no decodable samples. Plain PCM WAV files (what subject folders hold) at the wanted
    rate are read without PyAV.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if sample_rate is not None and int(sample_rate) <= 0:
        raise AudioError(f"{path}: sample rate must be positive, got {sample_rate}")
    pcm = _read_pcm_wav(path) if (stream_index or 0) == 0 else None
    if pcm is not None and sample_rate in (None, pcm[1]):
        samples, rate = pcm
        if samples.shape[1] == 0:
            raise AudioError(f"{path}: audio stream holds no samples")
        return (to_mono(samples) if mono else samples), rate
    if sample_rate is None:
        return _decode_native(path, mono, stream_index)
    return _decode_resampled(path, mono, stream_index, int(sample_rate))


def _open_stream(path: Path, stream_index: int | None):
    """``(container, stream)`` of ``path``'s ``stream_index``-th audio stream, or AudioError."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise AudioError(f"{path}: cannot open as audio ({exc})") from exc
    streams = list(container.streams.audio)
    idx = stream_index or 0
    if not streams or idx >= len(streams):
        container.close()
        raise AudioError(f"{path}: has no audio stream" if not streams else
                         f"{path}: audio stream {idx} requested but the file has {len(streams)}")
    return container, streams[idx]


def _decode_resampled(path: Path, mono: bool, stream_index: int | None, sample_rate: int
                      ) -> tuple[np.ndarray, int]:
    import av

    container, stream = _open_stream(path, stream_index)
    resampler = StreamResampler(sample_rate, mono=mono)
    with container:
        try:
            chunks = [resampler.push(frame) for frame in container.decode(stream)]
            chunks.append(resampler.flush())
        except (av.error.FFmpegError, ValueError) as exc:  # type: ignore[attr-defined]
            raise AudioError(f"{path}: audio stream is corrupt ({exc})") from exc
    if sum(c.shape[-1] for c in chunks) == 0:
        raise AudioError(f"{path}: audio stream holds no samples")
    if not mono:
        channels = max(c.shape[0] for c in chunks)
        chunks = [c if c.shape[0] == channels else np.repeat(c[:1], channels, axis=0) for c in chunks]
    return np.ascontiguousarray(np.concatenate(chunks, axis=-1), dtype=np.float32), sample_rate


def _decode_native(path: Path, mono: bool, stream_index: int | None) -> tuple[np.ndarray, int]:
    import av

    container, stream = _open_stream(path, stream_index)
    with container:
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


WAV_ERRORS = (wave.Error, EOFError, OSError)
"""What :func:`read_wav` raises for a missing, unreadable or malformed WAV file."""


@dataclass(frozen=True)
class WavFormat:
    """A PCM WAV file's header: channels, bytes per sample, sample rate, samples per channel."""

    channels: int
    sample_width: int
    sample_rate: int
    num_samples: int


def read_wav(path: str | os.PathLike, *, samples: bool = True) -> tuple[WavFormat, bytes]:
    """The header of the PCM WAV file ``path`` and its raw little-endian sample bytes (``b""`` without
    ``samples``: the header only). Lets ``wave.Error``, ``EOFError`` and ``OSError`` through, for callers
    that name the file in their own terms (a subject's ``audio.wav``)."""
    with wave.open(str(path), "rb") as w:
        fmt = WavFormat(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
        raw = w.readframes(fmt.num_samples) if samples else b""
    return fmt, raw


def _read_pcm_wav(path: Path) -> tuple[np.ndarray, int] | None:
    """A 16-bit (or 8/32-bit integer) PCM WAV file as float32 ``[C, N]``; None when ``path`` is not one."""
    try:
        fmt, raw = read_wav(path)
    except WAV_ERRORS:
        return None
    width, channels, rate = fmt.sample_width, fmt.channels, fmt.sample_rate
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

    The output has ``round(N * sr_out / sr_in)`` samples; the filter runs in float64, the output is float32.
    """
    from scipy.signal import resample_poly

    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    samples = np.asarray(samples, dtype=np.float32)
    if sr_in == sr_out:
        return samples
    ratio = Fraction(sr_out, sr_in)
    out = resample_poly(samples.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
    n_out = int(round(samples.shape[-1] * sr_out / sr_in))
    return np.ascontiguousarray(out[..., :n_out])


def load_audio(audio: str | os.PathLike | tuple[np.ndarray, int], sample_rate: int | None = None,
               *, name: str = "audio") -> tuple[np.ndarray, int]:
    """Accept a path or ``(samples, sample_rate)``; return float32 mono ``[N]`` at ``sample_rate``
    (or the native rate when ``None``). Stereo input is mixed down. A file is decoded by :func:`read_audio`
    (resampled while decoding), an array resampled by :func:`resample`."""
    if isinstance(audio, (str, os.PathLike)):
        samples, sr = read_audio(audio, sample_rate=sample_rate)
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
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(wav_bytes(samples, sample_rate))
    return path


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """``[N]`` mono or ``[C, N]`` float samples as the bytes of a 16-bit PCM WAV file (clipped to [-1, 1],
    scaled by 32767)."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[None]
    pcm = np.clip(np.round(samples.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2").T.copy()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def audio_duration(samples: np.ndarray, sample_rate: int) -> float:
    """Seconds of audio in ``[N]`` or ``[C, N]`` samples."""
    return float(np.asarray(samples).shape[-1]) / float(sample_rate)
