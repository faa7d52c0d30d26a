import os
import stat

import pytest

from thgs.utils import io


def test_atomic_write_replaces_and_has_normal_permissions(tmp_path):
    p = tmp_path / "a.json"
    io.write_json(p, {"x": 1})
    io.write_json(p, {"x": 2})
    assert p.read_text().strip().endswith("}") and '"x": 2' in p.read_text()
    mode = stat.S_IMODE(os.stat(p).st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    p = tmp_path / "b.txt"
    io.write_text(p, "old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["b.txt"]


def test_atomic_dir_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "subject"
    with pytest.raises(ValueError):
        with io.atomic_dir(target) as d:
            (d / "x").write_text("1")
            raise ValueError("bad input")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
