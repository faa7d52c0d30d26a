"""Tests of the anny adapter (thgs.body.anny).

The tests that compare with anny itself need the anny package and are skipped without it; the
converted-file tests run everywhere (a synthetic file, or a real converted file when one exists).
One conversion per session goes into a temporary cache folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from thgs.body import anny as A
from thgs.core.rotations import axis_angle_to_matrix

FRAME = torch.tensor(A.FRAME, dtype=torch.float64)
OTHER_PHENOTYPE = {"age": 0.5, "height": 0.9, "gender": 0.2}


# ----------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """(model in float64, cache folder, seconds the conversion took) for the default phenotype."""
    pytest.importorskip("anny")
    cache = tmp_path_factory.mktemp("anny_cache")
    t0 = time.perf_counter()
    model = A.load(cache_dir=cache)
    seconds = time.perf_counter() - t0
    print(f"\nanny conversion (import + build + convert + write): {seconds:.1f} s")
    return model.double(), cache, seconds


@pytest.fixture(scope="session")
def other(converted):
    """A second phenotype (a tall adolescent), whose rest orientations differ from anny's reference ones."""
    return A.load(phenotype=OTHER_PHENOTYPE, cache_dir=converted[1]).double()


@pytest.fixture(scope="session", params=["default", "other"])
def any_model(request):
    return request.getfixturevalue("converted")[0] if request.param == "default" else request.getfixturevalue("other")


@pytest.fixture(scope="session")
def anny_model():
    anny = pytest.importorskip("anny")
    return anny.Anny(facial_actions="all", pose_parameterization="local-ref", skinning_method="lbs")


def anny_forward(anny_model, model, **kwargs) -> dict:
    with torch.no_grad():
        return anny_model(phenotype_kwargs=model.meta["phenotype"], pose_parameterization="local-ref", **kwargs)


def to_thgs(x: torch.Tensor) -> torch.Tensor:
    return x.double() @ FRAME.T


# ----------------------------------------------------------------------------------------------
# with anny


def test_buffer_shapes(converted):
    m, cache, _ = converted
    V, F, J = 13718, 27420, 104
    assert m.v_template.shape == (V, 3) and m.faces.shape == (F, 3)
    assert int(m.faces.min()) >= 0 and int(m.faces.max()) < V
    assert m.lbs_weights.shape == (V, J) and m.joint_regressor.shape == (J, V)
    assert m.parents.shape == (J,) and m.parents[0] == -1
    assert all(0 <= p < j for j, p in enumerate(m.parents.tolist()) if j > 0)
    assert m.exprdirs.shape == (V, 3, 52) and m.shapedirs.shape == (V, 3, 6)
    assert m.posedirs.shape[0] == 0 and m.head_mask.shape == (V,)
    assert len(m.joint_names) == J and m.joint_names[0] == "root" and "head" in m.joint_names
    assert m.expression_names[24] == "jawOpen" and len(set(m.expression_names)) == 52
    assert m.meta["anny_bone_order"] == list(range(J))
    assert m.meta["phenotype"] == A.resolve_phenotype(None)
    assert len(list(cache.glob("anny-*.npz"))) >= 1


def test_weights_are_convex(converted):
    w = converted[0].lbs_weights
    assert float(w.min()) >= 0.0
    assert torch.allclose(w.sum(dim=1), torch.ones(w.shape[0], dtype=w.dtype), atol=1e-6)


def test_joint_regressor_reproduces_anny_bone_heads(any_model, anny_model):
    m = any_model
    heads = to_thgs(anny_forward(anny_model, m)["rest_bone_heads"][0])
    assert (m.rest_joints()[0] - heads).norm(dim=-1).max() < 1e-5
    assert torch.allclose(m.joint_regressor.sum(dim=1), torch.ones(m.num_joints, dtype=m.joint_regressor.dtype),
                          atol=1e-5)


