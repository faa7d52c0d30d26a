"""A speech-like audio track synthesised in code, its phone track, and the audio -> mouth-shape function.

The voice is a source-filter model at 16 kHz:

- **source**: a glottal pulse train whose fundamental frequency (F0) follows a per-phrase declining contour
  with accents on stressed syllables, per-period jitter and shimmer, shaped by a spectral tilt (two one-pole
  low-passes and a first difference: about -6 dB per octave), plus a little breath noise;
- **filter**: a cascade of second-order resonators at the vowel's formants F1/F2/F3 (+ a fixed F4);
- **consonants**: stops (a closure that is silent, or carries a low voice bar when voiced, then a noise burst
  shaped by the place of articulation and, when voiceless, aspiration), fricatives (band-passed noise, with
  voicing for v/z), nasals (a low murmur) and approximants (voiced, with their own formants);
- **prosody**: syllables at 3-6 per second (onset consonant, vowel, optional coda), stress, phrases of 4-14
  syllables separated by pauses.

Every phone is a segment of samples; the list of segments is the *phone track* (``PhoneTrack``).

The mouth shape at a video frame is :func:`mouth_from_audio`: a deterministic function of the audio around
the frame (the 16-bit samples and the phone track that labels them): each phone has articulatory targets
(:data:`PHONE_TARGETS`: jaw_open, lip_round, lip_wide, lip_close); the opening coefficients are scaled by the
smoothed loudness of the waveform itself and everything is averaged over a Gaussian window centred on the
frame (coarticulation). Pauses give a closed mouth, vowels open it by their own amount, bilabials press the
lips together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000

VOWELS = ("a", "e", "i", "o", "u", "@")
CONSONANTS = ("p", "b", "m", "f", "v", "w", "t", "d", "n", "s", "z", "l", "k", "g", "sh")
PHONES: tuple[str, ...] = ("sil",) + VOWELS + CONSONANTS
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}

MOUTH_NAMES: tuple[str, ...] = ("jaw_open", "lip_round", "lip_wide", "lip_close")
"""Mouth-shape coefficients, each in [0, 1]: jaw opening, lip rounding (pucker/funnel), lip spreading
(stretch), lip closure (lips pressed together, the bilabials)."""

# Articulatory targets per phone: (jaw_open, lip_round, lip_wide, lip_close).
PHONE_TARGETS: dict[str, tuple[float, float, float, float]] = {
    "sil": (0.0, 0.0, 0.0, 0.0),
    "a": (0.95, 0.0, 0.35, 0.0),
    "e": (0.55, 0.0, 0.7, 0.0),
    "i": (0.3, 0.0, 1.0, 0.0),
    "o": (0.65, 0.85, 0.0, 0.0),
    "u": (0.3, 1.0, 0.0, 0.0),
    "@": (0.45, 0.1, 0.2, 0.0),
    "p": (0.0, 0.0, 0.0, 1.0),
    "b": (0.0, 0.0, 0.0, 1.0),
    "m": (0.0, 0.0, 0.0, 1.0),
    "f": (0.12, 0.0, 0.2, 0.55),
    "v": (0.12, 0.0, 0.2, 0.55),
    "w": (0.15, 0.95, 0.0, 0.0),
    "t": (0.22, 0.0, 0.3, 0.0),
    "d": (0.22, 0.0, 0.3, 0.0),
    "n": (0.22, 0.0, 0.3, 0.0),
    "s": (0.1, 0.0, 0.55, 0.0),
    "z": (0.1, 0.0, 0.55, 0.0),
    "l": (0.3, 0.0, 0.3, 0.0),
    "k": (0.3, 0.0, 0.2, 0.0),
    "g": (0.3, 0.0, 0.2, 0.0),
    "sh": (0.15, 0.7, 0.0, 0.0),
}
TARGET_TABLE = np.array([PHONE_TARGETS[p] for p in PHONES], dtype=np.float32)  # [P, M]
OPENING = np.array([True, True, True, False])  # coefficients scaled by loudness (lip_close is not)

# Formants (Hz) and bandwidths for the voiced phones.
FORMANTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((730, 1090, 2440), (90, 110, 160)),
    "e": ((530, 1840, 2480), (70, 110, 160)),
    "i": ((270, 2290, 3010), (60, 100, 170)),
    "o": ((570, 840, 2410), (80, 100, 160)),
    "u": ((300, 870, 2240), (60, 90, 150)),
    "@": ((500, 1500, 2500), (80, 110, 160)),
    "m": ((250, 1100, 2300), (90, 250, 300)),
    "n": ((250, 1700, 2600), (90, 250, 300)),
    "l": ((360, 1300, 2700), (80, 150, 200)),
    "w": ((300, 610, 2200), (70, 100, 150)),
    "v": ((300, 1400, 2400), (100, 200, 300)),
    "z": ((300, 1700, 2600), (100, 200, 300)),
    "b": ((200, 1100, 2300), (120, 300, 400)),
    "d": ((200, 1700, 2600), (120, 300, 400)),
    "g": ((200, 1500, 2400), (120, 300, 400)),
}
F4 = (3500.0, 250.0)

# Noise bands (Hz) of fricatives and stop bursts.
NOISE_BANDS: dict[str, tuple[float, float]] = {
    "s": (4000, 7600), "z": (4000, 7600), "sh": (1900, 5000), "f": (1200, 7600), "v": (1200, 7600),
    "p": (300, 1600), "b": (300, 1600), "t": (2800, 6500), "d": (2800, 6500), "k": (1300, 3000), "g": (1300, 3000),
}
STOPS = ("p", "b", "t", "d", "k", "g")
VOICED_STOPS = ("b", "d", "g")
FRICATIVES = ("f", "v", "s", "z", "sh")

VOWEL_RMS = 0.1
"""RMS of a fully stressed vowel; :func:`mouth_from_audio` measures loudness relative to it."""

# Relative RMS per phone class (times the syllable's stress).
_LEVEL = {"vowel": 1.0, "nasal": 0.35, "approx": 0.55, "fric": 0.3, "voiced_fric": 0.3, "burst": 0.45,
          "voice_bar": 0.06}

# Phone choice weights.
_ONSETS = ("p", "b", "m", "f", "v", "w", "t", "d", "n", "s", "z", "l", "k", "g", "sh")
_ONSET_W = np.array([8, 6, 8, 5, 3, 4, 9, 6, 7, 8, 3, 6, 6, 3, 3], dtype=float)
_CODAS = ("n", "m", "s", "t", "k", "l")
_CODA_W = np.array([6, 4, 5, 5, 3, 3], dtype=float)
_VOWEL_W = np.array([7, 6, 5, 5, 4, 6], dtype=float)


@dataclass
class PhoneTrack:
    """Phone segments covering the whole audio, in order, contiguous.

    Attributes:
        phones: [K] int phone ids (indices into :data:`PHONES`).
        starts: [K] int first sample of each segment.
        ends: [K] int one past the last sample (``ends[k] == starts[k + 1]``).
        stress: [K] float relative loudness of the segment's syllable (0 for silence).
    """

    phones: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    stress: np.ndarray

    @property
    def num_samples(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def per_sample(self) -> np.ndarray:
        """[N] int8 phone id of every sample."""
        return np.repeat(self.phones.astype(np.int8), self.ends - self.starts)

    def per_frame(self, fps: float, num_frames: int) -> np.ndarray:
        """[T] int phone id sounding at each frame's centre time (k + 0.5) / fps."""
        centres = np.minimum(((np.arange(num_frames) + 0.5) / fps * SAMPLE_RATE).astype(np.int64),
                             self.num_samples - 1)
        return self.per_sample()[centres].astype(np.int64)

    def as_array(self) -> np.ndarray:
        """[K, 3] int64 (phone id, start, end) for saving."""
        return np.stack([self.phones, self.starts, self.ends], axis=1).astype(np.int64)

    @staticmethod
    def from_array(arr: np.ndarray) -> PhoneTrack:
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"phone segments must have shape [K, 3], got {arr.shape}")
        return PhoneTrack(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2].astype(np.int64),
                          np.zeros(len(arr), dtype=np.float32))


