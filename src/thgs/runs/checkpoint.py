"""Checkpoint files (``checkpoint.pt``, ``avatar.pt``): read without running code from the file.

A checkpoint is a ``torch.save``'d dict of tensors and plain data (str, int, float, bool, None, lists,
tuples, dicts): the model and optimiser state dicts, the config as JSON-able values, the RNG states
(numpy's as a dict holding an int64 tensor) and the step. It is read with ``torch.load(weights_only=True)``,
whose unpickler builds only tensors and those containers; a file naming any other Python object is refused
before anything in it is called.

Format versions:

- 2 (written now): as above, no allow-list needed.
- 1 (written by thgs before this module): the same, but numpy's RNG state is the tuple of
  ``numpy.random.get_state()``, whose ``ndarray`` needs numpy's array reconstructor. Version-1 files are
  read with exactly that allow-list (:data:`V1_NUMPY_GLOBALS`: ``ndarray``, ``dtype``, the uint32 dtype
  class, ``_reconstruct``), scoped to that one load; these build arrays of numbers and call nothing else.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thgs.errors import ThgsError

FORMAT = "thgs-avatar"
VERSION = 2
READABLE_VERSIONS = (1, 2)
REQUIRED_FIELDS = ("step", "config", "model", "num_frames", "audio_channels", "active", "body")


class CheckpointError(ThgsError, ValueError):
    """A file is not a readable thgs checkpoint; the message names the file and the field."""


def _v1_numpy_globals() -> list[Any]:
    """The globals a version-1 checkpoint's numpy RNG state names, under numpy 2's and numpy 1's module names."""
    multiarray = getattr(np, "_core", None)
    multiarray = multiarray.multiarray if multiarray is not None else np.core.multiarray  # pragma: no cover
    uint32_dtype = type(np.dtype(np.uint32))
    entries: list[Any] = [multiarray._reconstruct, np.ndarray, np.dtype, uint32_dtype]
    entries.append((multiarray._reconstruct, "numpy.core.multiarray._reconstruct"))
    return entries


V1_NUMPY_GLOBALS = ("numpy.ndarray", "numpy.dtype", "numpy.dtypes.UInt32DType", "numpy._core.multiarray._reconstruct",
                    "numpy.core.multiarray._reconstruct")
"""The only globals a version-1 checkpoint may name (numpy's RNG state array)."""

_GLOBAL_RES = (re.compile(r"GLOBAL (\S+) was not an allowed global"), re.compile(r"unsupported GLOBAL (\S+)"),
               re.compile(r"but got <class '([^']+)'>"), re.compile(r"GLOBAL (\S+)"), re.compile(r"global (\S+)"))
_REFUSED = "Weights only load failed"


def numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state as plain data (tensors, str, int, float) for a version-2 checkpoint."""
    st = np.random.get_state(legacy=False)
    return {"bit_generator": str(st["bit_generator"]), "key": torch.from_numpy(st["state"]["key"].astype(np.int64)),
            "pos": int(st["state"]["pos"]), "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])}


def set_numpy_rng_state(state: Any) -> None:
    """Restore numpy's global RNG from :func:`numpy_rng_state` output (v2) or a ``get_state()`` tuple (v1)."""
    if isinstance(state, dict):
        key = state["key"].cpu().numpy().astype(np.uint32) if torch.is_tensor(state["key"]) else np.asarray(
            state["key"], dtype=np.uint32)
        np.random.set_state({"bit_generator": state["bit_generator"], "state": {"key": key, "pos": int(state["pos"])},
                             "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])})
    else:
        np.random.set_state(state)


def _first_line(exc: BaseException) -> str:
    """The first sentence of the error's message (torch's go on with advice)."""
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    return line.split(". ")[0].rstrip(".")


def _load(path: Path, map_location: Any, allow_v1: bool) -> Any:
    if allow_v1:
        with torch.serialization.safe_globals(_v1_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    return torch.load(path, map_location=map_location, weights_only=True)


def _refused_global(exc: BaseException) -> str | None:
    """The object a weights-only load refused (``module.name``), "" when refused without a name, None when
    the error is not a refusal."""
    text = str(exc)
    for regex in _GLOBAL_RES:
        m = regex.search(text)
        if m:
            return m.group(1).rstrip(".,;")
    if "Unsupported operand" in text:  # not a pickle stream at all (a foreign or random file)
        return None
    return "" if _REFUSED in text else None


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` ``path`` with ``weights_only=True`` (plus the version-1 numpy allow-list when the file
    names only those globals). Raises :class:`CheckpointError` naming the file for anything else: a missing,
    empty, truncated or foreign file, or one naming a Python object that loading would call."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a thgs checkpoint")
    allow_v1 = False
    for _ in range(2):
        try:
            return _load(path, map_location, allow_v1)
        except pickle.UnpicklingError as exc:
            name = _refused_global(exc)
            if name is not None and name in V1_NUMPY_GLOBALS and not allow_v1:
                allow_v1 = True
                continue
            if name is not None:
                raise CheckpointError(
                    f"{path}: refused: the file names the Python object {name or '(unnamed)'}, which loading "
                    "would call; thgs checkpoints hold only tensors and plain data (it was not loaded)") from None
            raise CheckpointError(f"{path}: not a thgs checkpoint (not a torch file)") from None
        except RuntimeError as exc:
            text = str(exc)
            if "PytorchStreamReader" in text or "zip archive" in text or "central directory" in text:
                raise CheckpointError(f"{path}: truncated or damaged checkpoint ({_first_line(exc)})") from None
            raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None
        except EOFError:
            raise CheckpointError(f"{path}: truncated checkpoint (the file ends early)") from None
        except Exception as exc:  # noqa: BLE001 - a foreign file makes the loader fail in many ways
            raise CheckpointError(f"{path}: not a thgs checkpoint ({type(exc).__name__}: {_first_line(exc)})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A thgs checkpoint's dict, loaded safely (:func:`load_checkpoint_file`) and checked: the ``format`` and
    ``version`` fields and the fields every reader needs. Raises :class:`CheckpointError`."""
    path = Path(path)
    ckpt = load_checkpoint_file(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a thgs avatar checkpoint (field 'format' is not {FORMAT!r})")
    version = ckpt.get("version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and version > VERSION
        raise CheckpointError(f"{path}: field 'version' is {version!r}; this thgs reads versions "
                              f"{', '.join(map(str, READABLE_VERSIONS))}" + ("; update thgs" if newer else ""))
    missing = [k for k in REQUIRED_FIELDS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: field {missing[0]!r} missing: not a complete thgs checkpoint")
    if not isinstance(ckpt["model"], dict) or not all(torch.is_tensor(v) for v in ckpt["model"].values()):
        raise CheckpointError(f"{path}: field 'model' is not a state dict of tensors")
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"{path}: field 'config' is not a dict")
    return ckpt


__all__ = ["FORMAT", "VERSION", "CheckpointError", "load_checkpoint_file", "numpy_rng_state", "read_checkpoint",
           "set_numpy_rng_state"]
