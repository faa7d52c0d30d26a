"""Hostile and broken inputs: each is refused with one line ``thgs CMD: error: ...`` and exit status 2, writes
nothing, and a checkpoint whose unpickling would run code never runs it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from thgs.cli import main
from thgs.runs.checkpoint import CheckpointError, read_checkpoint

MARKER = "side-effect-happened"


class _System:
    """Unpickling calls ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _Touch:
    """Unpickling calls ``pathlib.Path.touch(MARKER)`` (pickled through ``getattr``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (hidden ones included) with size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run ``thgs ARGV`` in this process: (exit status, stdout, stderr); a flag argparse refuses exits 2."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def error_line(err: str, command: str) -> str:
    """The one error line; fails when the error is missing or spans several lines."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(f"thgs {command}: error: ")]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], f"lines after the error: {err}"
    return errors[0]


def evil_checkpoint(path: Path, marker: Path, payload: type = _System, base: dict | None = None,
                    raw: bool = False) -> Path:
    """A checkpoint (the real one's fields, when ``base`` is given) with an object whose unpickling touches
    ``marker``; ``raw``: a plain pickle file instead of torch's zip format."""
    obj = dict(base or {"format": "thgs-avatar", "version": 2})
    obj["payload"] = payload(marker)
    if raw:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path)
    return path


@pytest.fixture
def work(tmp_path, toy_run) -> dict[str, Path]:
    """A copy of the smoke run whose avatar.pt and checkpoint.pt are hostile, and the marker path."""
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    marker = tmp_path / MARKER
    base = read_checkpoint(toy_run / "avatar.pt")
    for name in ("avatar.pt", "checkpoint.pt"):
        evil_checkpoint(run / name, marker, base=base)
    return {"root": tmp_path, "run": run, "marker": marker}


# ------------------------------------------------------------------------------------------- the payloads


@pytest.mark.parametrize("payload", [_System, _Touch])
def test_the_payload_runs_code_when_loaded_unsafely(tmp_path, payload):
    """The fixture is really hostile: an unrestricted load creates the marker."""
    marker = tmp_path / MARKER
    path = evil_checkpoint(tmp_path / "evil.pt", marker, payload)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("raw", [False, True], ids=["torch-zip", "plain-pickle"])
@pytest.mark.parametrize("payload", [_System, _Touch])
def test_read_checkpoint_refuses_code(tmp_path, payload, raw):
    marker = tmp_path / MARKER
    path = evil_checkpoint(tmp_path / "evil.pt", marker, payload, raw=raw)
    with pytest.raises(CheckpointError, match="evil.pt") as exc:
        read_checkpoint(path)
    assert "\n" not in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize("argv", [
    ["render", "{run}", "--out", "{root}/out.mp4"],
    ["eval", "{run}", "--no-video", "--lpips", "none", "--out", "{root}/eval"],
    ["export", "{run}", "--ply", "{root}/out.ply"],
    ["view", "{run}", "--benchmark", "1"],
    ["bench", "{run}", "--no-train", "--devices", "cpu"],
    ["train", "{subject}", "--out", "{run}", "--resume", "--no-progress"],
], ids=lambda a: a[0])
def test_every_command_refuses_a_hostile_checkpoint(capsys, work, toy_subject, argv):
    pytest.importorskip("viser") if argv[0] == "view" else None
    before = snapshot(work["root"])
    args = [a.format(run=work["run"], root=work["root"], subject=toy_subject) for a in argv]
    rc, _, err = cli(capsys, args)
    assert rc == 2
    line = error_line(err, argv[0])
    assert "refused" in line and (".pt" in line) and ("posix.system" in line or "os.system" in line), line
    assert not work["marker"].exists()
    assert snapshot(work["root"]) == before


# ----------------------------------------------------------------------------------- broken checkpoints


def _broken(kind: str, path: Path, real: Path) -> None:
    if kind == "truncated":
        data = real.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "incomplete":
        ck = read_checkpoint(real)
        del ck["model"]
        torch.save(ck, path)
    elif kind == "newer":
        ck = read_checkpoint(real)
        ck["version"] = 99
        torch.save(ck, path)


@pytest.mark.parametrize("kind,words", [("truncated", "truncated"), ("random", "not a thgs checkpoint"),
                                        ("text", "not a thgs checkpoint"), ("empty", "empty"),
                                        ("foreign", "field 'format'"), ("incomplete", "field 'model'"),
                                        ("newer", "update thgs")])
