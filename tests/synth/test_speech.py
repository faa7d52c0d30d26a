import numpy as np
import pytest

from thgs.synth import speech as sp

FPS = 25.0


@pytest.fixture(scope="module")
def clip():
    samples, track = sp.synthesize_speech(12.0, seed=3)
    T = int(12.0 * FPS)
    mouth = sp.mouth_from_audio(samples, track.per_sample(), FPS, T)
    return samples, track, mouth, T


def test_audio_and_phone_track_are_consistent(clip):
    samples, track, mouth, T = clip
    assert samples.dtype == np.float32 and samples.shape == (12 * sp.SAMPLE_RATE,)
    assert np.abs(samples).max() < 1.0
    # 16-bit exact: a WAV round trip changes nothing
    assert np.array_equal(np.round(samples * 32767).astype(np.int16).astype(np.float32) / np.float32(32767), samples)
    assert track.starts[0] == 0 and track.ends[-1] == len(samples)
    assert np.array_equal(track.starts[1:], track.ends[:-1]) and (track.ends > track.starts).all()
    names = [sp.PHONES[p] for p in track.phones]
    assert names[0] == "sil" and names[-1] == "sil"
    n_vowels = sum(n in sp.VOWELS for n in names)
    speech_time = sum(int(e - s) for p, s, e in zip(names, track.starts, track.ends) if p != "sil") / sp.SAMPLE_RATE
    assert 3.0 <= n_vowels / speech_time <= 6.5  # syllables per second while speaking
    assert names.count("sil") >= 3  # phrase pauses
    assert mouth.shape == (T, len(sp.MOUTH_NAMES)) and mouth.min() >= 0 and mouth.max() <= 1


def test_silence_is_quiet_and_vowels_are_loud(clip):
    samples, track, _, _ = clip
    for p, s, e in zip(track.phones, track.starts, track.ends):
        seg = samples[s + 400: e - 400] if e - s > 1600 else None  # skip the crossfades
        if seg is None or not len(seg):
            continue
        rms = np.sqrt(np.mean(seg.astype(np.float64) ** 2))
        if sp.PHONES[p] == "sil":
            assert rms < 2e-3
        elif sp.PHONES[p] in sp.VOWELS:
            assert rms > 0.02


def test_vowels_have_their_formants(clip):
    samples, track, _, _ = clip
    # The spectral peak below 1 kHz of /a/ (F1 730 Hz) lies above that of /i/ and /u/ (F1 ~ 270-300 Hz).
    def f1(vowel):
        peaks = []
        for p, s, e in zip(track.phones, track.starts, track.ends):
            if sp.PHONES[p] == vowel and e - s > 1600:
                seg = samples[s + 300: e - 300] * np.hanning(e - s - 600)
                spec = np.abs(np.fft.rfft(seg, 8192))
                freqs = np.fft.rfftfreq(8192, 1 / sp.SAMPLE_RATE)
                band = (freqs > 200) & (freqs < 1000)
                peaks.append(freqs[band][np.argmax(spec[band])])
        return np.median(peaks)

    assert f1("a") > 550 and f1("i") < 450 and f1("u") < 450


def test_mouth_closed_in_pauses_open_on_vowels_closed_lips_on_bilabials(clip):
    _, track, mouth, T = clip
    names = list(sp.MOUTH_NAMES)
    jaw, close = mouth[:, names.index("jaw_open")], mouth[:, names.index("lip_close")]
    centres = ((np.arange(T) + 0.5) / FPS * sp.SAMPLE_RATE).astype(int)
    margin = int(0.07 * sp.SAMPLE_RATE)  # beyond the smoothing window
    checked = {"sil": 0, "vowel": 0, "bilabial": 0}
    for p, s, e in zip(track.phones, track.starts, track.ends):
        inside = (centres >= s + margin) & (centres < e - margin)
        name = sp.PHONES[p]
        if name == "sil" and inside.any():
            assert (mouth[inside] < 1e-3).all()
            checked["sil"] += 1
        if name in ("a", "o", "e") and (centres >= s + 600) .any():
            mid = (centres >= s + 0.3 * (e - s)) & (centres < e - 0.3 * (e - s))
            if mid.any():
                assert (jaw[mid] > 0.25).all()
                checked["vowel"] += 1
    for k, (p, s, e) in enumerate(zip(track.phones, track.starts, track.ends)):
        if sp.PHONES[p] in ("p", "b", "m") and e - s > 0.05 * sp.SAMPLE_RATE:
            i = int(np.argmin(np.abs(centres - (s + e) // 2)))
            if abs(centres[i] - (s + e) // 2) < 0.01 * sp.SAMPLE_RATE:
                assert close[i] > 0.4
                assert close[i] > jaw[i]
                checked["bilabial"] += 1
    assert all(v > 0 for v in checked.values()), checked
    # The mouth follows the vowel, not only loudness: /i/ spreads the lips, /u/ rounds them.
    pf = track.per_frame(FPS, T)
    wide, rnd = mouth[:, names.index("lip_wide")], mouth[:, names.index("lip_round")]
    i_frames = pf == sp.PHONE_INDEX["i"]
    u_frames = pf == sp.PHONE_INDEX["u"]
    assert wide[i_frames].mean() > rnd[i_frames].mean() + 0.3
    assert rnd[u_frames].mean() > wide[u_frames].mean() + 0.3


def test_deterministic_for_a_seed():
    a, ta = sp.synthesize_speech(3.0, seed=7)
    b, tb = sp.synthesize_speech(3.0, seed=7)
    c, _ = sp.synthesize_speech(3.0, seed=8)
    assert np.array_equal(a, b) and np.array_equal(ta.as_array(), tb.as_array())
    assert not np.array_equal(a, c)


def test_mouth_depends_on_the_audio_around_the_frame(clip):
    samples, track, mouth, T = clip
    ps = track.per_sample()
    # Silencing one stretch of audio changes the mouth only near that stretch.
    cut = samples.copy()
    lo, hi = 4 * sp.SAMPLE_RATE, 5 * sp.SAMPLE_RATE
    cut[lo:hi] = 0
    m2 = sp.mouth_from_audio(cut, ps, FPS, T)
    t = (np.arange(T) + 0.5) / FPS
    far = (t < 4 - 0.1) | (t > 5 + 0.1)
    assert np.array_equal(m2[far], mouth[far])
    # (the bilabial closure does not depend on loudness, the opening does)
    near = (t > 4.1) & (t < 4.9)
    assert np.abs(m2[near][:, :3]).max() < 1e-6
    with pytest.raises(ValueError, match="equal-length"):
        sp.mouth_from_audio(samples[:-1], ps, FPS, T)


def test_short_clips_still_speak():
    x, tr = sp.synthesize_speech(1.2, seed=0)
    assert len(x) == int(1.2 * sp.SAMPLE_RATE)
    assert any(sp.PHONES[p] in sp.VOWELS for p in tr.phones)
    with pytest.raises(ValueError):
        sp.synthesize_speech(0.3)
