"""The pieces of the CUDA-graph training forward that run anywhere: the tensor-argument form of the posing
pass equals ``forward_full``, the frame index becomes a device slice, and the recording's signature changes
exactly when a recording must be made again. The replay itself is compared with the eager step on a GPU
(tests/train/test_step_speed_gpu.py)."""

import pytest
import torch

from thgs.avatar.model import AvatarOptions, FrameInputs, THGSAvatar
from thgs.runs.config import preset, replace_flat
from thgs.train.graphed import _Posing, graph_inputs, make_forward, model_signature


def _model(body):
    torch.manual_seed(0)
    return THGSAvatar(body, AvatarOptions(skinning="grid", grid_resolution=8, hash_levels=2, hash_log2_table=8),
                      num_frames=5, audio_channels=4)


def _frame(body, index=3):
    g = torch.Generator().manual_seed(2)
    return FrameInputs(pose=0.1 * torch.randn(body.num_joints, 3, generator=g), transl=torch.tensor([0.0, 0.1, 0.0]),
                       betas=torch.zeros(body.num_betas), expression=torch.randn(body.num_expressions, generator=g),
                       audio_window=torch.randn(8, 16, 4, generator=g), frame_index=index)


def test_the_tensor_form_of_the_posing_pass_equals_forward_full(tiny_body_model):
    model = _model(tiny_body_model)
    for g in ("pose", "expression", "skinning", "blendshapes", "saam"):
        model.set_group_active(g, True)
    with torch.no_grad():
        model.refine.pose.normal_(0, 0.05)
        model.refine.expression.normal_(0, 0.1)
    frame = _frame(tiny_body_model)
    ids = torch.arange(5)
    tensors, present = graph_inputs(frame, ids)
    assert present == (True, True, True, True)
    assert tensors[-1].tolist() == [3] and tensors[-1].data_ptr() == ids[3:4].data_ptr()  # a view, no copy
    got = _Posing(model, present)(*tensors)
    out = model.forward_full(frame)
    for a, b in zip(got, (out.gaussians.means, out.gaussians.quats, out.gaussians.scales)):
        assert torch.equal(a, b)
    # the refinement row gathered through the tensor index is the int-indexed one, gradients included
    loss = got[0].square().sum()
    grad_tensor = torch.autograd.grad(loss, model.refine.pose)[0]
    grad_int = torch.autograd.grad(out.gaussians.means.square().sum(), model.refine.pose)[0]
    assert torch.allclose(grad_tensor, grad_int) and grad_int[3].abs().sum() > 0 and grad_int[0].abs().sum() == 0


def test_absent_inputs_and_a_bad_frame_index(tiny_body_model):
    frame = _frame(tiny_body_model)
    bare = FrameInputs(pose=frame.pose, transl=frame.transl)
    tensors, present = graph_inputs(bare, torch.arange(5))
    assert present == (False, False, False, False) and len(tensors) == 2
    with pytest.raises(IndexError, match="frame index 7"):
        graph_inputs(_frame(tiny_body_model, index=7), torch.arange(5))


def test_the_signature_changes_when_a_recording_must_be_made_again(tiny_body_model):
    model = _model(tiny_body_model)
    key = model_signature(model)
    assert model_signature(model) == key  # stable from step to step
    model.set_group_active("saam", True)  # a group switch
    key2 = model_signature(model)
    assert key2 != key
    model.refresh_mouth()  # new mouth flags (as after densification)
    key3 = model_signature(model)
    assert key3 != key2
    with torch.no_grad():
        model.state.params["means"].add_(0.01)  # an optimiser step: values change in place, no new recording
    assert model_signature(model) == key3
    model.state.prune(torch.arange(model.num_gaussians) == 0)  # densification replaces the parameters
    assert model_signature(model) != key3


def test_make_forward_is_the_eager_pass_on_a_cpu(tiny_body_model):
    model = _model(tiny_body_model)
    cfg = preset("smoke")
    assert cfg.cuda_graphs  # on by default, used only on CUDA
    assert make_forward(model, cfg, torch.device("cpu")) == model.forward_full
    assert make_forward(model, replace_flat(cfg, cuda_graphs=False), torch.device("cpu")) == model.forward_full


def test_the_tensor_form_of_the_loss_terms_equals_step_losses(tiny_body_model):
    from thgs.avatar.losses import LossWeights
    from thgs.render import Camera, render
    from thgs.train.graphed import _Objective
    from thgs.train.objective import step_losses

    model = _model(tiny_body_model)
    for g in ("skinning", "blendshapes"):
        model.set_group_active(g, True)
    out = model.forward_full(_frame(tiny_body_model))
    cam = Camera.look_at(torch.tensor([0.0, 1.1, 3.2]), torch.tensor([0.0, 1.1, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
                         40.0, 24, 24)
    res = render(out.gaussians, cam, torch.ones(3), mode="2dgs", backend="reference")
    target = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(3))
    pixel_weights = torch.rand(24, 24, 1, generator=torch.Generator().manual_seed(4))
    w = LossWeights(normal=0.05, leb=0.1, skinning_tv=0.01)
    want = step_losses(model, out, res, target, w, pixel_weights=pixel_weights, normal=True)
    got = _Objective(model, w, weighted=True, normal=True)(res.rgb, target, pixel_weights, res.normals,
                                                          res.surf_normals, res.alpha)
    assert set(got) == set(want) == {"recon", "vertex", "leb", "skinning_tv", "normal", "loss"}
    for k in want:
        assert torch.equal(got[k], want[k]), k
    plain = _Objective(model, w, weighted=False, normal=False)(res.rgb, target)
    assert "normal" not in plain and torch.equal(plain["recon"], step_losses(model, out, res, target, w)["recon"])


def test_a_failed_recording_leaves_the_eager_pass(tiny_body_model, monkeypatch):
    """If the recording fails (an operation the CUDA graph cannot hold), the run goes on eagerly, with a
    warning, and gives the eager pass's Gaussians."""
    from thgs.train.graphed import GraphedForward

    def refuse(*a, **k):
        raise RuntimeError("operation not permitted when stream is capturing\nmore")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", refuse)
    model = _model(tiny_body_model)
    fwd = GraphedForward(model)
    frame = _frame(tiny_body_model)
    with pytest.warns(RuntimeWarning, match="without CUDA graphs"):
        out = fwd(frame)
    assert fwd.failed == "RuntimeError: operation not permitted when stream is capturing" and fwd.recordings == 0
    want = model.forward_full(frame)
    assert torch.equal(out.gaussians.means, want.gaussians.means)
    assert torch.equal(fwd(frame).gaussians.quats, want.gaussians.quats)  # and stays eager, without a new warning
