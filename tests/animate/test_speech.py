"""Speech driving: the speech -> face model, the motion replay, and render --audio / --motion with them."""

import json

import av
import numpy as np
import pytest
import torch

from thgs.animate.motion import (MotionLibrary, OnlineReplay, ReplayOptions, max_joint_jump, motion_energy,
                                 plan_segments, replay, slerp)
from thgs.animate.speech import SpeechFaceModel, SpeechModelError, correlations, fit_speech_face
from thgs.cli import main


def _toy_body():
    from thgs.body.registry import load_body_model

    return load_body_model("toy")


def _smooth_noise(rng, T, C, sigma=1.5):
    x = rng.standard_normal((T, C))
    k = np.exp(-0.5 * (np.arange(-4, 5) / sigma) ** 2)
    k /= k.sum()
    return np.stack([np.convolve(x[:, c], k, mode="same") for c in range(C)], 1)


@pytest.mark.parametrize("lag", [-2, 0, 3])
def test_speech_model_recovers_a_known_lagged_mapping_on_the_toy_body(lag, tmp_path):
    """Expressions (and the jaw joint) of the toy body are a fixed linear map of the audio features
    ``lag`` frames later, plus units that speech cannot explain; the model finds the lag, drives exactly
    the explainable units and predicts held-out frames closely. It survives a save / load."""
    body = _toy_body()
    rng = np.random.default_rng(lag + 10)
    T, S, C = 420, 16, 12
    base = _smooth_noise(rng, T, C)
    windows = np.repeat(base[:, None], S, 1) + 0.02 * rng.standard_normal((T, S, C))
    E = body.num_expressions
    units = list(body.expression_names) + ["jaw_pose.x", "jaw_pose.y", "jaw_pose.z"]
    names = list(body.expression_names)
    A = rng.standard_normal((C, 3))
    idx = np.clip(np.arange(T) + lag, 0, T - 1)
    signal = base[idx] @ A  # [T, 3]
    Y = np.zeros((T, E + 3))
    Y[:, names.index("jaw_open")] = signal[:, 0]
    Y[:, names.index("lip_round")] = signal[:, 1]
    Y[:, E] = 0.3 * signal[:, 0]  # jaw rotation about x follows the opening
    Y[:, names.index("blink")] = (rng.random(T) < 0.05).astype(float)  # not speech
    Y[:, names.index("smile")] = _smooth_noise(rng, T, 1, sigma=8)[:, 0]  # not speech
    frames = np.arange(10, 340)  # the training span; 340.. are held out
    m = fit_speech_face(windows, frames, Y[frames], units, num_expressions=E, jaw_joint=body.mouth.jaw_joint)
    assert m.offset == lag
    assert m.lookahead == max(0, lag + m.radius)
    driven = {u for u, d in zip(m.units, m.driven) if d}
    assert {"jaw_open", "lip_round", "jaw_pose.x"} <= driven
    assert not driven & {"blink", "smile", "frown"}
    test = np.arange(345, T - 8)
    pred = m.predict(windows)[test]
    corr = correlations(pred, Y[test])
    for u in ("jaw_open", "lip_round", "jaw_pose.x"):
        assert corr[units.index(u)] > 0.95, (u, corr[units.index(u)])
    expr, jaw = m.split(pred)
    assert expr.shape == (len(test), E) and jaw.shape == (len(test), 3)
    path = m.save(tmp_path / "speech.npz")
    back = SpeechFaceModel.load(path)
    np.testing.assert_allclose(back.predict(windows), m.predict(windows), atol=1e-4)
    assert back.offset == m.offset and back.units == m.units


def test_speech_model_file_is_plain_arrays_and_bad_files_are_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array(json.dumps({"format": "other"})))
    with pytest.raises(SpeechModelError, match="meta.format"):
        SpeechFaceModel.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SpeechModelError, match="junk.npz"):
        SpeechFaceModel.load(tmp_path / "junk.npz")
    obj = tmp_path / "obj.npz"
    np.savez(obj, meta=np.array([{"format": "thgs-speech"}], dtype=object))
    with pytest.raises(SpeechModelError):  # an object array would need pickle: refused
        SpeechFaceModel.load(obj)
    with pytest.raises(SpeechModelError, match="too few"):
        fit_speech_face(np.zeros((5, 16, 4)), np.arange(5), np.zeros((5, 2)), ["a", "b"], num_expressions=2)