def test_read_checkpoint_names_the_file_and_problem(tmp_path, toy_run, kind, words):
    path = tmp_path / "avatar.pt"
    _broken(kind, path, toy_run / "avatar.pt")
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    msg = str(exc.value)
    assert str(path) in msg and words in msg and "\n" not in msg


@pytest.mark.parametrize("argv", [
    ["render", "{run}", "--out", "{root}/out.mp4"],
    ["eval", "{run}", "--no-video", "--lpips", "none", "--out", "{root}/eval"],
    ["bench", "{run}", "--no-train", "--devices", "cpu"],
    ["train", "{subject}", "--out", "{run}", "--resume", "--no-progress"],
], ids=lambda a: a[0])
def test_truncated_checkpoint_is_one_line(capsys, tmp_path, toy_run, toy_subject, argv):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    for name in ("avatar.pt", "checkpoint.pt"):
        _broken("truncated", run / name, toy_run / name)
    before = snapshot(tmp_path)
    rc, _, err = cli(capsys, [a.format(run=run, root=tmp_path, subject=toy_subject) for a in argv])
    assert rc == 2
    assert "truncated" in error_line(err, argv[0])
    assert snapshot(tmp_path) == before


def test_version_1_checkpoints_still_load_and_resume(capsys, tmp_path, toy_run, toy_subject):
    """A checkpoint in the layout written before format 2 (numpy's RNG state as get_state()'s tuple, which
    needs numpy's array reconstructor) loads through the numpy-only allow-list and resumes, with more steps."""
    from thgs.runs.avatar_io import load_avatar

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    for name in ("avatar.pt", "checkpoint.pt"):
        ck = read_checkpoint(toy_run / name)
        ck["version"] = 1
        ck["rng"]["numpy"] = np.random.get_state()
        torch.save(ck, run / name)
    with pytest.raises(pickle.UnpicklingError):  # the default allow-list alone refuses it
        torch.load(run / "avatar.pt", weights_only=True)
    model, cfg, ck = load_avatar(run / "avatar.pt")
    assert ck["version"] == 1 and model.num_gaussians > 0
    steps = int(ck["step"]) + 1  # resuming applies the safe change of --steps
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", run, "--resume", "--steps", steps, "--no-progress"])
    assert rc == 0, err
    assert f"resume applies --steps {steps}" in err
    assert read_checkpoint(run / "avatar.pt")["version"] == 2 and read_checkpoint(run / "avatar.pt")["step"] == steps
    assert json.loads((run / "config.json").read_text())["config"]["steps"] == steps



def test_a_flat_layout_checkpoint_resumes_and_refuses_a_grouped_flag(capsys, tmp_path, toy_run, toy_subject):
    """A run saved with the flat config (every setting a top-level key named as its flag, as thgs wrote it
    before the groups) resumes: a changed grouped setting is refused by its flag, --steps applies."""
    from thgs.config import flat_names, get_path
    from thgs.runs.avatar_io import config_from_checkpoint
    from thgs.runs.config import TrainConfig

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    for name in ("avatar.pt", "checkpoint.pt"):
        ck = read_checkpoint(toy_run / name)
        nested = config_from_checkpoint(ck)
        ck["config"] = {flat: get_path(nested, path) for flat, path in flat_names(TrainConfig).items()}
        assert "percent_dense" in ck["config"] and "densify" not in ck["config"]
        torch.save(ck, run / name)
    stored = config_from_checkpoint(read_checkpoint(run / "checkpoint.pt"))
    assert stored == nested
    before = snapshot(tmp_path)
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", run, "--resume", "--percent-dense",
                              stored.densify.percent_dense * 2, "--no-progress"])
    assert rc == 2 and "cannot change --percent-dense (the run has 0.01)" in error_line(err, "train")
    assert snapshot(tmp_path) == before
    steps = int(read_checkpoint(run / "checkpoint.pt")["step"]) + 1
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", run, "--resume", "--steps", steps,
                              "--percent-dense", stored.densify.percent_dense, "--no-progress"])
    assert rc == 0, err
    assert f"resume applies --steps {steps}" in err and "percent-dense" not in err  # unchanged: nothing to apply
    assert json.loads((run / "config.json").read_text())["config"]["densify"]["percent_dense"] == 0.01

# --------------------------------------------------------------------------------------- bad training flags


