"""``smplx``: the user's own SMPL-X model file (thgs never ships or downloads SMPL-X).

Where the file is looked for, in order (:func:`find_model`):

1. the ``model_path`` option (a file, or a folder); when given, nothing else is searched;
2. the environment variable ``THGS_SMPLX_MODEL`` (a file or a folder);
3. ``~/.cache/thgs/smplx/``.

In a folder (and its ``smplx/`` sub-folder) the names tried are ``SMPLX_<GENDER>.npz`` then
``SMPLX_<GENDER>.pkl``; for ``gender="neutral"`` (the default) the male and then the female files are
tried after the neutral ones.

Both ``.npz`` and ``.pkl`` files are read. A ``.pkl`` is read without chumpy and without running
arbitrary code: a restricted unpickler accepts only numpy arrays, scipy.sparse matrices, plain Python
containers and chumpy's classes, which it replaces by a shim that keeps the wrapped array.

Layout (SMPL-X v1.1): ``v_template`` (V, 3), ``f`` (F, 3), ``J_regressor`` (55, V), ``kintree_table``
(2, 55), ``weights`` (V, 55), ``shapedirs`` (V, 3, K) holding shape then expression components (when
K >= 400 the first 300 are shape and the next 100 expression, otherwise the split is at 10),
``posedirs`` (V, 3, 486), ``hands_components{l,r}`` (45, 45) and ``hands_mean{l,r}`` (45,).

Head mask: the FLAME region when ``flame_vertex_ids`` (the ``SMPL-X__FLAME_vertex_ids.npy`` file) is
given or lies beside the model file; otherwise the vertices whose dominant skinning joint is head,
jaw or an eye.

Mouth (:func:`mouth_from_geometry`): SMPL-X's canonical frame is y up, facing +z. The lips' inner edges
are the boundary loop of the mesh (edges used by one face) that lies in the head mask and has vertices
on both sides of jaw weight 0.5 (the smallest such loop if several): its vertices with jaw weight
< 0.5 are the upper lip, the others the lower lip; the centre is the loop's mean and the width its
extent along x. Without such a loop (a closed mouth), the lips are taken from the front fifth of the
head (by z): the 8 highest jaw-dominated vertices (lower lip) and the 8 lowest head-dominated vertices
above them (upper lip).
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.body.joints import (
    BODY_POSE_SLICE,
    JAW_INDEX,
    LEFT_EYE_INDEX,
    LEFT_HAND_SLICE,
    NUM_BODY_JOINTS,
    NUM_HAND_JOINTS,
    NUM_SMPLX_JOINTS,
    RIGHT_EYE_INDEX,
    RIGHT_HAND_SLICE,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)
from thgs.body.model import BodyModel, MouthDefinition

ENV_VAR = "THGS_SMPLX_MODEL"
DEFAULT_DIR = Path("~/.cache/thgs/smplx")
FLAME_IDS_NAME = "SMPL-X__FLAME_vertex_ids.npy"
GENDERS = ("neutral", "male", "female")
NUM_POSE_BASIS = (NUM_SMPLX_JOINTS - 1) * 9
_HEAD_JOINTS = ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")


# ---------------------------------------------------------------------------------------------
# Finding the file


def _candidate_names(gender: str) -> list[str]:
    if gender not in GENDERS:
        raise ValueError(f"SMPL-X gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    order = ["neutral", "male", "female"] if gender == "neutral" else [gender]
    return [f"SMPLX_{g.upper()}.{ext}" for g in order for ext in ("npz", "pkl")]


def _search(root: Path, names: list[str], searched: list[str]) -> Path | None:
    root = root.expanduser()
    if root.is_file() or root.suffix in (".npz", ".pkl"):
        searched.append(str(root))
        return root if root.is_file() else None
    for folder in (root, root / "smplx"):
        for name in names:
            p = folder / name
            searched.append(str(p))
            if p.is_file():
                return p
    return None


def find_model(model_path: str | os.PathLike | None = None, gender: str = "neutral") -> tuple[Path | None, list[str]]:
    """Locate the SMPL-X file. Returns (path or None, every path looked at, in order)."""
    names = _candidate_names(gender)
    searched: list[str] = []
    if model_path is not None:
        return _search(Path(model_path), names, searched), searched
    env = os.environ.get(ENV_VAR)
    if env:
        found = _search(Path(env), names, searched)
        if found is not None:
            return found, searched
    return _search(DEFAULT_DIR, names, searched), searched


# ---------------------------------------------------------------------------------------------
# Reading .npz / .pkl


class _ChumpyShim:
    """Stands in for any chumpy class while unpickling; keeps the wrapped array."""

    _args: tuple = ()
    _state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyShim:
        obj = super().__new__(cls)
        obj._args = args
        obj._state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def array(self) -> np.ndarray | None:
        state = self._state
        if isinstance(state, tuple) and state and isinstance(state[0], dict):
            state = state[0]
        if isinstance(state, dict) and "x" in state:
            return _plain(state["x"])
        if self._args:
            return _plain(self._args[0])
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, _ChumpyShim):
        return value.array()
    return value


def _resolve_numpy(module: str, name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; pickles name either
    tail = module.split(".", 1)[1] if "." in module else ""
    for mod in ([module.replace("numpy.core", "numpy._core"), module] if tail.startswith("core") else [module]):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


_NUMPY_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_SPARSE_CLASSES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
_BUILTINS = {"object", "set", "frozenset", "slice", "complex", "list", "dict", "tuple"}


class _Refused(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _ChumpyShim
        if (module, name) in _NUMPY_ALLOWED:
            return _resolve_numpy(module, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            import copyreg

            return copyreg._reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            import builtins

            return getattr(builtins, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module == "_codecs" and name == "encode":  # how protocol-2 pickles store bytes
            import codecs

            return codecs.encode
        raise _Refused(f"{self._source}: refusing to load {module}.{name} "
                                     "(only numpy, scipy.sparse and chumpy arrays are accepted)")


def read_arrays(path: str | os.PathLike) -> dict[str, Any]:
    """Raw fields of an SMPL-X ``.npz`` or ``.pkl`` (no validation; chumpy wrappers unwrapped)."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                out: dict[str, Any] = {}
                for k in z.files:
                    try:
                        out[k] = z[k]
                    except ValueError:  # an object array (e.g. joint2num); not needed
                        continue
                return out
        if path.suffix == ".pkl":
            with open(path, "rb") as fh:
                data = _RestrictedUnpickler(fh, path.name).load()
            if not isinstance(data, dict):
                raise ValueError(f"{path.name}: expected a dict of arrays, found {type(data).__name__}")
            return {k: _plain(v) for k, v in data.items()}
    except _Refused as exc:
        raise ValueError(str(exc)) from None
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(path.name):
            raise
        raise ValueError(f"{path.name}: cannot read the SMPL-X file: {exc}") from exc
    raise ValueError(f"{path.name}: unknown SMPL-X file type {path.suffix!r} (expected .npz or .pkl)")