def _library(T=300, J=6, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T) / fps
    pose = np.zeros((T, J, 3))
    for j in range(J):
        for a in range(3):
            f = rng.uniform(0.2, 1.5)
            pose[:, j, a] = rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
    pose[:, 0] += np.array([0.0, 2.5, 0.0])  # a root far from the identity
    pose_t = torch.as_tensor(pose, dtype=torch.float32)
    expr = torch.as_tensor(np.clip(_smooth_noise(rng, T, 3, 6), 0, None), dtype=torch.float32)
    transl = torch.as_tensor(rng.normal(size=(T, 3)) * 0.01 + np.array([0, 1, 0]), dtype=torch.float32)
    frames = [f for f in range(T) if not 200 <= f < 210]  # two runs
    return MotionLibrary.from_params(pose_t, expr, transl, frames, fps), pose_t


def test_motion_replay_is_smooth_at_every_seam_and_stays_in_place():
    lib, pose = _library()
    T = 500
    activity = np.clip(np.sin(np.arange(T) / 40.0) * 1.5, 0, 1)  # speech and pauses
    plan = plan_segments(lib, activity)
    assert len(plan) >= 5 and all(s.overlap > 0 for s in plan[1:])
    assert len({s.src_start for s in plan}) > 1
    out, expr, transl = replay(lib, activity)
    assert out.shape == (T, 6, 3) and expr.shape == (T, 3) and transl.shape == (T, 3)
    source_jump = max_joint_jump(pose)
    # every frame, seams included: no larger step than the source's own plus a small margin
    assert max_joint_jump(out) <= 1.5 * source_jump + 0.01
    seams = [s.out_start for s in plan[1:]] + [s.out_start + s.overlap for s in plan[1:]]
    for f in seams:
        if 0 < f < T:
            assert max_joint_jump(out[f - 1:f + 1]) <= 1.5 * source_jump + 0.01
    assert torch.allclose(transl, transl[:1].expand_as(transl))  # the root translation is kept in place
    source_step = float(np.abs(np.diff(lib.expression.numpy(), axis=0)).max())
    assert float(np.abs(np.diff(expr.numpy(), axis=0)).max()) <= 1.5 * source_step + 0.02


def test_motion_replay_moves_more_while_speaking():
    lib, _ = _library(seed=3)
    T = 600
    loud = replay(lib, np.ones(T), ReplayOptions(seed=1))[0]
    quiet = replay(lib, np.zeros(T), ReplayOptions(seed=1))[0]
    assert motion_energy(loud, 25.0).mean() > 1.3 * motion_energy(quiet, 25.0).mean()


def test_online_replay_is_continuous():
    lib, pose = _library(seed=5)
    rep = OnlineReplay(lib)
    act = np.clip(np.sin(np.arange(400) / 30.0), 0, 1)
    out = torch.stack([rep.frame(t, float(act[t]))[0] for t in range(400)])
    assert len(rep.plan) > 3
    assert max_joint_jump(out) <= 1.5 * max_joint_jump(pose) + 0.01


def test_slerp_takes_the_short_arc_and_hits_both_ends():
    a = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    b = -torch.tensor([np.cos(0.5), np.sin(0.5), 0, 0], dtype=torch.float64)  # same rotation as -b
    assert torch.allclose(slerp(a, b, torch.tensor(0.0)), a)
    assert torch.allclose(slerp(a, b, torch.tensor(1.0)), -b)
    mid = slerp(a, b, torch.tensor(0.5))
    assert torch.allclose(mid, torch.tensor([np.cos(0.25), np.sin(0.25), 0, 0], dtype=torch.float64))


