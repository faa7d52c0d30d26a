"""SHOW tracker output (``final_all.pkl``): per-frame SMPL-X parameters and one static camera.

Fields read (N = frames): width, height, focal_length (), camera_transl (3,), optional center [cx, cy];
global_orient (N, 1, 3), body_pose_axis (N, 63), jaw_pose / leye_pose / reye_pose (N, 3),
left_hand_pose / right_hand_pose (N, 12) (hand PCA, flat_hand_mean=False), transl (N, 3), betas (1, S),
expression (N, E). Other fields (pose_embedding, losses_to_log, ...) are ignored.

Camera: K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] (centre from ``center``, else the image centre) and
world_to_cam = [I | camera_transl]: SHOW projects ``x + camera_transl`` with an OpenCV-style pinhole (its
bodies carry a ~180 degree rotation about x in ``global_orient`` so that they stand upright in that frame).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from thgs.importers.common import ImportProblem, pinhole, smplx_params
from thgs.io.safe_pickle import UnsafePickleError, safe_load

REQUIRED = ("width", "height", "focal_length", "camera_transl", "global_orient", "body_pose_axis", "jaw_pose",
            "leye_pose", "reye_pose", "left_hand_pose", "right_hand_pose", "transl", "betas", "expression")


def read_show(path: str | os.PathLike) -> dict[str, Any]:
    """Unpickle ``final_all.pkl`` with the restricted unpickler (torch tensors in the logging fields are
    dropped) and check the fields needed; :class:`ImportProblem` names the file and field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ImportProblem(f"{path}: no such file")
    try:
        data = safe_load(path, tensors="drop")
    except UnsafePickleError as exc:
        raise ImportProblem(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many kinds of errors
        raise ImportProblem(f"{path}: cannot be unpickled ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(data, Mapping):
        raise ImportProblem(f"{path}: expected a dict of SHOW fields, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ImportProblem(f"{path}: field(s) {', '.join(repr(k) for k in missing)} missing")
    data = dict(data)
    for key in ("width", "height"):
        v = data[key]
        if isinstance(v, np.ndarray) and v.size == 1:
            v = v.item()
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ImportProblem(f"{path}: field '{key}' must be a positive integer, got {v!r}")
        data[key] = int(v)
    f = np.asarray(data["focal_length"], dtype=np.float64).reshape(-1)
    if f.size != 1 or not np.isfinite(f).all() or f[0] <= 0:
        raise ImportProblem(f"{path}: field 'focal_length' must be one positive number, got shape {f.shape}")
    t = np.asarray(data["camera_transl"], dtype=np.float64).reshape(-1)
    if t.size != 3 or not np.isfinite(t).all():
        raise ImportProblem(f"{path}: field 'camera_transl' must be 3 finite numbers, got shape "
                            f"{np.shape(data['camera_transl'])}")
    if "center" in data and data["center"] is not None:
        c = np.asarray(data["center"], dtype=np.float64).reshape(-1)
        if c.size != 2 or not np.isfinite(c).all():
            raise ImportProblem(f"{path}: field 'center' must be [cx, cy], got {data['center']!r}")
    go = np.asarray(data["global_orient"])
    if go.ndim < 2 or go.shape[0] < 1:
        raise ImportProblem(f"{path}: field 'global_orient' has shape {go.shape}, expected (N, 1, 3)")
    if "batch_size" in data and isinstance(data["batch_size"], (int, np.integer)) and data["batch_size"] != go.shape[0]:
        raise ImportProblem(f"{path}: field 'batch_size' is {data['batch_size']} but 'global_orient' holds "
                            f"{go.shape[0]} frames")
    return data


def num_frames(data: Mapping[str, Any]) -> int:
    return int(np.asarray(data["global_orient"]).shape[0])


def show_camera(data: Mapping[str, Any], width: int | None = None, height: int | None = None,
                where: str = "final_all.pkl") -> dict[str, Any]:
    """The SHOW camera, scaled to ``width`` x ``height`` when the frames were resized (same aspect ratio)."""
    W, H = int(data["width"]), int(data["height"])
    width, height = width or W, height or H
    sx, sy = width / W, height / H
    if abs(sx - sy) > 0.01 * max(sx, sy) + 1.0 / min(W, H):
        raise ImportProblem(f"{where}: the fit is for {W}x{H} frames but the video frames are {width}x{height} "
                            "(a different aspect ratio)")
    f = float(np.asarray(data["focal_length"]).reshape(-1)[0])
    c = data.get("center")
    cx, cy = (float(c[0]), float(c[1])) if c is not None else (W / 2.0, H / 2.0)
    cam = pinhole(f * sx, width, height, np.asarray(data["camera_transl"], np.float64).reshape(3),
                  center=(cx * sx, cy * sy))
    cam["K"][1][1] = f * sy
    return cam


def show_params(data: Mapping[str, Any], *, smplx_model: str | os.PathLike | None = None,
                keep_hand_pca: bool = False, where: str = "final_all.pkl"
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """SHOW fields -> (params, body) in our format; hand PCA converted with the user's SMPL-X hand basis."""
    return smplx_params(data, num_frames(data), where, body_pose_key="body_pose_axis", smplx_model=smplx_model,
                        keep_pca=keep_hand_pca)


def field_stats(data: Mapping[str, Any]) -> list[str]:
    """One line per array field: shape, min, max, mean, std (for reports)."""
    lines = []
    for key in sorted(data):
        v = data[key]
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and v.size:
            lines.append(f"{key:18s} {str(tuple(v.shape)):12s} min {v.min():9.4f} max {v.max():9.4f} "
                         f"mean {v.mean():9.4f} std {v.std():8.4f}")
        elif isinstance(v, (int, float, str)):
            lines.append(f"{key:18s} {v!r}")
    return lines


def import_show_into(subject_dir: str | os.PathLike, data: Mapping[str, Any], params: dict[str, np.ndarray],
                     body: dict[str, Any], *, progress: bool = True, where: str = "final_all.pkl") -> Path:
    """Rewrite the subject at ``subject_dir`` (e.g. from ``thgs ingest``) with the fit's params, body and camera
    (scaled to the subject's frame size); frames, masks, audio, split and features are carried over. The new
    subject replaces the old one only once it is complete."""
    from tqdm import tqdm

    from thgs.data.subject import FolderSubject, open_subject
    from thgs.data.writer import SubjectWriter

    subject = open_subject(subject_dir)
    if not isinstance(subject, FolderSubject):
        raise ImportProblem(f"{subject_dir}: --into needs a thgs subject folder (meta.json), got a "
                            f"{type(subject).__name__}")
    n = num_frames(data)
    if subject.num_frames != n:
        raise ImportProblem(f"{where}: describes {n} frames but {subject_dir} holds {subject.num_frames}")
    if subject.views:
        raise ImportProblem(f"{subject_dir}: has extra views ({', '.join(subject.views)}); --into supports "
                            "single-view subjects")
    camera = show_camera(data, subject.width, subject.height, where)
    audio = subject.audio() if subject.has_audio else None
    feats = {name: subject.features(name) for name in subject.feature_names}
    feats = {k: v for k, v in feats.items() if v is not None and v.shape[0] == n}
    source = (subject.meta.get("source") or "") + f" + show:{where}"
    with SubjectWriter(subject.root, fps=subject.fps, width=subject.width, height=subject.height,
                       overwrite=True) as w, \
            tqdm(total=n, desc=f"params into {subject.name}", unit="frame", disable=not progress, leave=False) as bar:
        for i in range(n):
            w.add_frame(subject.image(i), subject.mask(i) if subject.has_masks else None)
            bar.update(1)
        return w.finish(camera=camera, audio=audio, params=params, body=body, split=subject.split,
                        name=subject.name, background=subject.background, features=feats or None,
                        source=source.strip(" +"))
