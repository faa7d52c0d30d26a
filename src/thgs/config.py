"""Dataclass configs <-> command-line flags.

Every config is a dataclass whose fields carry their help text in ``field(metadata={"help": ...})``.
:func:`add_dataclass_arguments` turns such a class into argparse flags (``--field-name``) and
:func:`dataclass_from_namespace` builds the instance back, applying only the flags the user gave on
top of a base instance (a named preset, say).

A field whose type is itself a dataclass is a *group*: its fields become flags too, in a help section of
their own titled by the group field's help. By default a group's flags are ``--group-field``; the group
field's metadata ``prefix`` sets another prefix ("" for none), and a leaf field's metadata ``flag`` names its
flag outright (underscores, no dashes), so a config can be nested without renaming the flags users know.
Each leaf's flag name with underscores is its *flat name* (:func:`flat_names`), unique in the config.
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


def _flat(f: dataclasses.Field, prefix: str) -> str:
    """The flat name of leaf field ``f`` under ``prefix`` (its flag with underscores)."""
    return f.metadata.get("flag") or prefix + f.name


def _flag(flat: str) -> str:
    return "--" + flat.replace("_", "-")


def _dest(flat: str) -> str:
    return "cfg__" + flat


def _group_prefix(f: dataclasses.Field, prefix: str) -> str:
    """The flag prefix of the fields of group field ``f`` under ``prefix``."""
    return prefix + f.metadata.get("prefix", f.name + "_")


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
                            bases: Mapping[str, Any] | None = None, title: str | None = None,
                            _group: Any = None, _outer: str | None = None) -> None:
    """Add one flag per leaf field of ``cls`` (groups: see the module docstring).

    Defaults are not set on the parser (they stay ``None``) so that only flags the user passed
    override the base config; the help text shows the default once (:func:`default_text`: with ``bases``,
    e.g. the named presets, each one's value where they differ). ``title`` names the help section of the
    top-level flags (default: the class name); each group gets a section titled by its field's help. With a
    ``prefix`` and no title the flags go straight onto ``parser``.
    """
    if _group is None:
        _group = parser.add_argument_group(title or cls.__name__) if (title or not prefix) else parser
    outer = prefix if _outer is None else _outer  # the caller's prefix, left out of the metavars
    for f in dataclasses.fields(cls):
        ftype = _field_type(cls, f)
        if dataclasses.is_dataclass(ftype):
            group_default = _default(f)  # without bases, the group's values are those of its field's default
            inner = ({k: getattr(b, f.name) for k, b in bases.items()} if bases
                     else {"default": group_default} if group_default is not None else None)
            section = parser.add_argument_group(f.metadata["help"]) if f.metadata.get("help") else _group
            add_dataclass_arguments(parser, ftype, prefix=_group_prefix(f, prefix), bases=inner, _group=section,
                                    _outer=outer)
            continue
        flat = _flat(f, prefix)
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": _dest(flat), "default": None}
        origin = typing.get_origin(ftype)
        args = typing.get_args(ftype)
        if origin is typing.Union and type(None) in args:
            inner_types = [a for a in args if a is not type(None)]
            ftype = inner_types[0] if len(inner_types) == 1 else str
            origin = typing.get_origin(ftype)
            args = typing.get_args(ftype)
        if ftype is not bool:
            kwargs["metavar"] = (flat[len(outer):] if flat.startswith(outer) else flat).upper()
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
        _group.add_argument(_flag(flat), help=text, **kwargs)


def dataclass_from_namespace(ns: argparse.Namespace, base: T, prefix: str = "") -> T:
    """Return ``base`` with the fields the user set in ``ns`` replaced."""
    changes: dict[str, Any] = {}
    cls = type(base)
    for f in dataclasses.fields(cls):
        ftype = _field_type(cls, f)
        value = getattr(base, f.name)
        if dataclasses.is_dataclass(ftype):
            changes[f.name] = dataclass_from_namespace(ns, value, prefix=_group_prefix(f, prefix))
            continue
        given = getattr(ns, _dest(_flat(f, prefix)), None)
        if given is not None:
            if typing.get_origin(ftype) is tuple or isinstance(value, tuple):
                given = tuple(given)
            changes[f.name] = given
    return dataclasses.replace(base, **changes)


def flat_names(cls: type, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Every leaf field of the (nested) config class ``cls``: its flat name (the flag, with underscores) ->
    its path of field names, e.g. ``{"steps": ("steps",), "percent_dense": ("densify", "percent_dense")}``.
    ``TypeError`` when two leaves share a flat name."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        ftype = _field_type(cls, f)
        inner = ({flat: (f.name, *path) for flat, path in flat_names(ftype, _group_prefix(f, prefix)).items()}
                 if dataclasses.is_dataclass(ftype) else {_flat(f, prefix): (f.name,)})
        for flat, path in inner.items():
            if flat in out:
                raise TypeError(f"{cls.__name__}: {'.'.join(out[flat])} and {'.'.join(path)} share the flag "
                                f"{_flag(flat)}")
            out[flat] = path
    return out


def leaf_field(cls: type, path: tuple[str, ...]) -> tuple[dataclasses.Field, Any]:
    """The dataclass field at ``path`` (field names from ``cls`` down) and its resolved type."""
    for name in path[:-1]:
        cls = _field_type(cls, next(f for f in dataclasses.fields(cls) if f.name == name))
    f = next(f for f in dataclasses.fields(cls) if f.name == path[-1])
    return f, _field_type(cls, f)


def get_path(cfg: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` (field names) in a nested config."""
    for name in path:
        cfg = getattr(cfg, name)
    return cfg


def replace_path(cfg: T, path: tuple[str, ...], value: Any) -> T:
    """A copy of the nested config ``cfg`` with the field at ``path`` set to ``value``."""
    if len(path) == 1:
        return dataclasses.replace(cfg, **{path[0]: value})  # type: ignore[type-var]
    inner = replace_path(getattr(cfg, path[0]), path[1:], value)
    return dataclasses.replace(cfg, **{path[0]: inner})  # type: ignore[type-var]


def replace_flat(cfg: T, **settings: Any) -> T:
    """A copy of the nested config ``cfg`` with the settings named by their flat names (the flags, with
    underscores: ``densify_start=10, lambda_dssim=0.1``) replaced; ``TypeError`` for a name it does not have."""
    names = flat_names(type(cfg))
    for flat, value in settings.items():
        if flat not in names:
            raise TypeError(f"{type(cfg).__name__} has no setting {flat!r}")
        cfg = replace_path(cfg, names[flat], value)
    return cfg


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


def from_dict(cls: type[T], data: dict[str, Any], base: Any = None) -> T:
    """Build a (nested) config dataclass from :func:`to_dict` output; unknown keys are an error. Fields the
    data lacks take their defaults (in a group: the value in ``base``, the group field's default)."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ftype = _field_type(cls, known[name])
        if dataclasses.is_dataclass(ftype):
            if not isinstance(value, dict):
                raise ValueError(f"{cls.__name__}: field {name!r} must be a mapping of settings")
            default = getattr(base, name) if base is not None else _default(known[name])
            kwargs[name] = from_dict(ftype, value, default)  # type: ignore[arg-type]
        elif isinstance(value, list) and (typing.get_origin(ftype) is tuple):
            kwargs[name] = tuple(value)
        elif ftype is Path and value is not None:
            kwargs[name] = Path(value)
        else:
            kwargs[name] = value
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    return cls(**kwargs)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def dumps(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
