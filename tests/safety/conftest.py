"""The toy subject and smoke-trained run shared with the viewer and export tests (made once per process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viewer import toy


@pytest.fixture(scope="session")
def toy_subject(tmp_path_factory) -> Path:
    return toy.toy_subject(tmp_path_factory)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    return toy.toy_run(tmp_path_factory)
