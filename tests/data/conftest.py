"""Fixtures: a small valid subject written with the writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thgs.data.writer import write_subject

from .subject_fixtures import make_inputs


@pytest.fixture
def inputs() -> dict[str, Any]:
    return make_inputs()


@pytest.fixture
def subject_dir(tmp_path: Path, inputs: dict[str, Any]) -> Path:
    return write_subject(tmp_path / "subj", **inputs)
