"""Which device and rasterizer thgs uses: CUDA with gsplat when present, else the CPU reference."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path


def default_device(prefer: str | None = None) -> str:
    """``prefer`` ('cpu', 'cuda', 'cuda:1', or None/'auto') -> a torch device string.

    The environment variable ``THGS_DEVICE`` overrides the automatic choice.
    """
    import torch

    prefer = prefer or os.environ.get("THGS_DEVICE") or "auto"
    if prefer == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    m = re.fullmatch(r"cpu|mps|cuda(?::(\d+))?", prefer)
    if m is None:
        raise RuntimeError(f"unknown device {prefer!r} (auto, cpu, cuda or cuda:N)")
    if prefer.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} asked for, but torch sees no CUDA GPU")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise RuntimeError(f"device {prefer!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return prefer


def prepare_gsplat(device: str) -> bool:
    """Load (building on first use) gsplat's CUDA extension in this process when ``device`` is CUDA and
    gsplat is installed; returns whether it is loaded. Call it before starting several processes that
    render on the GPU: processes that find no build start compiling at the same time and can read each
    other's half-written library."""
    if not default_device(device).startswith("cuda") or importlib.util.find_spec("gsplat") is None:
        return False
    try:
        from gsplat.cuda._backend import _C  # noqa: PLC0415 - the import is the build
    except Exception:  # a broken install: the runs report it themselves
        return False
    return _C is not None


def gsplat_status() -> dict:
    """Whether gsplat is importable and whether its CUDA extension is built/loadable.

    Importing gsplat does not compile its kernels; ``compiled`` reports whether the extension is
    already available without triggering a build (a first use compiles it, ~1 minute).
    """
    status = {"importable": False, "version": None, "compiled": False, "detail": ""}
    if importlib.util.find_spec("gsplat") is None:
        status["detail"] = "not installed (pip install 'thgs[gpu]')"
        return status
    try:
        import gsplat  # noqa: F401

        status["importable"] = True
        status["version"] = getattr(gsplat, "__version__", None)
    except Exception as exc:  # pragma: no cover - depends on the user's install
        status["detail"] = f"import failed: {exc}"
        return status
    try:
        if importlib.util.find_spec("gsplat.csrc") is not None:
            status["compiled"] = True
            status["detail"] = "prebuilt CUDA extension"
        elif "gsplat.cuda._backend" in sys.modules:
            status["compiled"] = getattr(sys.modules["gsplat.cuda._backend"], "_C", None) is not None
            status["detail"] = "CUDA extension loaded" if status["compiled"] else "CUDA extension unavailable"
        else:
            # Importing gsplat.cuda._backend would start the ~1 minute JIT build: look for its output instead.
            from torch.utils.cpp_extension import _get_build_directory

            built = Path(_get_build_directory("gsplat_cuda", verbose=False)) / "gsplat_cuda.so"
            status["compiled"] = built.exists()
            status["detail"] = (f"CUDA extension built at {built}" if built.exists()
                                else "CUDA kernels compile on first use (about a minute)")
    except Exception as exc:  # pragma: no cover
        status["detail"] = f"extension unavailable: {exc}"
    return status