def plan_phones(duration: float, rng: np.random.Generator) -> PhoneTrack:
    """Draw phrases, syllables and phones filling ``duration`` seconds (silence at both ends)."""
    n_total = int(round(duration * SAMPLE_RATE))
    segs: list[tuple[int, int, float]] = []  # (phone id, length in samples, stress)

    def add(phone: str, seconds: float, stress: float) -> None:
        segs.append((PHONE_INDEX[phone], max(1, int(round(seconds * SAMPLE_RATE))), stress))

    t = rng.uniform(0.25, 0.45)
    add("sil", t, 0.0)
    while True:
        rate = rng.uniform(3.0, 6.0)  # syllables per second in this phrase
        n_syl = int(rng.integers(4, 15))
        syllables: list[list[tuple[str, float, float]]] = []
        for s in range(n_syl):
            dur = rng.uniform(0.8, 1.2) / rate
            stress = float(rng.uniform(0.55, 1.0)) * (1.0 - 0.25 * s / n_syl)  # declination
            onset = str(rng.choice(_ONSETS, p=_ONSET_W / _ONSET_W.sum())) if rng.random() < 0.75 else None
            coda = str(rng.choice(_CODAS, p=_CODA_W / _CODA_W.sum())) if rng.random() < 0.3 else None
            vowel = str(rng.choice(VOWELS, p=_VOWEL_W / _VOWEL_W.sum()))
            c_on = rng.uniform(0.055, 0.09) if onset else 0.0
            c_co = rng.uniform(0.05, 0.08) if coda else 0.0
            v_len = max(0.06, dur - c_on - c_co)
            syl = ([(onset, c_on, stress)] if onset else []) + [(vowel, v_len, stress)]
            syllables.append(syl + ([(coda, c_co, stress)] if coda else []))
        # Drop whole syllables until the phrase ends at least 0.3 s before the end of the audio.
        while syllables and t + sum(p[1] for syl in syllables for p in syl) + 0.3 > duration:
            syllables.pop()
        if not syllables:
            break
        phrase = [p for syl in syllables for p in syl]
        length = sum(p[1] for p in phrase)
        pause = rng.uniform(0.3, 0.8)
        for p in phrase:
            add(*p)
        t += length
        if t + pause + 0.5 > duration:
            break
        add("sil", pause, 0.0)
        t += pause
    # Close with silence to the exact length.
    used = sum(s[1] for s in segs)
    if used < n_total:
        if segs[-1][0] == PHONE_INDEX["sil"]:
            segs[-1] = (segs[-1][0], segs[-1][1] + n_total - used, 0.0)
        else:
            segs.append((PHONE_INDEX["sil"], n_total - used, 0.0))
    phones = np.array([s[0] for s in segs], dtype=np.int64)
    lens = np.array([s[1] for s in segs], dtype=np.int64)
    ends = np.cumsum(lens)
    # Trim to the exact length (the last segment is silence and absorbs the rounding).
    if ends[-1] > n_total:
        keep = np.searchsorted(ends, n_total, side="left") + 1
        phones, ends, lens = phones[:keep], ends[:keep].copy(), lens[:keep]
        ends[-1] = n_total
    starts = np.concatenate([[0], ends[:-1]])
    stress = np.array([s[2] for s in segs[: len(phones)]], dtype=np.float32)
    return PhoneTrack(phones, starts, ends, stress)


