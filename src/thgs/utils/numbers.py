"""Numbers in report tables."""

from __future__ import annotations

import math
from typing import Any


def fmt_number(x: Any, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals; ``"-"`` for a missing value (None, NaN or anything that is not a
    number), ``"inf"`` / ``"-inf"`` for an infinite one."""
    if isinstance(x, bool):
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.{digits}f}"
