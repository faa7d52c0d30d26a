"""Write subjects in the thgs format (``docs/data-format.md``).

:func:`write_subject` writes a whole subject from in-memory frames (or any iterable of frames);
:class:`SubjectWriter` streams frames one at a time for long videos. Both check every input before the
subject appears: the subject is built in a hidden folder beside ``out_dir`` and renamed into place at the
end, so an error (or a crash) leaves no subject behind and an existing one untouched.

Errors are :class:`~thgs.data.format.SubjectError` (a ``ValueError``) listing every problem found, each
naming the argument and field, e.g. ``"params: field 'pose' has shape (11, 55, 3), expected (12, 55, 3)"``.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import shutil
import tempfile
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from thgs.data.format import (
    AUDIO_FILE,
    AUDIO_SAMPLE_RATE,
    BODY_MODELS,
    FEATURES_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    MASKS_DIR,
    MAX_FRAMES,
    META_FILE,
    PARAMS_FILE,
    TRUTH_FILE,
    VIEWS_DIR,
    SubjectError,
    audio_covers_video,
    audio_short_message,
    camera_problems,
    default_split,
    frame_file,
    frame_list_problems,
    is_number,
    is_safe_name,
    params_problems,
    split_problems,
)
__all__ = ["write_subject", "default_split", "SubjectParts", "SubjectWriter", "add_features", "PNG_COMPRESS_LEVEL"]

#: zlib level for the PNG frames: 1 is several times faster than PIL's default 6 for ~10% larger files.
PNG_COMPRESS_LEVEL = 1
#: Threads encoding PNG frames while the caller produces the next ones.
_ENCODE_WORKERS = max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------------------------------ input checking


@dataclass(frozen=True)
class SubjectParts:
    """Everything a subject holds besides its frames and masks, as the caller gives it (the keyword
    arguments of :func:`write_subject` and :meth:`SubjectWriter.finish`, described there). Checked and
    normalised once, into the writer's prepared form."""

    camera: Any
    audio: Any = None
    params: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None
    split: Mapping[str, Sequence[int]] | None = None
    name: str | None = None
    background: Sequence[float] | None = None
    views: Mapping[str, Mapping[str, Any]] | None = None
    truth: Mapping[str, Any] | None = None
    features: Mapping[str, Any] | None = None
    source: str = ""


@dataclass(frozen=True)
class _View:
    """A checked extra view: its camera (JSON-ready, with width and height), frame indices, [h, w, 3] uint8
    images and [h, w] uint8 masks (or None)."""

    camera: dict[str, Any]
    frames: list[int]
    images: list[np.ndarray]
    masks: list[np.ndarray] | None


@dataclass(frozen=True)
class _Prepared:
    """Checked and normalised inputs of a subject, ready to write.

    ``num_frames`` is the frame count the checks that need one were made for; None when the frames were
    not counted yet (an iterator): :func:`_count_problems` makes those checks once they are."""

    camera: dict[str, Any]
    audio: np.ndarray | None  # float32 [N] at 16 kHz
    params: dict[str, np.ndarray] | None
    body: dict[str, Any] | None
    split: dict[str, list[int]] | None
    views: dict[str, _View] = field(default_factory=dict)
    truth: dict[str, np.ndarray] | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)
    background: list[float] | None = None
    name: str = ""
    source: str = ""
    num_frames: int | None = None


def _fix(messages: list[str]) -> list[str]:
    """Shared checks name nested fields ``"<where>.K'"``; with an empty ``where`` drop the dot."""
    return [m.replace("field '.", "field '") for m in messages]


