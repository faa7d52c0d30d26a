"""The densification strategy: its hooks reproduce the old per-step call sequence exactly, and its statistics
are updated in place."""

from __future__ import annotations

import pytest
import torch

from thgs.avatar.densify import STATS, DensifyOptions, DensifyStrategy
from thgs.avatar.state import GaussianState

OPTIONS = DensifyOptions(start=3, stop=10, interval=3, grad_threshold=2e-3, percent_dense=0.02, min_opacity=0.02,
                         max_gaussians=420)

# Recorded from the free functions the strategy replaced (accumulate_stats after backward while step < stop,
# densify_and_prune after the optimiser step when the completed-step count was in the window), run on
# exactly this state, "render" and seed: the densify counts at steps 3, 6, 9 and the sums (plain, absolute)
# of every per-Gaussian tensor at the end.
EXPECTED_INFO = [
    (3, {"cloned": 15, "split": 105, "pruned": 31, "total": 389, "before": 300}),
    (6, {"cloned": 20, "split": 11, "pruned": 0, "total": 420, "before": 389}),
    (9, {"cloned": 0, "split": 0, "pruned": 0, "total": 420, "before": 420}),
]
EXPECTED_SUMS = {
    "log_scales": (-5708.943260908127, 5708.943260908127),
    "means": (11.737190572079271, 256.33527547540143),
    "opacity_logits": (510.063081195578, 947.5357451979071),
    "quats": (-7.444470122456551, 710.3831850602292),
    "sh": (628.0815083384514, 628.0815083384514),
    "parent": (63514.0, 63514.0),
    "grad_accum": (21.68348112026797, 21.68348112026797),
    "grad_count": (408.0, 408.0),
    "max_radii": (4896.0, 4896.0),
}


def _state(n: int = 300) -> GaussianState:
    g = torch.Generator().manual_seed(0)
    params = {"means": torch.randn(n, 3, generator=g) * 0.3,
              "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
              "log_scales": torch.log(torch.rand(n, 3, generator=g) * 0.04 + 1e-3),
              "opacity_logits": torch.randn(n, generator=g) * 3, "sh": torch.rand(n, 1, 3, generator=g)}
    buffers = {"parent": torch.arange(n), **{name: torch.zeros(n) for name in STATS}}
    return GaussianState(params, buffers)


def _render(state: GaussianState, step: int):
    """A differentiable stand-in for the rasterizer: projected centres, radii (some Gaussians not drawn), loss."""
    m = state["means"]
    means2d = m[:, :2] * (1.0 + 0.1 * step) + 0.05 * m[:, 2:3]
    radii = (m[:, 0] > -0.4).float() * (3.0 + step)
    loss = ((means2d.square().sum(-1) * torch.sigmoid(state["opacity_logits"])).mean()
            + state["log_scales"].exp().sum() * 1e-3)
    return means2d, radii, loss


def test_the_strategy_reproduces_the_recorded_densification():
    torch.manual_seed(1)  # the split samples draw from torch's global generator
    st = _state()
    opt = torch.optim.Adam([{"params": [st.params[k]], "name": k, "lr": 1e-2} for k in st.params], eps=1e-15)
    strategy = DensifyStrategy(OPTIONS, extent=1.0)
    infos = []
    for step in range(12):
        means2d, radii, loss = _render(st, step)
        strategy.step_pre_backward(step, means2d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        strategy.step_post_backward(st, step, means2d, radii, 64, 48)
        opt.step()
        info = strategy.step_post_optimizer(st, step, [opt])
        if info is not None:
            infos.append((step + 1, info))
    assert infos == EXPECTED_INFO
    assert st.num == 420
    for name, t in st.tensors().items():
        t = t.detach().double()
        assert (float(t.sum()), float(t.abs().sum())) == pytest.approx(EXPECTED_SUMS[name], rel=1e-9, abs=1e-9), name


def test_statistics_are_updated_in_place_and_stop_with_the_window():
    st = _state(50)
    strategy = DensifyStrategy(DensifyOptions(start=100, stop=2, interval=100), extent=1.0)
    before = [st[name].data_ptr() for name in STATS]
    for step in range(4):
        means2d, radii, loss = _render(st, step)
        strategy.step_pre_backward(step, means2d)
        loss.backward()
        strategy.step_post_backward(st, step, means2d, radii, 64, 48)
        if step == 1:
            collected = [st[name].clone() for name in STATS]
        assert strategy.step_post_optimizer(st, step) is None
    assert [st[name].data_ptr() for name in STATS] == before  # the same buffers, never reallocated
    drawn = int((radii > 0).sum())
    assert 0 < drawn < 50 and float(collected[1].sum()) == 2 * drawn  # two steps collected, hidden ones not counted
    for name, kept in zip(STATS, collected):
        assert torch.equal(st[name], kept)  # steps 2 and 3 are past the window's stop: nothing added
