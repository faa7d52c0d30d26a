"""The one restricted unpickler of thgs: every pickle the project reads goes through :func:`load`.

A pickle is a program: each global it names is a callable the loader invokes. :class:`SafeUnpickler`
resolves a global only when it is on the allow-list below, and every entry maps to a function of this
module that checks its arguments and builds plain data. Nothing a file names is ever imported or run;
any other global (``os.system``, ``builtins.open``, ``builtins.eval``, a class of some library...) and
any persistent id is refused with :class:`UnsafePickleError` naming the file and the global, before
anything it would have done happens.

The allow-list (module, name -> what is built):

* ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` / ``scalar``,
  ``numpy[._]core.numeric._frombuffer`` -> numpy arrays and scalars of boolean, numeric or string dtypes
  (object and structured dtypes are refused);
* ``collections.OrderedDict``, ``builtins``/``__builtin__`` ``set``, ``frozenset``, ``complex``,
  ``bytearray``, ``slice``, ``object`` -> plain values; dict, list, tuple, str, bytes, numbers, bools and
  None need no global;
* ``_codecs.encode`` (how protocol-2 pickles store bytes), restricted to latin-1 / utf-8 / ascii text;
* ``copy_reg``/``copyreg`` ``_reconstructor`` (how protocol 0/1 pickles build objects), only for the
  classes of this list with ``object`` as base;
* ``scipy.sparse[._]csc|csr|coo`` ``*_matrix`` / ``*_array`` (SMPL-X ``.pkl`` files store
  ``J_regressor`` so) -> a :class:`SparseMatrix` holding the validated arrays (scipy is not imported);
* any ``chumpy.*`` class (SMPL-X ``.pkl`` files wrap arrays in chumpy objects) -> an inert
  :class:`ChumpyValue` that keeps the wrapped array; :func:`plain` replaces it by that array (chumpy is
  never imported and no chumpy expression is evaluated: one without a stored value becomes ``None``);
* ``torch._utils._rebuild_tensor[_v2]`` with ``torch.storage._load_from_bytes`` (torch tensors pickled in
  SHOW's ``losses_to_log``) -> numpy arrays: the storage payload (torch's legacy serialisation) is parsed
  here, by a second unpickler that accepts only the ``torch.<Type>Storage`` names and a storage
  persistent id, then the raw bytes; torch is not imported. With ``tensors="drop"`` tensors become
  :data:`DROPPED`.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable, Literal

import numpy as np

from thgs.errors import ThgsError


class UnsafePickleError(ThgsError, pickle.UnpicklingError):
    """The pickle names a global that is not on the allow-list, or builds a refused value."""


class _Dropped:
    """Stands in for a torch tensor skipped by ``tensors="drop"``."""

    _instance: "_Dropped | None" = None

    def __new__(cls) -> "_Dropped":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROPPED"

    def __reduce__(self) -> str:
        return "DROPPED"


DROPPED = _Dropped()
"""The value a torch tensor unpickles to with ``tensors="drop"``."""


# ---------------------------------------------------------------------------------------------
# numpy


def _np_multiarray() -> Any:
    """numpy's array-rebuild module (``numpy._core.multiarray`` in numpy 2, ``numpy.core.multiarray`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _check_dtype(dt: np.dtype) -> np.dtype:
    if dt.kind not in "biufcSU" or dt.hasobject or dt.fields is not None:
        raise UnsafePickleError(f"refused numpy dtype {dt} (only boolean, numeric and string dtypes)")
    return dt


def _safe_dtype(*args: Any) -> np.dtype:
    spec = args[0] if args else None
    if isinstance(spec, (bytes, bytearray)):
        spec = bytes(spec).decode("latin1")
    if not isinstance(spec, str):
        raise UnsafePickleError("refused numpy dtype built from a non-string")
    return _check_dtype(np.dtype(spec))


