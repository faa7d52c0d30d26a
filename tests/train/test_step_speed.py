"""The training step without host syncs: the same numbers as the step that read every loss term each step,
no host reads between logging steps, mouth Gaussians found once per change of the Gaussian set."""


import pytest
import torch

from thgs.avatar import gaussians as G
from thgs.runs.config import preset, replace_flat
from thgs.train.trainer import Trainer, adam_options, read_terms
from thgs.utils.syncs import HostReads

# Recorded on the CPU (1 thread) with the step as it was before the loss terms stayed on the device, the mouth
# Gaussians were cached, the images were staged and the renders asked only for what the losses use; recorded
# again when forward kinematics became pointer jumping (lbs.forward_kinematics_jumps: the same products,
# associated differently), which moved the losses by at most 3.1e-5 relative and the parameter sums by at most
# 4.8e-4 (the skinning residual, where Adam's steps on near-zero gradients go either way), the count not at all.
RECORDED_STEPS = [
    {"loss": 0.009656655602157116, "recon": 0.009656655602157116, "vertex": 0.0, "psnr": 26.069339752197266},
    {"loss": 0.009628059342503548, "recon": 0.009628048166632652, "vertex": 1.1532065400388092e-06,
     "psnr": 25.999221801757812},
    {"loss": 0.009317543357610703, "recon": 0.009317522868514061, "vertex": 2.0918907921441132e-06,
     "psnr": 26.192291259765625},
    {"loss": 0.011942156590521336, "recon": 0.009027887135744095, "vertex": 2.5770077627385035e-06,
     "normal": 0.0582844540476799, "psnr": 26.2680721282959},
    {"loss": 0.020243531093001366, "recon": 0.01666942797601223, "vertex": 0.0009433283703401685,
     "normal": 0.0712926983833313, "psnr": 22.645891189575195},
    {"loss": 0.01991325058043003, "recon": 0.016352184116840363, "vertex": 0.0009429735946469009,
     "normal": 0.07103193551301956, "psnr": 22.704103469848633},
]
RECORDED_N = 316
RECORDED_SUMS = {  # sum of |x| of the parameters after the 6 steps
    "leb.delta": 0.014059705849831516, "refine.pose": 0.0018771227746583463,
    "saam.decoder.6.weight": 0.7217747080867412, "saam.encoding.xy.table": 0.6648072321137377,
    "skin_grid.delta": 0.38344470068386727, "state.params.log_scales": 4205.252204656601,
    "state.params.means": 497.0487915638223, "state.params.opacity_logits": 689.0248801708221,
    "state.params.quats": 542.9431035963353, "state.params.sh": 186.99970643920824,
}


def _cfg(**kw):
    """Every module from step 1, the normal loss from step 3 (in the plain form the losses were recorded with:
    every pixel, gradient through the depth normals), densification after step 4, pixel weights; the dense
    skinning residual the values were recorded with (the sparse one, the default since, gives the same steps up
    to rounding that Adam amplifies where the residual's gradient is ~0: losses within 1.5e-5 relative over
    these 6 steps, tests/train/test_sparse_skinning.py)."""
    fields = dict(skinning="grid", grid_resolution=16, skin_band=-1, hash_levels=4, hash_log2_table=10, progress=False,
                  max_gaussians=600, steps=6, saam_start=1, normal_weight=0.05, normal_start=3, edge_band=2,
                  edge_band_weight=0.3, normal_min_alpha=0.0, normal_detach_depth=False)
    return replace_flat(preset("smoke"), **{**fields, **kw})


