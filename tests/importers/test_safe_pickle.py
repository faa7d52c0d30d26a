from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest

from thgs.io.safe_pickle import DROPPED, UnsafePickleError, safe_load

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


class _CreatesFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_show_pickle_that_would_create_a_file_is_refused(tmp_path):
    from thgs.importers.common import ImportProblem
    from thgs.importers.show import read_show

    marker = tmp_path / "created.txt"
    d = show_dict()
    d["losses_to_log"]["evil"] = _CreatesFile(marker)
    p = tmp_path / "final_all.pkl"
    p.write_bytes(pickle.dumps(d, protocol=2))
    with pytest.raises(ImportProblem, match=r"final_all\.pkl: refused to load global '(io|builtins)\.open'"):
        read_show(p)
    with pytest.raises(UnsafePickleError, match=r"final_all\.pkl"):
        safe_load(p)
    assert not marker.exists()


def test_tensors_are_read_without_importing_torch(tmp_path):
    import subprocess
    import sys

    import torch

    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)[:, 1:3]  # a strided view into a larger storage
    d = show_dict(with_tensor=False)
    d["losses_to_log"] = {"view": t, "half": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
                          "ints": torch.arange(3), "flags": torch.tensor([True, False])}
    p = tmp_path / "final_all.pkl"
    p.write_bytes(pickle.dumps(d, protocol=2))
    out = safe_load(p)["losses_to_log"]
    np.testing.assert_array_equal(out["view"], t.numpy())
    np.testing.assert_array_equal(out["half"], [1.5, -2.0])
    assert out["ints"].dtype == np.int64 and out["flags"].dtype == np.bool_
    code = ("import sys; from thgs.io.safe_pickle import load; x = load(sys.argv[1]); "
            "assert x['losses_to_log']['view'].shape == (3, 2); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(p)], check=True, env={**os.environ})


def test_damaged_torch_storage_is_refused():
    import torch

    blob = bytearray(pickle.dumps({"t": torch.arange(4.0)}, protocol=2))
    i = blob.index(b"FloatStorage")
    blob[i:i + 12] = b"FloatStorags"  # an unknown storage type inside the payload
    with pytest.raises(UnsafePickleError, match="FloatStorags"):
        safe_load(bytes(blob))