def _safe_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise UnsafePickleError(f"refused array subclass {cls!r}")
    dt = dtype if isinstance(dtype, np.dtype) else _safe_dtype(dtype)
    return _np_multiarray()._reconstruct(np.ndarray, shape, dt)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"refused numpy scalar of type {type(dtype).__name__}")
    _check_dtype(dtype)
    if data is not None and not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("refused numpy scalar built from a non-bytes payload")
    scalar = _np_multiarray().scalar
    return scalar(dtype, data) if data is not None else scalar(dtype)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: str = "C") -> np.ndarray:
    """Pickle protocol 5's array rebuild, restricted to plain dtypes; copies the buffer."""
    dt = _check_dtype(dtype if isinstance(dtype, np.dtype) else _safe_dtype(dtype))
    if not isinstance(shape, tuple) or order not in ("C", "F"):
        raise UnsafePickleError("refused array rebuild from a buffer with an unsupported shape or order")
    arr = np.frombuffer(bytes(buf), dtype=dt)
    return arr.reshape(shape, order=order).copy()


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(encoding, str) or encoding.lower().replace("_", "-") not in (
            "latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    if not isinstance(obj, str) or errors != "strict":
        raise UnsafePickleError("refused _codecs.encode of a non-string")
    return obj.encode(encoding, errors)


# ---------------------------------------------------------------------------------------------
# scipy.sparse and chumpy stand-ins (built without importing either library)


class SparseMatrix:
    """A scipy.sparse matrix read from a pickle: its format (``csc``, ``csr``, ``coo``) and arrays.

    Built empty by the unpickler; the pickle's state (a dict of attributes) is checked by
    :meth:`__setstate__` and :meth:`toarray` densifies it with numpy alone.
    """

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.shape: tuple[int, int] = (0, 0)
        self.data = np.zeros(0)
        self.indices = np.zeros(0, dtype=np.int64)
        self.indptr = np.zeros(1, dtype=np.int64)
        self.row = np.zeros(0, dtype=np.int64)
        self.col = np.zeros(0, dtype=np.int64)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError("refused scipy.sparse state that is not a dict")
        shape = state.get("_shape", state.get("shape"))
        if not (isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise UnsafePickleError(f"refused scipy.sparse matrix with shape {shape!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        state = dict(state)
        coords = state.get("coords")
        if self.format == "coo" and isinstance(coords, tuple) and len(coords) == 2:  # scipy >= 1.13
            state["row"], state["col"] = coords
        names = ("data", "row", "col") if self.format == "coo" else ("data", "indices", "indptr")
        for name in names:
            value = state.get(name)
            if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.hasobject:
                raise UnsafePickleError(f"refused scipy.sparse matrix: field '{name}' is not a 1-D array")
            setattr(self, name, value)

    def toarray(self) -> np.ndarray:
        """The dense [rows, cols] array; ``ValueError`` when the stored indices are inconsistent."""
        rows, cols = self.shape
        out = np.zeros(self.shape, dtype=self.data.dtype)
        if self.format == "coo":
            r, c = self.row.astype(np.int64), self.col.astype(np.int64)
        else:
            major, minor = (cols, rows) if self.format == "csc" else (rows, cols)
            ptr = self.indptr.astype(np.int64)
            if ptr.shape != (major + 1,) or ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != self.data.size:
                raise ValueError(f"inconsistent {self.format} matrix: indptr does not match the data")
            lead = np.repeat(np.arange(major), np.diff(ptr))
            other = self.indices.astype(np.int64)
            r, c = (other, lead) if self.format == "csc" else (lead, other)
        if not (r.size == c.size == self.data.size):
            raise ValueError(f"inconsistent {self.format} matrix: index and data lengths differ")
        if r.size and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
            raise ValueError(f"inconsistent {self.format} matrix: indices outside shape {self.shape}")
        np.add.at(out, (r, c), self.data)
        return out


def _sparse_class(fmt: str) -> type:
    class _Sparse(SparseMatrix):
        def __new__(cls, *args: Any, **kwargs: Any) -> SparseMatrix:
            obj = object.__new__(cls)
            SparseMatrix.__init__(obj, fmt)
            return obj

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

    _Sparse.__name__ = _Sparse.__qualname__ = f"SparseMatrix_{fmt}"
    return _Sparse


_SPARSE = {fmt: _sparse_class(fmt) for fmt in ("csc", "csr", "coo")}


class ChumpyValue:
    """Stands in for any chumpy object while unpickling; keeps the wrapped array, runs nothing."""

    _args: tuple = ()
    _state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "ChumpyValue":
        obj = super().__new__(cls)
        obj._args = args
        obj._state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def array(self) -> Any:
        """The wrapped value (its ``x``), or None for a chumpy expression without a stored value."""
        state = self._state
        if isinstance(state, tuple) and state and isinstance(state[0], dict):
            state = state[0]
        if isinstance(state, dict) and "x" in state:
            return plain(state["x"])
        if self._args:
            return plain(self._args[0])
        return None


def plain(value: Any) -> Any:
    """``value`` with chumpy stand-ins replaced by their arrays (recursively through dict/list/tuple)."""
    if isinstance(value, ChumpyValue):
        return value.array()
    if isinstance(value, dict):
        return type(value)((k, plain(v)) for k, v in value.items()) if isinstance(value, collections.OrderedDict) \
            else {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for protocol 0/1 pickles, for this module's stand-ins only."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, (SparseMatrix, ChumpyValue))):
        raise UnsafePickleError(f"refused copy_reg._reconstructor of {cls!r} on base {base!r}")
    return cls.__new__(cls)


# ---------------------------------------------------------------------------------------------
# torch tensors, read as numpy without torch

_TORCH_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    def __init__(self, code: str) -> None:
        self.code = code


class _StorageUnpickler(pickle.Unpickler):
    """Reads the pickles of torch's legacy storage serialisation: only storage type names and one
    ``('storage', type, key, location, numel)`` persistent id are accepted."""

    def __init__(self, file: BinaryIO, where: str) -> None:
        super().__init__(file, encoding="latin1")
        self._where = where
        self.storages: dict[str, tuple[str, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(_TORCH_STORAGE_DTYPES[name])
        raise UnsafePickleError(f"{self._where}: refused to load global '{module}.{name}' in a torch storage")

    def persistent_load(self, pid: Any) -> Any:
        if (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int) and pid[4] >= 0):
            self.storages[pid[2]] = (pid[1].code, pid[4])
            return ("storage", pid[2])
        raise UnsafePickleError(f"{self._where}: refused persistent id {pid!r} in a torch storage")


def _bf16_to_f32(raw: bytes, order: str) -> np.ndarray:
    half = np.frombuffer(raw, dtype=f"{order}u2").astype(np.uint32)
    return (half << 16).view(np.float32)


def _parse_storage(data: Any, where: str) -> np.ndarray:
    """A torch storage serialised by ``torch.save(storage, _use_new_zipfile_serialization=False)``
    (what ``torch.storage._load_from_bytes`` receives) -> its elements as a flat numpy array."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"{where}: refused torch storage payload that is not bytes")
    f = io.BytesIO(bytes(data))
    try:
        magic = _StorageUnpickler(f, where).load()
        version = _StorageUnpickler(f, where).load()
        info = _StorageUnpickler(f, where).load()
        if magic != 0x1950A86A20F9469CFC6C or version != 1001 or not isinstance(info, dict):
            raise UnsafePickleError(f"{where}: torch storage payload in an unknown layout")
        order = "<" if info.get("little_endian", True) else ">"
        body = _StorageUnpickler(f, where)
        ref = body.load()
        keys = _StorageUnpickler(f, where).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged payload raises many kinds of errors
        raise UnsafePickleError(f"{where}: unreadable torch storage payload ({exc})") from exc
    if not (isinstance(ref, tuple) and ref[:1] == ("storage",) and isinstance(keys, list) and len(keys) == 1
            and keys[0] == ref[1] and ref[1] in body.storages):
        raise UnsafePickleError(f"{where}: torch storage payload holds something other than one storage")
    code, numel = body.storages[ref[1]]
    head = f.read(8)
    if len(head) != 8 or struct.unpack(f"{order}q", head)[0] != numel:
        raise UnsafePickleError(f"{where}: torch storage payload is truncated")
    size = 2 if code == "bf16" else np.dtype(code).itemsize
    raw = f.read(numel * size)
    if len(raw) != numel * size:
        raise UnsafePickleError(f"{where}: torch storage payload is truncated")
    if code == "bf16":
        return _bf16_to_f32(raw, order)
    return np.frombuffer(raw, dtype=np.dtype(code).newbyteorder(order) if size > 1 else code).astype(code)


def _tensor_from_storage(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> np.ndarray:
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise UnsafePickleError("refused tensor rebuild from something other than a storage")
    ok = (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
          and len(size) == len(stride) and all(isinstance(s, int) and s >= 0 for s in size + stride) and offset >= 0)
    if not ok:
        raise UnsafePickleError("refused tensor rebuild with malformed offset/size/stride")
    if any(s == 0 for s in size):
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= storage.size:
        raise UnsafePickleError("refused tensor rebuild reaching outside its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(st * item for st in stride),
                                           writeable=False)
    return np.array(view)


def _drop(*_: Any, **__: Any) -> _Dropped:
    return DROPPED


# ---------------------------------------------------------------------------------------------
# The allow-list

_BUILTINS: dict[str, Callable[..., Any]] = {
    "set": set, "frozenset": frozenset, "complex": complex, "bytearray": bytearray, "slice": slice, "object": object,
}

ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("copy_reg", "_reconstructor"): _safe_reconstructor,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    **{(mod, "_reconstruct"): _safe_reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _safe_scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): _safe_frombuffer for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    **{(mod, name): fn for mod in ("builtins", "__builtin__") for name, fn in _BUILTINS.items()},
    **{(f"scipy.sparse{sep}{fmt}", f"{fmt}_{kind}"): cls for fmt, cls in _SPARSE.items() for sep in (".", "._")
       for kind in ("matrix", "array")},
    **{("scipy.sparse", f"{fmt}_{kind}"): cls for fmt, cls in _SPARSE.items() for kind in ("matrix", "array")},
}
"""(module, name) -> the constructor used for it; everything else is refused."""

_TORCH_REBUILD = (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"))
_TORCH_STORAGE = ("torch.storage", "_load_from_bytes")


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` returns only the constructors of :data:`ALLOWED`
    (plus chumpy stand-ins and torch tensors as numpy, see the module docstring)."""

    def __init__(self, file: BinaryIO, *, tensors: Literal["numpy", "drop"] = "numpy", where: str = "pickle"):
        super().__init__(file, encoding="latin1")
        if tensors not in ("numpy", "drop"):
            raise ValueError(f"tensors must be 'numpy' or 'drop', got {tensors!r}")
        self._tensors = tensors
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        fn = ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyValue
        if (module, name) in _TORCH_REBUILD:
            return _drop if self._tensors == "drop" else _tensor_from_storage
        if (module, name) == _TORCH_STORAGE:
            if self._tensors == "drop":
                return _drop
            return lambda data: _parse_storage(data, self._where)
        raise UnsafePickleError(f"{self._where}: refused to load global '{module}.{name}' (only numpy arrays, "
                                "plain values, sparse matrices and tensors as arrays are read)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: refused persistent id {pid!r}")


def _check_arrays(value: Any, where: str, depth: int = 0) -> None:
    """Refuse object arrays that a crafted ndarray state could have produced."""
    if depth > 200:
        return
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise UnsafePickleError(f"{where}: refused numpy array of dtype {value.dtype}")
    elif isinstance(value, dict):
        for v in value.values():
            _check_arrays(v, where, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _check_arrays(v, where, depth + 1)


def load(source: str | os.PathLike | bytes, *, tensors: Literal["numpy", "drop"] = "numpy",
         where: str | None = None) -> Any:
    """Unpickle a file (or bytes) with :class:`SafeUnpickler`.

    Args:
        source: a path, or the pickle's bytes.
        tensors: ``"numpy"`` reads torch tensors as numpy arrays, ``"drop"`` replaces them by :data:`DROPPED`.
        where: the name used in error messages (default: the path, or ``"pickle"``).
    Raises:
        UnsafePickleError: a refused global, persistent id or dtype (the message names the file and the global).
        pickle.UnpicklingError / EOFError / ValueError / ...: a damaged file.
    """
    if isinstance(source, (bytes, bytearray)):
        name = where or "pickle"
        out = SafeUnpickler(io.BytesIO(bytes(source)), tensors=tensors, where=name).load()
    else:
        path = Path(source)
        name = where or str(path)
        with open(path, "rb") as fh:
            out = SafeUnpickler(fh, tensors=tensors, where=name).load()
    _check_arrays(out, name)
    return out


safe_load = load
"""Alias of :func:`load`."""

__all__ = ["ALLOWED", "ChumpyValue", "DROPPED", "SafeUnpickler", "SparseMatrix", "UnsafePickleError", "load",
           "plain", "safe_load"]