@dataclass
class SmplxData:
    """Validated SMPL-X arrays (numpy, float64 / int64).

    Attributes:
        v_template [V, 3], faces [F, 3], J_regressor [55, V], parents [55], weights [V, 55],
        shapedirs [V, 3, S], exprdirs [V, 3, E], posedirs [486, V*3] (these three float32) (flattened for our LBS: column
        v*3+c), hands_components {"left","right"}: [45, 45] (rows are components),
        hands_mean {"left","right"}: [45].
    """

    path: Path
    v_template: np.ndarray
    faces: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    hands_components: dict[str, np.ndarray] = field(default_factory=dict)
    hands_mean: dict[str, np.ndarray] = field(default_factory=dict)
    landmark_faces: np.ndarray | None = None
    landmark_bary: np.ndarray | None = None


def _field(raw: Mapping[str, Any], name: str, source: str) -> np.ndarray:
    if name not in raw:
        raise ValueError(f"{source}: field '{name}' is missing (found: {', '.join(sorted(raw)) or 'nothing'})")
    value = raw[name]
    if value is None:
        raise ValueError(f"{source}: field '{name}' holds a chumpy expression without stored values; "
                         "convert the model to .npz")
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{source}: field '{name}' is not an array ({type(value).__name__})") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{source}: field '{name}' is not numeric (dtype {arr.dtype})")
    return arr


def _shape(arr: np.ndarray, name: str, expected: tuple, source: str) -> None:
    ok = arr.ndim == len(expected) and all(e is None or a == e for a, e in zip(arr.shape, expected))
    if not ok:
        want = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{source}: field '{name}' has shape {tuple(arr.shape)}, expected {want}")


def split_shape_expression(num_components: int) -> int:
    """Number of shape components in a ``shapedirs`` of ``num_components`` (the rest are expression)."""
    return 300 if num_components >= 400 else 10


