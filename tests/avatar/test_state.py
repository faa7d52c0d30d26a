import torch

from thgs.avatar.densify import DensifyOptions, densify_and_prune
from thgs.avatar.gaussians import init_state


def _optimizer(state):
    groups = [{"params": [p], "lr": 1e-2, "name": n} for n, p in state.params.items()]
    return torch.optim.Adam(groups, eps=1e-15)


def _step(state, opt):
    loss = sum((p * p).sum() for p in state.params.values())
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_select_and_append_keep_every_tensor_and_optimiser_state_aligned(tiny_body):
    st = init_state(tiny_body)
    opt = _optimizer(st)
    _step(st, opt)
    n = st.num
    # tag each Gaussian's Adam moment with its index to check reordering
    for p in st.params.values():
        opt.state[p]["exp_avg"] = torch.arange(n, dtype=torch.float32).reshape(n, *([1] * (p.dim() - 1))).expand_as(p).clone()
    src = torch.tensor([3, 7, 7])
    st.append(src, optimizers=[opt])
    assert st.num == n + 3
    assert torch.equal(st["parent"][n:], st["parent"][src])
    assert torch.equal(st["means"][n:], st["means"][src])
    for p in st.params.values():
        assert p in opt.state and opt.state[p]["exp_avg"].shape == p.shape
        assert torch.all(opt.state[p]["exp_avg"][n:] == 0)  # new Gaussians: zero moments
    keep = torch.ones(st.num, dtype=torch.bool)
    keep[[0, 5, n + 1]] = False
    parent_before = st["parent"].clone()
    moment_before = opt.state[st.params["means"]]["exp_avg"].clone()
    st.select(keep, [opt])
    assert st.num == n + 3 - 3
    assert torch.equal(st["parent"], parent_before[keep])
    assert torch.equal(opt.state[st.params["means"]]["exp_avg"], moment_before[keep])
    for name, t in st.tensors().items():
        assert t.shape[0] == st.num, name
    # the optimiser still works on the new parameters
    _step(st, opt)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(st.params)


def test_densify_then_prune_keeps_parents_and_adam_state(tiny_body):
    st = init_state(tiny_body)
    opt = _optimizer(st)
    _step(st, opt)
    n = st.num
    scales = st["log_scales"].detach().exp().max(-1).values
    small, large = int(scales.argmin()), int(scales.argmax())
    grads = torch.zeros(n)
    grads[[small, large]] = 1.0
    st.set_buffer("grad_accum", grads)
    st.set_buffer("grad_count", torch.ones(n))
    with torch.no_grad():
        st.params["opacity_logits"][10] = -20.0  # will be pruned
    parent_small, parent_large = int(st["parent"][small]), int(st["parent"][large])
    extent = float(scales[small] + scales[large]) / 2 / 0.01  # threshold halfway between the two
    info = densify_and_prune(st, DensifyOptions(), extent=extent, optimizers=[opt],
                             generator=torch.Generator().manual_seed(0))
    assert info == {"cloned": 1, "split": 1, "pruned": 1, "total": n + 1 + 1 - 1, "before": n}
    assert st.num == n + 1
    parents = st["parent"].tolist()
    assert parents.count(parent_small) == 2  # source + clone
    assert parents.count(parent_large) == 2  # two split halves replace the source
    for name, t in st.tensors().items():
        assert t.shape[0] == st.num, name
    for p in st.params.values():
        for k in ("exp_avg", "exp_avg_sq"):
            assert opt.state[p][k].shape == p.shape
    assert torch.all(st["grad_accum"] == 0)
    _step(st, opt)