def reference_angles(m) -> np.ndarray:
    """Degrees between each bone's rest and reference orientation."""
    R = np.asarray(m.meta["reference_rotations"])
    return np.degrees(np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def test_zero_pose_is_the_rest_mesh(any_model, anny_model):
    m = any_model
    out = anny_forward(anny_model, m, pose_parameters=A.pose_to_anny(m, m.zero_pose().double()))
    assert (to_thgs(out["vertices"][0]) - m.v_template).norm(dim=-1).max() < 1e-6
    # anny's own identity pose puts the root at the origin and each bone in its reference orientation,
    # which is the rest orientation at the default phenotype only
    ident = to_thgs(anny_forward(anny_model, m)["vertices"][0]) + m.rest_joints()[0, 0]
    if m.meta["phenotype"] == A.resolve_phenotype(None):
        assert reference_angles(m).max() < 1e-3
        assert (ident - m.v_template).norm(dim=-1).max() < 1e-6
    else:
        assert reference_angles(m).max() > 1.0
        assert (ident - m.v_template).norm(dim=-1).max() > 1e-3


def test_posing_matches_anny(any_model, anny_model):
    m = any_model
    g = torch.Generator().manual_seed(0)
    B = 3
    pose = torch.randn(B, m.num_joints, 3, generator=g, dtype=torch.float64) * 0.3
    transl = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.2
    expr = torch.rand(B, 52, generator=g, dtype=torch.float64)
    out = anny_forward(anny_model, m, pose_parameters=A.pose_to_anny(m, pose, transl), facial_actions=expr)
    ours = m(pose, expression=expr, transl=transl)
    err = (ours.vertices - to_thgs(out["vertices"])).norm(dim=-1)
    assert err.mean() < 1e-6 and err.max() < 1e-5  # float32 buffers: ~3e-8 m mean, ~2e-7 m max
    joints = to_thgs(out["bone_poses"][..., :3, 3])
    assert (ours.joints - joints).norm(dim=-1).max() < 1e-5


def test_pose_conversion_round_trip(any_model):
    m = any_model
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(2, m.num_joints, 3, generator=g, dtype=torch.float64) * 0.5
    transl = torch.randn(2, 3, generator=g, dtype=torch.float64)
    deltas = A.pose_to_anny(m, pose, transl)
    back, back_t = A.pose_from_anny(m, deltas)
    assert torch.allclose(axis_angle_to_matrix(back), axis_angle_to_matrix(pose), atol=1e-10)
    assert torch.allclose(back_t, transl, atol=1e-10)
    deltas[:, 5, 0, 3] = 0.1
    with pytest.raises(ValueError, match="non-root"):
        A.pose_from_anny(m, deltas)


def test_expressions_are_anny_facial_actions(converted, anny_model):
    m = converted[0]
    expr = torch.zeros(1, 52, dtype=torch.float64)
    expr[0, m.expression_names.index("jawOpen")] = 0.6
    expr[0, m.expression_names.index("mouthSmileLeft")] = 0.8
    out = anny_forward(anny_model, m, facial_actions=expr,
                       pose_parameters=A.pose_to_anny(m, m.zero_pose().double()))
    ours = m(m.zero_pose().double(), expression=expr)
    assert (ours.vertices - to_thgs(out["vertices"])).norm(dim=-1).max() < 1e-6


def test_jaw_open_moves_only_the_head_and_opens_the_mouth(converted):
    m = converted[0]
    jaw = m.exprdirs[..., m.expression_names.index("jawOpen")].norm(dim=-1)
    moved = jaw > 1e-6
    assert int(moved.sum()) > 1000 and 0.02 < float(jaw.max()) < 0.06
    assert not bool((moved & ~m.head_mask).any())
    mouth = m.mouth

    def lip_gap(verts: torch.Tensor) -> float:
        return float((verts[mouth.upper_lip].mean(0) - verts[mouth.lower_lip].mean(0)) @ mouth.up.to(verts.dtype))

    expr = torch.zeros(1, 52, dtype=torch.float64)
    expr[0, m.expression_names.index("jawOpen")] = 1.0
    closed = lip_gap(m.v_template)
    opened = lip_gap(m(m.zero_pose().double(), expression=expr).vertices[0])
    assert closed >= 0.0 and opened > closed + 0.01


def test_head_mask_and_mouth(converted):
    m = converted[0]
    any_expr = m.exprdirs.norm(dim=1).amax(dim=1) > 1e-6
    assert bool(m.head_mask[any_expr].all())
    head = m.joint_index("head")
    assert m.lbs_weights[m.head_mask].argmax(dim=1).eq(head).float().mean() > 0.5
    feet = m.v_template[:, 1] < float(m.v_template[:, 1].min()) + 0.3
    assert not bool((m.head_mask & feet).any())
    mouth = m.mouth
    assert mouth.head_joint == head and mouth.jaw_joint == head  # no jaw bone in anny's rig
    assert 0.03 < mouth.width < 0.07
    assert torch.allclose(mouth.forward.norm(), torch.tensor(1.0, dtype=mouth.forward.dtype))
    assert float(mouth.forward[2]) > 0.99 and float(mouth.up[1]) > 0.99
    assert not set(mouth.upper_lip.tolist()) & set(mouth.lower_lip.tolist())
    upper = m.v_template[mouth.upper_lip].mean(0)
    lower = m.v_template[mouth.lower_lip].mean(0)
    assert float(upper[1]) > float(lower[1])
    # the centre lies between the lips, behind the face's front, in front of the head joint
    assert float(lower[1]) < float(mouth.center[1]) < float(upper[1])
    front = float(m.v_template[m.head_mask, 2].max())
    assert float(m.rest_joints()[0, head, 2]) < float(mouth.center[2]) < front


def test_shapedirs_follow_anny_for_increasing_phenotype(converted, anny_model):
    m = converted[0]
    for k, name in enumerate(A.SHAPE_NAMES):
        step = 0.05
        pheno = dict(m.meta["phenotype"])
        pheno[name] = pheno[name] + step
        with torch.no_grad():
            out = anny_model(phenotype_kwargs=pheno)
        betas = torch.zeros(1, 6, dtype=torch.float64)
        betas[0, k] = step
        verr = (m.shaped_template(betas)[0] - to_thgs(out["rest_vertices"][0])).norm(dim=-1)
        jerr = (m.rest_joints(betas)[0] - to_thgs(out["rest_bone_heads"][0])).norm(dim=-1)
        assert verr.max() < 2e-4, name
        assert jerr.max() < 2e-3, name


def test_semantic_joints_and_bone_axes(converted):
    m = converted[0]
    sj = m.meta["semantic_joints"]
    names = ["pelvis", "spine1", "spine2", "spine3", "neck", "head", "left_eye", "right_eye"]
    for side in ("left", "right"):
        names += [f"{side}_{j}" for j in ("collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
        names += [f"{side}_{f}{i}" for f in ("index", "middle", "ring", "pinky", "thumb") for i in (1, 2, 3)]
    assert set(names) <= set(sj)
    rest = m.rest_joints()[0]
    for name in names:
        if name.startswith("left_"):
            assert float(rest[sj[name], 0]) > 0.0 > float(rest[sj["right_" + name[5:]], 0]), name
    axes = m.meta["bone_axes"]

    def moved(joint: str, child: str, angle: float = 1.0) -> torch.Tensor:
        pose = m.zero_pose().double()
        pose[0, sj[joint]] = torch.tensor(axes[joint]["flex"], dtype=torch.float64) * angle
        return m(pose).joints[0, sj[child]] - rest[sj[child]]

    for side in ("left", "right"):
        shoulder, wrist = rest[sj[f"{side}_shoulder"]], rest[sj[f"{side}_wrist"]]
        after = wrist + moved(f"{side}_elbow", f"{side}_wrist")
        assert (after - shoulder).norm() < (wrist - shoulder).norm() - 0.05  # elbow flexion folds the arm
        assert float(moved(f"{side}_knee", f"{side}_ankle")[2]) < -0.1  # the shin swings back
        assert float(moved(f"{side}_hip", f"{side}_knee")[2]) > 0.1  # the thigh swings forward
    assert float(moved("spine1", "neck", 0.3)[2]) > 0.05  # the trunk bends forward
    for name, ax in axes.items():
        a, f, s = (np.array(ax[k]) for k in ("along", "flex", "side"))
        assert abs(np.linalg.norm(a) - 1) < 1e-5 and abs(np.linalg.norm(f) - 1) < 1e-5, name
        assert abs(a @ f) < 1e-5 and np.allclose(np.cross(a, f), s, atol=1e-5), name


def test_phenotype_override_and_validation(converted, other):
    m, cache, _ = converted
    assert other.meta["phenotype"] == {**A.resolve_phenotype(None), **OTHER_PHENOTYPE}
    h_default = float(m.v_template[:, 1].max() - m.v_template[:, 1].min())
    h_other = float(other.v_template[:, 1].max() - other.v_template[:, 1].min())
    assert abs(h_other - h_default) > 0.02
    files = sorted(cache.glob("anny-*.npz"))
    assert len(files) == 2  # the default and OTHER_PHENOTYPE
    assert Path(other.meta["source"]) in files and Path(other.meta["source"]) != Path(m.meta["source"])
    for bad, match in (({"heigth": 0.5}, "heigth"), ({"age": 1.5}, "age"), ({"weight": "x"}, "weight")):
        with pytest.raises(ValueError, match=match):
            A.load(phenotype=bad, cache_dir=cache)
    assert sorted(cache.glob("anny-*.npz")) == files


def test_status_reports_the_package_and_cache(converted, monkeypatch):
    _, cache, _ = converted
    monkeypatch.setenv("THGS_CACHE_DIR", str(cache.parent / "nothing-here"))
    st = A.status()
    assert st["available"] is True and st["version"] and st["cached"] is False
    assert "anny" in st["detail"]


# ----------------------------------------------------------------------------------------------
# converted files (no anny needed)


@pytest.fixture()
def converted_file(request) -> Path:
    """A real converted file: this session's when anny is installed, else one in the default cache."""
    if importlib.util.find_spec("anny") is not None:
        _, cache, _ = request.getfixturevalue("converted")
        return next(cache.glob("anny-*.npz"))
    found = A._find_cached(A.resolve_phenotype(None), A.default_cache_dir(), None)
    if found is None:
        pytest.skip("no converted anny file and anny not installed")
    return found


def test_cached_load_does_not_import_anny(converted_file):
    code = (
        "import sys, time, json\n"
        "from thgs.body import anny as A\n"
        "st = A.status()\n"
        "t = time.perf_counter()\n"
        f"m = A.load(cache_dir={str(converted_file.parent)!r})\n"
        "dt = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': dt, 'V': m.num_vertices, 'J': m.num_joints, 'source': m.meta['source'],\n"
        "                  'imported': sorted(k for k in ('anny', 'warp', 'roma', 'trimesh') if k in sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["imported"] == []
    assert res["V"] == 13718 and res["J"] == 104
    assert Path(res["source"]).name.startswith("anny-")
    print(f"\ncached anny load: {res['seconds'] * 1000:.0f} ms")


def _toy_arrays(seed: int = 0) -> dict:
    """A converted file for a 3-joint chain of 8 vertices (the layout, not anny's data)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(8, 3)).astype(np.float32)
    heads = np.array([[0.0, 0, 0], [0.0, 1, 0], [0.0, 2, 0]])
    idx = np.tile(np.arange(4), (3, 1)).astype(np.int32)
    # affine weights on 4 vertices that reproduce each head exactly
    P = np.vstack([v[:4].T.astype(np.float64), np.ones((1, 4))])
    wts = np.stack([np.linalg.solve(P, np.append(h, 1.0)) for h in heads]).astype(np.float32)
    rot = torch.linalg.matrix_exp(torch.tensor([[[0.0, -0.1, 0.2], [0.1, 0.0, -0.3], [-0.2, 0.3, 0.0]]]
                                                 ).expand(3, 3, 3) * torch.tensor([0.0, 1.0, 2.0])[:, None, None])
    return {
        "v_template": v, "faces": np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6], [5, 6, 7]], dtype=np.int32),
        "parents": np.array([-1, 0, 1], dtype=np.int32),
        "skin_index": np.array([[j % 3, (j + 1) % 3] for j in range(8)], dtype=np.int16),
        "skin_weight": np.tile(np.array([[0.75, 0.25]], dtype=np.float32), (8, 1)),
        "regressor_index": idx, "regressor_weight": wts,
        "shapedirs": np.zeros((8, 3, 0), dtype=np.float32),
        "expr_index": np.array([1, 5], dtype=np.int32), "expr_dirs": np.ones((2, 3, 2), dtype=np.float32),
        "head_index": np.array([1, 5, 6], dtype=np.int32),
        "mouth_center": np.zeros(3, dtype=np.float32), "mouth_forward": np.array([0, 0, 1], dtype=np.float32),
        "mouth_up": np.array([0, 1, 0], dtype=np.float32), "mouth_width": np.float32(0.05),
        "upper_lip": np.array([5], dtype=np.int32), "lower_lip": np.array([1], dtype=np.int32),
        "reference_rotations": rot.numpy().astype(np.float32), "root_rest_rotation": np.eye(3, dtype=np.float32),
        "meta": {"joint_names": ["root", "mid", "tip"], "expression_names": ["a", "b"],
                 "mouth_joints": {"head": "tip", "jaw": "tip"}, "anny_bone_order": [0, 1, 2],
                 "phenotype": A.resolve_phenotype(None)},
    }


def test_converted_file_round_trip(tmp_path):
    arrays = _toy_arrays()
    path = tmp_path / "anny-test.npz"
    A.write_cache(path, arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["anny-test.npz"]  # no temporary left behind
    m = A.model_from_arrays(A.read_cache(path), source=str(path))
    assert m.joint_names == ["root", "mid", "tip"] and m.expression_names == ["a", "b"]
    assert torch.allclose(m.rest_joints()[0], torch.tensor([[0.0, 0, 0], [0.0, 1, 0], [0.0, 2, 0]]), atol=1e-5)
    assert torch.allclose(m.lbs_weights.sum(1), torch.ones(8))
    assert float(m.lbs_weights[0, 0]) == 0.75 and float(m.lbs_weights[0, 1]) == 0.25
    assert m.exprdirs[[1, 5]].eq(1).all() and m.exprdirs[[0, 2, 3, 4, 6, 7]].eq(0).all()
    assert m.head_mask.nonzero().flatten().tolist() == [1, 5, 6]
    assert m.mouth.head_joint == 2 and m.mouth.jaw_joint == 2 and m.meta["source"] == str(path)
    # the pose conversion is exactly invertible for any reference rotations
    pose = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pose = pose * (2.0 / pose.norm(dim=-1, keepdim=True).clamp_min(2.0))  # keep angles below pi
    transl = torch.randn(4, 3, dtype=torch.float64)
    back, back_t = A.pose_from_anny(m.double(), A.pose_to_anny(m.double(), pose, transl))
    assert torch.allclose(back, pose, atol=1e-9) and torch.allclose(back_t, transl, atol=1e-6)


def test_bad_converted_files_name_the_problem(tmp_path):
    arrays = _toy_arrays()
    del arrays["upper_lip"]
    arrays["upper_lip"] = np.zeros((2, 2), dtype=np.int32)
    path = tmp_path / "wrong-dims.npz"
    A.write_cache(path, arrays)
    with pytest.raises(A.AnnyCacheError, match="upper_lip"):
        A.read_cache(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(A.AnnyCacheError, match="garbage.npz"):
        A.read_cache(garbage)
    good = _toy_arrays()
    payload = {k: np.asarray(good[k]) for k in A._ARRAY_FIELDS if k != "faces"}
    payload.update(meta_json=np.array(json.dumps(good["meta"])), format=np.array(A.CACHE_FORMAT))
    missing = tmp_path / "missing.npz"
    np.savez(missing, **payload)
    with pytest.raises(A.AnnyCacheError, match="faces"):
        A.read_cache(missing)
    payload.update(faces=good["faces"], format=np.array(A.CACHE_FORMAT + 1))
    np.savez(missing, **payload)
    with pytest.raises(A.AnnyCacheError, match="format"):
        A.read_cache(missing)


def test_phenotype_resolution_and_cache_keys():
    base = A.resolve_phenotype(None)
    assert list(base) == list(A.PHENOTYPE_NAMES) and base["age"] == round(2 / 3, 6)
    assert A.resolve_phenotype({"gender": 1}) == {**base, "gender": 1.0}
    k1 = A.cache_key(base, "0.6.2")
    assert k1 == A.cache_key(dict(reversed(list(base.items()))), "0.6.2")
    assert k1 != A.cache_key({**base, "weight": 0.6}, "0.6.2") and k1 != A.cache_key(base, "0.7.0")
    for bad in ({"cupsize": 0.5}, {"age": -0.1}, {"age": float("nan")}, {"muscle": None}):
        with pytest.raises(ValueError):
            A.resolve_phenotype(bad)


def test_load_without_anny_or_file_explains(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "_anny_version", lambda: None)
    with pytest.raises(RuntimeError, match="pip install"):
        A.load(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    # a file converted by any anny version is found when anny is absent
    A.write_cache(tmp_path / A.cache_key(A.resolve_phenotype(None), "9.9.9"), _toy_arrays())
    assert A.load(cache_dir=tmp_path).joint_names == ["root", "mid", "tip"]


def test_topological_order():
    assert A.topological_order([-1, 0, 1, 1]) == [0, 1, 2, 3]
    order = A.topological_order([-1, 3, 0, 2, 1])
    pos = {j: i for i, j in enumerate(order)}
    parents = [-1, 3, 0, 2, 1]
    assert sorted(order) == list(range(5))
    assert all(pos[parents[j]] < pos[j] for j in range(1, 5))
    with pytest.raises(ValueError):
        A.topological_order([0, -1])


def test_fit_joint_regressor_is_exact_on_a_point_cloud():
    rng = np.random.default_rng(0)
    verts = rng.uniform(-1, 1, size=(2000, 3))
    dirs = rng.normal(size=(2000, 3, 2)) * 0.01
    heads = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.5]])
    head_dirs = np.zeros((2, 3, 2))
    idx, w = A.fit_joint_regressor(verts, dirs, heads, head_dirs)
    assert np.allclose(w.sum(1), 1.0, atol=1e-9)
    assert np.allclose(np.einsum("jk,jkc->jc", w, verts[idx]), heads, atol=1e-9)
    assert math.isfinite(float(np.abs(w).sum()))


def test_local_changes_apply_in_the_rest_pose(converted):
    """A head-scale local change enlarges the rest head; joints, mouth and teeth follow it."""
    from thgs.body.teeth import with_teeth

    base, cache, _ = converted
    big = A.load(local_changes={"head-scale-vert-incr": 0.6}, cache_dir=cache).double()
    assert big.meta["local_changes"] == {"head-scale-vert-incr": 0.6}
    head = base.head_mask

    def height(m):
        return float(m.v_template[head, 1].max() - m.v_template[head, 1].min())

    assert height(big) > height(base) * 1.03
    feet = base.joint_index("foot.L")
    torch.testing.assert_close(big.rest_joints()[0, feet], base.rest_joints()[0, feet], atol=1e-4, rtol=0)
    assert not torch.allclose(big.mouth.center, base.mouth.center, atol=1e-3)
    teeth = with_teeth(big.float())
    lo, hi = teeth.meta["teeth_vertex_range"]
    centre = teeth.v_template[lo:hi].mean(0)
    assert float((centre - big.mouth.center.float()).norm()) < 0.03
