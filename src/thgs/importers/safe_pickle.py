"""A restricted unpickler for tracker outputs (SHOW's ``final_all.pkl`` and similar).

Only numpy arrays (numeric or boolean dtypes), numpy scalars and plain Python values (dict, list, tuple, set,
str, bytes, numbers, None) can be built. Any other global a pickle names, i.e. any callable it could invoke,
is refused with :class:`UnsafePickleError`. Torch tensors, which such files sometimes carry in logging
fields, are read without importing torch's pickling machinery: the tensor's storage bytes are parsed by
``torch.load(..., weights_only=True)`` (itself a restricted loader) and the tensor comes back as a numpy
array; with ``tensors="drop"`` they become :data:`DROPPED` instead.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable, Literal

import numpy as np
from thgs.errors import ThgsError


class UnsafePickleError(ThgsError, pickle.UnpicklingError):
    """The pickle names a global that is not on the allow list, or uses a refused dtype."""


class _Dropped:
    """Stands in for a torch tensor skipped by ``tensors="drop"``."""

    _instance: "_Dropped | None" = None

    def __new__(cls) -> "_Dropped":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED = _Dropped()
"""The value a torch tensor unpickles to with ``tensors="drop"``."""


def _np_multiarray() -> Any:
    """numpy's array-rebuild module (``numpy._core.multiarray`` in numpy 2, ``numpy.core.multiarray`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _safe_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args[:1])
    if dt.kind not in "biufcSUV" or dt.hasobject:
        raise UnsafePickleError(f"refused numpy dtype {dt} (only numeric, boolean and string dtypes)")
    return dt


def _safe_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise UnsafePickleError(f"refused array subclass {cls!r}")
    dt = dtype if isinstance(dtype, np.dtype) else _safe_dtype(dtype)
    return _np_multiarray()._reconstruct(np.ndarray, shape, dt)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"refused numpy scalar of dtype {dtype!r}")
    scalar = _np_multiarray().scalar
    return scalar(dtype, data) if data is not None else scalar(dtype)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: str = "C") -> np.ndarray:
    """Pickle protocol 5's array rebuild, restricted to plain dtypes; copies the buffer."""
    dt = dtype if isinstance(dtype, np.dtype) else _safe_dtype(dtype)
    if dt.hasobject or not isinstance(shape, tuple) or order not in ("C", "F"):
        raise UnsafePickleError("refused array rebuild from buffer with an unsupported dtype, shape or order")
    arr = np.frombuffer(bytes(buf), dtype=dt)
    return arr.reshape(shape, order=order).copy()


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    if not isinstance(obj, str):
        raise UnsafePickleError("refused _codecs.encode of a non-string")
    return obj.encode(encoding, errors)


def _storage_from_bytes(data: bytes) -> Any:
    """Parse a serialised torch storage with torch's weights-only loader (no arbitrary callables)."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("refused torch storage payload that is not bytes")
    import torch

    try:
        return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure means the payload is not a plain storage
        raise UnsafePickleError(f"refused torch storage payload ({exc})") from exc


def _tensor_to_numpy(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> np.ndarray:
    import torch

    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise UnsafePickleError(f"refused tensor rebuild from {type(storage).__name__}")
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise UnsafePickleError("refused tensor rebuild with malformed offset/size/stride")
    dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
    t = torch.empty(0, dtype=dtype)
    t.set_(storage if isinstance(storage, torch.TypedStorage) else torch.TypedStorage(
        wrap_storage=storage, dtype=dtype, _internal=True), offset, size, stride)
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().cpu().clone().numpy()


def _drop(*_: Any, **__: Any) -> _Dropped:
    return DROPPED


_PLAIN: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
}

_TORCH_NUMPY: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor_to_numpy,
    ("torch._utils", "_rebuild_tensor"): _tensor_to_numpy,
}

_TORCH_DROP: dict[tuple[str, str], Callable[..., Any]] = {key: _drop for key in _TORCH_NUMPY}


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns allow-listed constructors."""

    def __init__(self, file: BinaryIO, *, tensors: Literal["numpy", "drop"] = "numpy", where: str = "pickle"):
        super().__init__(file, encoding="latin1")
        if tensors not in ("numpy", "drop"):
            raise ValueError(f"tensors must be 'numpy' or 'drop', got {tensors!r}")
        self._allowed = dict(_PLAIN)
        self._allowed.update(_TORCH_NUMPY if tensors == "numpy" else _TORCH_DROP)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        fn = self._allowed.get((module, name))
        if fn is None:
            raise UnsafePickleError(f"{self._where}: refused to load global '{module}.{name}' (only numpy arrays "
                                    "and plain values are read)")
        return fn

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: refused persistent id {pid!r}")


def safe_load(path_or_bytes: str | os.PathLike | bytes, *, tensors: Literal["numpy", "drop"] = "numpy") -> Any:
    """Unpickle a file (or bytes) with :class:`SafeUnpickler`.

    Raises:
        UnsafePickleError: a refused global or dtype (the message names the file and the global).
        pickle.UnpicklingError / EOFError / ValueError: a damaged file.
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return SafeUnpickler(io.BytesIO(path_or_bytes), tensors=tensors).load()
    path = Path(path_or_bytes)
    with open(path, "rb") as fh:
        return SafeUnpickler(fh, tensors=tensors, where=str(path)).load()
