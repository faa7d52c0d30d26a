"""The fast inference path gives the same Gaussians as the model's forward pass."""

import pytest
import torch

from thgs.avatar.gaussians import InitOptions
from thgs.avatar.inference import Animator, model_fingerprint
from thgs.avatar.model import GROUPS, AvatarOptions, FrameInputs, THGSAvatar
from thgs.body import toy

C = 6


@pytest.fixture(scope="module")
def body():
    return toy.load()


def _model(body, skinning: str, sh_degree: int, seed: int = 0) -> THGSAvatar:
    """An avatar with every learned part away from its initial value (so each one shows in the output)."""
    opts = AvatarOptions(skinning=skinning, grid_resolution=12, hash_levels=4, hash_log2_table=10,
                         init=InitOptions(sh_degree=sh_degree, seed=seed))
    torch.manual_seed(seed)
    model = THGSAvatar(body, opts, num_frames=2, audio_channels=C)
    g = torch.Generator().manual_seed(seed)
    st = model.state
    with torch.no_grad():
        n = st["means"].shape[0]
        st["quats"].add_(0.3 * torch.randn(n, 4, generator=g))
        st["log_scales"].add_(0.2 * torch.randn(n, 3, generator=g))
        st["opacity_logits"].add_(torch.randn(n, generator=g))
        st["sh"].add_(0.3 * torch.randn(st["sh"].shape, generator=g))
        model.leb.delta.add_(0.01 * torch.randn(model.leb.delta.shape, generator=g))
        if model.skin_grid is not None:  # some cells negative (clamped), most moved
            model.skin_grid.delta.add_(0.3 * torch.randn(model.skin_grid.delta.shape, generator=g))
        model.saam.decoder[-1].weight.normal_(0, 0.05, generator=g)
        model.saam.decoder[-1].bias.normal_(0, 0.01, generator=g)
        model.refine.pose.normal_(0, 0.1, generator=g)  # inference ignores refinements (frame_index None)
    for grp in GROUPS:
        model.set_group_active(grp, True)
    return model.eval()


def _frames(body, n: int, seed: int = 1) -> list[FrameInputs]:
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(body.num_betas, generator=g)
    return [FrameInputs(pose=0.4 * torch.randn(body.num_joints, 3, generator=g), transl=torch.randn(3, generator=g),
                        betas=betas, expression=torch.randn(body.num_expressions, generator=g),
                        audio_window=torch.randn(8, 16, C, generator=g)) for _ in range(n)]


def _assert_same(ref, got) -> None:
    for name in ("means", "quats", "scales", "opacities", "colors"):
        a, b = getattr(ref, name), getattr(got, name)
        assert a.shape == b.shape, name
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)
    assert ref.sh_degree == got.sh_degree


@pytest.mark.parametrize("skinning,sh_degree", [("grid", 0), ("grid", 1), ("parent", 0), ("parent", 1)])
def test_animator_equals_the_model(body, skinning, sh_degree):
    model = _model(body, skinning, sh_degree)
    frames = _frames(body, 3)
    mouth_changed = False
    with torch.no_grad():
        for saam in (True, False):
            for leb in (True, False):
                anim = Animator.from_model(model, betas=frames[0].betas, saam=saam, leb=leb)
                before = dict(model.active)
                model.active["saam"], model.active["blendshapes"] = saam, leb  # what the viewer's switches do
                try:
                    refs = [model(f) for f in frames]
                finally:
                    model.active.update(before)
                for f, ref in zip(frames, refs):
                    _assert_same(ref, anim(f.pose, f.expression, f.audio_window if saam else None, f.transl))
                # the batched call: one [B, ...] animation of the same frames
                out = anim.animate(torch.stack([f.pose for f in frames]),
                                   torch.stack([f.expression for f in frames]),
                                   torch.stack([f.audio_window for f in frames]),
                                   torch.stack([f.transl for f in frames]))
                assert out.means.shape == (3, model.num_gaussians, 3) and len(out) == 3
                for b, ref in enumerate(refs):
                    _assert_same(ref, out.frame(b))
                if saam:
                    assert anim.uses_audio and anim.mouth.numel() > 0
                    no_audio = anim(frames[0].pose, frames[0].expression, None, frames[0].transl)
                    mouth_changed |= not torch.allclose(no_audio.means[anim.mouth], refs[0].means[anim.mouth])
                else:
                    assert not anim.uses_audio
    assert mouth_changed  # SAAM really acted on the mouth rows


