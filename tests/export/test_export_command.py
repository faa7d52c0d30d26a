"""`thgs export`: one frame, the canonical pose, a sequence; bad input is refused and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.cli import main
from thgs.export.ply import read_gaussian_ply, read_ply


def test_frame_ply_matches_the_posed_avatar(toy_run, tmp_path):
    out = tmp_path / "f1.ply"
    assert main(["export", str(toy_run), "--ply", str(out), "--frame", "1", "--device", "cpu"]) == 0
    splats = read_gaussian_ply(out)
    from thgs.viewer import core
    from thgs.viewer.session import open_session

    s = open_session(toy_run, device="cpu")
    st = core.ViewerState(frame=1, saam=s.has_saam, leb=s.has_leb)
    with torch.no_grad(), core.switches(s.model, st.saam, st.leb, s.trained_active):
        gs = s.model(core.state_inputs(s, st))
    assert len(splats) == len(gs)
    np.testing.assert_allclose(splats.means, gs.means.numpy(), atol=1e-5)
    np.testing.assert_allclose(splats.opacities, gs.opacities.numpy(), atol=1e-4)
    np.testing.assert_allclose(splats.scales[:, :2], gs.scales[:, :2].numpy(), rtol=1e-4)
    assert splats.kind == s.mode
    assert any("subject frame" in c for c in read_ply(out).comments)


def test_canonical_differs_from_posed(toy_run, tmp_path):
    a, b = tmp_path / "c.ply", tmp_path / "p.ply"
    assert main(["export", str(toy_run), "--ply", str(a), "--canonical", "--device", "cpu"]) == 0
    assert main(["export", str(toy_run), "--ply", str(b), "--device", "cpu"]) == 0
    ca, cb = read_gaussian_ply(a), read_gaussian_ply(b)
    assert len(ca) == len(cb)
    assert np.abs(ca.means - cb.means).max() > 1e-3


def test_frames_folder(toy_run, tmp_path):
    out = tmp_path / "seq"
    assert main(["export", str(toy_run), "--frames", str(out), "--max-frames", "2", "--no-progress",
                 "--device", "cpu"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000000.ply", "000001.ply"]
    assert len(read_gaussian_ply(out / "000001.ply")) > 0


@pytest.mark.parametrize("extra", [
    ["--ply", "OUT/x.txt"],
    ["--ply", "OUT/x.ply", "--frame", "999"],
    ["--ply", "OUT/x.ply", "--canonical", "--frame", "0"],
    ["--frames", "OUT/seq", "--frame", "1"],
    ["--ply", "OUT/x.ply", "--motion", "OUT/missing.npz"],
])
def test_bad_input_is_a_clear_error_and_writes_nothing(toy_run, tmp_path, capsys, extra):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("OUT", str(out)) for a in extra]
    assert main(["export", str(toy_run), *args, "--device", "cpu"]) == 2
    assert "error:" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--ply", str(tmp_path / "a.ply")]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "a.ply").exists()


def test_nonempty_frames_folder_is_refused(toy_run, tmp_path, capsys):
    out = tmp_path / "seq"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["export", str(toy_run), "--frames", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
