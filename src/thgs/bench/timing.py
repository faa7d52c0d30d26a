"""Timing of GPU and CPU work: warm-up, many repeats, median.

On CUDA every repeat is bracketed by two ``torch.cuda.Event`` (``enable_timing=True``) recorded on the
current stream, and all elapsed times are read after one final synchronisation, so the host never
waits between repeats except where the timed function itself synchronises. On the CPU
``time.perf_counter`` brackets each call.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class Timing:
    """Milliseconds per call: ``median`` (the reported figure), ``p10``/``p90`` spread, ``repeats``."""

    median: float
    p10: float
    p90: float
    repeats: int

    @property
    def fps(self) -> float:
        """Calls per second at the median time."""
        return 1000.0 / self.median if self.median > 0 else float("inf")

    def as_dict(self) -> dict[str, float]:
        return {"ms": self.median, "fps": self.fps, "p10_ms": self.p10, "p90_ms": self.p90,
                "repeats": float(self.repeats)}


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def time_fn(fn: Callable[[], Any], device: torch.device | str, *, warmup: int = 10, repeats: int = 100) -> Timing:
    """Time ``fn()`` (no arguments) on ``device``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Returns the median and the 10th/90th percentiles in milliseconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(dev)
        times = [float(s.elapsed_time(e)) for s, e in events]
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(1000.0 * (time.perf_counter() - t0))
    return Timing(median=float(statistics.median(times)), p10=_quantile(times, 0.1), p90=_quantile(times, 0.9),
                  repeats=repeats)


__all__ = ["Timing", "time_fn"]
