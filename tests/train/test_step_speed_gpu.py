"""On a CUDA GPU: the step with fused Adam and staged images; the steps replayed from CUDA graphs
(cuda_graphs=True, the default) and compiled (compile=True) give the eager step's numbers."""


import pytest
import torch

from thgs.render import gsplat_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not gsplat_backend.is_available(), reason="needs a CUDA GPU and gsplat"),
]


def _cfg(**kw):
    from thgs.runs.config import preset, replace_flat

    settings = dict(device="cuda", backend="gsplat", skinning="grid", grid_resolution=16, hash_levels=4,
                    hash_log2_table=10, progress=False, max_gaussians=600, steps=8, saam_start=0, pose_start=0,
                    expression_start=0, skinning_start=0, blendshapes_start=0, normal_weight=0.05, normal_start=2,
                    densify_start=4, densify_stop=4, cuda_graphs=False)
    return replace_flat(preset("smoke"), **{**settings, **kw})


def _run(cfg, subject, body, path, steps=6):
    from thgs.train.trainer import Trainer, read_terms

    torch.manual_seed(0)
    tr = Trainer(cfg, subject, path, body=body)
    terms = [read_terms(tr.train_step()) for _ in range(steps)]
    return tr, terms


def test_the_gpu_step_uses_fused_adam_and_staged_images(tiny_subject, tiny_body_model, tmp_path):
    tr, terms = _run(_cfg(), tiny_subject, tiny_body_model, tmp_path / "run", steps=2)
    assert all(g.get("fused") for g in tr.gauss_opt.param_groups)
    assert tr._images is not None and tr._images.is_cuda
    assert all(torch.isfinite(torch.tensor(t["loss"])) for t in terms)


def _close_parameters(a, b, terms):
    """Parameters of two runs that differ only in the order of float operations: Adam divides each gradient by
    its own running scale, so an element whose gradient is ~0 in both runs may step by about its learning rate
    either way at every step, and that bounds every element (the learning rates of every step, from the step's
    terms: they decay, and a group's first steps have the largest); almost every element with a real gradient
    (in the last step of the first run, above a thousandth of the parameter's largest) agrees to rounding."""
    group_of = {}
    for opt in (a.gauss_opt, a.module_opt):
        for g in (opt.param_groups if opt is not None else []):
            for p in g["params"]:
                group_of[id(p)] = g["name"]
    for (na, pa), (nb, pb) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert na == nb
        x, y = pa.detach(), pb.detach()
        driven = torch.ones_like(x, dtype=torch.bool)
        if pa.grad is not None and pa.grad.shape == x.shape and float(pa.grad.abs().max()) > 0:
            driven = pa.grad.abs() > 1e-3 * pa.grad.abs().max()
        close = torch.isclose(x[driven], y[driven], rtol=1e-4, atol=1e-5)
        assert close.float().mean() >= 0.99, (na, float(close.float().mean()), int(driven.sum()))
        used = sum(t.get(f"lr_{group_of.get(id(pa))}", 0.0) for t in terms)
        bound = 3.0 * used + 1e-5
        assert (x - y).abs().max() <= bound, (na, float((x - y).abs().max()), bound)


def _assert_same_run(a, b, ta, tb):
    for step, (x, y) in enumerate(zip(ta, tb)):
        for k in ("loss", "recon", "psnr"):
            assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-7), (step, k)
    assert a.model.num_gaussians == b.model.num_gaussians
    _close_parameters(a, b, ta)


def test_compiled_step_equals_the_eager_one(tiny_subject, tiny_body_model, tmp_path):
    eager, a = _run(_cfg(), tiny_subject, tiny_body_model, tmp_path / "eager")
    compiled, b = _run(_cfg(compile=True), tiny_subject, tiny_body_model, tmp_path / "compiled")
    _assert_same_run(eager, compiled, a, b)


def test_graphed_step_equals_the_eager_one(tiny_subject, tiny_body_model, tmp_path):
    """Every module active from step 2 (a group switch), densification at step 4 (new parameters): the
    pass is recorded again at each change and the run stays the eager one's."""
    kw = dict(saam_start=2, pose_start=2, expression_start=2, skinning_start=2, blendshapes_start=2, steps=8)
    eager, a = _run(_cfg(**kw), tiny_subject, tiny_body_model, tmp_path / "eager", steps=8)
    graphed, b = _run(_cfg(cuda_graphs=True, **kw), tiny_subject, tiny_body_model, tmp_path / "graphed", steps=8)
    from thgs.train.graphed import GraphedForward

    assert isinstance(graphed.forward, GraphedForward)
    assert graphed.forward.recordings >= 3  # at the start, at the group switch and after densification
    _assert_same_run(eager, graphed, a, b)


def test_a_cpu_checkpoint_resumes_on_the_gpu_with_fused_adam(tiny_subject, tiny_body_model, tmp_path):
    from thgs.train.trainer import Trainer, read_terms

    cpu = _cfg(device="cpu", backend="reference", steps=4, checkpoint_every=100)
    Trainer(cpu, tiny_subject, tmp_path / "run", body=tiny_body_model).train(stop_after=2)
    from thgs.runs.config import replace_flat

    gpu = Trainer(replace_flat(cpu, device="cuda", backend="gsplat"), tiny_subject, tmp_path / "run",
                  resume=True, body=tiny_body_model)
    assert gpu.step == 2 and all(g["fused"] for g in gpu.gauss_opt.param_groups)
    for _ in range(2):
        assert torch.isfinite(torch.tensor(read_terms(gpu.train_step())["loss"]))
