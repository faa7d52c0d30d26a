"""Find and load body models by name: ``toy``, ``anny``, ``smplx``.

Each backing module (``thgs.body.<name>``) provides ``status() -> dict`` (at least ``available`` and
``detail``) and ``load(**options) -> BodyModel``.
"""

from __future__ import annotations

import importlib
from typing import Any

from thgs.body.model import BodyModel

BODY_MODELS = ("toy", "anny", "smplx")


def _module(name: str):
    if name not in BODY_MODELS:
        raise ValueError(f"unknown body model {name!r}; choose one of {', '.join(BODY_MODELS)}")
    return importlib.import_module(f"thgs.body.{name}")


def body_model_status() -> dict[str, dict[str, Any]]:
    """Availability of every body model, for ``thgs info``."""
    out: dict[str, dict[str, Any]] = {}
    for name in BODY_MODELS:
        try:
            out[name] = _module(name).status()
        except ImportError as exc:
            out[name] = {"available": False, "detail": f"module missing: {exc}"}
    return out


def load_body_model(name: str, **options: Any) -> BodyModel:
    return _module(name).load(**options)
