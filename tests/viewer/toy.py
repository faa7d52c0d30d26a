"""A toy subject (1 s, 64 px) and an avatar smoke-trained on it, made once per test process and shared by the
viewer and export tests."""

from __future__ import annotations

from pathlib import Path

_MADE: dict[str, Path] = {}


def toy_subject(tmp_path_factory) -> Path:
    from thgs.synth.generate import SynthConfig, generate

    if "subject" not in _MADE:
        root = tmp_path_factory.mktemp("viewer-toy") / "subject"
        generate(root, SynthConfig(body="toy", seconds=1.0, size=64), progress=False)
        _MADE["subject"] = root
    return _MADE["subject"]


def toy_run(tmp_path_factory) -> Path:
    from thgs.cli import main

    if "run" not in _MADE:
        subject = toy_subject(tmp_path_factory)
        run = tmp_path_factory.mktemp("viewer-runs") / "smoke"
        rc = main(["train", str(subject), "--out", str(run), "--preset", "smoke", "--steps", "4",
                   "--no-progress", "--init-colors", "2", "--skinning", "grid", "--grid-resolution", "16"])
        assert rc == 0, "smoke training of the toy avatar failed"
        _MADE["run"] = run
    return _MADE["run"]