@pytest.mark.parametrize("flags,words", [
    (["--checkpoint-every", "0"], "--checkpoint-every 0"),
    (["--log-every", "0"], "--log-every 0"),
    (["--densify-interval", "0"], "--densify-interval 0"),
    (["--steps", "0"], "--steps 0"),
    (["--lr-position", "nan"], "--lr-position nan"),
    (["--lr-opacity", "inf"], "--lr-opacity inf"),
    (["--lr-color", "-1"], "--lr-color -1"),
    (["--saam-lr", "0"], "--saam-lr 0"),
    (["--lambda-dssim", "nan"], "--lambda-dssim nan"),
    (["--densify-grad-threshold", "nan"], "--densify-grad-threshold nan"),
    (["--init-opacity", "1.5"], "--init-opacity 1.5"),
    (["--percent-dense=-inf"], "--percent-dense -inf"),
    (["--background", "0", "nan", "1"], "--background"),
    (["--device", "gpu"], "--device 'gpu'"),
    (["--backend", "magic"], "--backend: invalid choice: 'magic'"),
    (["--preset", "nosuch"], "--preset: invalid choice: 'nosuch'"),
])
def test_bad_training_flags_are_refused_before_anything_is_written(capsys, tmp_path, toy_subject, flags, words):
    out = tmp_path / "run"
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", out, "--preset", "smoke", *flags])
    assert rc == 2
    assert words in error_line(err, "train")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "render", "eval"])
def test_cuda_device_without_cuda(capsys, tmp_path, toy_run, toy_subject, command):
    argv = {"train": ["train", toy_subject, "--out", tmp_path / "run", "--device", "cuda"],
            "render": ["render", toy_run, "--out", tmp_path / "x.mp4", "--device", "cuda"],
            "eval": ["eval", toy_run, "--out", tmp_path / "eval", "--device", "cuda", "--lpips", "none"]}[command]
    rc, _, err = cli(capsys, argv)
    assert rc == 2 and "CUDA" in error_line(err, command)
    assert list(tmp_path.iterdir()) == []


def test_train_without_preset_picks_the_device_preset(capsys, tmp_path, toy_subject):
    from thgs.runs.config import preset_for_device

    assert preset_for_device("cpu") == "cpu" and preset_for_device("cuda:0") == "fast"
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", tmp_path / "run", "--log-every", "0"])
    expected = "fast" if torch.cuda.is_available() else "cpu"
    assert rc == 2 and f"train: preset {expected} (chosen for the" in err


# ------------------------------------------------------------------------------------------------- resume


def test_resume_of_a_missing_run_is_an_error(capsys, tmp_path, toy_subject):
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", tmp_path / "missing", "--resume"])
    assert rc == 2 and "no such run folder" in error_line(err, "train")
    (tmp_path / "empty").mkdir()
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", tmp_path / "empty", "--resume"])
    assert rc == 2 and "no checkpoint.pt" in error_line(err, "train")
    assert not (tmp_path / "missing").exists() and list((tmp_path / "empty").iterdir()) == []


def test_resume_refuses_changed_settings_and_names_them(capsys, tmp_path, toy_run, toy_subject):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    before = snapshot(tmp_path)
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", run, "--resume", "--seed", "7", "--lr-scale", "0.1"])
    line = error_line(err, "train")
    assert rc == 2 and "--seed" in line and "--lr-scale" in line
    assert snapshot(tmp_path) == before
    stored = json.loads((run / "config.json").read_text())["config"]
    rc, _, err = cli(capsys, ["train", toy_subject, "--out", run, "--resume", "--seed", str(stored["seed"]),
                              "--steps", "1"])
    assert rc == 2 and "already at step" in error_line(err, "train")  # the same seed is no change


# ----------------------------------------------------------------------------------------- driving inputs


def _motion(tmp_path: Path, subject: Path, **edit) -> Path:
    with np.load(subject / "params.npz") as z:
        data = {k: z[k][:3] if z[k].ndim and z[k].shape[0] > 3 and k != "betas" else z[k] for k in z.files}
    data.update(edit)
    path = tmp_path / "motion.npz"
    np.savez(path, **data)
    return path


@pytest.mark.parametrize("case", ["text", "npy", "nan-pose", "inf-transl", "nan-expression-flag", "yaw-nan",
                                  "expression-npy-nan"])