def read_smplx(path: str | os.PathLike) -> SmplxData:
    """Read and validate an SMPL-X file; ``ValueError`` naming the file and field on any problem."""
    path = Path(path)
    src = path.name
    raw = read_arrays(path)
    v = _field(raw, "v_template", src).astype(np.float64)
    _shape(v, "v_template", (None, 3), src)
    V = v.shape[0]
    f = _field(raw, "f", src)
    _shape(f, "f", (None, 3), src)
    if f.dtype.kind == "f" and not np.all(f == np.round(f)):
        raise ValueError(f"{src}: field 'f' must hold integer vertex indices")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= V):
        raise ValueError(f"{src}: field 'f' indexes vertices outside [0, {V})")
    J = NUM_SMPLX_JOINTS
    jreg = _field(raw, "J_regressor", src).astype(np.float64)
    _shape(jreg, "J_regressor", (J, V), src)
    kt = _field(raw, "kintree_table", src).astype(np.int64)
    _shape(kt, "kintree_table", (2, J), src)
    parents = kt[0].copy()
    parents[(parents == 4294967295) | (parents < 0)] = -1
    if parents.tolist() != list(SMPLX_PARENTS):
        raise ValueError(f"{src}: field 'kintree_table' row 0 is not SMPL-X's kinematic tree")
    w = _field(raw, "weights", src).astype(np.float64)
    _shape(w, "weights", (V, J), src)
    sd = _field(raw, "shapedirs", src).astype(np.float32)
    _shape(sd, "shapedirs", (V, 3, None), src)
    K = sd.shape[2]
    if K < 20:
        raise ValueError(f"{src}: field 'shapedirs' has {K} components, expected at least 20 (10 shape + 10 expression)")
    ns = split_shape_expression(K)
    pd = _field(raw, "posedirs", src).astype(np.float32)
    _shape(pd, "posedirs", (V, 3, NUM_POSE_BASIS), src)
    hc, hm = {}, {}
    for side, suffix in (("left", "l"), ("right", "r")):
        comp = _field(raw, f"hands_components{suffix}", src).astype(np.float64)
        _shape(comp, f"hands_components{suffix}", (45, 45), src)
        mean = _field(raw, f"hands_mean{suffix}", src).astype(np.float64)
        _shape(mean, f"hands_mean{suffix}", (45,), src)
        hc[side], hm[side] = comp, mean
    for name, arr in (("v_template", v), ("J_regressor", jreg), ("weights", w), ("shapedirs", sd), ("posedirs", pd)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{src}: field '{name}' holds NaN or infinite values")
    lmk_f = lmk_b = None
    if "lmk_faces_idx" in raw and "lmk_bary_coords" in raw:
        lmk_f = np.asarray(raw["lmk_faces_idx"]).astype(np.int64).reshape(-1)
        lmk_b = np.asarray(raw["lmk_bary_coords"], dtype=np.float64)
        _shape(lmk_b, "lmk_bary_coords", (lmk_f.shape[0], 3), src)
        if lmk_f.size and (lmk_f.min() < 0 or lmk_f.max() >= f.shape[0]):
            raise ValueError(f"{src}: field 'lmk_faces_idx' indexes faces outside [0, {f.shape[0]})")
    return SmplxData(
        path=path, v_template=v, faces=f, J_regressor=jreg, parents=parents, weights=w,
        shapedirs=sd[..., :ns], exprdirs=sd[..., ns:], posedirs=pd.reshape(V * 3, NUM_POSE_BASIS).T.copy(),
        hands_components=hc, hands_mean=hm, landmark_faces=lmk_f, landmark_bary=lmk_b,
    )


# ---------------------------------------------------------------------------------------------
# Head mask and mouth


def read_flame_vertex_ids(path: str | os.PathLike, num_vertices: int) -> np.ndarray:
    """The SMPL-X vertex index of every FLAME vertex ([5023] in the official file)."""
    path = Path(path)
    try:
        ids = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.name}: cannot read the FLAME vertex ids: {exc}") from exc
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"{path.name}: expected a 1-D integer array of vertex ids, found shape {ids.shape} "
                         f"dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= num_vertices:
        raise ValueError(f"{path.name}: vertex ids outside [0, {num_vertices})")
    return ids.astype(np.int64)


