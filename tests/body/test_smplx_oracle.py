"""thgs's SMPL-X against the reference implementation (the ``smplx`` package, code only) on a random file of
SMPL-X's layout: vertices and joints agree to 1e-5 for shapes, expressions, body / hand / jaw / eye poses, PCA and
axis-angle hands, with and without the flat hand mean."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch

import smplx as smplx_ref  # the reference (PyPI package), not thgs.body.smplx
from thgs.body import smplx as thgs_smplx
from thgs.body.joints import SMPLX_PARENTS

V, F, J = 10475, 20908, 55  # the reference's landmark and extra-joint vertex ids need SMPL-X's 10,475 vertices
NUM_SHAPE, NUM_EXPR, NUM_PCA = 10, 10, 12


def _random_smplx_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A random model with SMPL-X's fields: a sparse joint regressor (8 vertices per joint) and blended skinning
    weights (4 joints per vertex), so that expression offsets visibly move the joints."""
    rng = np.random.default_rng(seed)
    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64), np.arange(J)])
    kintree[0, 0] = 4294967295
    jreg = np.zeros((J, V))
    for j in range(J):
        jreg[j, rng.choice(V, 8, replace=False)] = rng.random(8) + 0.1
    jreg /= jreg.sum(1, keepdims=True)
    weights = np.zeros((V, J))
    for k in range(4):
        weights[np.arange(V), rng.integers(0, J, V)] += rng.random(V) + 0.05
    weights /= weights.sum(1, keepdims=True)
    return {
        "v_template": rng.standard_normal((V, 3)) * 0.3,
        "f": rng.integers(0, V, (F, 3)).astype(np.uint32),
        "J_regressor": jreg,
        "kintree_table": kintree.astype(np.uint32),
        "weights": weights,
        "shapedirs": rng.standard_normal((V, 3, NUM_SHAPE + NUM_EXPR)).astype(np.float32) * 0.02,
        "posedirs": rng.standard_normal((V, 3, 486)).astype(np.float32) * 0.01,
        "hands_componentsl": rng.standard_normal((45, 45)) * 0.3,
        "hands_componentsr": rng.standard_normal((45, 45)) * 0.3,
        "hands_meanl": rng.standard_normal(45) * 0.2,
        "hands_meanr": rng.standard_normal(45) * 0.2,
        "lmk_faces_idx": rng.integers(0, F, 51).astype(np.int64),
        "lmk_bary_coords": np.full((51, 3), 1.0 / 3.0),
    }


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("smplx_oracle") / "SMPLX_NEUTRAL.npz"
    np.savez(path, **_random_smplx_arrays())
    return path


@pytest.fixture(scope="module")
def thgs_body(model_file):
    return thgs_smplx.load(model_path=model_file)


@functools.lru_cache(maxsize=None)
def _reference(model_file, use_pca: bool, flat_hand_mean: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smplx_ref.SMPLX(str(model_file.parent), model_type="smplx", gender="neutral", ext="npz",
                               num_betas=NUM_SHAPE, num_expression_coeffs=NUM_EXPR, use_pca=use_pca,
                               num_pca_comps=NUM_PCA, flat_hand_mean=flat_hand_mean, use_face_contour=False)


def _params(batch: int, use_pca: bool, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.3: torch.randn(*s, generator=g) * scale  # noqa: E731
    hand = NUM_PCA if use_pca else 45
    return {"betas": r(batch, NUM_SHAPE, scale=1.0), "expression": r(batch, NUM_EXPR, scale=1.5),
            "global_orient": r(batch, 3), "body_pose": r(batch, 63), "jaw_pose": r(batch, 3), "leye_pose": r(batch, 3),
            "reye_pose": r(batch, 3), "left_hand_pose": r(batch, hand), "right_hand_pose": r(batch, hand),
            "transl": r(batch, 3)}


def _thgs_forward(body, p: dict[str, torch.Tensor], flat_hand_mean: bool):
    left = thgs_smplx.hand_pose_to_axis_angle(p["left_hand_pose"], "left", body, flat_hand_mean=flat_hand_mean)
    right = thgs_smplx.hand_pose_to_axis_angle(p["right_hand_pose"], "right", body, flat_hand_mean=flat_hand_mean)
    pose = thgs_smplx.smplx_pose(p["global_orient"], p["body_pose"], p["jaw_pose"], p["leye_pose"], p["reye_pose"],
                                 left, right)
    return body(pose, betas=p["betas"], expression=p["expression"], transl=p["transl"])


@pytest.mark.parametrize("use_pca", [True, False])
@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_matches_the_reference_smplx(model_file, thgs_body, use_pca, flat_hand_mean):
    ref_model = _reference(model_file, use_pca, flat_hand_mean)
    p = _params(4, use_pca, seed=int(use_pca) * 2 + int(flat_hand_mean))
    with torch.no_grad():
        ref = ref_model(**p, return_verts=True)
        ours = _thgs_forward(thgs_body, p, flat_hand_mean)
    torch.testing.assert_close(ours.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, ref.joints[:, :J], atol=1e-5, rtol=0)


def test_expressions_move_the_joints_as_in_smplx(model_file, thgs_body):
    """The joints are regressed from the template plus shape and expression offsets: with zero pose, the rest
    joints are J_regressor @ (template + shape + expression offsets), and they differ from the shape-only ones."""
    ref_model = _reference(model_file, use_pca=False, flat_hand_mean=True)
    p = {k: torch.zeros_like(v) for k, v in _params(2, False, seed=7).items()}
    g = torch.Generator().manual_seed(8)
    p["betas"], p["expression"] = torch.randn(2, NUM_SHAPE, generator=g), 2.0 * torch.randn(2, NUM_EXPR, generator=g)
    with torch.no_grad():
        ref = ref_model(**p)
        ours = _thgs_forward(thgs_body, p, flat_hand_mean=True)
        shape_only = thgs_body.rest_joints(p["betas"])
        with_expr = thgs_body.rest_joints(p["betas"], p["expression"])
    torch.testing.assert_close(ours.joints, ref.joints[:, :J], atol=1e-5, rtol=0)
    torch.testing.assert_close(with_expr, ours.rest_joints, atol=1e-6, rtol=0)
    assert (with_expr - shape_only).norm(dim=-1).max() > 1e-2  # the expression really moved joints here