def test_bad_driving_inputs(capsys, tmp_path, toy_run, toy_subject, case):
    out = tmp_path / "out" / "x.mp4"
    extra: list = []
    if case == "text":
        (tmp_path / "motion.npz").write_text("frame 1: pose 0 0 0\n")
        extra = ["--motion", tmp_path / "motion.npz"]
    elif case == "npy":
        np.save(tmp_path / "motion.npy", np.zeros((3, 4)))
        extra = ["--motion", tmp_path / "motion.npy"]
    elif case == "nan-pose":
        with np.load(toy_subject / "params.npz") as z:
            pose = z["pose"][:3].copy()
        pose[1, 2, 0] = np.nan
        extra = ["--motion", _motion(tmp_path, toy_subject, pose=pose)]
    elif case == "inf-transl":
        extra = ["--motion", _motion(tmp_path, toy_subject, transl=np.full((3, 3), np.inf, np.float32))]
    elif case == "nan-expression-flag":
        extra = ["--expression", "expr0=nan"]
    elif case == "yaw-nan":
        extra = ["--yaw", "nan"]
    elif case == "expression-npy-nan":
        np.save(tmp_path / "e.npy", np.array([np.nan, 0.0], np.float32))
        extra = ["--expression", str(tmp_path / "e.npy")]
    before = snapshot(tmp_path)
    rc, _, err = cli(capsys, ["render", toy_run, "--out", out, "--frames", "2", *extra])
    assert rc == 2
    line = error_line(err, "render")
    assert ("motion" in line or "expression" in line or "e.npy" in line or "--yaw" in line), line
    assert snapshot(tmp_path) == before and not out.exists()


def test_corrupt_test_frame_in_eval(capsys, tmp_path, toy_run, toy_subject):
    from thgs.data.format import IMAGES_DIR, frame_file

    subject = tmp_path / "subject"
    shutil.copytree(toy_subject, subject)
    test = json.loads((subject / "meta.json").read_text())["split"]["test"]
    bad = subject / IMAGES_DIR / frame_file(test[0])
    bad.write_bytes(bad.read_bytes()[:60])
    before = snapshot(tmp_path)
    rc, _, err = cli(capsys, ["eval", toy_run, "--data", subject, "--out", tmp_path / "eval", "--no-video",
                              "--lpips", "none", "--no-progress"])
    assert rc == 2
    assert frame_file(test[0]) in error_line(err, "eval")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------- runs from anywhere


def test_run_works_from_another_directory_and_after_moving(capsys, tmp_path, toy_run, toy_subject, monkeypatch):
    from thgs.runs.avatar_io import subject_record

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc, _, err = cli(capsys, ["render", toy_run, "--out", "a.mp4", "--frames", "1"])
    assert rc == 0, err
    assert (elsewhere / "a.mp4").is_file()

    # the run moved away from its subject: the absolute path still finds it
    moved = tmp_path / "moved" / "run"
    shutil.copytree(toy_run, moved)
    rc, _, err = cli(capsys, ["export", moved, "--ply", "b.ply"])
    assert rc == 0, err

    # run and subject moved together (the absolute path is stale): the path relative to the run finds it
    project = tmp_path / "project"
    shutil.copytree(toy_subject, project / "subject")
    shutil.copytree(toy_run, project / "run")
    cfg = json.loads((project / "run" / "config.json").read_text())
    cfg["subject"] = subject_record(project / "subject", project / "run", "toy")
    (project / "run" / "config.json").write_text(json.dumps(cfg))
    project.rename(tmp_path / "renamed")
    assert not (project / "subject").exists()
    rc, _, err = cli(capsys, ["eval", tmp_path / "renamed" / "run", "--no-video", "--no-views", "--lpips", "none",
                              "--no-progress", "--max-frames", "1"])
    assert rc == 0, err
    assert (tmp_path / "renamed" / "run" / "eval" / "metrics.json").is_file()

    # nothing found: the error says to pass --data, and --data overrides
    lost = tmp_path / "lost"
    shutil.copytree(toy_run, lost)
    cfg["subject"] = {"name": "toy", "root": str(tmp_path / "nowhere"), "relative": "../nowhere"}
    (lost / "config.json").write_text(json.dumps(cfg))
    rc, _, err = cli(capsys, ["export", lost, "--ply", "c.ply"])
    assert rc == 2 and "pass --data" in error_line(err, "export")
    assert not (elsewhere / "c.ply").exists()
    rc, _, err = cli(capsys, ["export", lost, "--ply", "c.ply", "--data", toy_subject])
    assert rc == 0, err


