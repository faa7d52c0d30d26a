import math

import numpy as np
import pytest
import torch

from thgs.animate.drive import DriveError, load_motion, orbit, parse_expression, rotate_camera
from thgs.render.base import Camera


def test_parse_expression_names_indices_and_files(tmp_path):
    names = ["jaw_open", "smile", "blink"]
    e = parse_expression("jaw_open=0.5, expr2=-1", names, 4)
    assert e.shape == (4, 3) and torch.equal(e[0], torch.tensor([0.5, 0.0, -1.0]))
    np.save(tmp_path / "e.npy", np.array([1.0, 2.0]))
    assert torch.equal(parse_expression(str(tmp_path / "e.npy"), names, 2)[1], torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(DriveError, match="unknown expression 'frown'"):
        parse_expression("frown=1", names, 1)
    with pytest.raises(DriveError, match="not a number"):
        parse_expression("smile=lots", names, 1)


def test_load_motion_params_and_smplx(tmp_path):
    T = 3
    np.savez(tmp_path / "p.npz", pose=np.ones((T, 55, 3)), transl=np.zeros((T, 3)), expression=np.ones((T, 2)))
    m = load_motion(tmp_path / "p.npz", 55, 4)
    assert m["pose"].shape == (T, 55, 3) and torch.equal(m["expression"][0], torch.tensor([1.0, 1, 0, 0]))
    parts = dict(global_orient=np.full((T, 3), 1.0), body_pose=np.full((T, 63), 2.0), jaw_pose=np.full((T, 3), 3.0),
                 left_hand_pose=np.full((T, 45), 4.0), right_hand_pose=np.full((T, 45), 5.0), transl=np.ones((T, 3)))
    np.savez(tmp_path / "s.npz", **parts)
    m = load_motion(tmp_path / "s.npz", 55, 4)
    p = m["pose"]
    assert p.shape == (T, 55, 3)
    assert p[0, 0, 0] == 1 and p[0, 1, 0] == 2 and p[0, 21, 0] == 2 and p[0, 22, 0] == 3
    assert p[0, 23, 0] == 0 and p[0, 25, 0] == 4 and p[0, 40, 0] == 5 and p[0, 54, 0] == 5
    np.savez(tmp_path / "pca.npz", global_orient=np.zeros((T, 3)), body_pose=np.zeros((T, 63)),
             left_hand_pose=np.zeros((T, 12)))
    with pytest.raises(DriveError, match="left_hand_pose.*PCA"):
        load_motion(tmp_path / "pca.npz", 55, 4)
    with pytest.raises(DriveError, match="55-joint"):
        load_motion(tmp_path / "s.npz", 24, 4)


def test_orbit_keeps_distance_and_looks_at_the_centre():
    cam = Camera.look_at(torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
                         40, 32, 32)
    centre = torch.tensor([0.0, 1.0, 0.0])
    up = -cam.world_to_cam[1, :3]
    quarter = rotate_camera(cam, centre, up, 90.0)
    assert torch.allclose(quarter.center, torch.tensor([3.0, 1.0, 0.0]), atol=1e-5)
    cams = orbit(cam, centre, up, 8)
    for c in cams:
        assert math.isclose(float((c.center - centre).norm()), 3.0, rel_tol=1e-5)
        p = c.world_to_cam[:3, :3] @ centre + c.world_to_cam[:3, 3]
        assert abs(float(p[0])) < 1e-5 and abs(float(p[1])) < 1e-5  # centre stays in the image centre