def head_mask_from_weights(weights: np.ndarray, joint_names: tuple[str, ...] = SMPLX_JOINT_NAMES) -> np.ndarray:
    """weights [V, J] -> [V] bool: vertices whose dominant skinning joint is head, jaw or an eye."""
    heads = [list(joint_names).index(n) for n in _HEAD_JOINTS]
    return np.isin(weights.argmax(1), heads)


def _boundary_loops(faces: np.ndarray, num_vertices: int) -> list[np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    b = uniq[counts == 1]
    if not len(b):
        return []
    g = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(num_vertices, num_vertices))
    _, labels = connected_components(g, directed=False)
    verts = np.unique(b)
    return [verts[labels[verts] == lab] for lab in np.unique(labels[verts])]


def mouth_from_geometry(v_template: np.ndarray, faces: np.ndarray, weights: np.ndarray, head_mask: np.ndarray,
                        head_joint: int, jaw_joint: int, source: str = "SMPL-X") -> tuple[MouthDefinition, str]:
    """Locate the mouth (see the module docstring for the rule). Returns (definition, rule used)."""
    up, fwd = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    jaw = weights[:, jaw_joint]
    loops = []
    for loop in _boundary_loops(faces, len(v_template)):
        if len(loop) >= 6 and head_mask[loop].all() and (jaw[loop] >= 0.5).any() and (jaw[loop] < 0.5).any():
            ext = v_template[loop].max(0) - v_template[loop].min(0)
            loops.append((float(np.linalg.norm(ext)), loop))
    if loops:
        loop = min(loops, key=lambda t: t[0])[1]
        upper, lower = loop[jaw[loop] < 0.5], loop[jaw[loop] >= 0.5]
        pts = v_template[loop]
        rule = "boundary loop"
    else:
        head = np.nonzero(head_mask)[0]
        if not len(head):
            raise ValueError(f"{source}: cannot locate the mouth: the head mask is empty")
        z = v_template[head, 2]
        front = head[z >= np.quantile(z, 0.8)]
        fj, fh = front[jaw[front] >= 0.5], front[jaw[front] < 0.5]
        if not len(fj) or not len(fh):
            raise ValueError(f"{source}: cannot locate the mouth: no jaw-skinned and head-skinned vertices in "
                             "the front of the head")
        lower = fj[np.argsort(-v_template[fj, 1])[:8]]
        above = fh[v_template[fh, 1] >= v_template[lower, 1].min()]
        if not len(above):
            above = fh
        upper = above[np.argsort(v_template[above, 1])[:8]]
        pts = v_template[np.concatenate([upper, lower])]
        rule = "front jaw transition"
    upper = upper[np.argsort(v_template[upper, 0])]
    lower = lower[np.argsort(v_template[lower, 0])]
    width = float(pts[:, 0].max() - pts[:, 0].min())
    if not width > 0:
        raise ValueError(f"{source}: cannot locate the mouth: the lip vertices have no width")
    mouth = MouthDefinition(
        center=torch.from_numpy(pts.mean(0)).float(), forward=torch.from_numpy(fwd).float(),
        up=torch.from_numpy(up).float(), width=width, upper_lip=torch.from_numpy(upper).long(),
        lower_lip=torch.from_numpy(lower).long(), head_joint=head_joint, jaw_joint=jaw_joint,
    )
    return mouth, rule


# ---------------------------------------------------------------------------------------------
# Public API


def status(model_path: str | os.PathLike | None = None, gender: str = "neutral") -> dict:
    path, searched = find_model(model_path, gender)
    if path is None:
        detail = (f"no SMPL-X model file found; get SMPLX_NEUTRAL.npz from the SMPL-X website (registration "
                  f"required) and put it in {DEFAULT_DIR} or point {ENV_VAR} at it")
    else:
        detail = f"found {path}"
    return {"available": path is not None, "detail": detail, "searched": searched,
            "path": str(path) if path is not None else None}


