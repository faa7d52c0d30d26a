"""A toy subject and an avatar smoke-trained on it (made once per test process), and the viewer session on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viewer import toy


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    return toy.toy_run(tmp_path_factory)


@pytest.fixture(scope="session")
def toy_session(toy_run):
    from thgs.viewer.session import open_session

    return open_session(toy_run, device="cpu")
