"""Speech encoders: audio samples -> a sequence of feature vectors at a fixed rate.

Every encoder takes 16 kHz mono float32 samples and returns a :class:`FeatureSequence` (``[S, C]`` values,
step rate in Hz, time of step 0). :func:`thgs.audio.features.frame_features` turns a sequence into
per-video-frame windows. Encoders are looked up by name (:func:`get_encoder`); each declares its options
with defaults, so a cache key is independent of whether a default was passed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from thgs.errors import ThgsError


class AudioFeatureError(ThgsError, ValueError):
    """Bad audio-feature request (unknown encoder or option, audio too short, missing model...)."""


SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FeatureSequence:
    """Encoder output: ``values`` float32 ``[S, C]``; step ``k`` describes the audio around time
    ``t0 + k / rate`` seconds from the start of the samples given to the encoder."""

    values: np.ndarray
    rate: float
    t0: float = 0.0


@dataclass
class Encoder:
    """Base class: subclasses set ``name``/``defaults`` and implement :meth:`encode`."""

    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    def encode(self, samples: np.ndarray, valid: tuple[int, int]) -> FeatureSequence:
        """Encode float32 mono 16 kHz ``samples`` ``[N]``; ``valid`` is the ``[start, end)`` sample range that
        is real audio (the rest is silence padding added by the caller)."""
        raise NotImplementedError

    @property
    def cacheable(self) -> bool:
        return True

    def cache_options(self) -> dict[str, Any]:
        """Options that determine the output (used in cache keys and sidecars)."""
        return dict(self.options)


def _resolve(name: str, defaults: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise AudioFeatureError(f"encoder {name!r}: unknown option(s) {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(defaults)) or 'none'}")
    out = dict(defaults)
    out.update({k: v for k, v in opts.items()})
    return out


class MelEncoder(Encoder):
    """Log-mel (or MFCC) features, no weights.

    Options: ``n_mels`` (64), ``win_ms`` (25), ``hop_ms`` (10 -> 100 Hz), ``f_min`` (0), ``f_max`` (8000),
    ``mfcc`` (0 = log-mel; k > 0 keeps k cepstral coefficients), ``top_db`` (80: dynamic-range floor),
    ``normalize`` ("utterance": per-band mean removed and divided by the global standard deviation over the
    real audio; "none": raw log10 power).
    """

    DEFAULTS: dict[str, Any] = {"n_mels": 64, "win_ms": 25.0, "hop_ms": 10.0, "f_min": 0.0, "f_max": 8000.0,
                                "mfcc": 0, "top_db": 80.0, "normalize": "utterance"}

    def __init__(self, **opts: Any) -> None:
        options = _resolve("mel", self.DEFAULTS, opts)
        options["n_mels"] = int(options["n_mels"])
        options["mfcc"] = int(options["mfcc"])
        for key in ("win_ms", "hop_ms", "f_min", "f_max", "top_db"):
            options[key] = float(options[key])
        if options["normalize"] not in ("utterance", "none"):
            raise AudioFeatureError(f"encoder 'mel': option normalize must be 'utterance' or 'none', "
                                    f"got {options['normalize']!r}")
        if not 8 <= options["n_mels"] <= 256:
            raise AudioFeatureError(f"encoder 'mel': n_mels must be in 8..256, got {options['n_mels']}")
        if not 0 <= options["mfcc"] <= options["n_mels"]:
            raise AudioFeatureError(f"encoder 'mel': mfcc must be in 0..n_mels, got {options['mfcc']}")
        if not 0 < options["hop_ms"] <= options["win_ms"] <= 100:
            raise AudioFeatureError("encoder 'mel': need 0 < hop_ms <= win_ms <= 100, got "
                                    f"hop_ms={options['hop_ms']}, win_ms={options['win_ms']}")
        if not 0 <= options["f_min"] < options["f_max"] <= SAMPLE_RATE / 2:
            raise AudioFeatureError(f"encoder 'mel': need 0 <= f_min < f_max <= {SAMPLE_RATE // 2}, got "
                                    f"{options['f_min']}, {options['f_max']}")
        super().__init__(options=options, name="mel", defaults=dict(self.DEFAULTS))

    @property
    def dim(self) -> int:
        return self.options["mfcc"] or self.options["n_mels"]

    def encode(self, samples: np.ndarray, valid: tuple[int, int]) -> FeatureSequence:
        import torch

        from thgs.audio.mel import dct_ii, log_mel

        o = self.options
        feats = log_mel(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), SAMPLE_RATE,
                        n_mels=o["n_mels"], win_ms=o["win_ms"], hop_ms=o["hop_ms"], f_min=o["f_min"],
                        f_max=o["f_max"], top_db=o["top_db"]).double()
        if o["mfcc"]:
            feats = dct_ii(feats, o["mfcc"])
        hop = int(round(SAMPLE_RATE * o["hop_ms"] / 1000.0))
        if o["normalize"] == "utterance":
            lo = min(max(0, -(-valid[0] // hop)), feats.shape[0] - 1)
            hi = max(lo + 1, min(feats.shape[0], valid[1] // hop + 1))
            ref = feats[lo:hi]
            std = float(ref.std(unbiased=False)) if ref.numel() > 1 else 0.0
            feats = (feats - ref.mean(dim=0, keepdim=True)) / max(std, 0.1)
        return FeatureSequence(values=feats.float().numpy(), rate=SAMPLE_RATE / hop, t0=0.0)


def _whisper(**opts: Any) -> Encoder:
    from thgs.audio.learned import WhisperTinyEncoder

    return WhisperTinyEncoder(**opts)


def _wav2vec2(**opts: Any) -> Encoder:
    from thgs.audio.learned import HFSpeechEncoder

    return HFSpeechEncoder("wav2vec2", **opts)


def _hubert(**opts: Any) -> Encoder:
    from thgs.audio.learned import HFSpeechEncoder

    return HFSpeechEncoder("hubert", **opts)


_ENCODERS: dict[str, Callable[..., Encoder]] = {"mel": MelEncoder, "whisper-tiny": _whisper,
                                                "wav2vec2": _wav2vec2, "hubert": _hubert}


def register_encoder(name: str, factory: Callable[..., Encoder]) -> None:
    """Make ``factory(**opts) -> Encoder`` available under ``name``."""
    _ENCODERS[name] = factory


def encoder_names() -> list[str]:
    """Names accepted by :func:`get_encoder` (plus ``precomputed``, handled by ``frame_features``)."""
    return sorted(_ENCODERS) + ["precomputed"]


def get_encoder(name: str, **opts: Any) -> Encoder:
    """Build the encoder ``name`` with options ``opts`` (unknown names or options raise AudioFeatureError)."""
    if name not in _ENCODERS:
        raise AudioFeatureError(f"unknown audio encoder {name!r}; choose one of {', '.join(encoder_names())}")
    return _ENCODERS[name](**opts)