# -- the toy run: train writes speech.npz; render --audio / --motion use it --------------------------------
def _speech_wav(path, seconds=1.2, sr=16000):
    from thgs.io.audio_io import write_wav
    from thgs.synth.speech import synthesize_speech

    x, _ = synthesize_speech(seconds, seed=7)
    write_wav(path, np.asarray(x, np.float32), sr)
    return path


def test_train_writes_the_speech_model_and_train_speech_refits_it(toy_run):
    path = toy_run / "speech.npz"
    assert path.is_file()
    m = SpeechFaceModel.load(path)
    assert m.num_expressions == 8 and m.jaw_joint == 22 and m.encoder == "mel"
    path.unlink()
    assert main(["train-speech", str(toy_run)]) == 0
    assert SpeechFaceModel.load(path).units == m.units


def test_render_audio_from_a_video_file_moves_the_body_and_muxes_the_sound(toy_run, tmp_path):
    from thgs.io.video import write_video

    wav = _speech_wav(tmp_path / "s.wav", 1.2)
    from thgs.io.audio_io import read_audio

    samples, sr = read_audio(wav)
    clip_mp4 = tmp_path / "speech.mp4"
    write_video(clip_mp4, (np.zeros((16, 16, 3), np.uint8) for _ in range(30)), 25.0, audio=(samples, sr))
    out = tmp_path / "talk.mp4"
    assert main(["render", str(toy_run), "--out", str(out), "--audio", str(clip_mp4)]) == 0
    with av.open(str(out)) as f:
        kinds = sorted(s.type for s in f.streams)
        astream = f.streams.audio[0]
        audio_s = sum(fr.samples for fr in f.decode(astream)) / astream.rate
    with av.open(str(out)) as f:
        frames = sum(1 for _ in f.decode(video=0))
    assert kinds == ["audio", "video"] and frames == 30
    assert abs(audio_s - 1.2) < 0.1

    from thgs.viewer.session import open_session

    s = open_session(toy_run, audio=wav, device="cpu")
    assert s.drive.extras["speech"]["body"] == "replay"
    assert float(s.drive.pose.std(0).max()) > 1e-3  # not a statue


def test_render_motion_drives_the_poses_exactly_and_expression_overrides_chosen_units(toy_run, toy_subject_path,
                                                                                        tmp_path):
    from thgs.viewer.session import open_session

    wav = _speech_wav(tmp_path / "s.wav", 0.8)
    rng = np.random.default_rng(0)
    pose = (0.1 * rng.standard_normal((20, 55, 3))).astype(np.float32)
    np.savez(tmp_path / "motion.npz", pose=pose, transl=np.zeros((20, 3), np.float32))
    s = open_session(toy_run, audio=wav, motion=tmp_path / "motion.npz", device="cpu")
    assert torch.equal(s.drive.pose, torch.as_tensor(pose))
    assert s.drive.extras["speech"]["body"] == "motion file"

    from thgs.animate.drive import DriveRequest, build_drive

    d = build_drive(DriveRequest(run=toy_run, audio=wav, expression="smile=0.7"), s.model, s.cfg, s.subject)
    ref = build_drive(DriveRequest(run=toy_run, audio=wav), s.model, s.cfg, s.subject)
    names = list(s.model.body.expression_names)
    k = names.index("smile")
    assert torch.all(d.expression[:, k] == 0.7)
    others = [i for i in range(len(names)) if i != k]
    assert torch.equal(d.expression[:, others], ref.expression[:, others])


def test_streamer_gives_every_frame_once_in_order(toy_run, tmp_path):
    from thgs.animate.stream import open_streamer
    from thgs.io.audio_io import read_audio

    samples, sr = read_audio(_speech_wav(tmp_path / "s.wav", 1.0))
    st = open_streamer(str(toy_run), device="cpu", render=False)
    got = []
    chunk = sr // 10
    for a in range(0, len(samples), chunk):
        got += st.push(samples[a:a + chunk], sr)
    got += st.flush()
    assert [f.index for f in got] == list(range(25))
    assert st.lookahead_s > 0
    pose = torch.stack([f.pose for f in got])
    assert pose.shape == (25, 55, 3) and torch.isfinite(pose).all()