def _resonator(freq: float, bw: float, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Second-order resonator (b, a) with unit gain at DC."""
    r = np.exp(-np.pi * bw / sr)
    a = np.array([1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r])
    return np.array([a.sum()]), a


def _formant_filter(x: np.ndarray, formants: tuple[float, ...], bws: tuple[float, ...]) -> np.ndarray:
    y = x
    for f, bw in list(zip(formants, bws)) + [F4]:
        b, a = _resonator(f, bw)
        y = signal.lfilter(b, a, y)
    return y


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sos = signal.butter(4, [lo, min(hi, SAMPLE_RATE / 2 - 200)], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, x)


def glottal_source(track: PhoneTrack, rng: np.random.Generator, f0_base: float) -> np.ndarray:
    """[N] voiced excitation: a jittered pulse train following a per-phrase declining F0 with accents."""
    n = track.num_samples
    t = np.arange(n) / SAMPLE_RATE
    f0 = np.full(n, f0_base, dtype=np.float64)
    sil = PHONE_INDEX["sil"]
    # Per-phrase declination: F0 falls ~15% from phrase start to end; stressed vowels get an accent bump.
    is_sil = track.phones == sil
    phrase_bounds = []
    k = 0
    while k < len(track.phones):
        if is_sil[k]:
            k += 1
            continue
        j = k
        while j < len(track.phones) and not is_sil[j]:
            j += 1
        phrase_bounds.append((track.starts[k], track.ends[j - 1]))
        k = j
    for a, b in phrase_bounds:
        frac = (np.arange(a, b) - a) / max(1, b - a)
        f0[a:b] *= 1.08 - 0.18 * frac
    for k in range(len(track.phones)):
        if PHONES[track.phones[k]] in VOWELS and track.stress[k] > 0.85:
            a, b = track.starts[k], track.ends[k]
            f0[a:b] *= 1.0 + 0.12 * np.sin(np.pi * np.linspace(0, 1, b - a))
    # Slow drift (vibrato-like) and per-period jitter.
    f0 *= 1.0 + 0.02 * np.sin(2 * np.pi * 4.7 * t + rng.uniform(0, 2 * np.pi))
    phase = np.cumsum(f0 / SAMPLE_RATE)
    n_pulses = int(phase[-1]) + 1
    jitter = 1.0 + 0.012 * rng.standard_normal(n_pulses)
    shimmer = 1.0 + 0.06 * rng.standard_normal(n_pulses)
    # Pulse k fires where the jittered phase crosses k.
    pulse_phase = np.arange(1, n_pulses) * 1.0
    pulse_phase = pulse_phase + np.cumsum(jitter[1:] - 1.0) * 0.5
    idx = np.searchsorted(phase, pulse_phase)
    idx = idx[(idx > 0) & (idx < n)]
    x = np.zeros(n)
    np.add.at(x, idx, shimmer[: len(idx)])
    # Spectral tilt: two one-pole low-passes (-12 dB/oct) and lip radiation (+6 dB/oct).
    x = signal.lfilter([1.0], [1.0, -0.97], x)
    x = signal.lfilter([1.0], [1.0, -0.9], x)
    x = np.diff(x, prepend=0.0)
    x += 0.02 * rng.standard_normal(n) * np.abs(x).mean() * 10  # breath noise
    return x


def _phone_class(p: str) -> str:
    if p in VOWELS:
        return "vowel"
    if p in ("m", "n"):
        return "nasal"
    if p in ("l", "w"):
        return "approx"
    if p in ("v", "z"):
        return "voiced_fric"
    if p in FRICATIVES:
        return "fric"
    if p in STOPS:
        return "stop"
    return "sil"


def _rms_normalise(x: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.mean(x * x)) if len(x) else 0.0
    return x / r if r > 1e-12 else x


def synthesize_speech(duration: float, seed: int = 0) -> tuple[np.ndarray, PhoneTrack]:
    """Synthesise ``duration`` seconds of speech-like audio.

    Returns:
        samples: [N] float32 mono at :data:`SAMPLE_RATE`, quantised to 16-bit steps (values k / 32767) so
            that a 16-bit WAV round trip is exact.
        track: the :class:`PhoneTrack` (N samples).
    """
    if duration <= 0.5:
        raise ValueError(f"speech duration must be more than 0.5 s, got {duration}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EEC]))
    track = plan_phones(duration, rng)
    n = track.num_samples
    f0_base = float(rng.uniform(105.0, 135.0)) if rng.random() < 0.5 else float(rng.uniform(175.0, 215.0))
    source = glottal_source(track, rng, f0_base)
    noise = rng.standard_normal(n)
    out = np.zeros(n)
    ramp = int(0.012 * SAMPLE_RATE)
    pad = int(0.03 * SAMPLE_RATE)
    for k in range(len(track.phones)):
        p = PHONES[track.phones[k]]
        cls = _phone_class(p)
        if cls == "sil":
            continue
        a, b = int(track.starts[k]), int(track.ends[k])
        lo, hi = max(0, a - ramp), min(n, b + ramp)
        stress = float(track.stress[k])
        seg = np.zeros(hi - lo)
        src_lo = max(0, lo - pad)
        if cls in ("vowel", "nasal", "approx", "voiced_fric"):
            fr, bw = FORMANTS[p]
            voiced = _formant_filter(source[src_lo:hi], fr, bw)[lo - src_lo:]
            seg += _LEVEL[cls] * _rms_normalise(voiced)
        if cls in ("fric", "voiced_fric"):
            band = _bandpass(noise[src_lo:hi], *NOISE_BANDS[p])[lo - src_lo:]
            seg += _LEVEL["fric"] * _rms_normalise(band)
        if cls == "stop":
            # Closure (silent, or a low voice bar), then the burst in the last ~30%, then aspiration.
            length = hi - lo
            burst_at = (a - lo) + int(0.68 * (b - a))
            burst_len = int(0.014 * SAMPLE_RATE)
            if p in VOICED_STOPS:
                fr, bw = FORMANTS[p]
                bar = _formant_filter(source[src_lo:hi], fr, bw)[lo - src_lo:]
                bar = signal.lfilter([0.06], [1.0, -0.94], bar)
                seg[: burst_at] += _LEVEL["voice_bar"] * _rms_normalise(bar)[:burst_at]
            env = np.zeros(length)
            tt = np.arange(length - burst_at)
            decay = burst_len if p in VOICED_STOPS else 2 * burst_len
            env[burst_at:] = np.exp(-tt / decay)
            band = _rms_normalise(_bandpass(noise[src_lo:hi], *NOISE_BANDS[p])[lo - src_lo:])
            seg += _LEVEL["burst"] * env * band * (0.7 if p in VOICED_STOPS else 1.0)
        # Raised-cosine ramps overlapping the neighbours give smooth transitions.
        win = np.ones(hi - lo)
        r_in, r_out = a - lo, hi - b
        if r_in > 0:
            win[: 2 * r_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(2 * r_in) / (2 * r_in))
        if r_out > 0:
            win[-2 * r_out:] = np.minimum(win[-2 * r_out:], 0.5 + 0.5 * np.cos(np.pi * np.arange(2 * r_out) / (2 * r_out)))
        out[lo:hi] += VOWEL_RMS * stress * seg * win
    out += 2e-4 * rng.standard_normal(n)  # room noise floor
    out = np.clip(out, -0.99, 0.99)
    q = np.round(out * 32767.0) / 32767.0
    return q.astype(np.float32), track


def loudness(samples: np.ndarray, window: float = 0.03) -> np.ndarray:
    """[N] loudness in [0, 1]: moving RMS over ``window`` seconds relative to :data:`VOWEL_RMS`, to the 0.7."""
    x = np.asarray(samples, dtype=np.float64)
    w = max(1, int(round(window * SAMPLE_RATE)))
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    half = w // 2
    idx = np.arange(len(x))
    lo = np.clip(idx - half, 0, len(x))
    hi = np.clip(idx - half + w, 0, len(x))
    rms = np.sqrt(np.maximum(c[hi] - c[lo], 0.0) / w)
    return np.clip(rms / VOWEL_RMS, 0.0, 1.0) ** 0.7


def mouth_from_audio(samples: np.ndarray, phone_per_sample: np.ndarray, fps: float, num_frames: int,
                     sigma: float = 0.02) -> np.ndarray:
    """The mouth shape at every video frame from the audio around it.

    Args:
        samples: [N] float mono audio at :data:`SAMPLE_RATE`.
        phone_per_sample: [N] int phone ids (:meth:`PhoneTrack.per_sample`).
        fps: video frame rate.
        num_frames: T.
        sigma: standard deviation (seconds) of the Gaussian window centred on each frame's centre time.
    Returns:
        [T, M] float32 coefficients named :data:`MOUTH_NAMES`, in [0, 1].
    """
    samples = np.asarray(samples)
    phone_per_sample = np.asarray(phone_per_sample)
    if samples.ndim != 1 or phone_per_sample.shape != samples.shape:
        raise ValueError(f"mouth_from_audio: samples {samples.shape} and phones {phone_per_sample.shape} "
                         "must be equal-length 1-D arrays")
    if phone_per_sample.min() < 0 or phone_per_sample.max() >= len(PHONES):
        raise ValueError("mouth_from_audio: phone ids out of range")
    n = len(samples)
    targets = TARGET_TABLE[phone_per_sample.astype(np.int64)]  # [N, M]
    loud = loudness(samples).astype(np.float32)
    per_sample = np.where(OPENING[None], targets * loud[:, None], targets)
    # Gaussian window around each frame centre (decimated by 4 samples: 4 kHz is plenty for a 20 ms window).
    step = 4
    half = int(3 * sigma * SAMPLE_RATE) // step
    offsets = np.arange(-half, half + 1) * step
    weights = np.exp(-0.5 * (offsets / (sigma * SAMPLE_RATE)) ** 2)
    centres = np.round((np.arange(num_frames) + 0.5) / fps * SAMPLE_RATE).astype(np.int64)
    idx = centres[:, None] + offsets[None]  # [T, W]
    valid = (idx >= 0) & (idx < n)
    w = weights[None] * valid
    vals = per_sample[np.clip(idx, 0, n - 1)]  # [T, W, M]
    out = (vals * w[..., None]).sum(1) / np.maximum(w.sum(1, keepdims=True), 1e-12)
    return out.astype(np.float32)
