"""The viewer tests' smoke-trained toy run (made once per test process, shared with tests/viewer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.viewer import toy


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    return toy.toy_run(tmp_path_factory)
