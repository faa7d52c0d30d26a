"""Per-Gaussian state kept in one place, so densification and pruning can never misalign it.

Every per-Gaussian tensor (the learnable raw attributes *and* the bookkeeping: the parent vertex and the
densification statistics) lives in a :class:`GaussianState`. Its
three structural operations -- :meth:`GaussianState.select` (keep / reorder), :meth:`GaussianState.append`
(clone / split) and :meth:`GaussianState.resize_like` (checkpoint loading) -- apply the *same* index
operation to every tensor and, given the optimisers, to their per-parameter state (Adam's
``exp_avg`` / ``exp_avg_sq``), the way gsplat's densification strategies do.

Parameters are stored raw (unconstrained); :mod:`thgs.avatar.gaussians` holds the activations.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn


class GaussianState(nn.Module):
    """All per-Gaussian tensors, first dimension N everywhere.

    Args:
        params: learnable tensors, e.g. ``means`` [N, 3], ``quats`` [N, 4], ``log_scales`` [N, 3],
            ``opacity_logits`` [N], ``sh`` [N, K, 3]; stored as ``nn.Parameter``.
        buffers: non-learnable per-Gaussian tensors, e.g. ``parent`` [N] long and the densification
            statistics ``grad_accum``, ``grad_count``, ``max_radii`` [N].
    """

    def __init__(self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        self.params = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in params.items()})
        self._buffer_names: list[str] = []
        for k, v in (buffers or {}).items():
            self.add_buffer(k, v)
        self._check()

    # -- access ------------------------------------------------------------------------------
    @property
    def num(self) -> int:
        """N, the number of Gaussians."""
        first = next(iter(self.params.values()))
        return first.shape[0]

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, name: str) -> Tensor:
        if name in self.params:
            return self.params[name]
        if name in self._buffer_names:
            return getattr(self, name)
        raise KeyError(f"GaussianState has no tensor {name!r}")

    @property
    def buffer_names(self) -> list[str]:
        return list(self._buffer_names)

    def tensors(self) -> dict[str, Tensor]:
        """Every per-Gaussian tensor by name (parameters and buffers)."""
        out: dict[str, Tensor] = dict(self.params.items())
        out.update({k: getattr(self, k) for k in self._buffer_names})
        return out

    def add_buffer(self, name: str, value: Tensor) -> None:
        """Register another per-Gaussian buffer (first dimension must be N)."""
        if name in self._buffer_names or name in self.params:
            raise ValueError(f"GaussianState already has a tensor named {name!r}")
        self._buffer_names.append(name)
        self.register_buffer(name, value.detach().clone())
        self._check()

    def set_buffer(self, name: str, value: Tensor) -> None:
        if name not in self._buffer_names:
            raise KeyError(f"GaussianState has no buffer {name!r}")
        if value.shape[:1] != (self.num,):
            raise ValueError(f"buffer {name!r}: first dimension {value.shape[0]} != N = {self.num}")
        setattr(self, name, value)

    def _check(self) -> None:
        if not len(self.params):
            raise ValueError("GaussianState needs at least one parameter")
        n = self.num
        for k, v in self.tensors().items():
            if v.shape[0] != n:
                raise ValueError(f"GaussianState: tensor {k!r} has first dimension {v.shape[0]}, expected {n}")

    # -- structural operations -------------------------------------------------------------------
    def _apply_index_op(self, fn_param, fn_state, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        """Replace every tensor ``t`` named ``name`` by ``fn_param(name, t)`` and the optimiser state of
        every parameter by ``fn_state(state_tensor)``."""
        optimizers = list(optimizers)
        for name in list(self.params.keys()):
            old = self.params[name]
            new = nn.Parameter(fn_param(name, old.detach()), requires_grad=old.requires_grad)
            for opt in optimizers:
                _swap_in_optimizer(opt, old, new, fn_state)
            self.params[name] = new
        for name in self._buffer_names:
            setattr(self, name, fn_param(name, getattr(self, name)))
        self._check()

    def select(self, index: Tensor, optimizers: Iterable[torch.optim.Optimizer] = ()) -> None:
        """Keep the Gaussians ``index`` (long indices, or a bool mask of length N), in that order."""
        if index.dtype == torch.bool:
            if index.shape != (self.num,):
                raise ValueError(f"select: mask of shape {tuple(index.shape)} for N = {self.num}")
            index = index.nonzero(as_tuple=True)[0]
        index = index.to(next(iter(self.params.values())).device)
        self._apply_index_op(lambda _n, t: t[index].clone(), lambda s: s[index].clone(), optimizers)

    def prune(self, mask: Tensor, optimizers: Iterable[torch.optim.Optimizer] = ()) -> None:
        """Remove the Gaussians where ``mask`` [N] bool is True."""
        self.select(~mask, optimizers)

    def append(self, source: Tensor, overrides: Mapping[str, Tensor] | None = None,
               optimizers: Iterable[torch.optim.Optimizer] = ()) -> None:
        """Append copies of the Gaussians ``source`` [M] (long) at the end.

        ``overrides`` replaces the copied values of some tensors for the new Gaussians (each
        [M, ...]); everything else -- the parent vertex included -- is copied from the source. The new
        Gaussians start with zero optimiser moments.
        """
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.tensors())
        if unknown:
            raise KeyError(f"append: unknown tensors {sorted(unknown)}")
        source = source.to(next(iter(self.params.values())).device)
        m = source.shape[0]
        current = self.tensors()
        new_parts: dict[str, Tensor] = {}
        for name, t in current.items():
            part = overrides[name].to(t.dtype) if name in overrides else t.detach()[source]
            if part.shape != (m, *t.shape[1:]):
                raise ValueError(f"append: {name!r} override has shape {tuple(part.shape)}, expected {(m, *t.shape[1:])}")
            new_parts[name] = part

        def fn_param(name: str, t: Tensor) -> Tensor:
            return torch.cat([t, new_parts[name]], 0)

        def fn_state(s: Tensor) -> Tensor:
            return torch.cat([s, torch.zeros(m, *s.shape[1:], dtype=s.dtype, device=s.device)], 0)

        self._apply_index_op(fn_param, fn_state, optimizers)

    def resize_like(self, shapes: Mapping[str, torch.Size]) -> None:
        """Re-allocate every tensor to the given shapes (before ``load_state_dict`` of a checkpoint
        with a different N). Values become zeros; loading fills them."""
        for name in list(self.params.keys()):
            key = f"params.{name}"
            if key in shapes:
                old = self.params[name]
                self.params[name] = nn.Parameter(old.new_zeros(shapes[key]), requires_grad=old.requires_grad)
        for name in self._buffer_names:
            if name in shapes:
                old = getattr(self, name)
                setattr(self, name, old.new_zeros(shapes[name]))


def _swap_in_optimizer(opt: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter, fn_state) -> None:
    """Put ``new`` where ``old`` was in ``opt``'s groups, mapping its per-element state with ``fn_state``."""
    for group in opt.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
                state = opt.state.pop(old, None)
                if state is not None:
                    opt.state[new] = {
                        k: (fn_state(v) if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == old.shape[0] else v)
                        for k, v in state.items()
                    }
                return


__all__ = ["GaussianState"]
