"""The body fit (thgs.prepare.fit) on keypoints projected from a known toy body: it must recover the motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.body import toy
from thgs.prepare import fit as F
from thgs.prepare.correspond import correspondence_for, pose_kp
from thgs.prepare.layout import NUM_KEYPOINTS

T, FPS, W, H = 16, 25.0, 320, 320


def _truth(body, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = (np.arange(T) / FPS)[:, None]
    pose = torch.zeros(T, body.num_joints, 3)

    def wave(amp: float) -> torch.Tensor:
        return torch.tensor(amp * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, 3) * t + rng.uniform(0, 6.3, 3)),
                            dtype=torch.float32)

    for name, amp in (("neck", 0.08), ("head", 0.12), ("left_shoulder", 0.2), ("right_shoulder", 0.2),
                      ("left_elbow", 0.3), ("right_elbow", 0.3)):
        pose[:, body.joint_index(name)] = wave(amp)
    pose[:, 0] = wave(0.05)
    jaw = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t[:, 0]))
    pose[:, body.joint_index("jaw"), 0] = torch.tensor(jaw, dtype=torch.float32)
    transl = torch.tensor([[0.0, -1.35, -1.6]]).repeat(T, 1)  # a close, upper-body framing
    return pose, transl, jaw


def _keypoints(body, pose, transl, K, noise: float, seed: int = 1):
    corr = correspondence_for(body)
    out = body(pose, None, None, transl)
    pts = corr.gather(out.joints, out.vertices)
    px, _ = F.project(pts, K)
    rng = np.random.default_rng(seed)
    kp = np.zeros((T, NUM_KEYPOINTS, 3), np.float32)
    kp[:, corr.keypoints, :2] = px.numpy() + rng.normal(0.0, noise, px.shape)
    kp[:, corr.keypoints, 2] = 0.9
    world = np.zeros((T, 33, 4), np.float32)
    for i, k in enumerate(corr.keypoints):
        if k < 33:  # camera axes (x right, y down, z away) = fitting world (x, -y, -z)
            world[:, k, :3] = pts[:, i].numpy() * np.array([1.0, -1.0, -1.0])
            world[:, k, 3] = 0.9
    return kp, world


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    body = toy.load()
    K = torch.tensor([[400.0, 0, W / 2], [0, 400.0, H / 2], [0, 0, 1]])
    pose, transl, jaw = _truth(body)
    kp, world = _keypoints(body, pose, transl, K, noise=0.5)
    valid = np.ones(T, bool)
    valid[5] = False  # a frame without a person: filled from its neighbour
    kp[5, :, 2] = 0
    inp = F.FitInput(kp2d=kp, world=world, valid=valid, K=K.numpy(), width=W, height=H, fps=FPS)
    opts = F.FitOptions(init_steps=25, calib_frames=4, calib_steps=40, root_steps=25, fma_steps=70, window=10,
                        overlap=3, smooth_vertices=60)
    res = F.fit_subject(inp, body="toy", options=opts, progress=False)
    return body, res, kp, jaw


def test_fit_recovers_the_motion(fitted):
    body, res, kp, jaw = fitted
    assert res.pose.shape == (T, body.num_joints, 3) and res.transl.shape == (T, 3)
    assert res.expression.shape == (T, body.num_expressions) and res.betas.shape == (body.num_betas,)
    assert res.model_kp2d.shape == (T, NUM_KEYPOINTS, 2)
    for arr in (res.pose, res.transl, res.expression, res.betas):
        assert arr.dtype == np.float32 and np.isfinite(arr).all()
    for region in ("face", "body", "hands"):
        assert res.lmd_after[region] < res.lmd_before[region], region
        assert res.lmd_after[region] < 4.0, (region, res.lmd_after)
    fitted_jaw = res.pose[:, body.joint_index("jaw"), 0]
    keep = np.arange(T) != 5
    assert np.corrcoef(fitted_jaw[keep], jaw[keep])[0, 1] > 0.9
    np.testing.assert_array_equal(res.pose[5], res.pose[4])  # the invalid frame takes its nearest valid one


def test_fit_result_camera_and_spec(fitted):
    body, res, kp, _ = fitted
    assert res.body_spec["model"] == "toy"
    R = res.world_to_cam[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(R) > 0
    # the recorded camera reproduces the fitted projections from the returned parameters
    out = body(torch.from_numpy(res.pose), torch.from_numpy(res.betas)[None].expand(T, -1),
               torch.from_numpy(res.expression), torch.from_numpy(res.transl))
    corr = correspondence_for(body)
    pts = corr.gather(out.joints, out.vertices).numpy()
    cam = pts @ R.T + res.world_to_cam[:3, 3]
    px = cam[..., :2] / cam[..., 2:] * np.diag(res.K)[:2] + res.K[:2, 2]
    np.testing.assert_allclose(px, res.model_kp2d[:, corr.keypoints], atol=0.05)
    assert set(res.stage_seconds) >= {"calibrate", "root", "fma"}


def test_helpers():
    valid = np.array([False, True, False, False, True, False])
    np.testing.assert_array_equal(F.nearest_valid(valid), [1, 1, 1, 4, 4, 4])
    with pytest.raises(ValueError, match="no valid frame"):
        F.nearest_valid(np.zeros(3, bool))
    w = np.zeros((10, 5), np.float32)
    w[[1, 2, 7], :] = 1
    w[2, 0] = 0
    assert F.pick_calibration_frames(w, 2).tolist() == [1, 7]
    assert F._windows(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    kp = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
    kp[0, 0] = (5, 5, 0.9)
    kp[0, 1] = (-1, 5, 0.9)  # confident but outside the image
    kp[0, 2] = (5, 5, 0.2)  # at the threshold: left out
    wts = F.keypoint_weights(kp, np.ones(1, bool), 10, 10, 0.2)
    assert wts[0, :3].tolist() == [1.0, 0.0, 0.0]
    assert set(F.FitOptions.help()) == {f for f in F.FitOptions.__dataclass_fields__}


def test_bad_input_is_named():
    base = dict(kp2d=np.zeros((2, NUM_KEYPOINTS, 3), np.float32), world=None, valid=np.ones(2, bool),
                K=np.eye(3), width=8, height=8, fps=25.0)
    with pytest.raises(ValueError, match="kp2d"):
        F.fit_subject(F.FitInput(**{**base, "kp2d": np.zeros((2, 10, 3))}), body="toy", progress=False)
    with pytest.raises(ValueError, match="no confident keypoint"):
        F.fit_subject(F.FitInput(**base), body="toy", progress=False)
