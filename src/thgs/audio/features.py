"""Per-video-frame audio feature windows.

``frame_features(audio, num_frames, fps)`` encodes the audio (:mod:`thgs.audio.encoders`) and cuts, for each
video frame ``i``, a window of ``WINDOW`` (16) feature steps centred on the frame's centre time
``(i + 0.5) / fps`` (frame ``i`` covers ``[i / fps, (i + 1) / fps)``), sampled by linear interpolation
along the encoder's step times. The audio is padded with 0.5 s of silence on both sides before encoding, so
windows at the ends hold features of real silence rather than copies or zeros.

``neighbourhood(windows, idx)`` gathers the windows of frames ``idx - 4 .. idx + 3`` (zero padded), the input
of the temporal smoothing in the audio branch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thgs.audio.encoders import SAMPLE_RATE, AudioFeatureError, FeatureSequence, get_encoder
from thgs.io.audio_io import AudioError, load_audio
from thgs.utils.io import atomic_path, write_json

WINDOW = 16
"""Feature steps per video frame."""

PAD_SECONDS = 0.5
"""Silence added on both sides of the audio before encoding."""

FEATURES_VERSION = 1
"""Bumped whenever computed features change, so stale caches are never read."""


@dataclass
class AudioFeatures:
    """Audio features aligned to the video frames.

    ``windows``: float32 ``[T, S, C]`` (``S`` = 16 for every computed encoder; a precomputed file may carry
    another step count, e.g. HuBERT ``[T, 2, 1024]``); ``dim`` = ``C``; ``fps`` the video frame rate.
    """

    windows: np.ndarray
    encoder: str
    dim: int
    fps: float
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.windows.shape[0])

    def tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """``windows`` as a float32 tensor ``[T, S, C]`` on ``device``."""
        return torch.from_numpy(np.ascontiguousarray(self.windows, dtype=np.float32)).to(device)


# --------------------------------------------------------------------------------------------- windows
def window_sequence(seq: FeatureSequence, num_frames: int, fps: float, *, steps: int = WINDOW,
                    offset_s: float = 0.0) -> np.ndarray:
    """Cut per-frame windows out of a feature sequence.

    Frame ``i``'s step ``j`` samples the sequence at time ``(i + 0.5) / fps + (j - (steps - 1) / 2) / rate``
    (seconds of real audio; ``offset_s`` is where real audio starts in the encoder input). Values are linearly
    interpolated between neighbouring steps and clamped to the first/last step outside the sequence.

    Returns float32 ``[num_frames, steps, C]``.
    """
    values = np.asarray(seq.values, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] == 0:
        raise AudioFeatureError(f"encoder output must be [S, C] with S > 0, got {tuple(values.shape)}")
    centres = (np.arange(num_frames, dtype=np.float64) + 0.5) / float(fps)
    rel = (np.arange(steps, dtype=np.float64) - (steps - 1) / 2.0) / float(seq.rate)
    pos = (centres[:, None] + rel[None, :] + offset_s - seq.t0) * float(seq.rate)
    pos = np.clip(pos, 0.0, values.shape[0] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, values.shape[0] - 1)
    w = (pos - lo)[..., None].astype(np.float32)
    return (values[lo] * (1.0 - w) + values[hi] * w).astype(np.float32)


def resample_windows(arr: np.ndarray, num_frames: int, *, source_fps: float | None = None,
                     fps: float | None = None) -> np.ndarray:
    """Resample per-frame features ``[T', ...]`` linearly in time to ``[num_frames, ...]``.

    Without rates, both sequences are taken to span the same duration (centre-aligned:
    frame ``i`` reads source position ``(i + 0.5) T' / num_frames - 0.5``). With ``source_fps`` and ``fps``,
    frame ``i`` reads position ``(i + 0.5) / fps * source_fps - 0.5``. Positions are clamped to the ends.
    """
    arr = np.asarray(arr, dtype=np.float32)
    n_src = arr.shape[0]
    if n_src == 0:
        raise AudioFeatureError("cannot resample an empty feature array")
    i = np.arange(num_frames, dtype=np.float64) + 0.5
    if source_fps is not None and fps is not None:
        pos = i / float(fps) * float(source_fps) - 0.5
    else:
        if n_src == num_frames:
            return arr.copy()
        pos = i * n_src / num_frames - 0.5
    pos = np.clip(pos, 0.0, n_src - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_src - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (arr.ndim - 1)).astype(np.float32)
    return (arr[lo] * (1.0 - w) + arr[hi] * w).astype(np.float32)


def neighbourhood(windows: torch.Tensor, idx: int | torch.Tensor, size: int = 8) -> torch.Tensor:
    """Windows of the ``size`` frames around ``idx``: frames ``idx - size//2 .. idx + size//2 - 1``
    (``idx-4 .. idx+3`` for 8), zeros where a frame falls outside ``[0, T)``.

    Args:
        windows: ``[T, S, C]``.
        idx: a frame index (int or 0-d tensor) or a batch ``[B]`` of indices.
    Returns:
        ``[size, S, C]`` for a single index, ``[B, size, S, C]`` for a batch; same dtype/device as ``windows``.
    """
    if windows.dim() != 3:
        raise ValueError(f"windows must be [T, S, C], got shape {tuple(windows.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    single = not isinstance(idx, torch.Tensor) or idx.dim() == 0
    index = torch.as_tensor(idx, dtype=torch.long, device=windows.device).reshape(-1)
    t = windows.shape[0]
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= t):
        raise IndexError(f"frame index out of range [0, {t}): {index.tolist() if index.numel() < 9 else '...'}")
    offsets = torch.arange(size, device=windows.device) - size // 2
    frames = index[:, None] + offsets[None]  # [B, size]
    inside = (frames >= 0) & (frames < t)
    out = windows[frames.clamp(0, max(t - 1, 0))] * inside[..., None, None].to(windows.dtype)
    return out[0] if single else out


# ----------------------------------------------------------------------------------------------- main
def _audio_hash(samples: np.ndarray, sr: int) -> str:
    h = hashlib.sha256()
    h.update(f"{int(sr)}:{samples.shape[0]}:".encode())
    h.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    return h.hexdigest()


def _cache_key(encoder: str, options: dict[str, Any], audio_hash: str, num_frames: int, fps: float) -> str:
    blob = json.dumps({"v": FEATURES_VERSION, "encoder": encoder, "options": options, "audio": audio_hash,
                       "frames": int(num_frames), "fps": round(float(fps), 9)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    """``$THGS_CACHE_DIR/audio``, else ``$XDG_CACHE_HOME/thgs/audio``, else ``~/.cache/thgs/audio``."""
    if os.environ.get("THGS_CACHE_DIR"):
        return Path(os.environ["THGS_CACHE_DIR"]) / "audio"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "thgs" / "audio"


def _check_frames(num_frames: int, fps: float) -> None:
    if int(num_frames) != num_frames or num_frames < 1:
        raise AudioFeatureError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not np.isfinite(fps) or fps <= 0:
        raise AudioFeatureError(f"fps must be positive, got {fps!r}")


def load_precomputed(path: str | os.PathLike, num_frames: int, fps: float,
                     source_fps: float | None = None) -> AudioFeatures:
    """Read a ``.npy`` of per-frame features and resample it linearly in time to ``num_frames``.

    Accepts ``[T', S, C]`` windows (aud_eo ``[T', 16, 44]``, DeepSpeech ``[T', 16, 29]``, HuBERT ``[T', 2, 1024]``),
    kept as they are apart from the time axis, or a ``[T', C]`` sequence, cut into 16-step windows at rate
    ``source_fps`` (required for 2-D input). With ``source_fps`` the file must cover the video's duration.
    """
    _check_frames(num_frames, fps)
    path = Path(path)
    if not path.is_file():
        raise AudioFeatureError(f"{path}: precomputed feature file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AudioFeatureError(f"{path}: not a readable .npy array ({exc})") from exc
    if arr.dtype.kind not in "fiu" or arr.ndim not in (2, 3) or arr.shape[0] == 0 or 0 in arr.shape:
        raise AudioFeatureError(f"{path}: expected a numeric [T, S, C] or [T, C] array, got "
                                f"{arr.dtype} {tuple(arr.shape)}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise AudioFeatureError(f"{path}: contains NaN or infinite values")
    if source_fps is not None:
        have, need = arr.shape[0] / float(source_fps), num_frames / float(fps)
        if have + 1.0 / float(fps) < need:
            raise AudioFeatureError(f"{path}: covers {have:.3f} s at {source_fps} fps but the video lasts "
                                    f"{need:.3f} s ({num_frames} frames at {fps} fps)")
    if arr.ndim == 2:
        if source_fps is None:
            raise AudioFeatureError(f"{path}: a [T, C] feature sequence needs source_fps (its step rate)")
        windows = window_sequence(FeatureSequence(arr, float(source_fps), 0.5 / float(source_fps)),
                                  num_frames, fps)
    else:
        windows = resample_windows(arr, num_frames, source_fps=source_fps, fps=fps if source_fps else None)
    opts: dict[str, Any] = {"path": str(path)}
    if source_fps is not None:
        opts["source_fps"] = float(source_fps)
    return AudioFeatures(windows=windows, encoder="precomputed", dim=int(windows.shape[-1]), fps=float(fps),
                         options=opts)


def frame_features(audio: str | os.PathLike | tuple[np.ndarray, int] | None, num_frames: int, fps: float,
                   encoder: str = "mel", cache_dir: str | os.PathLike | None = None, *,
                   pad_audio: bool = False, **opts: Any) -> AudioFeatures:
    """Audio -> per-video-frame feature windows ``[num_frames, 16, C]``.

    Args:
        audio: a path (WAV or any file with an audio track) or ``(samples, sample_rate)``; samples float
            ``[N]`` mono or ``[C, N]`` (mixed down). Resampled to 16 kHz. Unused for ``precomputed``.
        num_frames, fps: the video the features align to.
        encoder: ``mel`` (default), any registered encoder, or ``precomputed`` (options ``path``,
            ``source_fps``).
        cache_dir: when given, results are stored there under a key of the audio content, encoder, options,
            frame count and fps, and read back on the next identical call.
        pad_audio: audio shorter than the video by more than one frame is an error unless this is set, in
            which case the missing end is silence.
        **opts: encoder options (unknown ones raise).
    """
    _check_frames(num_frames, fps)
    if encoder == "precomputed":
        unknown = sorted(set(opts) - {"path", "source_fps"})
        if unknown or "path" not in opts:
            raise AudioFeatureError("encoder 'precomputed' takes options path (required) and source_fps; got "
                                    f"{', '.join(sorted(opts)) or 'none'}")
        return load_precomputed(opts["path"], num_frames, fps, opts.get("source_fps"))
    enc = get_encoder(encoder, **opts)
    if audio is None:
        raise AudioFeatureError(f"encoder {encoder!r} needs audio (a path or (samples, sample_rate))")
    try:
        samples, sr = load_audio(audio)
    except AudioError as exc:
        raise AudioFeatureError(str(exc)) from exc
    options = enc.cache_options()
    cache_file = None
    if cache_dir is not None and enc.cacheable:
        key = _cache_key(encoder, options, _audio_hash(samples, sr), num_frames, fps)
        cache_file = Path(cache_dir) / f"{encoder}-{key}.npy"
        cached = _read_cached(cache_file, num_frames)
        if cached is not None:
            return AudioFeatures(windows=cached, encoder=encoder, dim=int(cached.shape[-1]), fps=float(fps),
                                 options=options)
    samples = load_audio((samples, sr), SAMPLE_RATE)[0]
    need = num_frames / float(fps)
    have = samples.shape[0] / SAMPLE_RATE
    if have + 1.0 / float(fps) < need and not pad_audio:
        name = str(audio) if isinstance(audio, (str, os.PathLike)) else "audio"
        raise AudioFeatureError(f"{name}: audio lasts {have:.3f} s but the video lasts {need:.3f} s "
                                f"({num_frames} frames at {fps:g} fps); pass pad_audio (--pad-audio) to pad "
                                "the end with silence")
    n_real = samples.shape[0]
    n_need = int(np.ceil(need * SAMPLE_RATE))
    pad = int(round(PAD_SECONDS * SAMPLE_RATE))
    tail = pad + max(0, n_need - n_real)
    padded = np.concatenate([np.zeros(pad, np.float32), samples, np.zeros(tail, np.float32)])
    seq = enc.encode(padded, valid=(pad, pad + n_real))
    windows = window_sequence(seq, num_frames, fps, offset_s=pad / SAMPLE_RATE)
    if not np.all(np.isfinite(windows)):  # pragma: no cover - encoders guard against log(0)
        raise AudioFeatureError(f"encoder {encoder!r} produced NaN or infinite features")
    if cache_file is not None:
        save_npy(cache_file, windows)
    return AudioFeatures(windows=windows, encoder=encoder, dim=int(windows.shape[-1]), fps=float(fps),
                         options=options)


def save_npy(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """``np.save`` through a temporary file renamed into place."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr))
    return path


def _read_cached(path: Path, num_frames: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None
    if arr.ndim != 3 or arr.shape[0] != num_frames or not np.all(np.isfinite(arr)):
        return None
    return arr.astype(np.float32, copy=False)


# -------------------------------------------------------------------------------------------- subjects
def _subject_audio(subject: Any) -> str | os.PathLike | tuple[np.ndarray, int]:
    get_path = getattr(subject, "audio_path", None)
    path = get_path() if callable(get_path) else None
    if path is not None and Path(path).is_file():
        return Path(path)
    get_audio = getattr(subject, "audio", None)
    audio = get_audio() if callable(get_audio) else None
    if audio is None:
        raise AudioFeatureError(f"subject {getattr(subject, 'name', '?')} ({getattr(subject, 'root', '?')}) "
                                "has no audio")
    return audio


def subject_features(subject: Any, encoder: str = "mel", *, cache_dir: str | os.PathLike | None = None,
                     pad_audio: bool = False, write_subject: bool = True, **opts: Any) -> AudioFeatures:
    """Features for every frame of a subject (:class:`thgs.data.subject.Subject`: ``root``, ``num_frames``,
    ``fps``, ``audio()``/``audio_path()``, ``features(name)``).

    * A name that is not a computed encoder (e.g. ``wav2vec2-eo`` imported from TalkingAvatar) is read with
      ``subject.features(name)`` and resampled linearly in time to the frame count if needed.
    * A computed encoder (``mel``, ...) reuses ``SUBJECT/features/<encoder>.npy`` only when its sidecar
      ``<encoder>.json`` records the same audio hash, options, frame count and fps; otherwise the result comes
      from the user cache (``cache_dir`` or :func:`default_cache_dir`, keyed by audio hash + encoder + options)
      or is computed and stored there. With ``write_subject``, a thgs-format subject without that file gets it
      (``thgs.data.writer.add_features``, which also lists it in meta.json) plus the sidecar.
    """
    from thgs.audio.encoders import encoder_names

    num_frames, fps = int(subject.num_frames), float(subject.fps)
    root = Path(subject.root)
    fpath = root / "features" / f"{encoder}.npy"
    side = fpath.with_suffix(".json")
    stored = getattr(subject, "features", None)
    if encoder == "precomputed":
        return frame_features(None, num_frames, fps, "precomputed", **opts)
    if encoder not in encoder_names():
        arr = stored(encoder) if callable(stored) else None
        if arr is None:
            raise AudioFeatureError(f"{fpath}: no such feature file, and {encoder!r} is not an encoder "
                                    f"(choose one of {', '.join(encoder_names())})")
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim < 2 or arr.shape[0] == 0:
            raise AudioFeatureError(f"{fpath}: expected [num_frames, ...] features, got shape {arr.shape}")
        if arr.shape[0] != num_frames:
            arr = resample_windows(arr, num_frames)
        return AudioFeatures(windows=arr, encoder=encoder, dim=int(arr.shape[-1]), fps=fps)
    enc = get_encoder(encoder, **opts)
    options = enc.cache_options()
    audio = _subject_audio(subject)
    try:
        samples, sr = load_audio(audio)
    except AudioError as exc:
        raise AudioFeatureError(str(exc)) from exc
    key = _cache_key(encoder, options, _audio_hash(samples, sr), num_frames, fps)
    if fpath.is_file() and side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("key") == key:
            arr = _read_cached(fpath, num_frames)
            if arr is not None:
                return AudioFeatures(windows=arr, encoder=encoder, dim=int(arr.shape[-1]), fps=fps,
                                     options=options)
    feats = frame_features((samples, sr), num_frames, fps, encoder,
                           cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
                           pad_audio=pad_audio, **opts)
    if write_subject and not fpath.exists() and (root / "meta.json").is_file() and os.access(root, os.W_OK):
        from thgs.data.format import SubjectError
        from thgs.data.writer import add_features

        try:
            write_json(side, {"key": key, "encoder": encoder, "options": options, "num_frames": num_frames,
                              "fps": fps, "version": FEATURES_VERSION})
            add_features(root, encoder, feats.windows)
        except (OSError, SubjectError):
            side.unlink(missing_ok=True)  # a read-only or foreign subject keeps working from the cache
    return feats
