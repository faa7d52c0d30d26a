from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest

from thgs.importers.safe_pickle import DROPPED, UnsafePickleError, safe_load

from thgs_import_fixtures import show_dict


def test_reads_arrays_plain_values_and_tensors(tmp_path):
    d = show_dict()
    d["od"] = collections.OrderedDict(a=1)
    d["misc"] = (1.5, None, True, b"x", {1, 2}, np.float64(2.5), np.arange(3, dtype=np.int16))
    p = tmp_path / "a.pkl"
    p.write_bytes(pickle.dumps(d, protocol=2))
    out = safe_load(p)
    np.testing.assert_array_equal(out["expression"], d["expression"])
    assert out["width"] == 32 and out["speaker_name"] == "anna" and out["od"] == {"a": 1}
    assert out["misc"][4] == {1, 2} and out["misc"][5] == 2.5
    assert isinstance(out["losses_to_log"]["all_loss"], np.ndarray)
    assert float(out["losses_to_log"]["all_loss"]) == 3.5
    np.testing.assert_array_equal(out["losses_to_log"]["hands"], [0, 1, 2, 3])
    dropped = safe_load(p, tensors="drop")
    assert dropped["losses_to_log"]["all_loss"] is DROPPED
    for proto in (4, 5):
        assert safe_load(pickle.dumps({"x": np.ones((2, 2))}, protocol=proto))["x"].shape == (2, 2)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


class _Plain:
    pass


def test_refuses_forbidden_globals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"width": 1, "x": _Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*(posix|os)\.system"):
        safe_load(p)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UnsafePickleError, match="_Plain"):
        safe_load(pickle.dumps(_Plain()))
    with pytest.raises(UnsafePickleError, match="dtype"):
        safe_load(pickle.dumps(np.array([{"a": 1}], dtype=object)))
    raw = b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R."
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load(raw)
