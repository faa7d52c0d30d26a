"""The viewer core without a browser: state -> image, expressions, switches, cameras, overlays, run errors."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from thgs.cli import UserError
from thgs.viewer import core
from thgs.viewer.core import ViewerState


def changed_pixels(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a.astype(np.int16) - b).max(-1) > 8).sum())


def test_render_state_is_a_nonblank_image(toy_session):
    s = toy_session
    img = core.render_state(s, ViewerState(height=64))
    assert img.dtype == np.uint8 and img.shape == (64, s.camera.width, 3)
    assert (np.abs(img.astype(np.int16) - 255).max(-1) > 40).mean() > 0.05  # avatar on a white background
    again = core.render_state(s, ViewerState(height=64))
    np.testing.assert_array_equal(img, again)


def test_expression_sources(toy_session):
    s = toy_session
    E = s.model.body.num_expressions
    st = ViewerState(frame=2)
    torch.testing.assert_close(core.state_expression(s, st), s.drive.expression[2])
    sl = core.state_expression(s, st.with_(expression_source="sliders", sliders=(0.5, -1.0)))
    assert sl.shape == (E,) and sl[0] == 0.5 and sl[1] == -1.0 and sl[2:].abs().sum() == 0
    a, b = (1.0,) + (0.0,) * (E - 1), (0.0, 2.0) + (0.0,) * (E - 2)
    mid = core.state_expression(s, st.with_(expression_source="blend", expr_a=a, expr_b=b, blend=0.25))
    torch.testing.assert_close(mid[:2], torch.tensor([0.75, 0.5]))
    with pytest.raises(ValueError, match="expression_source"):
        core.state_expression(s, st.with_(expression_source="bogus"))


def test_expression_slider_changes_the_image_and_blend_ends_match(toy_session):
    s = toy_session
    base = ViewerState(height=96, expression_source="sliders", sliders=(0.0,) * 8)
    neutral = core.render_state(s, base)
    jaw = core.render_state(s, base.with_(sliders=(2.0,) + (0.0,) * 7))
    assert changed_pixels(neutral, jaw) > 20
    blend = base.with_(expression_source="blend", expr_a=(0.0,) * 8, expr_b=(2.0,) + (0.0,) * 7)
    np.testing.assert_array_equal(core.render_state(s, blend.with_(blend=0.0)), neutral)
    np.testing.assert_array_equal(core.render_state(s, blend.with_(blend=1.0)), jaw)


def test_switches_restore_model_state(toy_session):
    s = toy_session
    before = dict(s.model.active)
    with core.switches(s.model, saam=False, leb=False, trained=s.trained_active):
        assert not s.model.active["saam"] and not s.model.active["blendshapes"]
    assert s.model.active == before


def test_leb_toggle_removes_the_learned_residual(toy_session):
    s = toy_session
    assert s.has_leb and s.trained_active["blendshapes"]  # the smoke preset starts LEB at step 2 of 4
    leb = s.model.leb
    saved = leb.delta.detach().clone()
    try:
        with torch.no_grad():  # a large learned residual on the jaw component, so the toggle must show
            leb.delta[..., 0] += 0.05
        st = ViewerState(height=96, expression_source="sliders", sliders=(1.0,))
        on, off = core.render_state(s, st), core.render_state(s, st.with_(leb=False))
        assert changed_pixels(on, off) > 10
        with torch.no_grad():
            leb.delta.copy_(saved)
        if saved.abs().max() == 0:  # nothing learned yet: on and off agree
            np.testing.assert_array_equal(core.render_state(s, st), core.render_state(s, st.with_(leb=False)))
    finally:
        with torch.no_grad():
            leb.delta.copy_(saved)


def test_camera_round_trip_and_novel_view(toy_session):
    s = toy_session
    cam = s.camera
    target = core.body_center(s)
    v = core.view_from_camera(cam, target)
    back = core.camera_from_view(v.position, v.wxyz, v.fov_y, cam.width / cam.height, cam.height)
    torch.testing.assert_close(back.world_to_cam, cam.world_to_cam, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.K, cam.K, atol=1e-3, rtol=0)
    assert np.allclose(v.up @ (v.look_at - v.position), 0, atol=1e-5)
    # Turn the camera half way round the body: the image must differ (a novel view of the back).
    from thgs.animate.drive import rotate_camera

    behind = rotate_camera(cam, torch.as_tensor(target, dtype=torch.float32), torch.as_tensor(v.up).float(), 180.0)
    front = core.render_state(s, ViewerState(height=64))
    back_img = core.render_state(s, ViewerState(height=64, camera=behind))
    assert changed_pixels(front, back_img) > 50
    with pytest.raises(ValueError):
        core.camera_from_view(v.position, v.wxyz, math.pi, 1.0, 10)


def test_body_geometry_for_overlays(toy_session):
    s = toy_session
    g = core.body_geometry(s, ViewerState(frame=1))
    body = s.model.body
    assert g.vertices.shape == (body.num_vertices, 3) and g.faces.shape[1] == 3
    assert g.bones.shape == (body.num_joints - 1, 2, 3)
    np.testing.assert_allclose(g.bones[:, 1], g.joints[1:], atol=1e-6)


def test_slider_names_and_ranges():
    assert core.slider_names([f"expr{i:03d}" for i in range(100)]) == [f"expr{i:03d}" for i in range(10)]
    assert core.slider_names(["jawOpen", "smile"]) == ["jawOpen", "smile"]
    assert core.slider_range(["expr000"]) == (-3.0, 3.0)
    assert core.slider_range(["jawOpen"]) == (-1.0, 2.0)


def test_missing_or_broken_run_is_a_user_error(toy_run, tmp_path):
    from thgs.viewer.session import open_session

    with pytest.raises(UserError, match="no such run folder"):
        open_session(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="avatar.pt"):
        open_session(empty)
    broken = tmp_path / "broken"
    shutil.copytree(toy_run, broken)
    for name in ("avatar.pt", "checkpoint.pt"):
        (broken / name).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="avatar.pt: not a thgs checkpoint"):
        open_session(broken)


def test_render_state_uses_one_cached_fast_path_per_switch_setting(toy_session):
    s = toy_session
    st = ViewerState(height=48, expression_source="sliders", sliders=(1.0,))
    a = core.session_animator(s, st)
    assert core.session_animator(s, st) is a  # cached while nothing changes
    b = core.session_animator(s, st.with_(leb=False))
    assert (b is not a) == bool(s.has_leb and s.trained_active.get("blendshapes"))
    # the image equals the one posed by the model under the same switches
    from thgs.render.base import render

    for state in (st, st.with_(leb=False), st.with_(saam=False)):
        with torch.no_grad(), core.switches(s.model, state.saam, state.leb, s.trained_active):
            gs = s.model(core.state_inputs(s, state))
        res = render(gs, core.state_camera(s, state), s.background, mode=s.mode, backend=s.backend)
        ref = (res.rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        got = core.render_state(s, state)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_views_of_several_clients_are_posed_once_and_equal_single_renders(toy_session, monkeypatch):
    """Several clients' cameras (two of one size, one of another): each image equals the single render with
    that camera, views of one size share one batched call, and the avatar is posed once."""
    s = toy_session
    state = ViewerState(frame=1)
    front = core.state_camera(s, ViewerState(height=64))
    view = core.view_from_camera(front, core.body_center(s, 0))
    side = core.camera_from_view(view.position + np.array([0.3, 0.0, 0.0]), view.wxyz, view.fov_y,
                                 front.width / front.height, front.height)
    small = core.camera_from_view(view.position, view.wxyz, view.fov_y, 1.5, 48)
    cameras = [front, side, small]
    batches: list[int] = []
    posings: list[int] = []
    real_batch, real_animator = core.render_batch, core.session_animator

    def counting_batch(gaussians, cams, *a, **k):
        batches.append(len(gaussians))
        return real_batch(gaussians, cams, *a, **k)

    def counting_animator(*a, **k):
        posings.append(1)
        return real_animator(*a, **k)

    monkeypatch.setattr(core, "render_batch", counting_batch)
    monkeypatch.setattr(core, "session_animator", counting_animator)
    images = core.render_views_tensor(s, state, cameras)
    monkeypatch.undo()
    assert sorted(batches) == [1, 2] and len(posings) == 1
    for cam, img in zip(cameras, images):
        assert tuple(img.shape) == (cam.height, cam.width, 3) and img.dtype == torch.uint8
        np.testing.assert_array_equal(img.cpu().numpy(), core.render_state(s, state.with_(camera=cam, height=0)))
    assert changed_pixels(images[0].cpu().numpy(), images[1].cpu().numpy()) > 0
    assert core.render_views_tensor(s, state, []) == []
