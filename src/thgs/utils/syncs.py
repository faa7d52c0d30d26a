"""Find host reads of tensor values (the calls that make the host wait for a GPU) on any device.

On a CUDA device, ``float(t)``, ``t.item()``, ``bool(t)`` (an ``if`` on a tensor), ``t.nonzero()``, boolean-mask
indexing and ``t.tolist()`` block the host until the GPU has computed ``t``; ``torch.tensor(python data)`` builds
a tensor on the host and copies it over. :class:`HostReads` counts those calls while it is active, through a
:class:`torch.overrides.TorchFunctionMode`, so a CPU test can show that a GPU code path would not sync
(``torch.cuda.set_sync_debug_mode`` works on a GPU only). Calls made from inside ``torch.optim`` (whose
step counters live on the host by design) are not counted.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

READS = frozenset({"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "nonzero", "numpy",
                   "masked_select", "unique", "argwhere"})
"""Tensor methods and functions that read values on the host (or need them to size their output)."""

BUILDS = frozenset({"tensor", "as_tensor"})
"""Factories that build a tensor from host data."""


def _name(func) -> str:
    return getattr(func, "__name__", str(func))


def _bool_index(args) -> bool:
    """Whether a ``__getitem__`` call indexes with a boolean tensor (its size needs the mask's values)."""
    if len(args) < 2:
        return False
    idx = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in idx)


def _from_optimizer() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if "/torch/optim/" in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


class HostReads(TorchFunctionMode):
    """Counts host reads and host-built tensors while active: ``with HostReads() as h: ...; h.total``.

    ``counts`` maps each call's name (``item``, ``__bool__``, ``nonzero``, ``__getitem__[bool]``, ``tensor``...)
    to its number of calls; ``where`` maps ``"file:line"`` of the innermost ``thgs`` frame to counts."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.where: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = _name(func)
        hit = None
        if name in READS:
            hit = name
        elif name in BUILDS and args and not isinstance(args[0], Tensor):
            hit = name
        elif name == "__getitem__" and _bool_index(args):
            hit = "__getitem__[bool]"
        if hit is not None and not _from_optimizer():
            self.counts[hit] += 1
            self.where[_thgs_frame()] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _thgs_frame() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/thgs/" in path and not path.endswith("/thgs/utils/syncs.py"):
            return f"{path.rsplit('/thgs/', 1)[1]}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


__all__ = ["BUILDS", "HostReads", "READS"]
