"""The fit's SMPL-X path, on an SMPL-X-layout file built from the toy body (SMPL-X files cannot be shipped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.body import smplx, toy
from thgs.body.joints import SMPLX_PARENTS
from thgs.prepare import fit as F
from thgs.prepare.correspond import correspondence_for, face_kp
from thgs.prepare.layout import NUM_KEYPOINTS


@pytest.fixture(scope="module")
def smplx_file(tmp_path_factory):
    body = toy.load()
    rng = np.random.default_rng(0)
    V = body.num_vertices
    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64), np.arange(55)])
    kintree[0, 0] = 4294967295
    head_faces = np.nonzero(body.head_mask[body.faces].all(1).numpy()
                            & (body.v_template[body.faces].mean(1)[:, 2] > 0.05).numpy())[0]
    bary = rng.random((51, 3))
    arrays = {
        "v_template": body.v_template.double().numpy(), "f": body.faces.numpy().astype(np.uint32),
        "J_regressor": body.joint_regressor.double().numpy(), "kintree_table": kintree.astype(np.uint32),
        "weights": body.lbs_weights.double().numpy(),
        "shapedirs": rng.standard_normal((V, 3, 20)).astype(np.float32) * 0.002,
        "posedirs": np.zeros((V, 3, 486), np.float32),
        "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45),
        "lmk_faces_idx": rng.choice(head_faces, 51).astype(np.uint32),
        "lmk_bary_coords": bary / bary.sum(1, keepdims=True),
    }
    path = tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz"
    np.savez(path, **arrays)
    return path


def test_fit_reduces_lmd_on_an_smplx_file(smplx_file):
    opts = {"model_path": str(smplx_file), "num_betas": 10, "num_expression": 10}
    body = smplx.load(**opts)
    assert "landmark_embedding" in body.meta
    corr = correspondence_for(body)
    assert face_kp(61) in corr.keypoints.tolist()  # a face point from the landmark embedding
    T, W, H = 8, 640, 400
    rng = np.random.default_rng(1)
    pose = torch.zeros(T, 55, 3)
    for name, amp in (("neck", 0.1), ("head", 0.1), ("left_shoulder", 0.2), ("right_elbow", 0.3), ("jaw", 0.1)):
        pose[:, body.joint_index(name)] = torch.tensor(rng.normal(0, amp, 3), dtype=torch.float32)
    expr = torch.tensor(rng.normal(0, 1.0, (T, 10)), dtype=torch.float32)
    transl = torch.tensor([[0.0, -1.35, -1.6]]).repeat(T, 1)
    K = torch.tensor([[400.0, 0, W / 2], [0, 400.0, H / 2], [0, 0, 1]])
    out = body(pose, None, expr, transl)
    px, _ = F.project(corr.gather(out.joints, out.vertices), K)
    kp = np.zeros((T, NUM_KEYPOINTS, 3), np.float32)
    kp[:, corr.keypoints, :2] = px.numpy()
    kp[:, corr.keypoints, 2] = 0.9
    inp = F.FitInput(kp2d=kp, world=None, valid=np.ones(T, bool), K=K.numpy(), width=W, height=H, fps=25.0)
    res = F.fit_subject(inp, body="smplx", body_options=opts, progress=False,
                        options=F.FitOptions(init_steps=20, calib_frames=3, calib_steps=30, root_steps=20,
                                             fma_steps=40, window=8, smooth_vertices=50))
    assert res.body_spec == {"model": "smplx", "options": opts}
    assert res.betas.shape == (10,) and res.expression.shape == (T, 10)
    for region in ("face", "body", "hands"):
        assert res.lmd_after[region] < res.lmd_before[region], (region, res.lmd_before, res.lmd_after)