def test_each_switch_changes_the_output_and_missing_inputs_match_the_model(body):
    model = _model(body, "grid", 0)
    f = _frames(body, 1)[0]
    with torch.no_grad():
        full = Animator.from_model(model, betas=f.betas)(f.pose, f.expression, f.audio_window, f.transl)
        no_leb = Animator.from_model(model, betas=f.betas, leb=False)(f.pose, f.expression, f.audio_window, f.transl)
        assert not torch.allclose(full.means, no_leb.means, atol=1e-6)
        # without betas, expression or audio: as the model given None for them
        anim = Animator.from_model(model)
        ref = model(FrameInputs(pose=f.pose, transl=f.transl))
        _assert_same(ref, anim(f.pose, None, None, f.transl))
        # an expression with fewer coefficients than the basis: the rest are zero, as in the model
        short = f.expression[:3]
        _assert_same(model(FrameInputs(pose=f.pose, transl=f.transl, expression=short)),
                     anim(f.pose, short, None, f.transl))
        # a component the model has switched off stays off whatever the flag says
        model.set_group_active("saam", False)
        try:
            a = Animator.from_model(model, betas=f.betas, saam=True)
            assert not a.uses_audio
            _assert_same(model(f), a(f.pose, f.expression, f.audio_window, f.transl))
        finally:
            model.set_group_active("saam", True)


def test_fingerprint_follows_weights_and_groups(body):
    model = _model(body, "parent", 0)
    key = model_fingerprint(model)
    assert model_fingerprint(model) == key
    with torch.no_grad():
        model.leb.delta.add_(1e-3)
    k2 = model_fingerprint(model)
    assert k2 != key
    model.set_group_active("saam", False)
    assert model_fingerprint(model) != k2
    assert model_fingerprint(model, saam=False) != model_fingerprint(model, saam=True)


def test_capture_is_a_no_op_off_cuda_and_inputs_are_checked(body):
    model = _model(body, "parent", 0)
    anim = Animator.from_model(model)
    assert anim.capture(batch=2) is False and anim.captured == []
    with pytest.raises(ValueError, match="pose must be"):
        anim.animate(torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="transl must be"):
        anim.animate(torch.zeros(2, body.num_joints, 3), transl=torch.zeros(1, 3))


def _joints_following_expression(body):
    """The same body declared like SMPL-X (its joints are regressed from the shaped and expressed template), with
    expressions 100x stronger so that the joint motion shows (the toy's regressor barely sees its expressions)."""
    from thgs.body.model import BodyModel

    return BodyModel(name=body.name, v_template=body.v_template, faces=body.faces,
                     joint_regressor=body.joint_regressor, parents=body.parents, joint_names=body.joint_names,
                     lbs_weights=body.lbs_weights, shapedirs=body.shapedirs, exprdirs=100 * body.exprdirs,
                     posedirs=body.posedirs, head_mask=body.head_mask, mouth=body.mouth,
                     expression_names=body.expression_names, meta=body.meta, joints_follow_expression=True)


def test_animator_equals_the_model_when_expressions_move_the_joints(body):
    sx_body = _joints_following_expression(body)
    frames = _frames(sx_body, 2)
    e = frames[0].expression[None]
    moved = sx_body.rest_joints(frames[0].betas[None], e) - sx_body.rest_joints(frames[0].betas[None])
    assert moved.norm(dim=-1).max() > 1e-3  # the toy's expressions move its head joints once declared so
    assert torch.equal(body.rest_joints(frames[0].betas[None], e), body.rest_joints(frames[0].betas[None]))
    model = _model(sx_body, "grid", 0)
    unmoved = _model(_joints_following_expression(body), "grid", 0)
    unmoved.body.joints_follow_expression = False
    with torch.no_grad():
        anim = Animator.from_model(model, betas=frames[0].betas)
        for f in frames:
            _assert_same(model(f), anim(f.pose, f.expression, f.audio_window, f.transl))
        assert not torch.allclose(unmoved(frames[0]).means, model(frames[0]).means, atol=1e-4)
