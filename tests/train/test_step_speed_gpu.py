"""On a CUDA GPU: the step with fused Adam, staged images and compile=True gives the eager step's numbers."""


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
                    densify_start=4, densify_stop=4)
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


def test_compiled_step_equals_the_eager_one(tiny_subject, tiny_body_model, tmp_path):
    eager, a = _run(_cfg(), tiny_subject, tiny_body_model, tmp_path / "eager")
    compiled, b = _run(_cfg(compile=True), tiny_subject, tiny_body_model, tmp_path / "compiled")
    for step, (x, y) in enumerate(zip(a, b)):
        for k in ("loss", "recon", "psnr"):
            assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-7), (step, k)
    assert eager.model.num_gaussians == compiled.model.num_gaussians
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        pa, pb = eager.model.state[name].detach(), compiled.model.state[name].detach()
        assert torch.allclose(pa, pb, rtol=1e-4, atol=1e-5), name


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
