"""The ``thgs`` command line: one program, one module per subcommand under :mod:`thgs.commands`.

A subcommand module defines ``NAME`` (str), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are discovered, so adding a command never edits this file.

Every user error (:class:`thgs.errors.ThgsError`: :class:`UserError` and each layer's error type) and an
operating-system error about a named file end the command with one line ``thgs COMMAND: error: ...`` on
stderr and exit status 2; nothing else is caught, so a defect keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
from types import ModuleType

from thgs import __version__
from thgs.config import HelpFormatter
from thgs.errors import ThgsError, one_line


class UserError(ThgsError):
    """An error caused by the user's input: printed as one clear line, exit status 2."""


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _is_user_os_error(exc: OSError) -> bool:
    """An OSError about a named file or the disk (full, read-only, permissions): the user's environment."""
    return exc.filename is not None or exc.errno in _ENVIRONMENT_ERRNOS


def _os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return where + (exc.strerror or one_line(exc))


def _command_modules() -> list[ModuleType]:
    import thgs.commands as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"thgs.commands.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thgs",
        description="Talking human avatars from monocular video with 3D Gaussian Splatting.",
    )
    parser.add_argument("--version", action="version", version=f"thgs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           usage=getattr(mod, "USAGE", None), formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except ThgsError as exc:
        print(f"thgs {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not _is_user_os_error(exc):
            raise
        print(f"thgs {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"thgs {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
