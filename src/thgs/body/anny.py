"""The ``anny`` body model (NAVER's permissive parametric human) converted into a :class:`BodyModel`.

anny (Apache-2.0 code, CC0 MakeHuman assets) is a linear-blend-skinned mesh of 13,718 vertices and
27,420 triangles on a 104-bone rig, shaped by 6 phenotype parameters and animated by 52 ARKit-style
facial actions. This module converts one phenotype of it into thgs's buffers once, writes the result
to a compact ``.npz`` cache, and afterwards loads that file without importing anny at all.

What the conversion does (details and measured figures in ``docs/body-models.md``):

* Frame: anny is z-up, facing -y, metres. thgs is y-up, facing +z, metres. Every point and vector is
  mapped by ``p_thgs = FRAME @ p_anny`` with ``FRAME = [[1,0,0],[0,0,1],[0,-1,0]]`` (a -90 degree
  rotation about x: x stays, anny z becomes y, anny -y becomes z). The origin is kept (near the pelvis).
* Rest pose: ``v_template`` is anny's rest mesh for the phenotype (its A-pose with the arms down and
  slightly forward); joints are anny's rest bone heads. anny's parents already satisfy
  ``parents[j] < j`` so the joint order is anny's bone order (the mapping is kept in ``meta`` anyway).
* Pose: thgs poses are local axis-angle rotations expressed in world-aligned rest axes (identity rest
  orientations). anny's ``local-ref`` deltas are also world-aligned, but relative to a *reference*
  orientation that, away from the default phenotype, differs from the rest orientation by up to a few
  degrees per bone, so the two are related by ``D_c = A_p L_c A_c^T`` with ``A = U R^T`` (reference
  times inverse rest orientation); :func:`pose_to_anny` / :func:`pose_from_anny` convert exactly. anny's
  identity pose is therefore not thgs's zero pose (its root delta is also a world pose).
* Facial actions are linear blend shapes on the rest mesh in anny (they do not move any bone), so
  ``exprdirs`` are exact, not a linearisation. There is no jaw bone in anny's default rig: the jaw opens
  through the ``jawOpen`` expression; ``mouth.jaw_joint == mouth.head_joint``.
* Shape: ``shapedirs`` [V, 3, 6] is the derivative of the rest mesh with respect to the 6 phenotype
  parameters at the converted phenotype, taken towards increasing values, so ``betas[k]`` is a small
  change of phenotype ``SHAPE_NAMES[k]``. anny interpolates each parameter piecewise-linearly between
  anchors: a positive beta is exact up to the next anchor, a negative one crossing an anchor is not (the
  default age sits on the "young" anchor). The exact phenotype is a new conversion (``load(phenotype=...)``).
* Joint regressor: a sparse [J, V] matrix (a few dozen nearby vertices per joint) whose rows sum to 1,
  reproduce the rest bone heads exactly (to float32 round-off) and follow the heads along ``shapedirs``
  in the least-squares sense.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.body.model import BodyModel, MouthDefinition
from thgs.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from thgs.errors import ThgsError

#: Version of the converted-file layout; part of the cache key.
CACHE_FORMAT = 1

#: anny's 6 default phenotype parameters, in anny's order; every value lies in [0, 1].
PHENOTYPE_NAMES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")

#: A neutral adult: gender halfway between anny's male (0) and female (1) anchors; age 2/3 is anny's
#: "young" adult anchor (anny's own default 0.5 lies halfway between its "child" and "young" anchors).
DEFAULT_PHENOTYPE: dict[str, float] = {
    "gender": 0.5, "age": 2.0 / 3.0, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5,
}

#: Names of the ``shapedirs`` columns: the phenotype parameter each one changes (a model loaded with a
#: ``shape_basis`` has more columns after these; ``meta["shape_names"]`` lists them all).
SHAPE_NAMES: tuple[str, ...] = PHENOTYPE_NAMES

#: The MakeHuman local modifiers a per-subject proportion correction uses (anny's ``local_change_labels``):
#: head size in three directions, upper and lower arm length, nape-to-waist (spine) length, neck height
#: and shoulder width. Each value lies in [-1, 1]; positive applies the ``...-incr`` target, negative the
#: opposite (``...-decr``) one, as anny does.
PROPORTION_CHANGES: tuple[str, ...] = (
    "head-scale-vert-incr", "head-scale-horiz-incr", "head-scale-depth-incr",
    "measure-upperarm-length-incr", "measure-lowerarm-length-incr",
    "measure-napetowaist-dist-incr", "measure-neck-height-incr", "measure-shoulder-dist-incr",
)

#: anny (z-up, facing -y) -> thgs (y-up, facing +z): p_thgs = FRAME @ p_anny.
FRAME = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Semantic (SMPL-X-like) joint names -> anny bone names. anny has no jaw bone and no single
#: "foot" (toe-base) joint; its twist bones (upperarm02, lowerarm02, upperleg02, lowerleg02), the
#: extra spine/neck bones, the metacarpals and the toes have no SMPL-X counterpart.
SEMANTIC_BONES: dict[str, str] = {
    "pelvis": "root",
    "spine1": "spine04", "spine2": "spine02", "spine3": "spine01",
    "neck": "neck01", "head": "head",
    "left_eye": "eye.L", "right_eye": "eye.R",
}
for _side, _s in (("left", "L"), ("right", "R")):
    SEMANTIC_BONES.update({
        f"{_side}_hip": f"upperleg01.{_s}", f"{_side}_knee": f"lowerleg01.{_s}", f"{_side}_ankle": f"foot.{_s}",
        f"{_side}_collar": f"clavicle.{_s}", f"{_side}_shoulder": f"upperarm01.{_s}",
        f"{_side}_elbow": f"lowerarm01.{_s}", f"{_side}_wrist": f"wrist.{_s}",
    })
    for _finger, _k in (("thumb", 1), ("index", 2), ("middle", 3), ("ring", 4), ("pinky", 5)):
        for _i in (1, 2, 3):
            SEMANTIC_BONES[f"{_side}_{_finger}{_i}"] = f"finger{_k}-{_i}.{_s}"
del _side, _s, _finger, _k, _i

_HEAD_BONES = ("head", "eye.L", "eye.R")
_HEAD_JOINT = "head"
_SHAPE_STEP = 1e-3          # phenotype step of the one-sided differences of shapedirs
_REGRESSOR_DIRECTIONS = 64  # joint-regressor support: the nearest vertex in a cone around each of these
_REGRESSOR_CONE_DEG = 20.0  # directions (half-angle of the cone)
_REGRESSOR_RIDGE = 1e-4     # weight-norm penalty of the regressor fit (relative to the shape rows)
_MOVE_EPS = 1e-6            # metres: an expression "moves" a vertex by more than this


class AnnyCacheError(ThgsError, RuntimeError):
    """A converted anny file is missing a field or has the wrong shape."""


# ----------------------------------------------------------------------------------------------
# status / paths


def _anny_version() -> str | None:
    try:
        return importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError:
        return None


def default_cache_dir() -> Path:
    """``$THGS_CACHE_DIR/anny``, else ``~/.cache/thgs/anny``."""
    root = os.environ.get("THGS_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "thgs") / "anny"


def resolve_phenotype(phenotype: dict[str, float] | None = None) -> dict[str, float]:
    """Defaults overridden by ``phenotype`` (by name); values rounded to 6 decimals and checked to lie in [0, 1]."""
    out = dict(DEFAULT_PHENOTYPE)
    for key, value in (phenotype or {}).items():
        if key not in PHENOTYPE_NAMES:
            raise ValueError(f"anny phenotype: unknown field {key!r}; the fields are {', '.join(PHENOTYPE_NAMES)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"anny phenotype: field {key!r} must be a number, got {value!r}") from None
        if not (0.0 <= v <= 1.0) or math.isnan(v):
            raise ValueError(f"anny phenotype: field {key!r} must lie in [0, 1], got {v}")
        out[key] = v
    return {k: round(out[k], 6) for k in PHENOTYPE_NAMES}


def resolve_local_changes(local_changes: dict[str, float] | None = None) -> dict[str, float]:
    """Local-modifier values by label (see :data:`PROPORTION_CHANGES`), rounded to 6 decimals, checked to
    lie in [-1, 1], zeros dropped, sorted by label. Labels are checked against anny's list at conversion."""
    out: dict[str, float] = {}
    for key, value in (local_changes or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"anny local_changes: labels must be non-empty strings, got {key!r}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"anny local_changes: field {key!r} must be a number, got {value!r}") from None
        if not (-1.0 <= v <= 1.0) or math.isnan(v):
            raise ValueError(f"anny local_changes: field {key!r} must lie in [-1, 1], got {v}")
        v = round(v, 6)
        if v != 0.0:
            out[key] = v
    return dict(sorted(out.items()))


def resolve_shape_basis(shape_basis: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Local-modifier labels whose directions are appended to ``shapedirs`` (order kept, duplicates refused)."""
    labels = tuple(shape_basis or ())
    if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"anny shape_basis: labels must be distinct non-empty strings, got {list(labels)}")
    return labels


def basis_column_names(shape_basis: tuple[str, ...]) -> list[str]:
    """Names of the ``shapedirs`` columns a ``shape_basis`` adds: for each label, ``"<label>"`` (towards
    larger values) and ``"<label>:neg"`` (towards smaller values); both are meant for coefficients >= 0,
    and the local-modifier change is the first minus the second."""
    return [name for label in shape_basis for name in (label, f"{label}:neg")]


def cache_key(phenotype: dict[str, float], anny_version: str, local_changes: dict[str, float] | None = None,
              shape_basis: tuple[str, ...] = ()) -> str:
    """File name of the converted model for a resolved phenotype (and resolved local changes / shape
    basis, which enter the key only when not empty, so default files keep their names) and an anny version."""
    spec: dict[str, Any] = {"phenotype": phenotype, "format": CACHE_FORMAT}
    if local_changes:
        spec["local_changes"] = dict(sorted(local_changes.items()))
    if shape_basis:
        spec["shape_basis"] = list(shape_basis)
    blob = json.dumps(spec, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"anny-{anny_version}-f{CACHE_FORMAT}-{digest}.npz"


def _find_cached(phenotype: dict[str, float], cache_dir: Path, version: str | None,
                 local_changes: dict[str, float] | None = None, shape_basis: tuple[str, ...] = ()) -> Path | None:
    """The converted file for ``phenotype``: the one for ``version`` when anny is installed, else any
    version's (newest name first) so that a machine without anny can still load a converted file."""
    if version is not None:
        path = cache_dir / cache_key(phenotype, version, local_changes, shape_basis)
        return path if path.is_file() else None
    suffix = cache_key(phenotype, "X", local_changes, shape_basis).split("-", 2)[2]  # "f<format>-<digest>.npz"
    hits = sorted(cache_dir.glob(f"anny-*-{suffix}")) if cache_dir.is_dir() else []
    return hits[-1] if hits else None


def status() -> dict[str, Any]:
    """``available``: anny is importable; ``cached``: a converted file for the default phenotype exists
    (``load()`` then works without anny). Does not import anny."""
    version = _anny_version()
    importable = version is not None and importlib.util.find_spec("anny") is not None
    cache_dir = default_cache_dir()
    cached = _find_cached(resolve_phenotype(None), cache_dir, version if importable else None)
    n_files = len(list(cache_dir.glob("anny-*.npz"))) if cache_dir.is_dir() else 0
    parts = [f"anny {version}" if importable else "anny not installed (pip install 'thgs[anny]')"]
    parts.append(f"converted default phenotype cached in {cache_dir}" if cached
                 else f"no converted default phenotype in {cache_dir} (the first load converts: seconds, "
                      "about a minute more while anny's own cache is cold)")
    if n_files:
        parts.append(f"{n_files} converted file(s)")
    return {"available": importable, "version": version if importable else None, "cached": cached is not None,
            "cache_dir": str(cache_dir), "detail": "; ".join(parts)}


# ----------------------------------------------------------------------------------------------
# loading


def load(phenotype: dict[str, float] | None = None, cache_dir: str | os.PathLike | None = None,
         device: str | torch.device = "cpu", local_changes: dict[str, float] | None = None,
         shape_basis: list[str] | tuple[str, ...] | None = None) -> BodyModel:
    """The anny body for ``phenotype`` (see :data:`DEFAULT_PHENOTYPE`) as a :class:`BodyModel`.

    ``local_changes`` ({label: value in [-1, 1]}, e.g. ``{"head-scale-vert-incr": 0.4}``; labels from
    anny's ``local_change_labels``, see :data:`PROPORTION_CHANGES`) are MakeHuman local modifiers applied
    to the rest mesh and rest joints before everything else is derived from it, so the skeleton, the
    joint regressor, the mouth definition (hence the teeth) all follow. ``shape_basis`` (labels) appends
    two ``shapedirs`` columns per label (:func:`basis_column_names`), the derivatives towards larger and
    smaller values, for fitting the proportions; both options are part of the converted file's name.

    Reads the converted file from ``cache_dir`` (default :func:`default_cache_dir`) when present, without
    importing anny; otherwise converts with anny (needs ``pip install 'thgs[anny]'``; anny's own first
    build takes about a minute) and writes the file atomically.
    """
    pheno = resolve_phenotype(phenotype)
    changes = resolve_local_changes(local_changes)
    basis = resolve_shape_basis(shape_basis)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    version = _anny_version()
    path = _find_cached(pheno, cache, version, changes, basis)
    if path is not None:
        return model_from_arrays(read_cache(path), source=str(path)).to(device)
    if version is None:
        raise RuntimeError(
            f"anny body model: no converted file for phenotype {pheno}"
            + (f", local changes {changes}" if changes else "") + (f", shape basis {list(basis)}" if basis else "")
            + f" in {cache} and the anny package is "
            "not installed; install it with pip install 'thgs[anny]' (or copy a converted file there)")
    arrays = convert(pheno, local_changes=changes, shape_basis=basis)
    path = cache / cache_key(pheno, version, changes, basis)
    write_cache(path, arrays)
    return model_from_arrays(arrays, source=str(path)).to(device)


_ARRAY_FIELDS: dict[str, tuple[str, int]] = {
    # name: (dtype kind, ndim)
    "v_template": ("f", 2), "faces": ("i", 2), "parents": ("i", 1),
    "skin_index": ("i", 2), "skin_weight": ("f", 2),
    "regressor_index": ("i", 2), "regressor_weight": ("f", 2),
    "shapedirs": ("f", 3), "expr_index": ("i", 1), "expr_dirs": ("f", 3), "head_index": ("i", 1),
    "mouth_center": ("f", 1), "mouth_forward": ("f", 1), "mouth_up": ("f", 1), "mouth_width": ("f", 0),
    "upper_lip": ("i", 1), "lower_lip": ("i", 1),
    "reference_rotations": ("f", 3), "root_rest_rotation": ("f", 2),
}


def write_cache(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """Write a converted model (arrays + ``meta`` dict) atomically as an uncompressed ``.npz``."""
    from thgs.utils.io import write_with

    payload = {k: np.asarray(arrays[k]) for k in _ARRAY_FIELDS}
    payload["meta_json"] = np.array(json.dumps(arrays["meta"], sort_keys=True))
    payload["format"] = np.array(CACHE_FORMAT)

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)

    write_with(path, _write)


def read_cache(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a converted file; raises :class:`AnnyCacheError` naming the file and field."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise AnnyCacheError(f"{path}: not a readable converted anny file ({exc})") from None
    fmt = int(data["format"]) if "format" in data else None
    if fmt != CACHE_FORMAT:
        raise AnnyCacheError(f"{path}: field format is {fmt}, expected {CACHE_FORMAT}")
    for name, (kind, ndim) in _ARRAY_FIELDS.items():
        if name not in data:
            raise AnnyCacheError(f"{path}: field {name} is missing")
        a = data[name]
        if a.ndim != ndim or a.dtype.kind not in (kind, "u" if kind == "i" else kind):
            raise AnnyCacheError(f"{path}: field {name} has dtype {a.dtype} and {a.ndim} dims, "
                                 f"expected kind {kind!r} and {ndim} dims")
    if "meta_json" not in data:
        raise AnnyCacheError(f"{path}: field meta_json is missing")
    try:
        data["meta"] = json.loads(str(data.pop("meta_json")))
    except json.JSONDecodeError as exc:
        raise AnnyCacheError(f"{path}: field meta_json is not JSON ({exc})") from None
    for key in ("joint_names", "expression_names"):
        if key not in data["meta"]:
            raise AnnyCacheError(f"{path}: field meta.{key} is missing")
    return data


def model_from_arrays(arrays: dict[str, Any], source: str = "<memory>") -> BodyModel:
    """Build the :class:`BodyModel` from converted arrays (as written by :func:`write_cache`)."""
    a = arrays
    meta = dict(a["meta"])
    v_template = torch.from_numpy(np.asarray(a["v_template"], dtype=np.float32))
    V = v_template.shape[0]
    J = int(np.asarray(a["parents"]).shape[0])

    def dense_rows(index: np.ndarray, weight: np.ndarray, rows: int, cols: int, field: str) -> Tensor:
        index = np.asarray(index, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        if index.shape != weight.shape or index.shape[0] != rows:
            raise AnnyCacheError(f"{source}: field {field} has index {index.shape} and weight {weight.shape} "
                                 f"for {rows} rows")
        if index.size and (index.min() < 0 or index.max() >= cols):
            raise AnnyCacheError(f"{source}: field {field} indexes outside [0, {cols})")
        out = torch.zeros(rows, cols)
        out.scatter_add_(1, torch.from_numpy(index), torch.from_numpy(weight))
        return out

    for field, bound in (("faces", V), ("expr_index", V), ("head_index", V), ("upper_lip", V), ("lower_lip", V),
                         ("parents", J)):
        idx = np.asarray(a[field])
        low = -1 if field == "parents" else 0
        if idx.size and (int(idx.min()) < low or int(idx.max()) >= bound):
            raise AnnyCacheError(f"{source}: field {field} indexes outside [{low}, {bound})")
    lbs_weights = dense_rows(a["skin_index"], a["skin_weight"], V, J, "skin_index/skin_weight")
    regressor = dense_rows(a["regressor_index"], a["regressor_weight"], J, V, "regressor_index/regressor_weight")
    expr_index = torch.from_numpy(np.asarray(a["expr_index"], dtype=np.int64))
    expr_vals = torch.from_numpy(np.asarray(a["expr_dirs"], dtype=np.float32))
    E = expr_vals.shape[-1]
    if expr_vals.shape[:2] != (expr_index.shape[0], 3):
        raise AnnyCacheError(f"{source}: field expr_dirs has shape {tuple(expr_vals.shape)} for "
                             f"{expr_index.shape[0]} indexed vertices")
    exprdirs = torch.zeros(V, 3, E)
    exprdirs[expr_index] = expr_vals
    head_mask = torch.zeros(V, dtype=torch.bool)
    head_mask[torch.from_numpy(np.asarray(a["head_index"], dtype=np.int64))] = True
    joint_names = list(meta.pop("joint_names"))
    expression_names = list(meta.pop("expression_names"))
    head_joint = joint_names.index(meta["mouth_joints"]["head"])
    jaw_joint = joint_names.index(meta["mouth_joints"]["jaw"])
    mouth = MouthDefinition(
        center=torch.tensor(np.asarray(a["mouth_center"], dtype=np.float32)),
        forward=torch.tensor(np.asarray(a["mouth_forward"], dtype=np.float32)),
        up=torch.tensor(np.asarray(a["mouth_up"], dtype=np.float32)),
        width=float(a["mouth_width"]),
        upper_lip=torch.from_numpy(np.asarray(a["upper_lip"], dtype=np.int64)),
        lower_lip=torch.from_numpy(np.asarray(a["lower_lip"], dtype=np.int64)),
        head_joint=head_joint, jaw_joint=jaw_joint,
    )
    meta["reference_rotations"] = np.asarray(a["reference_rotations"], dtype=np.float64).tolist()
    meta["root_rest_rotation"] = np.asarray(a["root_rest_rotation"], dtype=np.float64).tolist()
    meta["source"] = source
    return BodyModel(
        name="anny",
        v_template=v_template,
        faces=torch.from_numpy(np.asarray(a["faces"], dtype=np.int64)),
        joint_regressor=regressor,
        parents=torch.from_numpy(np.asarray(a["parents"], dtype=np.int64)),
        joint_names=joint_names,
        lbs_weights=lbs_weights,
        shapedirs=torch.from_numpy(np.asarray(a["shapedirs"], dtype=np.float32)),
        exprdirs=exprdirs,
        head_mask=head_mask,
        mouth=mouth,
        expression_names=expression_names,
        up_axis="y",
        meta=meta,
    )


# ----------------------------------------------------------------------------------------------
# pose conversion (pure tensor functions)


def _frame(like: Tensor) -> Tensor:
    return torch.as_tensor(FRAME, dtype=like.dtype, device=like.device)


def _conversion_buffers(model: BodyModel, like: Tensor) -> tuple[Tensor, Tensor, list[int], list[int]]:
    meta = model.meta
    try:
        ref = torch.as_tensor(meta["reference_rotations"], dtype=like.dtype, device=like.device)
        root = torch.as_tensor(meta["root_rest_rotation"], dtype=like.dtype, device=like.device)
        order = list(meta["anny_bone_order"])
    except KeyError as exc:
        raise ValueError(f"body model {model.name!r} has no anny pose conversion data (meta field {exc})") from None
    inverse = [0] * len(order)
    for ours, theirs in enumerate(order):
        inverse[theirs] = ours
    return ref, root, order, inverse


def pose_to_anny(model: BodyModel, pose: Tensor, transl: Tensor | None = None) -> Tensor:
    """thgs pose -> anny ``local-ref`` pose parameters.

    Args:
        model: a body loaded by :func:`load`.
        pose: [B, J, 3] local axis-angle in thgs's world-aligned rest axes (thgs joint order).
        transl: [B, 3] root translation in thgs's frame, or None.
    Returns:
        [B, J, 4, 4] anny delta transforms in anny's bone order and frame, for
        ``anny_model(pose_parameters=..., pose_parameterization="local-ref")`` at the same phenotype.
    """
    if pose.dim() != 3 or pose.shape[1:] != (model.num_joints, 3):
        raise ValueError(f"pose must be [B, {model.num_joints}, 3], got {tuple(pose.shape)}")
    ref, root_rest, _, inverse = _conversion_buffers(model, pose)
    B, J = pose.shape[:2]
    C = _frame(pose)
    L = axis_angle_to_matrix(pose)  # thgs frame
    par = model.parents.tolist()
    A = ref  # [J, 3, 3] thgs frame, thgs joint order
    A_par = torch.cat([torch.eye(3, dtype=pose.dtype, device=pose.device)[None], A[par[1:]]], dim=0)
    D = torch.cat([(root_rest @ L[:, 0])[:, None], A_par[1:] @ L[:, 1:] @ A[1:].transpose(-1, -2)], dim=1)
    D = C.T @ D @ C  # thgs frame -> anny's frame
    j0 = model.rest_joints()[0, 0].to(pose.dtype)
    t = j0 if transl is None else j0 + transl
    d0 = (C.T @ root_rest @ t.expand(B, 3)[..., None])[..., 0]  # [B, 3]
    d = torch.cat([d0[:, None], torch.zeros(B, J - 1, 3, dtype=pose.dtype, device=pose.device)], dim=1)
    bottom = torch.zeros(B, J, 1, 4, dtype=pose.dtype, device=pose.device)
    bottom[..., 3] = 1.0
    out = torch.cat([torch.cat([D, d[..., None]], dim=-1), bottom], dim=-2)
    return out[:, inverse]


def pose_from_anny(model: BodyModel, deltas: Tensor, atol: float = 1e-5) -> tuple[Tensor, Tensor]:
    """anny ``local-ref`` pose parameters -> thgs (pose [B, J, 3], transl [B, 3]); inverse of :func:`pose_to_anny`.

    Args:
        deltas: [B, J, 4, 4] in anny's bone order and frame. Only the root may carry a translation (thgs
            bones do not stretch); a non-root translation larger than ``atol`` raises ValueError.
    """
    if deltas.dim() != 4 or deltas.shape[1:] != (model.num_joints, 4, 4):
        raise ValueError(f"deltas must be [B, {model.num_joints}, 4, 4], got {tuple(deltas.shape)}")
    ref, root_rest, order, _ = _conversion_buffers(model, deltas)
    deltas = deltas[:, order]
    if deltas.shape[1] > 1 and float(deltas[:, 1:, :3, 3].abs().max()) > atol:
        raise ValueError("pose_from_anny: anny deltas translate a non-root bone; thgs poses are rotations only")
    C = _frame(deltas)
    D = C @ deltas[..., :3, :3] @ C.T  # thgs frame
    par = model.parents.tolist()
    A = ref
    A_par = torch.cat([torch.eye(3, dtype=deltas.dtype, device=deltas.device)[None], A[par[1:]]], dim=0)
    L = torch.cat([(root_rest.T @ D[:, 0])[:, None], A_par[1:].transpose(-1, -2) @ D[:, 1:] @ A[1:]], dim=1)
    pose = matrix_to_axis_angle(L)
    j0 = model.rest_joints()[0, 0].to(deltas.dtype)
    transl = (root_rest.T @ C @ deltas[:, 0, :3, 3, None])[..., 0] - j0
    return pose, transl


# ----------------------------------------------------------------------------------------------
# conversion (needs anny)


def convert(phenotype: dict[str, float] | None = None, local_changes: dict[str, float] | None = None,
            shape_basis: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Convert anny at ``phenotype`` (and ``local_changes``, with an optional ``shape_basis``; see
    :func:`load`) into the arrays :func:`write_cache` stores (needs the anny package)."""
    pheno = resolve_phenotype(phenotype)
    changes = resolve_local_changes(local_changes)
    basis = resolve_shape_basis(shape_basis)
    need_local = bool(changes or basis)
    t_start = time.perf_counter()
    if importlib.util.find_spec("warp") is not None:  # anny imports warp; keep its start-up banner quiet
        import warp

        warp.config.quiet = True
    import anny
    from anny.face_segmentation import get_face_segmentation_mask

    version = _anny_version()
    t0 = time.perf_counter()
    am = anny.Anny(facial_actions="all", pose_parameterization="local-ref", skinning_method="lbs",
                   local_changes="all" if need_local else "none")
    t_anny = time.perf_counter() - t0
    if list(am.phenotype_labels) != list(PHENOTYPE_NAMES):
        raise RuntimeError(f"anny {version}: phenotype parameters are {am.phenotype_labels}, expected {PHENOTYPE_NAMES}")
    if need_local:
        known = set(am.local_change_labels)
        for label in list(changes) + list(basis):
            if label not in known:
                raise ValueError(f"anny local_changes: unknown label {label!r} (anny {version} has "
                                 f"{len(known)} local modifiers, e.g. {', '.join(PROPORTION_CHANGES[:3])})")
    C = FRAME

    def rest(values: dict[str, float], local: dict[str, float] = changes) -> dict[str, np.ndarray]:
        kwargs: dict[str, Any] = {}
        if need_local:
            kwargs["local_changes_kwargs"] = {k: float(v) for k, v in local.items()}
        with torch.no_grad():
            out = am(phenotype_kwargs={k: float(v) for k, v in values.items()}, pose_parameterization="local-ref",
                     **kwargs)
        return {k: out[k][0].double().cpu().numpy() for k in ("rest_vertices", "rest_bone_heads", "rest_bone_poses")}

    base = rest(pheno)
    verts = base["rest_vertices"] @ C.T
    heads = base["rest_bone_heads"] @ C.T
    rest_rot = base["rest_bone_poses"][:, :3, :3]  # anny frame
    V, J = verts.shape[0], heads.shape[0]
    names_anny = list(am.bone_labels)
    parents_anny = [int(p) for p in am.bone_parents]
    order = topological_order(parents_anny)
    inv = np.argsort(order)
    parents = np.array([-1] + [int(inv[parents_anny[o]]) for o in order[1:]], dtype=np.int32)
    joint_names = [names_anny[o] for o in order]

    def reorder(per_bone: np.ndarray) -> np.ndarray:  # anny's bone order -> ours
        return per_bone[order]

    heads = reorder(heads)
    rest_rot = reorder(rest_rot)

    # Faces (anny's default topology is already triangulated).
    faces = am.faces.cpu().numpy()
    if faces.ndim != 2 or faces.shape[1] != 3:
        faces = am.get_triangular_faces().cpu().numpy()
    faces = faces.astype(np.int32)

    # Skinning weights: anny keeps up to K bones per vertex; keep that sparsity.
    skin_idx_anny = am.vertex_bone_indices.long().cpu().numpy()
    skin_w = am.vertex_bone_weights.double().cpu().numpy()
    skin_idx = inv[skin_idx_anny].astype(np.int16)
    skin_w = skin_w / skin_w.sum(axis=1, keepdims=True)
    dense_w = np.zeros((V, J))
    np.add.at(dense_w, (np.repeat(np.arange(V), skin_idx.shape[1]), skin_idx.ravel().astype(np.int64)), skin_w.ravel())

    # Facial actions: linear blend-shape rows of anny's rest mesh.
    labels = list(am.blendshape_labels)
    expr_names = list(am.facial_action_labels)
    rows = [labels.index(f"facial_action:{n}") for n in expr_names]
    blend = am.blendshapes.double().cpu().numpy()
    expr = np.einsum("evc,dc->vde", blend[rows], C)  # [V, 3, E] thgs frame
    if np.abs(am.bone_heads_blendshapes.double().cpu().numpy()[rows]).max() > 0:
        raise RuntimeError(f"anny {version}: facial actions move bone heads; the converter assumes they do not")
    moved = np.linalg.norm(expr, axis=1).max(axis=1) > _MOVE_EPS
    expr_index = np.nonzero(moved)[0].astype(np.int32)

    # Shape basis: one-sided (increasing; decreasing at 1) differences of the rest mesh and bone heads in
    # each phenotype parameter. anny interpolates each parameter linearly between anchors, so this is the
    # exact slope of the anchor segment above the value.
    shapedirs = np.zeros((V, 3, len(SHAPE_NAMES)))
    head_dirs = np.zeros((J, 3, len(SHAPE_NAMES)))
    for k, name in enumerate(SHAPE_NAMES):
        lo, hi = pheno[name], pheno[name] + _SHAPE_STEP
        if hi > 1.0:
            lo, hi = pheno[name] - _SHAPE_STEP, pheno[name]
        a, b = (base if lo == pheno[name] else rest({**pheno, name: lo})), rest({**pheno, name: hi})
        shapedirs[:, :, k] = (b["rest_vertices"] - a["rest_vertices"]) @ C.T / (hi - lo)
        head_dirs[:, :, k] = reorder((b["rest_bone_heads"] - a["rest_bone_heads"]) @ C.T) / (hi - lo)
    # Proportion basis: one-sided differences in each local modifier, towards larger and smaller values
    # (anny applies a positive and a negative target, so the two directions differ).
    extra_v, extra_h = [], []
    for label in basis:
        now = changes.get(label, 0.0)
        for sign in (1.0, -1.0):
            # at the end of the range, extrapolate from the other side
            flip = 1.0 if -1.0 <= now + sign * _SHAPE_STEP <= 1.0 else -1.0
            b = rest(pheno, {**changes, label: now + flip * sign * _SHAPE_STEP})
            extra_v.append((b["rest_vertices"] - base["rest_vertices"]) @ C.T * (flip / _SHAPE_STEP))
            extra_h.append(reorder((b["rest_bone_heads"] - base["rest_bone_heads"]) @ C.T) * (flip / _SHAPE_STEP))
    if basis:
        shapedirs = np.concatenate([shapedirs, np.stack(extra_v, axis=-1)], axis=-1)
        head_dirs = np.concatenate([head_dirs, np.stack(extra_h, axis=-1)], axis=-1)

    reg_index, reg_weight = fit_joint_regressor(verts, shapedirs, heads, head_dirs)

    # Pose conversion: A = U R^T (reference orientation times inverse rest orientation), thgs frame.
    U = am.reference_bone_orientations
    U = reorder(U.double().cpu().numpy()) if U is not None else rest_rot.copy()
    A = np.einsum("ab,jbc,jdc,ed->jae", C, U, rest_rot, C)
    if np.abs(A[0] - np.eye(3)).max() > 1e-6:
        raise RuntimeError(f"anny {version}: the root's reference and rest orientations differ; "
                           "the pose conversion assumes they agree")
    root_rest = C @ rest_rot[0] @ C.T

    # Head mask: vertices dominated by the head bones, plus every vertex a facial action moves.
    head_cols = [joint_names.index(n) for n in _HEAD_BONES]
    head_mask = (dense_w[:, head_cols].sum(axis=1) > 0.5) | moved
    head_index = np.nonzero(head_mask)[0].astype(np.int32)

    # Mouth: the inner lip rim is the border between anny's mouth-cavity faces and the skin; its two arcs
    # between the corners are the lips, the lower one being the arc jawOpen moves most.
    cavity = get_face_segmentation_mask(am, ["mouth_cavity"]).cpu().numpy()
    tongue = get_face_segmentation_mask(am, ["tongue"]).cpu().numpy()
    jaw = expr[:, :, expr_names.index("jawOpen")]
    mouth = mouth_from_rim(verts, faces, cavity, cavity | tongue, jaw, heads[joint_names.index(_HEAD_JOINT)])

    semantic = {k: joint_names.index(v) for k, v in SEMANTIC_BONES.items()}
    toes = {"left": joint_names.index("toe3-1.L"), "right": joint_names.index("toe3-1.R")}
    bone_axes = compute_bone_axes(heads, parents, semantic, toes)
    meta = {
        "anny_version": version,
        "phenotype": pheno,
        "local_changes": changes,
        "shape_basis": list(basis),
        "joint_names": joint_names,
        "expression_names": expr_names,
        "shape_names": list(SHAPE_NAMES) + basis_column_names(basis),
        "shape_step": _SHAPE_STEP,
        "semantic_joints": semantic,
        "bone_axes": bone_axes,
        "anny_bone_order": [int(o) for o in order],
        "frame": {"up": [0, 1, 0], "forward": [0, 0, 1], "units": "m", "from_anny": C.tolist()},
        "rest_pose": "A-pose (anny rest mesh): arms down about 45 degrees and slightly forward",
        "mouth_joints": {"head": _HEAD_JOINT, "jaw": _HEAD_JOINT},
        "jaw": "no jaw bone: the jaw opens through the jawOpen expression (exprdirs)",
        "anny_build_seconds": round(t_anny, 2),
        "conversion_seconds": round(time.perf_counter() - t_start, 2),
    }
    return {
        "v_template": verts.astype(np.float32), "faces": faces, "parents": parents,
        "skin_index": skin_idx, "skin_weight": skin_w.astype(np.float32),
        "regressor_index": reg_index, "regressor_weight": reg_weight.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "expr_index": expr_index, "expr_dirs": expr[expr_index].astype(np.float32),
        "head_index": head_index,
        "mouth_center": mouth["center"].astype(np.float32), "mouth_forward": mouth["forward"].astype(np.float32),
        "mouth_up": mouth["up"].astype(np.float32), "mouth_width": np.float32(mouth["width"]),
        "upper_lip": mouth["upper_lip"].astype(np.int32), "lower_lip": mouth["lower_lip"].astype(np.int32),
        "reference_rotations": A.astype(np.float32), "root_rest_rotation": root_rest.astype(np.float32),
        "meta": meta,
    }


def topological_order(parents: list[int]) -> list[int]:
    """An order of the joints in which every parent precedes its children (breadth-first from the root;
    the identity when ``parents[j] < j`` already holds). Returns old indices in new order."""
    if parents[0] >= 0 or sum(p < 0 for p in parents) != 1:
        raise ValueError("skeleton must have exactly one root, at index 0")
    if all(p < j for j, p in enumerate(parents) if j > 0):
        return list(range(len(parents)))
    children: list[list[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    order, k = [0], 0
    while k < len(order):
        order.extend(children[order[k]])
        k += 1
    if len(order) != len(parents):
        raise ValueError("skeleton has joints that do not descend from the root")
    return order


def _sphere_directions(n: int) -> np.ndarray:
    """[n, 3] unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + 5.0 ** 0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def regressor_support(verts: np.ndarray, point: np.ndarray, directions: int = _REGRESSOR_DIRECTIONS,
                      cone_deg: float = _REGRESSOR_CONE_DEG) -> np.ndarray:
    """Vertices surrounding ``point``: the nearest vertex inside a cone around each of ``directions``
    directions (so that joints deep inside the body get vertices on every side, not only the nearest skin)."""
    offset = verts - point
    dist = np.linalg.norm(offset, axis=1)
    unit = offset / np.maximum(dist, 1e-12)[:, None]
    cos_cone = math.cos(math.radians(cone_deg))
    picked = []
    for d in _sphere_directions(directions):
        inside = np.nonzero(unit @ d > cos_cone)[0]
        if inside.size:
            picked.append(inside[np.argmin(dist[inside])])
    return np.unique(np.array(picked, dtype=np.int64))


def fit_joint_regressor(verts: np.ndarray, shapedirs: np.ndarray, heads: np.ndarray, head_dirs: np.ndarray,
                        ridge: float = _REGRESSOR_RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Sparse joint regressor. For each joint, weights on the vertices surrounding it
    (:func:`regressor_support`) that

    * sum to 1 and reproduce the rest joint exactly (equality constraints), and
    * map the vertices' shape directions to the joint's, in the least-squares sense, with a ridge
      penalty ``ridge`` (relative to the shape rows' scale) that keeps the weights small.

    Args:
        verts: [V, 3]; shapedirs: [V, 3, S]; heads: [J, 3]; head_dirs: [J, 3, S] (float64).
    Returns:
        (index [J, K] int32, weight [J, K] float64), rows padded with zero weights to a common K.
    """
    J, S = heads.shape[0], shapedirs.shape[-1]
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(J):
        idx = regressor_support(verts, heads[j])
        K = idx.size
        if K < 4:
            raise RuntimeError(f"joint regressor: only {K} vertices surround joint {j}")
        P = np.vstack([verts[idx].T, np.ones((1, K))])  # [4, K] equality rows
        p = np.concatenate([heads[j], [1.0]])
        Q = shapedirs[idx].reshape(K, 3 * S).T  # [3S, K] least-squares rows
        q = head_dirs[j].reshape(3 * S)
        scale = max(float(np.abs(Q).max()), 1e-12) ** 2
        H = Q.T @ Q + ridge * scale * np.eye(K)
        kkt = np.block([[H, P.T], [P, np.zeros((4, 4))]])
        sol = np.linalg.lstsq(kkt, np.concatenate([Q.T @ q, p]), rcond=None)[0]
        rows.append((idx, sol[:K]))
    width = max(idx.size for idx, _ in rows)
    index = np.zeros((J, width), dtype=np.int32)
    weight = np.zeros((J, width))
    for j, (idx, w) in enumerate(rows):
        index[j, : idx.size] = idx
        weight[j, : idx.size] = w
    return index, weight


def mouth_from_rim(verts: np.ndarray, faces: np.ndarray, cavity_faces: np.ndarray, inner_faces: np.ndarray,
                   jaw_open: np.ndarray, head: np.ndarray) -> dict[str, Any]:
    """The mouth from the lip rim: the closed loop of edges shared by a mouth-cavity face and a skin face.

    Args:
        verts: [V, 3] rest vertices (thgs frame); faces: [F, 3]; cavity_faces / inner_faces: [F] bool
            (the cavity itself; everything inside the mouth, cavity and tongue); jaw_open: [V, 3] the
            jawOpen offsets; head: [3] the head joint.
    Returns:
        dict of center, forward, up ([3] each), width, upper_lip and lower_lip (vertex indices, corner to corner).
    """
    def edges(mask: np.ndarray) -> set[tuple[int, int]]:
        f = faces[mask]
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        e.sort(axis=1)
        return set(map(tuple, e.tolist()))

    rim_edges = edges(cavity_faces) & edges(~inner_faces)
    if not rim_edges:
        raise RuntimeError("anny mouth: no edge is shared by the mouth cavity and the skin")
    nbrs: dict[int, list[int]] = {}
    for a, b in rim_edges:
        nbrs.setdefault(a, []).append(b)
        nbrs.setdefault(b, []).append(a)
    if any(len(n) != 2 for n in nbrs.values()):
        raise RuntimeError("anny mouth: the lip rim is not a simple loop")
    start = min(nbrs)
    loop, prev = [start], -1
    while True:
        cur = loop[-1]
        nxt = nbrs[cur][0] if nbrs[cur][0] != prev else nbrs[cur][1]
        if nxt == start:
            break
        loop.append(nxt)
        prev = cur
    if len(loop) != len(nbrs):
        raise RuntimeError("anny mouth: the lip rim is more than one loop")
    loop_arr = np.array(loop)
    x = verts[loop_arr, 0]
    i_r, i_l = int(np.argmin(x)), int(np.argmax(x))
    n = len(loop)
    arc1 = [loop[(i_r + k) % n] for k in range(1, (i_l - i_r) % n)]
    arc2 = [loop[(i_l + k) % n] for k in range(1, (i_r - i_l) % n)]
    move = np.linalg.norm(jaw_open, axis=1)
    lower, upper = (arc1, arc2) if move[arc1].mean() > move[arc2].mean() else (arc2, arc1)
    up = np.array([0.0, 1.0, 0.0])
    center = verts[loop_arr].mean(axis=0)
    fwd = center - head
    fwd = fwd - fwd.dot(up) * up
    fwd = fwd / np.linalg.norm(fwd)
    corners = verts[[loop[i_r], loop[i_l]]]
    # keep the lips ordered from the thgs-right corner (-x) to the left one (+x)
    upper = sorted(upper, key=lambda v: verts[v, 0])
    lower = sorted(lower, key=lambda v: verts[v, 0])
    return {"center": center, "forward": fwd, "up": up, "width": float(np.linalg.norm(corners[1] - corners[0])),
            "upper_lip": np.array(upper), "lower_lip": np.array(lower)}


def compute_bone_axes(heads: np.ndarray, parents: np.ndarray, semantic: dict[str, int],
                      toes: dict[str, int]) -> dict[str, dict[str, list[float]]]:
    """Rest-pose axes of the semantic joints, in thgs's world-aligned frame (where poses are expressed).

    For each joint: ``along`` points from the joint towards the next joint of its chain (the segment it
    moves); a positive rotation about ``flex`` flexes the joint (spine, neck, head, hips, shoulders and
    elbows bend forward, knees backward, wrists and fingers curl towards the palm, ankles lift the toes);
    ``side`` = along x flex completes the frame (abduction/adduction axis). Twist is rotation about
    ``along``. Hinge joints (elbows, knees, fingers) that are already bent in the rest pose by more than
    5 degrees take their rest bend plane as ``flex`` (incoming x outgoing segment); the others rotate
    ``along`` towards the body's forward (+z), backward, or the palm.

    Args:
        heads: [J, 3] rest joints (thgs frame); parents: [J] kinematic tree; semantic: semantic name ->
        joint index; toes: "left"/"right" -> index of a toe-base joint (the direction the ankle points).
    """
    fwd = np.array([0.0, 0.0, 1.0])
    up = np.array([0.0, 1.0, 0.0])

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    def towards_axis(along: np.ndarray, towards: np.ndarray) -> np.ndarray:
        t = towards - towards.dot(along) * along
        return unit(np.cross(along, t))

    h = {k: heads[i] for k, i in semantic.items()}
    fingers = ("thumb", "index", "middle", "ring", "pinky")
    chains: dict[str, tuple[str, str]] = {  # joint: (next joint, where flexion moves the segment)
        "pelvis": ("spine1", "fwd"), "spine1": ("spine2", "fwd"), "spine2": ("spine3", "fwd"),
        "spine3": ("neck", "fwd"), "neck": ("head", "fwd"),
    }
    hinges: set[str] = set()
    palms: dict[str, np.ndarray] = {}
    for side in ("left", "right"):
        chains.update({
            f"{side}_hip": (f"{side}_knee", "fwd"), f"{side}_knee": (f"{side}_ankle", "back"),
            f"{side}_collar": (f"{side}_shoulder", "fwd"), f"{side}_shoulder": (f"{side}_elbow", "fwd"),
            f"{side}_elbow": (f"{side}_wrist", "fwd"), f"{side}_wrist": (f"{side}_middle1", "palm"),
        })
        hinges.update({f"{side}_knee", f"{side}_elbow"})
        for finger in fingers:
            for i in (1, 2):
                chains[f"{side}_{finger}{i}"] = (f"{side}_{finger}{i + 1}", "palm")
                hinges.add(f"{side}_{finger}{i}")
        # Palm normal from the knuckles: the hand points along wrist -> middle1 and the index knuckle lies
        # on the thumb side of the pinky's. (Checked: the fingers' rest curl bends towards this side.)
        hand = unit(h[f"{side}_middle1"] - h[f"{side}_wrist"])
        across = h[f"{side}_index1"] - h[f"{side}_pinky1"]
        palms[side] = unit(np.cross(hand, across) if side == "left" else np.cross(across, hand))
    out: dict[str, dict[str, list[float]]] = {}

    def record(name: str, along: np.ndarray, flex: np.ndarray) -> None:
        out[name] = {"along": along.round(6).tolist(), "flex": flex.round(6).tolist(),
                     "side": unit(np.cross(along, flex)).round(6).tolist()}

    for name, (nxt, how) in chains.items():
        along = unit(h[nxt] - h[name])
        if how == "palm":
            towards = palms["left" if name.startswith("left") else "right"]
        else:
            towards = fwd if how == "fwd" else -fwd
        flex = towards_axis(along, towards)
        if name in hinges:
            incoming = unit(h[name] - heads[int(parents[semantic[name]])])
            bend = math.degrees(math.acos(float(np.clip(incoming.dot(along), -1.0, 1.0))))
            if bend > 5.0:
                flex = unit(np.cross(incoming, along))
                flex = unit(flex - flex.dot(along) * along)
        record(name, along, flex)
    # Finger tips: no next joint; they reuse the middle phalanx's axes. Ankles point at the toes and flex
    # (dorsiflexion) towards the shin. The head has no next joint: it nods forward about +x.
    for side in ("left", "right"):
        for finger in fingers:
            out[f"{side}_{finger}3"] = dict(out[f"{side}_{finger}2"])
        along = unit(heads[toes[side]] - h[f"{side}_ankle"])
        record(f"{side}_ankle", along, towards_axis(along, up))
    record("head", up, np.array([1.0, 0.0, 0.0]))
    return out


__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_PHENOTYPE",
    "FRAME",
    "PHENOTYPE_NAMES",
    "PROPORTION_CHANGES",
    "SEMANTIC_BONES",
    "SHAPE_NAMES",
    "AnnyCacheError",
    "basis_column_names",
    "cache_key",
    "compute_bone_axes",
    "convert",
    "default_cache_dir",
    "fit_joint_regressor",
    "load",
    "model_from_arrays",
    "mouth_from_rim",
    "pose_from_anny",
    "pose_to_anny",
    "read_cache",
    "regressor_support",
    "resolve_local_changes",
    "resolve_phenotype",
    "resolve_shape_basis",
    "status",
    "topological_order",
    "write_cache",
]
