"""Atomic file output: write to a temporary file beside the target, then rename over it.

A run that is killed mid-write leaves the previous file (or none), never a truncated one. What a killed
write leaves behind (its hidden temporary file ``.NAME.PID.XXXXXXXX.SUFFIX`` or staging folder
``.NAME.partial.PID.XXXXXXXX``) is removed by the next write to the same target: :func:`sweep_stale` removes
only names of exactly these patterns whose writing process is gone (or, for names from before the PID was
part of them, that are older than the current process).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator


_IMPORTED = time.time()
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part


def _process_start_time() -> float:
    """When this process started (Linux /proc; elsewhere: when this module was imported)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime in clock ticks after boot
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return min(_IMPORTED, btime + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def temp_prefix(name: str) -> str:
    """The hidden prefix of a temporary file for the target ``name``: ``.NAME.PID.``."""
    return f".{name}.{os.getpid()}."


def partial_prefix(name: str) -> str:
    """The hidden prefix of a staging folder for the target folder ``name``: ``.NAME.partial.PID.``."""
    return f".{name}.partial.{os.getpid()}."


def _is_stale(entry: Path, pid: str | None, started: float) -> bool:
    if pid is not None:
        return not _alive(int(pid))
    try:
        return entry.stat().st_mtime < started
    except OSError:
        return False


def sweep_stale(folder: str | os.PathLike, name: str, suffix: str = "") -> list[Path]:
    """Remove the leftovers of interrupted writes of ``folder/name``: temporary files
    ``.NAME.[PID.]XXXXXXXX{suffix}`` and staging folders ``.NAME.partial.[PID.]XXXXXXXX`` whose writer process
    is gone (names without a PID: older than this process). Returns what was removed; never raises."""
    folder = Path(folder)
    file_re = re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)\.)?{_RANDOM}{re.escape(suffix)}$")
    dir_re = re.compile(rf"^\.{re.escape(name)}\.partial\.(?:(\d+)\.)?{_RANDOM}$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    started = _process_start_time()
    for e in entries:
        try:
            is_dir = e.is_dir(follow_symlinks=False)
            m = (dir_re if is_dir else file_re).match(e.name)
            if m is None or (not is_dir and not e.is_file(follow_symlinks=False)):
                continue
            path = Path(e.path)
            if not _is_stale(path, m.group(1), started):
                continue
            if is_dir:
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    ``suffix`` defaults to the target's suffix so that writers choosing a format by extension
    (PIL, PyAV, numpy) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else path.suffix
    sweep_stale(path.parent, path.name, suffix)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_image(path: str | os.PathLike, image: Any) -> Path:
    """Write ``image`` (uint8 [H, W, 3]) atomically: JPEG (quality 88) when the name ends in .jpg/.jpeg, else
    PNG; returns the path."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG" if jpeg else "PNG",
                                                          **({"quality": 88} if jpeg else {}))
    return path


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path`` and rename it into place on success.

    ``path`` must not exist yet (or be an empty folder); on failure nothing is left behind.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(path.name), dir=path.parent))
    try:
        yield tmp
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