def to_body_model(data: SmplxData, num_betas: int | None = None, num_expression: int | None = None,
                  flame_vertex_ids: str | os.PathLike | None = None) -> BodyModel:
    """Convert validated SMPL-X arrays into a :class:`BodyModel` (float32, CPU)."""
    src = data.path.name
    S, E = data.shapedirs.shape[-1], data.exprdirs.shape[-1]
    nb = S if num_betas is None else int(num_betas)
    ne = E if num_expression is None else int(num_expression)
    if not 0 <= nb <= S:
        raise ValueError(f"{src}: num_betas must be in [0, {S}] for this file, got {num_betas}")
    if not 0 <= ne <= E:
        raise ValueError(f"{src}: num_expression must be in [0, {E}] for this file, got {num_expression}")
    V = data.v_template.shape[0]
    ids_path = Path(flame_vertex_ids) if flame_vertex_ids is not None else data.path.parent / FLAME_IDS_NAME
    if flame_vertex_ids is not None and not ids_path.is_file():
        raise FileNotFoundError(f"FLAME vertex ids file not found: {ids_path}")
    if ids_path.is_file():
        head_mask = np.zeros(V, dtype=bool)
        head_mask[read_flame_vertex_ids(ids_path, V)] = True
        head_rule = f"FLAME vertex ids ({ids_path.name})"
    else:
        head_mask = head_mask_from_weights(data.weights)
        head_rule = "dominant skinning joint in head/jaw/eyes"
    names = list(SMPLX_JOINT_NAMES)
    mouth, mouth_rule = mouth_from_geometry(data.v_template, data.faces, data.weights, head_mask,
                                            names.index("head"), names.index("jaw"), src)
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    meta = {
        "source": str(data.path), "head_mask_rule": head_rule, "mouth_rule": mouth_rule, "units": "m",
        "num_betas_in_file": S, "num_expression_in_file": E,
        "hands_components_left": t(data.hands_components["left"]).float(),
        "hands_components_right": t(data.hands_components["right"]).float(),
        "hands_mean_left": t(data.hands_mean["left"]).float(),
        "hands_mean_right": t(data.hands_mean["right"]).float(),
    }
    if data.landmark_faces is not None:
        meta["landmark_embedding"] = {"faces_idx": data.landmark_faces.tolist(),
                                      "bary": data.landmark_bary.tolist()}
    return BodyModel(
        name="smplx", v_template=t(data.v_template), faces=t(data.faces), joint_regressor=t(data.J_regressor),
        parents=t(data.parents), joint_names=names, lbs_weights=t(data.weights),
        shapedirs=t(data.shapedirs[..., :nb]), exprdirs=t(data.exprdirs[..., :ne]), posedirs=t(data.posedirs),
        head_mask=t(head_mask), mouth=mouth, expression_names=None, up_axis="y", meta=meta,
    )


def load(model_path: str | os.PathLike | None = None, gender: str = "neutral", num_betas: int | None = None,
         num_expression: int | None = None, flame_vertex_ids: str | os.PathLike | None = None) -> BodyModel:
    """Load the user's SMPL-X model.

    Args:
        model_path: a model file or a folder holding one (default: ``$THGS_SMPLX_MODEL``, then
            ``~/.cache/thgs/smplx/``).
        gender: ``neutral`` (falls back to male, female), ``male`` or ``female``.
        num_betas: shape components to keep (default: all in the file; 300 in SMPL-X v1.1).
        num_expression: expression components to keep (default: all; 100 in SMPL-X v1.1).
        flame_vertex_ids: ``SMPL-X__FLAME_vertex_ids.npy`` for the head mask (default: that file beside
            the model if present, else the head mask comes from the skinning weights).
    """
    path, searched = find_model(model_path, gender)
    if path is None:
        raise FileNotFoundError("no SMPL-X model file found; looked in:\n  " + "\n  ".join(searched)
                                + f"\nget it from the SMPL-X website and set {ENV_VAR} or pass model_path")
    return to_body_model(read_smplx(path), num_betas, num_expression, flame_vertex_ids)


# ---------------------------------------------------------------------------------------------
# Pose helpers (SMPL-X parameter conventions)


def _hand_data(model_data: Any, side: str) -> tuple[Tensor, Tensor]:
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    suffix = side[0]
    if isinstance(model_data, BodyModel):
        meta = model_data.meta
        if f"hands_components_{side}" not in meta:
            raise ValueError(f"body model {model_data.name!r} carries no hand PCA components")
        return meta[f"hands_components_{side}"], meta[f"hands_mean_{side}"]
    if isinstance(model_data, SmplxData):
        return torch.from_numpy(model_data.hands_components[side]), torch.from_numpy(model_data.hands_mean[side])
    if isinstance(model_data, Mapping):
        try:
            comp, mean = model_data[f"hands_components{suffix}"], model_data[f"hands_mean{suffix}"]
        except KeyError as exc:
            raise ValueError(f"hand data has no field {exc.args[0]!r}") from None
        return torch.as_tensor(np.asarray(comp)), torch.as_tensor(np.asarray(mean))
    raise TypeError(f"model_data must be a BodyModel, SmplxData or a mapping, got {type(model_data).__name__}")


