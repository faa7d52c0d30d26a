"""The SMPL-X loader, on fake files with SMPL-X's exact field names and shapes but random values."""

import functools
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from thgs.body import smplx
from thgs.body.joints import SMPLX_PARENTS
from thgs.body.registry import load_body_model
from thgs.core import lbs

V, F, J = 10475, 20908, 55
HEAD, JAW = 15, 22


def fake_arrays(num_components: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    return dict(_fake_arrays(num_components, seed))


@functools.lru_cache(maxsize=4)
def _fake_arrays(num_components: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    kintree = np.stack([np.array(SMPLX_PARENTS, dtype=np.int64), np.arange(J)])
    kintree[0, 0] = 4294967295
    weights = np.eye(J)[rng.integers(0, J, V)]
    jreg = rng.random((J, V))
    return {
        "v_template": rng.standard_normal((V, 3)) * 0.3,
        "f": rng.integers(0, V, (F, 3)).astype(np.uint32),
        "J_regressor": jreg / jreg.sum(1, keepdims=True),
        "kintree_table": kintree.astype(np.uint32),
        "weights": weights,
        "shapedirs": rng.standard_normal((V, 3, num_components), dtype=np.float32) * 0.01,
        "posedirs": rng.standard_normal((V, 3, 486), dtype=np.float32) * 0.01,
        "hands_componentsl": rng.standard_normal((45, 45)),
        "hands_componentsr": rng.standard_normal((45, 45)),
        "hands_meanl": rng.standard_normal(45) * 0.1,
        "hands_meanr": rng.standard_normal(45) * 0.1,
    }


class _FakeChumpy:
    """Registers a tiny ``chumpy.ch`` module while pickling, so the pickle names chumpy's class."""

    def __enter__(self):
        pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

        class Ch:
            def __init__(self, x):
                self.x = np.asarray(x)
                self._cache = {"r": None}

            def __getstate__(self):
                d = dict(self.__dict__)
                d.pop("_cache")
                return d

        Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
        mod.Ch, pkg.ch = Ch, mod
        self.saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
        sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
        return Ch

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_pkl(path, arrays, protocol=2):
    with _FakeChumpy() as Ch:
        data = dict(arrays)
        for k in ("v_template", "shapedirs", "posedirs", "weights"):
            if k in data:
                data[k] = Ch(data[k])
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        data["joint2num"] = {"pelvis": 0}
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    assert "chumpy" not in sys.modules
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("smplx")
    arrays = fake_arrays(400)
    np.savez(d / "SMPLX_NEUTRAL.npz", **arrays)
    return d, arrays


@pytest.fixture(scope="module")
def npz_data(model_dir):
    return smplx.read_smplx(model_dir[0] / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="module")
def npz_body(npz_data):
    return smplx.to_body_model(npz_data, num_betas=10, num_expression=10)


@pytest.fixture(scope="module")
def pkl_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("smplx_pkl")
    arrays = fake_arrays(20, seed=1)
    return write_pkl(d / "SMPLX_MALE.pkl", arrays), arrays


def test_load_npz_shapes_and_split(model_dir, npz_data):
    _, arrays = model_dir
    body = smplx.to_body_model(npz_data)  # smplx.load = find_model + read_smplx + to_body_model (pkl test)
    assert body.name == "smplx" and body.num_vertices == V and body.faces.shape == (F, 3) and body.num_joints == J
    assert body.num_betas == 300 and body.num_expressions == 100
    assert torch.allclose(body.shapedirs, torch.from_numpy(arrays["shapedirs"][..., :300]))
    assert torch.allclose(body.exprdirs, torch.from_numpy(arrays["shapedirs"][..., 300:]))
    assert body.parents.tolist() == list(SMPLX_PARENTS)
    assert body.posedirs.shape == (486, V * 3)
    assert body.joint_names[22] == "jaw" and body.up_axis == "y"
    small = smplx.to_body_model(npz_data, num_betas=10, num_expression=50)
    assert small.num_betas == 10 and small.num_expressions == 50
    with pytest.raises(ValueError, match="num_betas must be in"):
        smplx.to_body_model(npz_data, num_betas=301)



def test_posedirs_layout_matches_the_lbs_core(model_dir, npz_body):
    _, arrays = model_dir
    body = npz_body
    raw = arrays["posedirs"]
    for v, c, k in [(0, 0, 0), (5, 2, 17), (V - 1, 1, 485), (1234, 0, 300)]:
        assert body.posedirs[k, v * 3 + c] == torch.tensor(raw[v, c, k])
    # a posed model applies posedirs[v, c, :] . (R - I) to vertex v, coordinate c
    pose = torch.zeros(1, J, 3)
    pose[0, 4, 0] = 0.5
    out = body(pose, pose_correctives=True)
    feat = lbs.pose_feature(lbs.axis_angle_to_matrix(pose))[0].double()
    want = body.v_template[7].double() + torch.from_numpy(raw[7].astype(np.float64)) @ feat
    assert torch.allclose(out.rest_vertices[0, 7].double(), want, atol=1e-5)


def test_load_pkl_without_chumpy(pkl_file):
    path, arrays = pkl_file
    assert "chumpy" not in sys.modules
    body = load_body_model("smplx", model_path=path)  # through the registry
    assert body.num_betas == 10 and body.num_expressions == 10  # the old 20-component layout
    assert torch.allclose(body.v_template, torch.from_numpy(arrays["v_template"]).float())
    assert torch.allclose(body.joint_regressor, torch.from_numpy(arrays["J_regressor"]).float())
    assert torch.allclose(body.exprdirs, torch.from_numpy(arrays["shapedirs"][..., 10:]))
    assert "chumpy" not in sys.modules


def test_old_protocol_pickles_load(tmp_path):
    arrays = {"v_template": np.arange(12.0).reshape(4, 3), "weights": np.eye(4), "J_regressor": np.eye(4)}
    path = write_pkl(tmp_path / "SMPLX_NEUTRAL.pkl", arrays, protocol=1)  # copy_reg._reconstructor path
    raw = smplx.read_arrays(path)
    assert np.array_equal(raw["v_template"], arrays["v_template"]) and np.array_equal(raw["weights"], np.eye(4))
    assert np.array_equal(raw["J_regressor"].toarray(), np.eye(4))


@pytest.mark.parametrize("how", ["system", "open"])
def test_pickles_that_run_code_are_refused(tmp_path, how):
    marker = tmp_path / "created-by-the-pickle"

    class Evil:
        def __reduce__(self):
            if how == "system":
                return (os.system, (f"touch {marker}",))
            return (open, (str(marker), "w"))

    path = tmp_path / "SMPLX_NEUTRAL.pkl"
    arrays = {"v_template": np.zeros((3, 3)), "x": Evil()}
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.pkl: refused to load global '(posix\.system|io\.open|builtins\.open)'"):
        smplx.read_smplx(path)
    with pytest.raises(ValueError, match=r"SMPLX_NEUTRAL\.pkl: refused"):
        load_body_model("smplx", model_path=path)
    assert not marker.exists()


def test_pkl_with_inconsistent_sparse_regressor_is_named(tmp_path):
    arrays = fake_arrays(20)
    path = write_pkl(tmp_path / "SMPLX_NEUTRAL.pkl", {k: arrays[k] for k in ("v_template", "f", "J_regressor")})
    raw = smplx.read_arrays(path)
    raw["J_regressor"].indptr = raw["J_regressor"].indptr[:-1]
    with pytest.raises(ValueError, match=r"x\.pkl: field 'J_regressor': inconsistent csc matrix"):
        smplx._field(raw, "J_regressor", "x.pkl")


@pytest.mark.parametrize("field,value,message", [
    ("weights", np.zeros((V, 54)), "SMPLX_NEUTRAL.npz: field 'weights' has shape (10475, 54), expected (10475, 55)"),
    ("posedirs", np.zeros((V, 3, 480)), "field 'posedirs' has shape (10475, 3, 480), expected (10475, 3, 486)"),
    ("J_regressor", np.zeros((54, V)), "field 'J_regressor' has shape (54, 10475), expected (55, 10475)"),
    ("hands_meanl", np.zeros(44), "field 'hands_meanl' has shape (44,), expected (45,)"),
    ("shapedirs", np.zeros((V, 3, 8)), "field 'shapedirs' has 8 components"),
    ("f", np.full((F, 3), V), "field 'f' indexes vertices outside"),
])
def test_bad_fields_are_named(tmp_path, field, value, message):
    arrays = fake_arrays(20)
    arrays[field] = value
    if field not in ("posedirs", "hands_meanl"):
        del arrays["posedirs"]  # validation stops before it; keeps the file small
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", **arrays)
    with pytest.raises(ValueError) as err:
        smplx.load(model_path=tmp_path)
    assert message in str(err.value)


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "SMPLX_NEUTRAL.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="SMPLX_NEUTRAL.npz: cannot read"):
        smplx.read_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    (tmp_path / "SMPLX_MALE.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))})[:20])
    with pytest.raises(ValueError, match="SMPLX_MALE.pkl: cannot read"):
        smplx.read_smplx(tmp_path / "SMPLX_MALE.pkl")
    (tmp_path / "model.obj").write_text("v 0 0 0")
    with pytest.raises(ValueError, match="model.obj: unknown SMPL-X file type"):
        smplx.read_smplx(tmp_path / "model.obj")


def test_missing_field_is_named(tmp_path):
    arrays = fake_arrays(20)
    del arrays["posedirs"]
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", **arrays)
    with pytest.raises(ValueError, match="SMPLX_NEUTRAL.npz: field 'posedirs' is missing"):
        smplx.read_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    arrays = fake_arrays(20)
    arrays["kintree_table"] = arrays["kintree_table"][:, ::-1].copy()
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", **arrays)
    with pytest.raises(ValueError, match="kintree_table"):
        smplx.read_smplx(tmp_path / "SMPLX_NEUTRAL.npz")


def test_lookup_order_and_status(tmp_path, monkeypatch, pkl_file):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(smplx.ENV_VAR, raising=False)
    st = smplx.status()
    assert st["available"] is False and str(tmp_path / "home" / ".cache" / "thgs" / "smplx") in st["searched"][0]
    assert any(p.endswith("SMPLX_NEUTRAL.npz") for p in st["searched"])
    with pytest.raises(FileNotFoundError, match="looked in"):
        smplx.load()
    # the cache folder
    cache = tmp_path / "home" / ".cache" / "thgs" / "smplx"
    cache.mkdir(parents=True)
    (cache / "SMPLX_MALE.pkl").write_bytes(pkl_file[0].read_bytes())
    path, searched = smplx.find_model()
    assert path == cache / "SMPLX_MALE.pkl"  # neutral missing: the male file is next
    assert searched.index(str(cache / "SMPLX_NEUTRAL.npz")) < searched.index(str(cache / "SMPLX_MALE.pkl"))
    assert smplx.find_model(gender="female")[0] is None
    # the environment variable comes before the cache
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "SMPLX_NEUTRAL.pkl").write_bytes(pkl_file[0].read_bytes())
    monkeypatch.setenv(smplx.ENV_VAR, str(env_dir))
    assert smplx.find_model()[0] == env_dir / "SMPLX_NEUTRAL.pkl"
    st = smplx.status()
    assert st["available"] and st["path"] == str(env_dir / "SMPLX_NEUTRAL.pkl")
    # an explicit path wins and is the only place looked in
    path, searched = smplx.find_model(tmp_path / "nowhere")
    assert path is None and all(s.startswith(str(tmp_path / "nowhere")) for s in searched)
    with pytest.raises(ValueError, match="gender"):
        smplx.find_model(gender="other")


def test_head_mask_from_weights_and_flame_ids(model_dir, npz_data, npz_body, tmp_path):
    _, arrays = model_dir
    body = npz_body
    dominant = arrays["weights"].argmax(1)
    assert np.array_equal(body.head_mask.numpy(), np.isin(dominant, [15, 22, 23, 24]))
    assert "dominant" in body.meta["head_mask_rule"]
    ids = np.arange(100, 5123)
    np.save(tmp_path / "ids.npy", ids)
    b2 = smplx.to_body_model(npz_data, 10, 10, flame_vertex_ids=tmp_path / "ids.npy")
    assert int(b2.head_mask.sum()) == len(ids) and b2.head_mask[ids].all()
    np.save(tmp_path / "bad.npy", np.array([0, V + 5]))
    with pytest.raises(ValueError, match="bad.npy: vertex ids outside"):
        smplx.to_body_model(npz_data, 10, 10, flame_vertex_ids=tmp_path / "bad.npy")
    # the mouth is found and lies in the head
    m = body.mouth
    assert len(m.upper_lip) and len(m.lower_lip) and m.width > 0
    assert body.head_mask[m.upper_lip].all() and body.head_mask[m.lower_lip].all()
    assert m.head_joint == HEAD and m.jaw_joint == JAW


def test_mouth_from_a_lip_boundary_loop():
    # a curved face patch with a slit: the slit's boundary loop is the mouth
    nx, ny = 21, 11
    xs, ys = np.linspace(-0.05, 0.05, nx), np.linspace(-0.025, 0.025, ny)
    X, Y = np.meshgrid(xs, ys)
    v = np.stack([X.ravel(), Y.ravel(), 0.1 - 3 * X.ravel() ** 2], 1)
    idx = lambda i, j: j * nx + i
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            if j == 5 and 6 <= i < 14:  # the slit, between rows 5 and 6
                continue
            faces += [[idx(i, j), idx(i + 1, j), idx(i, j + 1)], [idx(i + 1, j), idx(i + 1, j + 1), idx(i, j + 1)]]
    faces = np.array(faces)
    w = np.zeros((len(v), J))
    below = v[:, 1] < 0.0025  # rows 0-5 follow the jaw
    w[below, JAW] = 1.0
    w[~below, HEAD] = 1.0
    mouth, rule = smplx.mouth_from_geometry(v, faces, w, np.ones(len(v), bool), HEAD, JAW)
    assert rule == "boundary loop"
    assert set(mouth.upper_lip.tolist()) == {idx(i, 6) for i in range(6, 15)}
    assert set(mouth.lower_lip.tolist()) == {idx(i, 5) for i in range(6, 15)}
    assert v[mouth.upper_lip.numpy(), 0].tolist() == sorted(v[mouth.upper_lip.numpy(), 0].tolist())
    assert abs(float(mouth.width) - (xs[14] - xs[6])) < 1e-9
    assert abs(float(mouth.center[0])) < 1e-6


def test_hand_pca_and_pose_assembly(model_dir, npz_data, npz_body):
    _, arrays = model_dir
    data, body = npz_data, npz_body
    gen = torch.Generator().manual_seed(0)
    pca = torch.randn(2, 12, generator=gen, dtype=torch.float64)
    comp = torch.from_numpy(arrays["hands_componentsl"])
    mean = torch.from_numpy(arrays["hands_meanl"])
    want = (pca @ comp[:12] + mean).reshape(2, 15, 3)
    for source in (data, arrays, body):
        got = smplx.hand_pose_to_axis_angle(pca, "left", source)
        assert got.shape == (2, 15, 3) and torch.allclose(got.double(), want, atol=1e-5)
    flat = smplx.hand_pose_to_axis_angle(pca, "left", data, flat_hand_mean=True)
    assert torch.allclose(flat, (pca @ comp[:12]).reshape(2, 15, 3))
    aa = torch.randn(2, 45, generator=gen, dtype=torch.float64)
    right_mean = torch.from_numpy(arrays["hands_meanr"])
    assert torch.allclose(smplx.hand_pose_to_axis_angle(aa, "right", data), (aa + right_mean).reshape(2, 15, 3))
    assert torch.allclose(smplx.hand_pose_to_axis_angle(aa.reshape(2, 15, 3), "right", data, flat_hand_mean=True),
                          aa.reshape(2, 15, 3))
    with pytest.raises(ValueError, match="hand pose"):
        smplx.hand_pose_to_axis_angle(torch.zeros(2, 46), "left", data)
    with pytest.raises(ValueError, match="side"):
        smplx.hand_pose_to_axis_angle(pca, "middle", data)

    B = 2
    parts = {name: torch.randn(B, n * 3, generator=gen) for name, n in
             [("global_orient", 1), ("body_pose", 21), ("jaw", 1), ("leye", 1), ("reye", 1), ("left_hand", 15),
              ("right_hand", 15)]}
    full = smplx.smplx_pose(**parts)
    assert full.shape == (B, 55, 3)
    assert torch.equal(full[:, 0], parts["global_orient"])
    assert torch.equal(full[:, 1:22].reshape(B, -1), parts["body_pose"])
    assert torch.equal(full[:, 22], parts["jaw"]) and torch.equal(full[:, 23], parts["leye"])
    assert torch.equal(full[:, 24], parts["reye"])
    assert torch.equal(full[:, 25:40].reshape(B, -1), parts["left_hand"])
    assert torch.equal(full[:, 40:55].reshape(B, -1), parts["right_hand"])
    minimal = smplx.smplx_pose(parts["global_orient"][:, None], parts["body_pose"].reshape(B, 21, 3))
    assert torch.equal(minimal[:, :22], full[:, :22]) and (minimal[:, 22:] == 0).all()
    with pytest.raises(ValueError, match="body_pose"):
        smplx.smplx_pose(parts["global_orient"], torch.zeros(B, 60))
