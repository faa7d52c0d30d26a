"""A 2.5 s toy subject (64 px, 10 test frames, novel views) and a 2-step smoke run on it, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from thgs.cli import main


@pytest.fixture(scope="session")
def eval_subject(tmp_path_factory) -> Path:
    from thgs.synth.generate import SynthConfig, generate

    root = tmp_path_factory.mktemp("eval") / "subject"
    generate(root, SynthConfig(body="toy", seconds=2.5, size=64, views=(20.0,)), progress=False)
    return root


@pytest.fixture(scope="session")
def eval_run(eval_subject, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("eval_runs") / "smoke"
    rc = main(["train", str(eval_subject), "--out", str(run), "--preset", "smoke", "--steps", "2", "--no-progress",
               "--init-colors", "1", "--grid-resolution", "16"])
    assert rc == 0
    return run
