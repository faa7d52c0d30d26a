"""The viser wiring without a browser: server start on loopback, audio helpers, the benchmark path."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest

from thgs.cli import main

viser = pytest.importorskip("viser")


def test_wav_data_url_round_trip():
    from thgs.viewer.app import wav_data_url

    x = np.sin(np.linspace(0, 100, 1600)).astype(np.float32) * 0.5
    url = wav_data_url(x, 16000)
    assert url.startswith("data:audio/wav;base64,")
    with wave.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 1600)
        y = np.frombuffer(w.readframes(1600), "<i2") / 32767.0
    np.testing.assert_allclose(y, x, atol=1e-4)


def test_audio_command_plays_or_pauses():
    from thgs.viewer.app import AUDIO_ID, audio_command

    play = audio_command(3, 1.25, playing=True, muted=False)
    assert AUDIO_ID in play and "play()" in play and "t=1.250" in play and 'data-n="3"' in play
    pause = audio_command(4, 0.5, playing=False, muted=True)
    assert "pause()" in pause and "muted=true" in pause and '"' not in pause.split('onerror="')[1][:-2]


def test_app_starts_on_loopback_and_plays(toy_session):
    from thgs.viewer.app import ViewerApp

    app = ViewerApp(toy_session, port=0)
    try:
        assert app.server.get_host() == "127.0.0.1"
        assert app.url.startswith("http://127.0.0.1:")
        assert app.state.expression_source == "sequence"
        app._toggle_play()
        assert app.playing and app.play_button.label == "Pause"
        assert "play()" in app.audio_cmd.content
        app._toggle_play()
        assert not app.playing and "pause()" in app.audio_cmd.content
        app._on_neutral()
        assert app.state.expression_source == "sliders" and set(app.state.sliders) == {0.0}
        app.pick_b.value = "sliders"
        assert app.state.expr_b == tuple(0.0 for _ in app.sliders)
    finally:
        app.stop()


def test_benchmark_prints_fps(toy_run, capsys):
    assert main(["view", str(toy_run), "--benchmark", "2", "--max-height", "48", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| fps |" in out and "| cpu | reference |" in out


def test_view_refuses_missing_run(tmp_path, capsys):
    assert main(["view", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_load_speech_replaces_the_sequence_and_its_sound(toy_session, tmp_path):
    from viser._gui_handles import UploadedFile

    from thgs.io.audio_io import write_wav
    from thgs.synth.speech import synthesize_speech
    from thgs.viewer.app import ViewerApp

    x, _ = synthesize_speech(1.6, seed=3)
    write_wav(tmp_path / "s.wav", np.asarray(x, np.float32), 16000)
    app = ViewerApp(toy_session, port=0)
    try:
        before = app.audio_el.content
        app._on_speech(UploadedFile(name="s.wav", content=(tmp_path / "s.wav").read_bytes()))
        assert app.session.num_frames == 40 and app.timeline.max == 39
        assert app.session.drive.extras["speech"]["body"] == "replay"
        assert app.audio_el.content != before and "data:audio/wav;base64," in app.audio_el.content
        assert app.state.frame == 0
        app._on_speech(UploadedFile(name="bad.wav", content=b"not audio"))
        assert "bad.wav" in app.stats_text.content and app.session.num_frames == 40
    finally:
        app.stop()


def test_several_clients_get_their_views_once_per_change(toy_session):
    """Each connected client gets the view of its own camera, rendered only when its camera or the state
    changed (clients of one size share one batched call: tests/viewer/test_core.py)."""
    from types import SimpleNamespace

    import numpy as np

    from thgs.viewer.app import ViewerApp

    app = ViewerApp(toy_session, port=0)
    try:
        home = app.home
        def client(i, dx, w, h):
            cam = SimpleNamespace(position=np.asarray(home.position) + np.array([dx, 0.0, 0.0]), wxyz=home.wxyz,
                                  fov=home.fov_y, image_width=w, image_height=h, aspect=w / h)
            return SimpleNamespace(client_id=i, camera=cam, scene=f"scene{i}")

        clients = [client(1, 0.0, 64, 64), client(2, 0.2, 64, 64), client(3, 0.0, 96, 48)]
        sent = []
        app.sender.send = lambda scene, image: sent.append((scene, tuple(image.shape)))
        assert app.render_clients(clients) == 3
        assert sent == [("scene1", (64, 64, 3)), ("scene2", (64, 64, 3)), ("scene3", (48, 96, 3))]
        assert app.render_clients(clients) == 0  # nothing changed
        app.update(frame=1)
        assert app.render_clients(clients) == 3 and len(sent) == 6
        clients[1].camera.position = clients[1].camera.position + 0.1  # one client turns its camera
        assert app.render_clients(clients) == 1 and sent[-1][0] == "scene2"
    finally:
        app.stop()
