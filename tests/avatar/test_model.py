

import pytest
import torch

from thgs.avatar.model import GROUPS, AvatarOptions, FrameInputs, THGSAvatar
from thgs.core.rotations import quaternion_to_matrix


def _frame(body, seed=0, frame_index=None, audio=True):
    g = torch.Generator().manual_seed(seed)
    return FrameInputs(pose=torch.randn(body.num_joints, 3, generator=g) * 0.3,
                       transl=torch.tensor([0.1, -0.2, 0.3]),
                       betas=torch.randn(body.num_betas, generator=g),
                       expression=torch.randn(body.num_expressions, generator=g),
                       audio_window=torch.randn(8, 16, 6, generator=g) if audio else None,
                       frame_index=frame_index)


def test_initial_avatar_reproduces_the_posed_body(tiny_body):
    """With parent-vertex skinning, fresh Gaussians sit exactly on the body's posed vertices (Eq. 5-7)."""
    model = THGSAvatar(tiny_body, AvatarOptions(skinning="parent"), num_frames=3, audio_channels=6)
    f = _frame(tiny_body)
    gs = model(f)
    ref = tiny_body(f.pose[None], f.betas[None], f.expression[None], f.transl[None]).vertices[0]
    assert torch.allclose(gs.means, ref, atol=1e-5)
    # rotations: the disk normal follows the posed surface's local frame (rigidly bound head vertices)
    R = quaternion_to_matrix(gs.quats)
    head = tiny_body.lbs_weights[:, 2] == 1
    kin_rot = tiny_body(f.pose[None], f.betas[None]).kinematics.skinning_transforms[0, 2, :3, :3]
    assert torch.allclose(R[head, :, 2], tiny_body.vertex_normals[head] @ kin_rot.T, atol=1e-5)
    assert torch.allclose(gs.quats.norm(dim=-1), torch.ones(len(gs)), atol=1e-5)
    assert gs.scales.min() > 0 and ((gs.opacities > 0) & (gs.opacities < 1)).all()


def test_vanilla_ignores_expression_and_audio(tiny_body):
    model = THGSAvatar(tiny_body, AvatarOptions(skinning="parent", leb=False, saam=False, use_expression=False),
                       num_frames=3, audio_channels=6)
    assert model.leb is None and model.saam is None
    f = _frame(tiny_body)
    a = model(f).means
    f.expression = f.expression * 0
    assert torch.allclose(a, model(f).means)


def _grads(model, f):
    model.zero_grad(set_to_none=True)
    gs = model(f)
    (gs.means.square().sum() + gs.quats[:, 1:].square().sum() + gs.scales.sum()).backward()
    out = {}
    for g in GROUPS:
        ps = model.group_parameters(g)
        out[g] = any(p.grad is not None and p.grad.abs().sum() > 0 for p in ps)
    return out


@pytest.mark.parametrize("skinning", ["parent", "grid"])
def test_gradients_reach_each_group_only_once_active(tiny_body, skinning):
    model = THGSAvatar(tiny_body, AvatarOptions(skinning=skinning, grid_resolution=16, hash_levels=4,
                                                hash_log2_table=10), num_frames=3, audio_channels=6)
    expected_groups = set(GROUPS) if skinning == "grid" else set(GROUPS) - {"skinning"}
    f = _frame(tiny_body, frame_index=1)
    assert not any(_grads(model, f).values())
    with torch.no_grad():  # SAAM's last layer starts at zero: give the decoder a non-zero output first
        model.saam.decoder[-1].weight.normal_(0, 1e-2)
    for g in GROUPS:
        model.set_group_active(g, True)
        got = _grads(model, f)
        for h in GROUPS:
            should = h in expected_groups and GROUPS.index(h) <= GROUPS.index(g)
            assert got[h] == should, (g, h, got)
    # refinements move only the frame they belong to
    assert model.refine.pose.grad[[0, 2]].abs().sum() == 0 and model.refine.pose.grad[1].abs().sum() > 0


def test_saam_moves_only_mouth_gaussians(tiny_body):
    model = THGSAvatar(tiny_body, AvatarOptions(skinning="parent", hash_levels=4, hash_log2_table=10),
                       num_frames=3, audio_channels=6)
    model.set_group_active("saam", True)
    with torch.no_grad():
        model.saam.decoder[-1].bias.fill_(0.01)
    f = _frame(tiny_body)
    out = model.forward_full(f)
    model.set_group_active("saam", False)
    base = model.forward_full(f)
    moved = (out.gaussians.means - base.gaussians.means).norm(dim=-1) > 1e-7
    assert out.mouth.any() and torch.equal(moved, out.mouth)
    assert not base.mouth.any()


def test_checkpoint_round_trip_with_a_different_number_of_gaussians(tiny_body):
    model = THGSAvatar(tiny_body, AvatarOptions(skinning="parent", hash_levels=4, hash_log2_table=10),
                       num_frames=3, audio_channels=6)
    model.state.append(torch.tensor([0, 1, 2]))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = THGSAvatar(tiny_body, AvatarOptions(skinning="parent", hash_levels=4, hash_log2_table=10),
                       num_frames=3, audio_channels=6)
    fresh.load_state_dict(sd)
    assert fresh.num_gaussians == model.num_gaussians
    f = _frame(tiny_body)
    assert torch.equal(fresh(f).means, model(f).means)



def test_fused_grid_skinning_matches_per_point_weights(tiny_body):
    """The fused grid look-up gives the per-point-weight path's Gaussians and gradients."""
    outs = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = THGSAvatar(tiny_body, AvatarOptions(grid_resolution=8, fused_skinning=fused), num_frames=3,
                           audio_channels=6)
        for g in GROUPS:
            model.set_group_active(g, True)
        with torch.no_grad():
            model.skin_grid.delta.normal_(0.0, 0.05)
        gs = model(_frame(tiny_body, frame_index=1))
        (gs.means.square().sum() + gs.quats[:, 1:].sum()).backward()
        outs.append((gs.means.detach(), gs.quats.detach(), model.skin_grid.delta.grad.clone(),
                     model.state["means"].grad.clone()))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
