from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from thgs_import_fixtures import show_dict


@pytest.fixture
def show_pkl(tmp_path: Path):
    def make(name: str = "final_all.pkl", drop: tuple[str, ...] = (), **kw) -> Path:
        d = show_dict(**kw)
        for key in drop:
            d.pop(key)
        p = tmp_path / name
        p.write_bytes(pickle.dumps(d, protocol=2))
        return p
    return make
