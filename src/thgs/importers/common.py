"""Shared by the importers: SMPL-X pose assembly from tracker fields, hand-PCA handling, camera building."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from thgs.errors import ThgsError

NUM_HAND_PCA_MAX = 45


class ImportProblem(ThgsError, ValueError):
    """An input of an importer is unusable; the message names the file and field."""


def as_frames(arr: Any, n: int, width: int, where: str) -> np.ndarray:
    """``arr`` as float32 ``[n, width]`` (accepts ``[n, width]``, ``[n, 1, width]`` or ``[n, width/3, 3]``)."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise ImportProblem(f"{where} has dtype {a.dtype}, expected numbers")
    if a.ndim >= 2 and a.shape[0] == n and int(np.prod(a.shape[1:])) == width:
        a = a.reshape(n, width).astype(np.float32)
        if not np.isfinite(a).all():
            raise ImportProblem(f"{where} holds non-finite values")
        return a
    raise ImportProblem(f"{where} has shape {tuple(a.shape)}, expected ({n}, {width})")


def hand_axis_angle(fields: Mapping[str, Any], n: int, where: str, smplx_model: str | os.PathLike | None,
                    keep_pca: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Left and right hand poses as axis-angle ``[n, 45]`` each.

    Tracker outputs hold either axis-angle ``[n, 45]`` or a k-component PCA ``[n, k]`` (SHOW: k = 12,
    flat_hand_mean=False). PCA needs the user's SMPL-X file (``hands_componentsl/r``, ``hands_meanl/r``); without
    it, ``keep_pca`` keeps the coefficients as params ``hand_pca`` ``[n, 2, k]`` (left, right) with zero finger
    rotations in the pose and marks the body with ``hand_pose: "pca"``; otherwise an error.

    Returns ``(left [n, 45], right [n, 45], extra params, extra body fields)``.
    """
    lh = np.asarray(fields["left_hand_pose"])
    rh = np.asarray(fields["right_hand_pose"])
    k_l = int(np.prod(lh.shape[1:])) if lh.ndim >= 2 else -1
    k_r = int(np.prod(rh.shape[1:])) if rh.ndim >= 2 else -1
    if k_l == 45 and k_r == 45:
        return (as_frames(lh, n, 45, f"{where}: field 'left_hand_pose'"),
                as_frames(rh, n, 45, f"{where}: field 'right_hand_pose'"), {}, {})
    if k_l != k_r or not 1 <= k_l < NUM_HAND_PCA_MAX:
        raise ImportProblem(f"{where}: fields 'left_hand_pose' {tuple(lh.shape)} and 'right_hand_pose' "
                            f"{tuple(rh.shape)} must both be ({n}, 45) axis-angle or ({n}, k) PCA with k < 45")
    left = as_frames(lh, n, k_l, f"{where}: field 'left_hand_pose'")
    right = as_frames(rh, n, k_r, f"{where}: field 'right_hand_pose'")
    if smplx_model is not None:
        return (pca_to_axis_angle(left, "left", smplx_model), pca_to_axis_angle(right, "right", smplx_model),
                {}, {})
    if keep_pca:
        zeros = np.zeros((n, 45), np.float32)
        return zeros, zeros.copy(), {"hand_pca": np.stack([left, right], axis=1)}, {"hand_pose": "pca"}
    raise ImportProblem(f"{where}: hand poses are {k_l}-component PCA coefficients; converting them to joint "
                        "rotations needs your SMPL-X model file (--smplx-model PATH, e.g. SMPLX_NEUTRAL.npz), "
                        "or pass --keep-hand-pca to keep the coefficients (params 'hand_pca') with flat fingers")


def pca_to_axis_angle(pca: np.ndarray, side: str, smplx_model: str | os.PathLike) -> np.ndarray:
    """``[n, k]`` PCA coefficients -> ``[n, 45]`` axis-angle with the user's SMPL-X hand basis
    (flat_hand_mean=False: the hand mean is added)."""
    import torch

    from thgs.body import smplx as smplx_mod

    data = load_hand_basis(smplx_model)
    out = smplx_mod.hand_pose_to_axis_angle(torch.from_numpy(np.ascontiguousarray(pca, np.float32)), side, data,
                                            flat_hand_mean=False)
    return out.detach().cpu().numpy().reshape(pca.shape[0], 45).astype(np.float32)


def load_hand_basis(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the hand PCA arrays from a SMPL-X model file (.npz or .pkl, read by :func:`thgs.body.smplx.read_arrays`)."""
    path = Path(path)
    keys = ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr")
    if not path.is_file():
        raise ImportProblem(f"{path}: SMPL-X model file not found (--smplx-model)")
    from thgs.body.smplx import read_arrays

    try:
        raw = read_arrays(path)
    except ValueError as exc:
        raise ImportProblem(f"{path}: {exc}") from exc
    missing = [k for k in keys if k not in raw]
    data = {k: np.asarray(raw[k]) for k in keys if k in raw}
    if missing:
        raise ImportProblem(f"{path}: SMPL-X model file lacks field(s) {', '.join(missing)}")
    for side in "lr":
        comp, mean = data[f"hands_components{side}"], data[f"hands_mean{side}"]
        if comp.ndim != 2 or comp.shape[1] != 45 or mean.reshape(-1).shape != (45,):
            raise ImportProblem(f"{path}: field 'hands_components{side}' has shape {comp.shape} and "
                                f"'hands_mean{side}' {mean.shape}; expected (k, 45) and (45,)")
    return {k: v.astype(np.float32) for k, v in data.items()}


def smplx_params(fields: Mapping[str, Any], n: int, where: str, *, body_pose_key: str = "body_pose",
                 smplx_model: str | os.PathLike | None = None, keep_pca: bool = False
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tracker fields -> our params (pose [n, 55, 3] in SMPL-X joint order, transl [n, 3], betas [S],
    expression [n, E]) and the body dict (model smplx)."""
    from thgs.body.smplx import smplx_pose
    import torch

    required = ("global_orient", body_pose_key, "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
                "right_hand_pose", "transl", "betas", "expression")
    missing = [k for k in required if k not in fields]
    if missing:
        raise ImportProblem(f"{where}: field(s) {', '.join(repr(k) for k in missing)} missing")
    go = as_frames(fields["global_orient"], n, 3, f"{where}: field 'global_orient'")
    body = as_frames(fields[body_pose_key], n, 63, f"{where}: field '{body_pose_key}'")
    jaw = as_frames(fields["jaw_pose"], n, 3, f"{where}: field 'jaw_pose'")
    leye = as_frames(fields["leye_pose"], n, 3, f"{where}: field 'leye_pose'")
    reye = as_frames(fields["reye_pose"], n, 3, f"{where}: field 'reye_pose'")
    left, right, extra, body_extra = hand_axis_angle(fields, n, where, smplx_model, keep_pca)
    transl = as_frames(fields["transl"], n, 3, f"{where}: field 'transl'")
    betas = np.asarray(fields["betas"], dtype=np.float32)
    if betas.ndim == 2 and betas.shape[0] >= 1:
        betas = betas[0]
    if betas.ndim != 1 or not np.isfinite(betas).all():
        raise ImportProblem(f"{where}: field 'betas' has shape {np.shape(fields['betas'])}, expected (S,) or (1, S)")
    expr = np.asarray(fields["expression"])
    if expr.ndim != 2 or expr.shape[0] != n:
        raise ImportProblem(f"{where}: field 'expression' has shape {tuple(expr.shape)}, expected ({n}, E)")
    expr = as_frames(expr, n, expr.shape[1], f"{where}: field 'expression'")
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    pose = smplx_pose(t(go), t(body), t(jaw), t(leye), t(reye), t(left), t(right)).numpy().astype(np.float32)
    params = {"pose": pose, "transl": transl, "betas": betas, "expression": expr, **extra}
    body_dict: dict[str, Any] = {"model": "smplx", "options": {}, **body_extra}
    if smplx_model is not None:
        body_dict["options"] = {"model_path": str(Path(smplx_model).resolve())}
    return params, body_dict


def pinhole(focal: float, width: int, height: int, world_to_cam_t: np.ndarray,
            center: tuple[float, float] | None = None) -> dict[str, Any]:
    """A camera dict (K, world_to_cam with identity rotation and translation ``world_to_cam_t``)."""
    cx, cy = center if center is not None else (width / 2.0, height / 2.0)
    K = [[float(focal), 0.0, float(cx)], [0.0, float(focal), float(cy)], [0.0, 0.0, 1.0]]
    M = np.eye(4)
    M[:3, 3] = np.asarray(world_to_cam_t, dtype=np.float64).reshape(3)
    return {"K": K, "world_to_cam": M.tolist(), "width": int(width), "height": int(height)}
