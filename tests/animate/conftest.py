"""A toy-body subject from the synthesiser (1 s, 64 px), generated once per test session, and a smoke run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from thgs.cli import main


@pytest.fixture(scope="session")
def toy_subject_path(tmp_path_factory) -> Path:
    from thgs.synth.generate import SynthConfig, generate

    root = tmp_path_factory.mktemp("toy") / "subject"
    generate(root, SynthConfig(body="toy", seconds=1.0, size=64), progress=False)
    return root


@pytest.fixture(scope="session")
def toy_run(toy_subject_path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "smoke"
    rc = main(["train", str(toy_subject_path), "--out", str(run), "--preset", "smoke", "--steps", "4",
               "--no-progress", "--init-colors", "2", "--grid-resolution", "16"])
    assert rc == 0
    return run