def test_steps_give_the_recorded_losses_and_parameters(tiny_subject, tiny_body_model, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tr = Trainer(_cfg(), tiny_subject, tmp_path / "run", body=tiny_body_model)
        got = [read_terms(tr.train_step()) for _ in range(6)]
    finally:
        torch.set_num_threads(threads)
    for step, (g, want) in enumerate(zip(got, RECORDED_STEPS)):
        assert ("normal" in g) == ("normal" in want), step
        for k, v in want.items():
            assert g[k] == pytest.approx(v, rel=1e-5, abs=1e-9), (step, k)
    assert tr.model.num_gaussians == RECORDED_N
    state = tr.model.state_dict()
    for k, v in RECORDED_SUMS.items():
        assert float(state[k].double().abs().sum()) == pytest.approx(v, rel=1e-5), k


def test_a_step_reads_nothing_back_from_the_device(tiny_subject, tiny_body_model, tmp_path):
    """Outside the CPU rasterizer (which a GPU replaces by gsplat), a step between densifications with every
    module and the normal loss on calls nothing that would wait for a GPU or copy host data to it."""
    tr = Trainer(_cfg(saam_start=0, pose_start=0, expression_start=0, skinning_start=0, blendshapes_start=0,
                      normal_start=0, densify_start=100, densify_stop=100), tiny_subject, tmp_path / "run",
                 body=tiny_body_model)
    tr.train_step()  # the first step stages the images and finds the mouth Gaussians
    with HostReads() as reads:
        terms = tr.train_step()
    assert {"normal", "leb", "vertex"} <= set(terms)
    assert all(isinstance(terms[k], torch.Tensor) for k in ("loss", "recon", "normal", "psnr"))
    outside = {w: n for w, n in reads.where.items()
               if not w.startswith(("render/_raster.py", "render/_project.py", "render/reference.py"))}
    assert outside == {}, outside
    assert reads.total > 0  # the counter sees the CPU rasterizer's reads: it does count


def test_host_reads_counts_what_syncs():
    x = torch.arange(6.0)
    with HostReads() as reads:
        float(x.sum())
        bool(x.any())
        x[x > 2].sum()
        x.nonzero()
        torch.tensor([1.0, 2.0])
        y = x * 2 + 1  # no read
    assert reads.counts == {"__float__": 1, "__bool__": 1, "__getitem__[bool]": 1, "nonzero": 1, "tensor": 1}
    assert y.shape == (6,)


def test_mouth_indices_are_cached_until_the_gaussians_change(tiny_subject, tiny_body_model, tmp_path):
    tr = Trainer(_cfg(), tiny_subject, tmp_path / "run", body=tiny_body_model)
    model = tr.model
    idx = model.mouth_indices()
    assert idx.numel() > 0 and model.mouth_indices() is idx
    want = G.in_box(model.state["means"].detach(), model.mouth_box).nonzero(as_tuple=True)[0]
    assert torch.equal(idx, want)
    with torch.no_grad():  # move the mouth Gaussians out of the box: the cached set stays until a refresh
        model.state.params["means"][idx] += 10.0
    assert model.mouth_indices() is idx
    model.refresh_mouth()
    assert model.mouth_indices().numel() == 0
    keep = torch.arange(0, model.num_gaussians, 2)
    model.state.select(keep)  # a structural change brings a new flag tensor: new indices
    assert model.state["mouth"].shape == (keep.numel(),) and model.mouth_indices().numel() == 0


def test_a_state_without_the_mouth_flag_loads_with_it_computed(tiny_subject, tiny_body_model, tmp_path):
    tr = Trainer(_cfg(), tiny_subject, tmp_path / "run", body=tiny_body_model)
    state = {k: v for k, v in tr.model.state_dict().items() if k != "state.mouth"}
    other = Trainer(_cfg(), tiny_subject, tmp_path / "other", body=tiny_body_model).model
    other.load_state_dict(state)
    assert torch.equal(other.state["mouth"], G.in_box(other.state["means"].detach(), other.mouth_box))
    assert other.state["mouth"].any()


def test_read_terms_reads_tensors_and_keeps_floats():
    got = read_terms({"loss": torch.tensor(0.25), "psnr": torch.tensor(30.0), "frame": 3.0})
    assert got == {"loss": 0.25, "psnr": 30.0, "frame": 3.0} and all(type(v) is float for v in got.values())


def test_adam_is_fused_only_when_every_parameter_is_on_cuda():
    cpu = [{"params": [torch.nn.Parameter(torch.zeros(3))]}]
    assert adam_options(cpu) == {}
    if torch.cuda.is_available():
        gpu = [{"params": [torch.nn.Parameter(torch.zeros(3, device="cuda"))]}]
        assert adam_options(gpu) == {"fused": True}
        assert adam_options(gpu + cpu) == {}
