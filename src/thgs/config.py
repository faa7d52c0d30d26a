"""Dataclass configs <-> command-line flags.

Every config is a dataclass whose fields carry their help text in ``field(metadata={"help": ...})``.
:func:`add_dataclass_arguments` turns such a class into argparse flags (``--field-name``) and
:func:`dataclass_from_namespace` builds the instance back, applying only the flags the user gave on
top of a base instance (a named preset, say).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T")

_MISSING = object()


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING, **meta: Any) -> Any:
    """A dataclass field with its help text (shown by ``--help``)."""
    metadata = {"help": help, **meta}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each flag's default once: argparse's ``(default: X)`` is added only where the help text
    does not state a default itself and the default says something (not None, not off for an on/off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default" in text:
            return text
        if action.default is None or action.default is argparse.SUPPRESS or action.default in ([], ()):
            return text
        if action.default is False and action.nargs == 0:  # store_true: off unless given
            return text
        return super()._get_help_string(action)


def finite_float(text: str) -> float:
    """An argparse ``type``: a float that is neither NaN nor infinite (else a one-line usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _flag(name: str, prefix: str) -> str:
    return "--" + (prefix + name).replace("_", "-")


def _dest(name: str, prefix: str) -> str:
    return "cfg__" + (prefix + name)


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, f.type)


def _shown(value: Any) -> str:
    """A default as ``--help`` shows it: on/off for flags, space-separated sequences, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return str(value)


def default_text(f: dataclasses.Field, bases: Mapping[str, Any] | None = None) -> str:
    """The ``(default: ...)`` of field ``f``: its ``shown_default`` metadata when set; else, with ``bases``
    (name -> instance, e.g. the named presets), the value in each base, named, when they differ; else the
    field's default."""
    if "shown_default" in f.metadata:
        return f"(default: {f.metadata['shown_default']})"
    if bases:
        values = {name: getattr(base, f.name) for name, base in bases.items()}
        if len({_shown(v) for v in values.values()}) > 1:
            return "(" + ", ".join(f"{name}: {_shown(v)}" for name, v in values.items()) + ")"
        return f"(default: {_shown(next(iter(values.values())))})"
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
    return f"(default: {_shown(default)})"


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "", *,
                            bases: Mapping[str, Any] | None = None, title: str | None = None) -> None:
    """Add one flag per field of ``cls`` (nested dataclasses get ``--outer-inner`` flags).

    Defaults are not set on the parser (they stay ``None``) so that only flags the user passed
    override the base config; the help text shows the default once (:func:`default_text`: with ``bases``,
    e.g. the named presets, each one's value where they differ). ``title`` names the help section of the
    flags (default: the class name).
    """
    group = parser.add_argument_group(title or cls.__name__) if not prefix else parser
    for f in dataclasses.fields(cls):
        ftype = _field_type(cls, f)
        if dataclasses.is_dataclass(ftype):
            inner = {k: getattr(b, f.name) for k, b in bases.items()} if bases else None
            add_dataclass_arguments(parser, ftype, prefix=prefix + f.name + "_", bases=inner)
            continue
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": _dest(f.name, prefix), "default": None}
        origin = typing.get_origin(ftype)
        args = typing.get_args(ftype)
        if origin is typing.Union and type(None) in args:
            inner = [a for a in args if a is not type(None)]
            ftype = inner[0] if len(inner) == 1 else str
            origin = typing.get_origin(ftype)
            args = typing.get_args(ftype)
        if ftype is not bool:
            kwargs["metavar"] = f.name.upper()
        if ftype is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif origin in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = args[0] if args and args[0] is not Ellipsis else float
        elif ftype in (int, float, str):
            kwargs["type"] = ftype
        elif ftype is Path:
            kwargs["type"] = Path
        else:
            kwargs["type"] = str
        if "choices" in kwargs:
            kwargs.pop("metavar")
        shown = "" if "(default" in help_text else default_text(f, bases)  # the help names its default itself
        text = f"{help_text} {shown}".strip().replace("%", "%%")
        group.add_argument(_flag(f.name, prefix), help=text, **kwargs)


def dataclass_from_namespace(ns: argparse.Namespace, base: T, prefix: str = "") -> T:
    """Return ``base`` with the fields the user set in ``ns`` replaced."""
    changes: dict[str, Any] = {}
    cls = type(base)
    for f in dataclasses.fields(cls):
        ftype = _field_type(cls, f)
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(ftype):
            changes[f.name] = dataclass_from_namespace(ns, value, prefix=prefix + f.name + "_")
            continue
        given = getattr(ns, _dest(f.name, prefix), None)
        if given is not None:
            if typing.get_origin(ftype) is tuple or isinstance(value, tuple):
                given = tuple(given)
            changes[f.name] = given
    return dataclasses.replace(base, **changes)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""

    def conv(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a (nested) config dataclass from :func:`to_dict` output; unknown keys are an error."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ftype = _field_type(cls, known[name])
        if dataclasses.is_dataclass(ftype):
            kwargs[name] = from_dict(ftype, value)
        elif isinstance(value, list) and (typing.get_origin(ftype) is tuple):
            kwargs[name] = tuple(value)
        elif ftype is Path and value is not None:
            kwargs[name] = Path(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def dumps(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
