"""Driving, viewing and evaluating an avatar never import the trainer: only the modules that run training
import :mod:`thgs.train`; and nothing below the command line imports :mod:`thgs.commands` (read from the
sources, every import statement, at any depth)."""

from __future__ import annotations

import ast
from pathlib import Path

import thgs

SRC = Path(thgs.__file__).resolve().parent

MAY_IMPORT_TRAIN = {
    "commands/train.py",  # thgs train
    "commands/demo.py",  # thgs demo trains the avatar it shows
    "bench/speed.py",  # train_speed times training steps
}
"""Modules outside ``thgs/train/`` that run training, relative to the package folder."""


def _imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every module an ``import`` or ``from ... import`` in ``tree`` names; relative
    imports are resolved against ``module`` (the dotted name of the file's package)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
    return out


MAY_IMPORT_COMMANDS = {"cli.py", "__main__.py"}
"""The command line itself: the only modules outside ``thgs/commands/`` that import a command."""


def _imports(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _imports_of(package: str, allowed: set[str], src: Path) -> list[str]:
    """``file:line: module`` for each import of ``thgs.<package>`` outside that package and ``allowed``."""
    found = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith(f"{package}/") or rel in allowed:
            continue
        module = ".".join(["thgs", *path.relative_to(src).parent.parts])
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in _imported_modules(tree, module):
            if _imports(name, f"thgs.{package}"):
                found.append(f"{rel}:{line}: {name}")
    return found


def train_imports(src: Path = SRC) -> list[str]:
    """``file:line: module`` for each import of :mod:`thgs.train` outside the modules allowed to."""
    return _imports_of("train", MAY_IMPORT_TRAIN, src)


def command_imports(src: Path = SRC) -> list[str]:
    """``file:line: module`` for each import of :mod:`thgs.commands` below the command line."""
    return _imports_of("commands", MAY_IMPORT_COMMANDS, src)


def test_nothing_outside_training_imports_the_trainer():
    assert train_imports() == []


def test_the_check_sees_every_form_of_import(tmp_path):
    pkg = tmp_path / "animate"
    pkg.mkdir()
    (pkg / "a.py").write_text("import thgs.train.trainer\n")
    (pkg / "b.py").write_text("def f():\n    from thgs.train.data import TrainingData\n")
    (pkg / "c.py").write_text("from thgs import train\n")
    (pkg / "d.py").write_text("from ..train import trainer\n")
    (pkg / "e.py").write_text("from thgs.runs.frames import subject_camera\nimport thgs.trainer_like\n")
    assert sorted({f.split(":")[0] for f in train_imports(tmp_path)}) == ["animate/a.py", "animate/b.py",
                                                                          "animate/c.py", "animate/d.py"]


def test_nothing_below_the_command_line_imports_a_command():
    assert command_imports() == []


def test_the_command_check_sees_every_form_of_import(tmp_path):
    for pkg in ("viewer", "commands"):
        (tmp_path / pkg).mkdir()
    (tmp_path / "viewer" / "a.py").write_text("def f():\n    from thgs.commands.render import drive_request\n")
    (tmp_path / "viewer" / "b.py").write_text("from ..commands import render\n")
    (tmp_path / "viewer" / "c.py").write_text("from thgs import commands\n")
    (tmp_path / "viewer" / "d.py").write_text("import thgs.commandsish\nfrom thgs.animate.drive import build_drive\n")
    (tmp_path / "commands" / "e.py").write_text("from thgs.commands.render import drive_request\n")
    (tmp_path / "cli.py").write_text("import thgs.commands.render\n")
    assert sorted({f.split(":")[0] for f in command_imports(tmp_path)}) == ["viewer/a.py", "viewer/b.py",
                                                                            "viewer/c.py"]