def hand_pose_to_axis_angle(hand_pose: Tensor, side: str, model_data: Any, flat_hand_mean: bool = False) -> Tensor:
    """SMPL-X hand parameters -> per-joint axis-angle [B, 15, 3].

    ``hand_pose`` is either PCA coefficients [B, k] with k < 45 (SHOW uses k = 12): ``coeffs @
    components[:k]``, or axis-angle [B, 45] / [B, 15, 3]. As in SMPL-X, the hand mean pose is added in
    both cases unless ``flat_hand_mean``. ``model_data``: a BodyModel loaded from SMPL-X, an
    :class:`SmplxData`, or a mapping with ``hands_components{l,r}`` and ``hands_mean{l,r}``.
    """
    comp, mean = _hand_data(model_data, side)
    x = hand_pose
    if x.dim() == 3:
        if x.shape[1:] != (NUM_HAND_JOINTS, 3):
            raise ValueError(f"{side} hand pose must be [B, k<45], [B, 45] or [B, 15, 3], got {tuple(x.shape)}")
        aa = x.reshape(x.shape[0], 45)
    elif x.dim() == 2 and x.shape[1] == 45:
        aa = x
    elif x.dim() == 2 and 0 < x.shape[1] < 45:
        aa = x @ comp[: x.shape[1]].to(x)
    else:
        raise ValueError(f"{side} hand pose must be [B, k<45], [B, 45] or [B, 15, 3], got {tuple(x.shape)}")
    if not flat_hand_mean:
        aa = aa + mean.to(aa)
    return aa.reshape(-1, NUM_HAND_JOINTS, 3)


def _joints(x: Tensor | None, count: int, name: str, batch: int, like: Tensor) -> Tensor:
    if x is None:
        return torch.zeros(batch, count, 3, dtype=like.dtype, device=like.device)
    if x.dim() == 2 and x.shape[1] == count * 3:
        x = x.reshape(x.shape[0], count, 3)
    if x.dim() != 3 or x.shape[1:] != (count, 3) or x.shape[0] != batch:
        raise ValueError(f"{name} must be [{batch}, {count * 3}] or [{batch}, {count}, 3], got {tuple(x.shape)}")
    return x.to(like)


def smplx_pose(global_orient: Tensor, body_pose: Tensor, jaw: Tensor | None = None, leye: Tensor | None = None,
               reye: Tensor | None = None, left_hand: Tensor | None = None, right_hand: Tensor | None = None) -> Tensor:
    """Assemble SMPL-X's 55-joint axis-angle pose [B, 55, 3].

    ``global_orient`` [B, 3] or [B, 1, 3]; ``body_pose`` [B, 63] or [B, 21, 3]; ``jaw``/``leye``/``reye``
    [B, 3] or [B, 1, 3]; hands [B, 45] or [B, 15, 3] axis-angle (convert PCA first with
    :func:`hand_pose_to_axis_angle`). Missing parts are zero.
    """
    B = global_orient.shape[0]
    out = torch.zeros(B, NUM_SMPLX_JOINTS, 3, dtype=global_orient.dtype, device=global_orient.device)
    out[:, 0:1] = _joints(global_orient, 1, "global_orient", B, out)
    out[:, BODY_POSE_SLICE] = _joints(body_pose, NUM_BODY_JOINTS, "body_pose", B, out)
    out[:, JAW_INDEX:JAW_INDEX + 1] = _joints(jaw, 1, "jaw", B, out)
    out[:, LEFT_EYE_INDEX:LEFT_EYE_INDEX + 1] = _joints(leye, 1, "leye", B, out)
    out[:, RIGHT_EYE_INDEX:RIGHT_EYE_INDEX + 1] = _joints(reye, 1, "reye", B, out)
    out[:, LEFT_HAND_SLICE] = _joints(left_hand, NUM_HAND_JOINTS, "left_hand", B, out)
    out[:, RIGHT_HAND_SLICE] = _joints(right_hand, NUM_HAND_JOINTS, "right_hand", B, out)
    return out


__all__ = [
    "DEFAULT_DIR", "ENV_VAR", "SmplxData", "find_model", "hand_pose_to_axis_angle", "head_mask_from_weights",
    "load", "mouth_from_geometry", "read_arrays", "read_flame_vertex_ids", "read_smplx", "smplx_pose",
    "split_shape_expression", "status", "to_body_model",
]