def test_config_records_the_subject_and_the_rasterizer(toy_run, toy_subject):
    cfg = json.loads((toy_run / "config.json").read_text())
    assert Path(cfg["subject"]["root"]) == Path(toy_subject).resolve()
    assert (toy_run / cfg["subject"]["relative"]).resolve() == Path(toy_subject).resolve()
    assert cfg["rasterizer"]["used"] in ("gsplat", "reference") and cfg["config"]["render"]["backend"] == "auto"


# ------------------------------------------------------------------------------ interrupted writes


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporary_files_are_swept_by_the_next_write(tmp_path):
    from thgs.utils.io import atomic_dir, save_torch

    dead = _dead_pid()
    stale = [tmp_path / f".checkpoint.pt.{dead}.abcd_123.pt", tmp_path / ".checkpoint.pt.q1w2e3r4.pt"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    os.utime(stale[1], (1, 1))  # an old-style name (no PID) from long before this process
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.zzzzzzzz.pt"  # a write of this very process
    live.write_bytes(b"in progress")
    foreign = [tmp_path / ".checkpoint.pt.notes.txt", tmp_path / ".other.pt.abcd1234.pt"]
    for p in foreign:
        p.write_bytes(b"not ours")
    (tmp_path / f".sm.partial.{dead}.abcdefgh" / "images").mkdir(parents=True)
    save_torch(tmp_path / "checkpoint.pt", {"x": torch.zeros(1)})
    assert not any(p.exists() for p in stale) and live.exists() and all(p.exists() for p in foreign)
    assert (tmp_path / f".sm.partial.{dead}.abcdefgh").exists()  # another target's leftovers stay
    with atomic_dir(tmp_path / "sm") as tmp:
        (tmp / "a").write_text("1")
    assert not (tmp_path / f".sm.partial.{dead}.abcdefgh").exists() and (tmp_path / "sm" / "a").exists()


def test_subject_writer_sweeps_killed_writers_staging_folders(tmp_path):
    from thgs.data.writer import SubjectWriter

    dead = _dead_pid()
    left = tmp_path / f".sm.partial.{dead}.abcdefgh"
    (left / "images").mkdir(parents=True)
    writer = SubjectWriter(tmp_path / "sm", fps=25, width=8, height=8)
    try:
        assert not left.exists()
    finally:
        writer.abort()


# ------------------------------------------------------------------------------------------ rasterizer


def test_gsplat_import_failure_is_reported(tmp_path, monkeypatch, capsys):
    import sys

    from thgs.render import gsplat_backend
    from thgs.render.base import resolve_backend

    fake = tmp_path / "site" / "gsplat"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libcudart.so.12: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "gsplat", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "a test GPU")
    monkeypatch.setattr(gsplat_backend, "_IMPORT_FAILURE", {})
    assert not gsplat_backend.is_available()
    assert "libcudart.so.12" in gsplat_backend.unavailable_reason()
    name, note = resolve_backend("auto", "cuda")
    assert name == "reference" and "libcudart.so.12" in note
    assert main(["info"]) == 0
    assert "libcudart.so.12" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ diverged training


def test_a_diverging_loss_stops_training_without_saving(tmp_path):
    """A NaN loss (settings finite but far too large) ends the run at that step; nothing of it is saved."""
    import dataclasses
    from types import SimpleNamespace

    from thgs.runs.config import preset
    from thgs.train.trainer import Trainer, TrainingDiverged

    t = Trainer.__new__(Trainer)
    t.cfg = dataclasses.replace(preset("smoke"), progress=False)
    t.step, t.last, t.run_dir = 0, {}, tmp_path / "run"
    t.device, t.backend, t.backend_note = torch.device("cpu"), "reference", None
    t.subject = SimpleNamespace(name="toy", root=None, num_frames=1)
    t.data = SimpleNamespace(selection=SimpleNamespace(summary=lambda: {"skipped": 0}))

    def step():
        t.step += 1
        return {"loss": float("nan") if t.step == 2 else 0.5, "psnr": 20.0, "num_gaussians": 1.0}

    saved = []
    t.train_step = step
    t.save = saved.append
    with pytest.raises(TrainingDiverged, match="step 2"):
        t.train()
    assert saved == [] and not (t.run_dir / "avatar.pt").exists()


def test_unknown_devices_are_refused():
    from thgs.utils.device import default_device

    assert default_device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "cpu0"):
        with pytest.raises(RuntimeError, match="unknown device"):
            default_device(bad)
