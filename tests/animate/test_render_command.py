import json

import av
import numpy as np
import pytest

from thgs.cli import main


def _streams(path):
    with av.open(str(path)) as f:
        kinds = sorted(s.type for s in f.streams)
        frames = sum(1 for _ in f.decode(video=0))
    return kinds, frames


def test_render_test_split_with_audio_and_pngs(toy_run, toy_subject_path, tmp_path):
    out = tmp_path / "test.mp4"
    assert main(["render", str(toy_run), "--out", str(out), "--png-dir", str(tmp_path / "png")]) == 0
    kinds, frames = _streams(out)
    n_test = len(json.loads((toy_subject_path / "meta.json").read_text())["split"]["test"])
    assert kinds == ["audio", "video"] and frames == n_test
    assert len(list((tmp_path / "png").glob("*.png"))) == n_test


def test_render_new_audio_expression_and_orbit(toy_run, toy_subject_path, tmp_path):
    from thgs.io.audio_io import write_wav

    sr = 16000
    write_wav(tmp_path / "speech.wav", (0.1 * np.sin(np.arange(int(0.4 * sr)) * 0.05)).astype(np.float32), sr)
    out = tmp_path / "drive.mp4"
    assert main(["render", str(toy_run), "--out", str(out), "--audio", str(tmp_path / "speech.wav"),
                 "--expression", "jaw_open=1.0", "--orbit"]) == 0
    kinds, frames = _streams(out)
    assert kinds == ["audio", "video"] and frames == 10  # 0.4 s at 25 fps


def test_render_rejects_bad_input_and_writes_nothing(toy_run, tmp_path, capsys):
    out = tmp_path / "x.mp4"
    assert main(["render", str(toy_run), "--out", str(out), "--expression", "nosuch=1"]) == 2
    assert "unknown expression 'nosuch'" in capsys.readouterr().err
    assert main(["render", str(tmp_path), "--out", str(out)]) == 2
    assert main(["render", str(toy_run), "--out", str(out), "--batch", "0"]) == 2
    assert "--batch 0: must be at least 1" in capsys.readouterr().err
    assert not out.exists()


def test_train_command_refuses_to_overwrite_a_finished_run(toy_run, toy_subject_path, capsys):
    assert main(["train", str(toy_subject_path), "--out", str(toy_run), "--preset", "smoke"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--vanilla", "--no-saam"])
def test_ablation_flags_train(toy_subject_path, tmp_path, flag):
    run = tmp_path / "abl"
    assert main(["train", str(toy_subject_path), "--out", str(run), "--preset", "smoke", "--steps", "2",
                 "--no-progress", "--init-colors", "0", "--grid-resolution", "16", flag]) == 0
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["model"]["vanilla" if flag == "--vanilla" else "saam"] is (flag == "--vanilla")


def test_fast_path_frames_equal_the_model_frames(toy_run, toy_subject_path):
    """``thgs render`` poses frames with the Animator; the images match the model's own forward pass."""
    import torch

    from thgs.animate.render import drive_animator, render_frame
    from thgs.viewer.session import open_session

    s = open_session(toy_run, device="cpu", frames=3)
    anim = drive_animator(s.model, s.drive)
    for t in range(len(s.drive)):
        inp = s.drive.inputs(t)
        with torch.no_grad():
            want, got = s.model(inp), anim(inp.pose, inp.expression, inp.audio_window, inp.transl)
        for name in ("means", "quats", "scales", "opacities", "colors"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-5, rtol=1e-5)
        ref = render_frame(s.model, s.drive, t, s.background, s.mode)
        fast = render_frame(s.model, s.drive, t, s.background, s.mode, animator=anim)
        torch.testing.assert_close(fast, ref, atol=2e-3, rtol=0)  # rasterization amplifies 1e-7 differences
