"""The base of every error a user's input can cause.

Each layer has its own error type (``SubjectError``, ``VideoError``, ``AudioError``, ``DriveError``,
``CheckpointError``, ``ConfigError``, ``ImportProblem``, ``PlyError``...), all subclasses of
:class:`ThgsError`. The command line (:func:`thgs.cli.main`) catches :class:`ThgsError` and prints it as
``thgs COMMAND: error: MESSAGE`` with exit status 2, never a traceback; the message names the file (or
flag) and the field. Any other exception is a defect of thgs and keeps its traceback.

Layer errors also subclass the builtin they refine (mostly ``ValueError``) so that library callers
catching those keep working.
"""

from __future__ import annotations

from typing import Any


class ThgsError(Exception):
    """An error caused by the user's input or environment; its message names the file or flag and field."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` for the command line.

    A ``SubjectError``-like error (``problems`` attribute) with one problem becomes ``PATH: PROBLEM``; with
    several it keeps one problem per line. Any other message has its line breaks folded into one line.
    """
    problems: Any = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        if len(problems) == 1:
            return f"{getattr(exc, 'path', '')}: {problems[0]}".lstrip(": ")
        return str(exc)
    text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


__all__ = ["ThgsError", "one_line"]
