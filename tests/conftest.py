"""Suite-wide settings: body-model caches live inside the project, never in a home directory.

``make test`` sets the same variables; this keeps a bare ``pytest`` run equally independent of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

_CACHE = Path(__file__).resolve().parents[1] / ".thgscache"
os.environ.setdefault("THGS_CACHE_DIR", str(_CACHE))
os.environ.setdefault("ANNY_CACHE_DIR", str(Path(os.environ["THGS_CACHE_DIR"]) / "anny-src"))