def _camera_dict(camera: Any, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A camera (``thgs.render.Camera`` or a mapping with K, world_to_cam and optionally width, height,
    estimated) as a JSON-ready dict."""
    if hasattr(camera, "K") and hasattr(camera, "world_to_cam") and not isinstance(camera, Mapping):
        cam: dict[str, Any] = {"K": camera.K, "world_to_cam": camera.world_to_cam,
                               "width": getattr(camera, "width", None), "height": getattr(camera, "height", None)}
    elif isinstance(camera, Mapping):
        cam = dict(camera)
    else:
        return None, [f"{where}: expected a thgs.render.Camera or a dict with K and world_to_cam, "
                      f"got {type(camera).__name__}"]
    unknown = set(cam) - {"K", "world_to_cam", "width", "height", "estimated"}
    if unknown:
        return None, [f"{where}: unknown field(s) {sorted(unknown)} (known: K, world_to_cam, width, height, estimated)"]
    for key in ("K", "world_to_cam"):
        if key in cam:
            v = cam[key]
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            try:
                cam[key] = np.asarray(v, dtype=np.float64).tolist()
            except (TypeError, ValueError):
                return None, [f"{where}: field '{key}' is not a numeric matrix"]
    for key in ("width", "height"):
        if cam.get(key) is None:
            cam.pop(key, None)
        elif isinstance(cam[key], (np.integer,)):
            cam[key] = int(cam[key])
    if "estimated" in cam and not isinstance(cam["estimated"], bool):
        return None, [f"{where}: field 'estimated' must be a boolean, got {cam['estimated']!r}"]
    problems = _fix(camera_problems(cam, f"{where}: field '"))
    return (None if problems else cam), problems


def _audio_array(audio: Any) -> tuple[np.ndarray | None, list[str]]:
    """``audio`` (a path, or ``(samples, sample_rate)``) as float32 mono at 16 kHz in [-1, 1], decoded and
    resampled by :mod:`thgs.io.audio_io`."""
    from thgs.io.audio_io import AudioError, read_audio, resample

    if audio is None:
        return None, []
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            return None, [f"audio: no such file {path}"]
        try:
            return read_audio(path, sample_rate=AUDIO_SAMPLE_RATE)[0], []
        except AudioError as exc:
            return None, [f"audio: cannot decode {exc}"]
    if not (isinstance(audio, (tuple, list)) and len(audio) == 2):
        return None, [f"audio: expected a file path or (samples, sample_rate), got {type(audio).__name__}"]
    samples, sr = audio
    if not (isinstance(sr, (int, np.integer)) and not isinstance(sr, bool) and sr > 0):
        return None, [f"audio: sample_rate must be a positive integer, got {sr!r}"]
    x = np.asarray(samples)
    if x.ndim != 1:
        return None, [f"audio: samples must be a 1-D mono array, got shape {x.shape} (mix the channels down first)"]
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32767.0
    elif x.dtype.kind != "f":
        return None, [f"audio: samples must be float (in [-1, 1]) or int16, got dtype {x.dtype}"]
    if x.size == 0:
        return None, ["audio: samples are empty"]
    if not np.isfinite(x).all():
        return None, [f"audio: samples hold {int((~np.isfinite(x)).sum())} non-finite value(s)"]
    peak = float(np.abs(x).max())
    if peak > 1.0 + 1e-3:
        return None, [f"audio: float samples must lie in [-1, 1], peak is {peak:.4g} (integer-scaled samples? "
                      f"divide by 32768)"]
    y = resample(x.astype(np.float32), int(sr), AUDIO_SAMPLE_RATE)
    return np.clip(y, -1.0, 1.0).astype(np.float32), []


def _params_arrays(params: Any) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """Params as numpy arrays; core arrays float32; betas [1, S] -> [S]; pose [T, J*3] -> [T, J, 3];
    missing betas / expression become empty arrays."""
    if params is None:
        return None, []
    if not isinstance(params, Mapping):
        return None, [f"params: expected a dict of arrays, got {type(params).__name__}"]
    out: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for key, value in params.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):
            problems.append(f"params: field '{key}' is not an array")
            continue
        if key in ("pose", "transl", "betas", "expression") and arr.dtype.kind in "fiu":
            arr = arr.astype(np.float32)
        out[str(key)] = arr
    for key in ("pose", "transl"):
        if key not in out:
            problems.append(f"params: field '{key}' is missing")
    pose = out.get("pose")
    if pose is not None and pose.ndim == 2 and pose.shape[1] % 3 == 0 and pose.shape[1] > 0:
        out["pose"] = pose.reshape(pose.shape[0], -1, 3)
    betas = out.get("betas")
    if betas is None:
        out["betas"] = np.zeros(0, np.float32)
    elif betas.ndim == 2 and betas.shape[0] == 1:
        out["betas"] = betas[0]
    if "expression" not in out and "pose" in out and out["pose"].ndim >= 1:
        out["expression"] = np.zeros((out["pose"].shape[0], 0), np.float32)
    return (None if problems else out), problems


def _body_dict(body: Any, params: dict[str, np.ndarray] | None) -> tuple[dict[str, Any] | None, list[str]]:
    if body is None:
        if params is not None:
            return None, ["body: required when params are given (dict(model='toy'|'anny'|'smplx', options={...}))"]
        return None, []
    if not isinstance(body, Mapping):
        return None, [f"body: expected a dict with 'model' and 'options', got {type(body).__name__}"]
    b = dict(body)
    problems: list[str] = []
    if b.get("model") not in BODY_MODELS:
        problems.append(f"body: field 'model' is {b.get('model')!r}, expected one of {', '.join(BODY_MODELS)}")
    b.setdefault("options", {})
    if not isinstance(b["options"], Mapping):
        problems.append(f"body: field 'options' must be a dict, got {type(b['options']).__name__}")
    try:
        json.dumps(b)
    except (TypeError, ValueError) as exc:
        problems.append(f"body: not JSON-serialisable ({exc})")
    derived: dict[str, int] = {}
    if params is not None:
        if params.get("pose") is not None and params["pose"].ndim == 3:
            derived["num_joints"] = int(params["pose"].shape[1])
        if params.get("betas") is not None and params["betas"].ndim == 1:
            derived["num_betas"] = int(params["betas"].shape[0])
        if params.get("expression") is not None and params["expression"].ndim == 2:
            derived["num_expressions"] = int(params["expression"].shape[1])
    for key in ("num_joints", "num_betas", "num_expressions"):
        given = b.get(key)
        if given is not None and not (isinstance(given, (int, np.integer)) and not isinstance(given, bool)
                                      and given >= 0):
            problems.append(f"body: field '{key}' must be a non-negative integer, got {given!r}")
        elif given is None and key in derived:
            b[key] = derived[key]
        elif given is not None:
            b[key] = int(given)
    return (None if problems else b), problems


def _array_dict(arrays: Any, where: str) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    if arrays is None:
        return None, []
    if not isinstance(arrays, Mapping):
        return None, [f"{where}: expected a dict of arrays, got {type(arrays).__name__}"]
    out, problems = {}, []
    for key, value in arrays.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if not is_safe_name(key):
            problems.append(f"{where}: field name {key!r} is not a plain identifier")
        elif arr.dtype.kind not in "biuf":
            problems.append(f"{where}: field '{key}' must be a numeric or boolean array, got dtype {arr.dtype}")
        else:
            out[str(key)] = arr
    return (None if problems else out), problems


def _image_array(image: Any, height: int, width: int, where: str) -> tuple[np.ndarray | None, str | None]:
    """An RGB frame as a contiguous [H, W, 3] uint8 array, or the problem with it."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        return None, f"{where}: must be uint8 (0..255), got dtype {arr.dtype}"
    if arr.shape != (height, width, 3):
        return None, f"{where}: has shape {arr.shape}, expected ({height}, {width}, 3)"
    return np.ascontiguousarray(arr), None


def _mask_array(mask: Any, height: int, width: int, where: str) -> tuple[np.ndarray | None, str | None]:
    """A mask (bool, uint8 0..255 or float 0..1; [H, W] or [H, W, 1]) as [H, W] uint8 with 255 = person."""
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.shape != (height, width):
        return None, f"{where}: has shape {arr.shape}, expected ({height}, {width})"
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255, None
    if arr.dtype == np.uint8:
        if arr.max(initial=0) == 1:
            return None, f"{where}: uint8 mask holds only 0 and 1; use 255 for the person (or pass a bool mask)"
        return np.ascontiguousarray(arr), None
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
            return None, f"{where}: float mask must lie in [0, 1]"
        return np.round(arr * 255).astype(np.uint8), None
    return None, f"{where}: must be bool, uint8 or float, got dtype {arr.dtype}"


def _views(views: Any, width: int, height: int) -> tuple[dict[str, _View], list[str]]:
    """The extra views, checked but for their frame indices (:func:`_count_problems` checks those)."""
    if views is None:
        return {}, []
    if not isinstance(views, Mapping):
        return {}, [f"views: expected a dict name -> dict(camera, frames, images), got {type(views).__name__}"]
    out: dict[str, _View] = {}
    problems: list[str] = []
    for name, v in views.items():
        w = f"views['{name}']"
        if not is_safe_name(name):
            problems.append(f"{w}: not a usable folder name (letters, digits, '_', '-', '.')")
            continue
        if not isinstance(v, Mapping):
            problems.append(f"{w}: expected dict(camera=..., frames=[...], images=[...]), got {type(v).__name__}")
            continue
        unknown = set(v) - {"camera", "frames", "images", "masks"}
        if unknown:
            problems.append(f"{w}: unknown field(s) {sorted(unknown)}")
        missing = [k for k in ("camera", "frames", "images") if k not in v]
        if missing:
            problems.append(f"{w}: field(s) {missing} missing")
            continue
        cam, p = _camera_dict(v["camera"], f"{w}.camera")
        problems += p
        listy = (list, tuple, range, np.ndarray)
        bad = [k for k in ("frames", "images", "masks") if v.get(k) is not None and not isinstance(v[k], listy)]
        if bad:
            problems.append(f"{w}: field(s) {bad} must be lists")
            continue
        frames = [int(f) if isinstance(f, (int, np.integer)) and not isinstance(f, bool) else f for f in v["frames"]]
        images, masks = list(v["images"]), v.get("masks")
        masks = list(masks) if masks is not None else None
        if len(images) != len(frames):
            problems.append(f"{w}: {len(images)} images for {len(frames)} frames")
        if masks is not None and len(masks) != len(frames):
            problems.append(f"{w}: {len(masks)} masks for {len(frames)} frames")
        if cam is None:
            continue
        vw, vh = cam.setdefault("width", width), cam.setdefault("height", height)
        imgs, msks = [], []
        for k, img in enumerate(images):
            arr, p1 = _image_array(img, vh, vw, f"{w}: images[{k}]")
            if p1:
                problems.append(p1)
            imgs.append(arr)
        for k, m in enumerate(masks or []):
            arr, p1 = _mask_array(m, vh, vw, f"{w}: masks[{k}]")
            if p1:
                problems.append(p1)
            msks.append(arr)
        out[str(name)] = _View(camera=cam, frames=frames, images=imgs, masks=msks if masks is not None else None)
    return out, problems


@dataclass(frozen=True)
class _FrameSpec:
    """What the frames are: their size and rate."""

    width: int
    height: int
    fps: Any


def _prepare(parts: SubjectParts, spec: _FrameSpec, num_frames: int | None, default_name: str
             ) -> tuple[_Prepared | None, list[str]]:
    """Check and normalise every non-frame input, once; ``num_frames`` None (frames not counted yet) leaves
    the checks that need the count to :func:`_count_problems`. ``default_name``: the name when none is given."""
    width, height, fps = spec.width, spec.height, spec.fps
    problems: list[str] = []
    if not is_number(fps) or not fps > 0:
        problems.append(f"fps: must be a positive number, got {fps!r}")
    cam, p = _camera_dict(parts.camera, "camera")
    problems += p
    if cam is not None:
        for key, val in (("width", width), ("height", height)):
            if cam.setdefault(key, val) != val:
                problems.append(f"camera: field '{key}' is {cam[key]}, but the frames are {width}x{height}")
    wav, p = _audio_array(parts.audio)
    problems += p
    prm, p = _params_arrays(parts.params)
    problems += p
    bdy, p = _body_dict(parts.body, prm)
    problems += p
    if prm is not None and num_frames is None:  # frames of unknown count: the per-frame arrays must agree
        counts = [prm[k].shape[0] for k in ("pose", "transl", "expression") if prm[k].ndim >= 1]
        t = max(counts, key=counts.count) if counts else None  # (the majority is right)
        problems += _params_problems(prm, bdy, t)
    split = parts.split
    spl = None
    if split is not None:
        if isinstance(split, Mapping):
            spl = {str(k): [int(i) if isinstance(i, (int, np.integer)) and not isinstance(i, bool) else i
                            for i in v] if isinstance(v, (list, tuple, np.ndarray, range)) else v
                   for k, v in split.items()}
        else:
            problems.append(f"split: expected dict(train=[...], test=[...]) or None, got {type(split).__name__}")
    vws, p = _views(parts.views, width, height)
    problems += p
    trth, p = _array_dict(parts.truth, "truth")
    problems += p
    feats, p = _array_dict(parts.features, "features")
    problems += p
    for key, arr in (feats or {}).items():
        if arr.ndim < 1:
            problems.append(f"features: field '{key}' has shape {arr.shape}, expected first dimension "
                            f"{num_frames if num_frames is not None else 'num_frames'}")
        elif arr.dtype.kind == "f" and not np.isfinite(arr).all():
            problems.append(f"features: field '{key}' holds non-finite values")
    bg = None
    background = parts.background
    if background is not None:
        try:
            bg = [float(c) for c in np.asarray(background, dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            bg = []
        if len(bg) != 3 or not all(0.0 <= c <= 1.0 for c in bg):
            problems.append(f"background: expected [r, g, b] in 0..1 or None, got {background!r}")
    name = default_name if parts.name is None else parts.name
    if not isinstance(name, str) or not name:
        problems.append(f"name: must be a non-empty string, got {name!r}")
    if not isinstance(parts.source, str):
        problems.append(f"source: must be a string, got {parts.source!r}")
    prep = _Prepared(camera=cam or {}, audio=wav, params=prm, body=bdy, split=spl, views=vws, truth=trth,
                     features=feats or {}, background=bg, name=name, source=parts.source)
    if num_frames is not None:
        problems += _count_problems(prep, num_frames, fps)
    if problems:
        return None, problems
    return replace(prep, num_frames=num_frames), []


def _params_problems(params: dict[str, np.ndarray], body: dict[str, Any] | None, num_frames: int | None
                     ) -> list[str]:
    b = body or {}
    return params_problems(params, num_frames=num_frames, num_joints=b.get("num_joints"),
                           num_betas=b.get("num_betas"), num_expressions=b.get("num_expressions"), where="params")


def _count_problems(prep: _Prepared, num_frames: int, fps: Any) -> list[str]:
    """The checks that need the frame count: per-frame parameters, split, view frames, feature lengths,
    audio duration (each skipped where its input is absent or already refused)."""
    problems: list[str] = []
    if prep.params is not None:
        problems += _params_problems(prep.params, prep.body, num_frames)
    if prep.split is not None:
        problems += _fix(split_problems(prep.split, num_frames, "split: field '"))
    for name, view in prep.views.items():
        problems += frame_list_problems(view.frames, num_frames, f"views['{name}']: field 'frames'")
    for key, arr in prep.features.items():
        if arr.ndim >= 1 and arr.shape[0] != num_frames:
            problems.append(f"features: field '{key}' has shape {arr.shape}, expected first dimension {num_frames}")
    wav = prep.audio
    if wav is not None and is_number(fps) and fps > 0:
        if not audio_covers_video(len(wav), AUDIO_SAMPLE_RATE, num_frames, float(fps)):
            problems.append(audio_short_message("audio", len(wav), AUDIO_SAMPLE_RATE, num_frames, float(fps)))
    return problems


# ----------------------------------------------------------------------------------------------- files


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def meta_json(meta: Mapping[str, Any]) -> str:
    """meta.json text: objects indented, lists that hold no objects on one line (frame lists, matrices)."""

    def fmt(obj: Any, indent: int) -> str:
        if isinstance(obj, Mapping) and obj:
            pad = "  " * (indent + 1)
            items = [f"{pad}{json.dumps(str(k))}: {fmt(v, indent + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
        if isinstance(obj, list) and any(isinstance(x, Mapping) for x in obj):
            pad = "  " * (indent + 1)
            return "[\n" + ",\n".join(pad + fmt(x, indent + 1) for x in obj) + "\n" + "  " * indent + "]"
        return json.dumps(obj, allow_nan=False)

    return fmt(_json_ready(meta), 0) + "\n"


def _existing_problem(out_dir: Path, overwrite: bool) -> str | None:
    """Why ``out_dir`` cannot be written, or None."""
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        return f"out_dir: {out_dir} exists and is not a folder"
    if not any(out_dir.iterdir()):
        return None
    if not overwrite:
        return f"out_dir: {out_dir} exists and is not empty (pass overwrite=True to replace it)"
    try:
        meta = json.loads((out_dir / META_FILE).read_text())
        is_subject = isinstance(meta, dict) and meta.get("format") == FORMAT_NAME
    except (OSError, ValueError):
        is_subject = False
    if not is_subject:
        return f"out_dir: {out_dir} is not empty and is not a thgs subject; refusing to replace it"
    return None


class SubjectWriter:
    """Write a subject frame by frame (for long videos); nothing appears at ``out_dir`` until
    :meth:`finish` succeeds.

    ::

        with SubjectWriter(out, fps=25, width=w, height=h) as sw:
            for image, mask in frames:
                sw.add_frame(image, mask)          # [H, W, 3] uint8, [H, W] uint8/bool or None
            sw.finish(camera=cam, audio=(samples, sr), params=params, body=dict(model="smplx"))

    Every frame must have a mask or none may. An exception inside the ``with`` block (or leaving it
    without :meth:`finish`) removes everything written so far.
    """

    def __init__(self, out_dir: str | os.PathLike, *, fps: float, width: int, height: int,
                 overwrite: bool = False):
        self.out_dir = Path(os.path.abspath(out_dir))
        problems = []
        if not is_number(fps) or not fps > 0:
            problems.append(f"fps: must be a positive number, got {fps!r}")
        for key, val in (("width", width), ("height", height)):
            if not (isinstance(val, (int, np.integer)) and not isinstance(val, bool) and val > 0):
                problems.append(f"{key}: must be a positive integer, got {val!r}")
        why = _existing_problem(self.out_dir, overwrite)
        if why:
            problems.append(why)
        if problems:
            raise SubjectError(self.out_dir, problems)
        self.fps = float(fps)
        self.width, self.height = int(width), int(height)
        self.overwrite = overwrite
        self.num_frames = 0
        self.has_masks: bool | None = None
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        from thgs.utils.io import partial_prefix, sweep_stale

        sweep_stale(self.out_dir.parent, self.out_dir.name)  # staging folders of killed writers
        self._tmp: Path | None = Path(tempfile.mkdtemp(prefix=partial_prefix(self.out_dir.name),
                                                       dir=self.out_dir.parent))
        (self._tmp / IMAGES_DIR).mkdir()
        # a writer dropped without finish() or abort() still removes its staging folder
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    def _staging(self) -> Path:
        if self._tmp is None:
            raise RuntimeError(f"SubjectWriter for {self.out_dir} is closed (finished or aborted)")
        return self._tmp

    def add_frame(self, image: Any, mask: Any = None) -> int:
        """Check and write one frame (and its mask); returns its index. Bad input raises
        :class:`SubjectError` and adds nothing (the writer stays usable)."""
        tmp = self._staging()
        i = self.num_frames
        if i >= MAX_FRAMES:
            raise SubjectError(self.out_dir, [f"frames: at most {MAX_FRAMES} frames are supported"])
        img, p = _image_array(image, self.height, self.width, f"frames[{i}]")
        problems = [p] if p else []
        m = None
        if mask is not None:
            m, p = _mask_array(mask, self.height, self.width, f"masks[{i}]")
            if p:
                problems.append(p)
        if self.has_masks is not None and self.has_masks != (mask is not None):
            problems.append(f"masks[{i}]: {'missing' if mask is None else 'given'}, but the earlier frames "
                            f"{'have' if self.has_masks else 'have no'} masks (all frames or none)")
        if problems:
            raise SubjectError(self.out_dir, problems)
        assert img is not None
        if m is not None and self.has_masks is None:
            (tmp / MASKS_DIR).mkdir()
        self._submit(tmp / IMAGES_DIR / frame_file(i), img)
        if m is not None:
            self._submit(tmp / MASKS_DIR / frame_file(i), m)
        self.has_masks = mask is not None
        self.num_frames += 1
        return i

    def _submit(self, path: Path, array: np.ndarray) -> None:
        """Encode a PNG on the worker threads (PIL releases the GIL while compressing); at most a few
        frames wait in memory, and an encoding error surfaces here or in :meth:`finish`."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=_ENCODE_WORKERS, thread_name_prefix="thgs-png")
        self._pending.append(self._pool.submit(_save_png, path, array.copy()))
        while len(self._pending) > 2 * _ENCODE_WORKERS:
            self._pending.popleft().result()

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _close_pool(self) -> None:
        for fut in self._pending:
            fut.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._pending.clear()

    def finish(self, **parts: Any) -> Path:
        """Check everything against the frames written, write the rest and rename the subject into place.

        Keyword arguments are the fields of :class:`SubjectParts` (those of :func:`write_subject` but the
        frames and masks; ``camera`` is required). On any problem the partial subject is removed and
        :class:`SubjectError` lists every problem.
        """
        self._staging()
        try:
            prep, problems = _prepare(SubjectParts(**parts), self._spec(), self.num_frames or None, self.out_dir.name)
            if self.num_frames == 0:
                problems.insert(0, "frames: no frames were given")
            if problems:
                raise SubjectError(self.out_dir, problems)
            assert prep is not None
        except BaseException:
            self.abort()
            raise
        return self._complete(prep)

    def _spec(self) -> _FrameSpec:
        return _FrameSpec(width=self.width, height=self.height, fps=self.fps)

    def _complete(self, prep: _Prepared) -> Path:
        """Write the prepared inputs beside the frames and rename the subject into place; the checks that
        need the frame count run here when ``prep`` was checked before the frames were counted."""
        tmp = self._staging()
        try:
            self._drain()
            self._close_pool()
            if prep.num_frames is None:
                problems = _count_problems(prep, self.num_frames, self.fps)
                if problems:
                    raise SubjectError(self.out_dir, problems)
            elif prep.num_frames != self.num_frames:
                raise SubjectError(self.out_dir, [f"frames: {self.num_frames} written, but the inputs were checked "
                                                  f"for {prep.num_frames}"])
            self._write_rest(tmp, prep)
            why = _existing_problem(self.out_dir, self.overwrite)
            if why:
                raise SubjectError(self.out_dir, [why])
            _install(tmp, self.out_dir)
            self._tmp = None
            self._cleanup.detach()
            return self.out_dir
        except BaseException:
            self.abort()
            raise

    def _write_rest(self, tmp: Path, prep: _Prepared) -> None:
        from thgs.io.audio_io import write_wav

        T = self.num_frames
        split = prep.split if prep.split is not None else default_split(T)
        if prep.params is not None:
            np.savez(tmp / PARAMS_FILE, **prep.params)
        audio_meta = None
        if prep.audio is not None:
            write_wav(tmp / AUDIO_FILE, prep.audio, AUDIO_SAMPLE_RATE)
            n = int(len(prep.audio))
            audio_meta = {"file": AUDIO_FILE, "sample_rate": AUDIO_SAMPLE_RATE, "num_samples": n,
                          "duration": round(n / AUDIO_SAMPLE_RATE, 6)}
        if prep.features:
            (tmp / FEATURES_DIR).mkdir()
            for key, arr in prep.features.items():
                np.save(tmp / FEATURES_DIR / f"{key}.npy", arr)
        views_meta = {}
        for vname, v in prep.views.items():
            vdir = tmp / VIEWS_DIR / vname
            vdir.mkdir(parents=True)
            for f, img in zip(v.frames, v.images):
                _save_png(vdir / frame_file(f), img)
            if v.masks is not None:
                (vdir / MASKS_DIR).mkdir()
                for f, m in zip(v.frames, v.masks):
                    _save_png(vdir / MASKS_DIR / frame_file(f), m)
            views_meta[vname] = {**v.camera, "frames": list(v.frames), "masks": v.masks is not None}
        if prep.truth is not None:
            np.savez(tmp / TRUTH_FILE, **prep.truth)
        from thgs import __version__

        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": prep.name,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "num_frames": T,
            "camera": {k: v for k, v in prep.camera.items() if k not in ("width", "height")},
            "background": prep.background,
            "body": prep.body,
            "split": {k: list(v) for k, v in split.items()},
            "audio": audio_meta,
            "has": {
                "masks": bool(self.has_masks),
                "body_params": prep.params is not None,
                "audio_features": sorted(prep.features),
                "views": sorted(prep.views),
            },
            "views": views_meta,
            "source": prep.source,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "thgs_version": __version__,
        }
        (tmp / META_FILE).write_text(meta_json(meta), encoding="utf-8")

    def abort(self) -> None:
        """Remove everything written so far (safe to call more than once)."""
        self._close_pool()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "SubjectWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()  # a no-op after finish()


def _install(tmp: Path, out_dir: Path) -> None:
    """Rename the finished staging folder to ``out_dir``, replacing an empty folder or an old subject."""
    if out_dir.exists() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
    os.replace(out_dir, trash / "old")
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(trash / "old", out_dir)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _sized(x: Any) -> int | None:
    try:
        return len(x)
    except TypeError:
        return None


def write_subject(out_dir: str | os.PathLike, *, frames: Iterable[Any], fps: float,
                  masks: Iterable[Any] | None = None, overwrite: bool = False, progress: bool = True,
                  **parts: Any) -> Path:
    """Write a subject folder; returns ``out_dir``.

    Every input is checked once, before the first frame is written (the checks that need the frame count
    after the last one when ``frames`` is an iterator of unknown length).

    Args (the keyword arguments after ``progress`` are the fields of :class:`SubjectParts`):
        frames: [H, W, 3] uint8 RGB images (a sequence, or any iterable: counted while written).
        fps: frame rate of the video.
        camera: ``thgs.render.Camera`` or dict(K [3, 3], world_to_cam [4, 4], width, height; optional
            ``estimated`` bool for a guessed camera). OpenCV convention. Width/height default to the frames'.
        audio: ``(samples, sample_rate)`` (float32 mono in [-1, 1], or int16) or a path to any audio/video
            file PyAV decodes; converted to 16 kHz mono. Must last as long as the video, less one frame.
        masks: one [H, W] mask per frame (bool, uint8 with 255 = person, or float in [0, 1]), or None.
        params: pose [T, J, 3] (or [T, J*3]) local axis-angle, root first; transl [T, 3]; betas [S]
            (or [1, S]; default empty); expression [T, E] (default [T, 0]); any other arrays are kept.
        body: dict(model="toy"|"anny"|"smplx", options={...} for load_body_model); required with params.
            num_joints / num_betas / num_expressions are taken from params when not given.
        split: dict(train=[...], test=[...]) frame indices; None -> :func:`default_split`.
        name: subject name (default: the folder name). background: [r, g, b] in 0..1 the frames were
            composited on, or None for a raw background.
        views: {name: dict(camera=..., frames=[indices], images=[[h, w, 3] uint8], masks=optional)}.
        truth: dict of arrays -> truth.npz. features: {encoder: array [T, ...]} -> features/<encoder>.npy.
        source: free text ("synth", "ingest:<file>", ...). overwrite: replace an existing subject.
        progress: show a progress bar while frames are written.

    Raises:
        SubjectError: listing every problem with the inputs; nothing is left on disk.
    """
    out_dir = Path(os.path.abspath(out_dir))
    n = _sized(frames)
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise SubjectError(out_dir, ["frames: no frames were given"]) from None
    first_arr = np.asarray(first.detach().cpu().numpy() if hasattr(first, "detach") else first)
    if first_arr.ndim != 3:
        raise SubjectError(out_dir, [f"frames[0]: has shape {first_arr.shape}, expected (H, W, 3)"])
    height, width = int(first_arr.shape[0]), int(first_arr.shape[1])
    if n is not None and n > MAX_FRAMES:
        raise SubjectError(out_dir, [f"frames: {n} given, at most {MAX_FRAMES} are supported"])
    prep, problems = _prepare(SubjectParts(**parts), _FrameSpec(width=width, height=height, fps=fps), n,
                              out_dir.name)
    nm = _sized(masks) if masks is not None else None
    if n is not None and nm is not None and nm != n:
        problems.append(f"masks: {nm} given for {n} frames")
    why = _existing_problem(out_dir, overwrite)
    if why:
        problems.append(why)
    if problems:
        raise SubjectError(out_dir, problems)
    assert prep is not None
    from tqdm import tqdm

    mask_it = iter(masks) if masks is not None else None
    with SubjectWriter(out_dir, fps=fps, width=width, height=height, overwrite=overwrite) as sw, \
            tqdm(total=n, desc=f"writing {prep.name}", unit="frame", disable=not progress, leave=False) as bar:
        for image in itertools.chain([first], it):
            mask = None
            if mask_it is not None:
                mask = next(mask_it, None)
                if mask is None:
                    raise SubjectError(out_dir, [f"masks: fewer masks than frames (none for frame {sw.num_frames})"])
            sw.add_frame(image, mask)
            bar.update(1)
        if mask_it is not None and next(mask_it, None) is not None:
            raise SubjectError(out_dir, [f"masks: more masks than the {sw.num_frames} frames"])
        return sw._complete(prep)


def add_features(subject_dir: str | os.PathLike, encoder: str, features: Any) -> Path:
    """Store per-frame audio features ``[num_frames, ...]`` as ``features/<encoder>.npy`` in an existing
    subject and list the encoder in meta.json ``has.audio_features`` (each file written atomically).
    Replaces features of the same name. Returns the .npy path."""
    from thgs.utils.io import atomic_path, write_text

    root = Path(subject_dir)
    meta_path = root / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
        T = int(meta["num_frames"])
        has = meta["has"]
        if meta.get("format") != FORMAT_NAME:
            raise ValueError("not a thgs subject")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SubjectError(root, [f"{META_FILE}: cannot read the subject's num_frames and has ({exc})"]) from exc
    if not is_safe_name(encoder):
        raise SubjectError(root, [f"features: encoder name {encoder!r} is not usable as a file name"])
    arr = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features)
    if arr.dtype.kind not in "fiu" or arr.ndim < 1 or arr.shape[0] != T:
        raise SubjectError(root, [f"features: '{encoder}' has shape {arr.shape} and dtype {arr.dtype}, expected a "
                                  f"numeric array with first dimension num_frames = {T}"])
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise SubjectError(root, [f"features: '{encoder}' holds non-finite values"])
    path = root / FEATURES_DIR / f"{encoder}.npy"
    with atomic_path(path) as tmp:
        np.save(tmp, arr)
    names = sorted(set(has.get("audio_features", [])) | {encoder})
    if names != has.get("audio_features"):
        has["audio_features"] = names
        write_text(meta_path, meta_json(meta))
    return path
