"""The thgs subject format: file names, constants, and the checks shared by the writer and the reader.

A subject is one folder (see ``docs/data-format.md``)::

    SUBJECT/
      meta.json                 format metadata (:func:`meta_problems` checks it)
      images/000000.png ...     RGB frames, 8-bit PNG, named by frame index
      masks/000000.png ...      foreground masks, 8-bit grayscale (255 = person), optional
      params.npz                per-frame body parameters, optional (:func:`params_problems`)
      audio.wav                 16-bit PCM mono at 16 kHz, optional
      features/<encoder>.npy    per-frame audio features, first dimension = num_frames, optional
      views/<name>/000000.png   extra ground-truth views of some frames, optional
      truth.npz                 ground truth of synthetic subjects, optional

Every check returns a list of messages (empty when fine); each message starts with the file it is about
and names the field, e.g. ``"params.npz: field 'pose' has shape (99, 55, 3), expected (100, 55, 3)"``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from thgs.body.registry import BODY_MODELS
from thgs.errors import ThgsError

FORMAT_NAME = "thgs-subject"
FORMAT_VERSION = 1

META_FILE = "meta.json"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
PARAMS_FILE = "params.npz"
AUDIO_FILE = "audio.wav"
FEATURES_DIR = "features"
VIEWS_DIR = "views"
TRUTH_FILE = "truth.npz"

AUDIO_SAMPLE_RATE = 16000
FRAME_DIGITS = 6
MAX_FRAMES = 10**FRAME_DIGITS
IMAGE_SUFFIX = ".png"

#: The arrays ``params.npz`` must hold; other arrays are allowed and preserved.
PARAM_KEYS = ("pose", "transl", "betas", "expression")

#: Top-level keys of meta.json and the JSON types they must have (``None`` allowed where listed).
META_KEYS: dict[str, str] = {
    "format": "str",
    "version": "int",
    "name": "str",
    "fps": "number",
    "width": "int",
    "height": "int",
    "num_frames": "int",
    "camera": "object",
    "background": "[r, g, b] or null",
    "body": "object or null",
    "split": "object",
    "audio": "object or null",
    "has": "object",
    "views": "object",
    "source": "str",
    "created": "str",
    "thgs_version": "str",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class SubjectError(ThgsError, ValueError):
    """A subject (on disk, or the input given to the writer) has problems.

    ``problems`` lists every one, each naming the file (or argument) and field; ``path`` is the subject.
    The message is one line ``PATH: PROBLEM`` for a single problem, else a count and one line per problem.
    """

    def __init__(self, path: Any, problems: Sequence[str]):
        self.path = path
        self.problems = list(problems)
        n = len(self.problems)
        if n == 1:  # one line: the subject, then the problem (which names the file and field)
            super().__init__(f"{path}: {self.problems[0]}")
            return
        head = f"{path}: {n} problem{'s' if n != 1 else ''}"
        super().__init__(head + "".join(f"\n  - {p}" for p in self.problems))


def frame_file(i: int) -> str:
    """The file name of frame ``i``: ``000123.png``."""
    return f"{int(i):0{FRAME_DIGITS}d}{IMAGE_SUFFIX}"


def frame_index(file_name: str) -> int | None:
    """The frame index of a file name written by :func:`frame_file`, or None if it is not one."""
    stem, dot, ext = file_name.partition(".")
    if dot != "." or "." + ext != IMAGE_SUFFIX or len(stem) != FRAME_DIGITS or not stem.isdigit():
        return None
    return int(stem)


def is_safe_name(name: Any) -> bool:
    """True for names usable as a file or folder name inside a subject (feature encoders, views)."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and len(name) <= 100


def default_split(num_frames: int) -> dict[str, list[int]]:
    """The paper's split (section 5.1): the last sixth of the frames is the test set; the first five
    sixths, sampled every 4th frame starting at frame 0, are the training set.

    With 1800 frames: test = 1500..1799 (300 frames), train = 0, 4, ..., 1496 (375 frames). The test set
    holds ``num_frames // 6`` frames, at least one when there are two frames or more.
    """
    n = int(num_frames)
    if n < 1:
        raise ValueError(f"default_split: num_frames must be >= 1, got {num_frames}")
    n_test = n // 6
    if n_test == 0 and n >= 2:
        n_test = 1
    cut = n - n_test
    return {"train": list(range(0, cut, 4)), "test": list(range(cut, n))}


SHORT_CLIP_SECONDS = 60.0
"""Videos shorter than this use the short-clip rule of :func:`video_split`."""


def video_split(num_frames: int, fps: float, *, test_fraction: float = 0.2) -> dict[str, list[int]]:
    """The split of a recorded video: the paper's rule for long videos, a denser one for short clips.

    - at least :data:`SHORT_CLIP_SECONDS` long: :func:`default_split` (last sixth held out, every 4th frame
      of the rest trains; 60 s at 30 fps gives 375 training frames);
    - shorter: the last ``test_fraction`` (20%) of the frames is the test set and *every* frame before it
      trains (a 20 s clip at 25 fps: 400 training, 100 test frames; every 4th would leave 100).

    The test set is at least one frame when there are two frames or more.
    """
    n = int(num_frames)
    if n < 1:
        raise ValueError(f"video_split: num_frames must be >= 1, got {num_frames}")
    if not fps > 0:
        raise ValueError(f"video_split: fps must be positive, got {fps}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"video_split: test_fraction must be in (0, 1), got {test_fraction}")
    if n / fps >= SHORT_CLIP_SECONDS:
        return default_split(n)
    n_test = int(round(n * test_fraction))
    if n_test == 0 and n >= 2:
        n_test = 1
    cut = n - n_test
    return {"train": list(range(cut)), "test": list(range(cut, n))}


# ----------------------------------------------------------------------------------------------- types


def is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_number(x: Any) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
            and math.isfinite(float(x)))


def _matrix(value: Any, rows: int, cols: int) -> np.ndarray | None:
    """``value`` as a finite float64 [rows, cols] array, or None if it is not one."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (rows, cols) or not np.isfinite(arr).all():
        return None
    return arr


def camera_problems(cam: Any, where: str) -> list[str]:
    """Check a camera given as ``{K: 3x3, world_to_cam: 4x4}`` (OpenCV convention).

    ``where`` prefixes the messages, e.g. ``"meta.json: field 'camera"``.
    """
    if not isinstance(cam, Mapping):
        return [f"{where}' must be an object with K and world_to_cam, got {type(cam).__name__}"]
    out: list[str] = []
    if "K" not in cam:
        out.append(f"{where}.K' is missing")
    else:
        K = _matrix(cam["K"], 3, 3)
        if K is None:
            out.append(f"{where}.K' must be a 3x3 matrix of finite numbers")
        else:
            if not (K[0, 0] > 0 and K[1, 1] > 0):
                out.append(f"{where}.K' focal lengths K[0][0]={K[0, 0]:g}, K[1][1]={K[1, 1]:g} must be > 0")
            if not np.allclose(K[2], [0, 0, 1], atol=1e-6) or abs(K[1, 0]) > 1e-6:
                out.append(f"{where}.K' must be upper triangular with last row [0, 0, 1], got {K.tolist()}")
    if "world_to_cam" not in cam:
        out.append(f"{where}.world_to_cam' is missing")
    else:
        M = _matrix(cam["world_to_cam"], 4, 4)
        if M is None:
            out.append(f"{where}.world_to_cam' must be a 4x4 matrix of finite numbers")
        else:
            if not np.allclose(M[3], [0, 0, 0, 1], atol=1e-6):
                out.append(f"{where}.world_to_cam' last row must be [0, 0, 0, 1], got {M[3].tolist()}")
            R = M[:3, :3]
            if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
                out.append(f"{where}.world_to_cam' rotation part is not a rotation (orthonormal, det +1)")
    for key in ("width", "height"):
        if key in cam and not (is_int(cam[key]) and cam[key] > 0):
            out.append(f"{where}.{key}' must be a positive integer, got {cam[key]!r}")
    return out


def frame_list_problems(frames: Any, num_frames: int, where: str) -> list[str]:
    """Check a list of frame indices: integers in ``[0, num_frames)`` without repeats."""
    if not isinstance(frames, (list, tuple)):
        return [f"{where} must be a list of frame indices, got {type(frames).__name__}"]
    bad = [f for f in frames if not is_int(f)]
    if bad:
        return [f"{where} holds non-integer entries, e.g. {bad[0]!r}"]
    out = []
    outside = [int(f) for f in frames if not 0 <= f < num_frames]
    if outside:
        out.append(f"{where} holds indices outside 0..{num_frames - 1}: {_few(outside)}")
    if len(set(frames)) != len(frames):
        seen: set[int] = set()
        dup = sorted({int(f) for f in frames if f in seen or seen.add(f)})  # type: ignore[func-returns-value]
        out.append(f"{where} repeats indices {_few(dup)}")
    return out


def split_problems(split: Any, num_frames: int, where: str) -> list[str]:
    """Check a split ``{train: [...], test: [...], ...}``: known lists, in range, pairwise disjoint."""
    if not isinstance(split, Mapping):
        return [f"{where}' must be an object with lists 'train' and 'test'"]
    out: list[str] = []
    for key in ("train", "test"):
        if key not in split:
            out.append(f"{where}.{key}' is missing")
    sets: dict[str, set[int]] = {}
    for key, frames in split.items():
        p = frame_list_problems(frames, num_frames, f"{where}.{key}'")
        out += p
        if not p:
            sets[str(key)] = {int(f) for f in frames}
    if "train" in sets and not sets["train"]:
        out.append(f"{where}.train' is empty")
    keys = sorted(sets)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            both = sorted(sets[a] & sets[b])
            if both:
                out.append(f"{where}.{a}' and '{b}' share frames {_few(both)}")
    return out


def _few(items: Sequence[Any], n: int = 5) -> str:
    items = list(items)
    text = ", ".join(str(x) for x in items[:n])
    return text + (f", ... ({len(items)} in all)" if len(items) > n else "")


def shape_text(shape: Sequence[Any]) -> str:
    """``(100, 55, 3)``; symbolic entries (strings) print bare: ``(100, J, 3)``."""
    parts = [str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


# ---------------------------------------------------------------------------------------------- params


def params_problems(arrays: Mapping[str, Any], *, num_frames: int | None, num_joints: int | None = None,
                    num_betas: int | None = None, num_expressions: int | None = None,
                    where: str = PARAMS_FILE) -> list[str]:
    """Check body parameters: pose [T, J, 3], transl [T, 3], betas [S], expression [T, E].

    ``num_frames`` None accepts any T that the arrays agree on. Known J, S, E are enforced when given.
    Core arrays must be finite floats; every array must be numeric or boolean (no objects).
    """
    out: list[str] = []
    for key in PARAM_KEYS:
        if key not in arrays:
            out.append(f"{where}: field '{key}' is missing")
    T = num_frames
    if T is None:  # the frame count the per-frame arrays agree on, taken from pose or transl
        for key in ("pose", "transl", "expression"):
            a = arrays.get(key)
            if a is not None and np.ndim(a) >= 1:
                T = int(np.shape(a)[0])
                break
    t_sym: Any = T if T is not None else "T"
    expected: dict[str, tuple] = {
        "pose": (t_sym, num_joints if num_joints is not None else "J", 3),
        "transl": (t_sym, 3),
        "betas": (num_betas if num_betas is not None else "S",),
        "expression": (t_sym, num_expressions if num_expressions is not None else "E"),
    }
    for key, exp in expected.items():
        if key not in arrays:
            continue
        a = arrays[key]
        if not isinstance(a, np.ndarray):
            out.append(f"{where}: field '{key}' must be an array, got {type(a).__name__}")
            continue
        if a.dtype.kind not in "fiu":
            out.append(f"{where}: field '{key}' has dtype {a.dtype}, expected a float array")
            continue
        ok = a.ndim == len(exp) and all(isinstance(e, str) or a.shape[d] == e for d, e in enumerate(exp))
        if not ok:
            out.append(f"{where}: field '{key}' has shape {shape_text(a.shape)}, expected {shape_text(exp)}")
            continue
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))
            first = tuple(int(x) for x in bad[0])
            what = "NaN" if np.isnan(a[first]) else "inf"
            out.append(f"{where}: field '{key}' holds {len(bad)} non-finite value(s) ({what} at index {first})")
    for key, a in arrays.items():
        if key in expected:
            continue
        if not is_safe_name(key):
            out.append(f"{where}: field name {key!r} is not a plain identifier")
        elif not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            out.append(f"{where}: field '{key}' must be a numeric or boolean array, got {kind}")
    return out


# ------------------------------------------------------------------------------------------------ meta


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return is_int(value)
    if kind == "number":
        return is_number(value)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "object or null":
        return value is None or isinstance(value, Mapping)
    if kind == "[r, g, b] or null":
        return value is None or (isinstance(value, (list, tuple)) and len(value) == 3
                                 and all(is_number(c) and 0.0 <= float(c) <= 1.0 for c in value))
    raise AssertionError(kind)


def meta_problems(meta: Any, where: str = META_FILE) -> list[str]:
    """Every problem with a parsed meta.json: required keys, their types, and their consistency."""
    if not isinstance(meta, Mapping):
        return [f"{where}: must hold a JSON object, got {type(meta).__name__}"]
    out: list[str] = []
    for key, kind in META_KEYS.items():
        if key not in meta:
            out.append(f"{where}: field '{key}' is missing")
        elif not _type_ok(meta[key], kind):
            out.append(f"{where}: field '{key}' must be {kind}, got {meta[key]!r:.80}")
    if out and any("'format'" in p or "'version'" in p for p in out):
        return out
    ok = lambda k: k in meta and _type_ok(meta[k], META_KEYS[k])  # noqa: E731
    if ok("format") and meta["format"] != FORMAT_NAME:
        return out + [f"{where}: field 'format' is {meta['format']!r}, expected {FORMAT_NAME!r}"]
    if ok("version") and meta["version"] != FORMAT_VERSION:
        hint = " (written by a newer thgs; upgrade)" if meta["version"] > FORMAT_VERSION else ""
        return out + [f"{where}: field 'version' is {meta['version']}, this thgs reads version "
                      f"{FORMAT_VERSION}{hint}"]
    for key in ("width", "height", "num_frames"):
        if ok(key) and meta[key] < 1:
            out.append(f"{where}: field '{key}' must be >= 1, got {meta[key]}")
    if ok("num_frames") and meta["num_frames"] > MAX_FRAMES:
        out.append(f"{where}: field 'num_frames' is {meta['num_frames']}, at most {MAX_FRAMES} are supported")
    if ok("fps") and not meta["fps"] > 0:
        out.append(f"{where}: field 'fps' must be > 0, got {meta['fps']}")
    if ok("name") and not meta["name"]:
        out.append(f"{where}: field 'name' is empty")
    if ok("camera"):
        out += camera_problems(meta["camera"], f"{where}: field 'camera")
    T = meta["num_frames"] if ok("num_frames") and meta["num_frames"] >= 1 else None
    if ok("split") and T is not None:
        out += split_problems(meta["split"], T, f"{where}: field 'split")
    has = meta.get("has") if ok("has") else None
    if has is not None:
        for key, kind in (("masks", bool), ("body_params", bool), ("audio_features", list), ("views", list)):
            if key not in has:
                out.append(f"{where}: field 'has.{key}' is missing")
            elif not isinstance(has[key], kind):
                out.append(f"{where}: field 'has.{key}' must be a {'boolean' if kind is bool else 'list'}, "
                           f"got {has[key]!r}")
        for key in ("audio_features", "views"):
            names = has.get(key)
            if isinstance(names, list):
                for n in names:
                    if not is_safe_name(n):
                        out.append(f"{where}: field 'has.{key}' holds an unusable name {n!r}")
    if ok("body") and meta["body"] is not None:
        out += _body_problems(meta["body"], f"{where}: field 'body")
    if has is not None and has.get("body_params") is True and ok("body") and meta["body"] is None:
        out.append(f"{where}: field 'body' is null but 'has.body_params' is true (which model do the poses drive?)")
    if ok("audio") and meta["audio"] is not None:
        out += _audio_meta_problems(meta["audio"], f"{where}: field 'audio")
    if ok("views"):
        views = meta["views"]
        for vname, v in views.items():
            w = f"{where}: field 'views.{vname}"
            if not is_safe_name(vname):
                out.append(f"{w}' is not a usable folder name")
                continue
            out += camera_problems(v, w)
            if isinstance(v, Mapping):
                if "frames" not in v:
                    out.append(f"{w}.frames' is missing")
                elif T is not None:
                    out += frame_list_problems(v["frames"], T, f"{w}.frames'")
                if "masks" in v and not isinstance(v["masks"], bool):
                    out.append(f"{w}.masks' must be a boolean, got {v['masks']!r}")
        if has is not None and isinstance(has.get("views"), list) and set(has["views"]) != set(views):
            out.append(f"{where}: field 'has.views' lists {sorted(has['views'])} but field 'views' holds "
                       f"{sorted(views)}")
    return out


def _body_problems(body: Mapping[str, Any], w: str) -> list[str]:
    out: list[str] = []
    model = body.get("model")
    if model is None:
        out.append(f"{w}.model' is missing")
    elif model not in BODY_MODELS:
        out.append(f"{w}.model' is {model!r}, expected one of {', '.join(BODY_MODELS)}")
    if "options" in body and not isinstance(body["options"], Mapping):
        out.append(f"{w}.options' must be an object, got {body['options']!r:.60}")
    for key, low in (("num_joints", 1), ("num_betas", 0), ("num_expressions", 0)):
        if key in body and body[key] is not None and not (is_int(body[key]) and body[key] >= low):
            out.append(f"{w}.{key}' must be an integer >= {low}, got {body[key]!r}")
    return out


def _audio_meta_problems(audio: Mapping[str, Any], w: str) -> list[str]:
    out: list[str] = []
    f = audio.get("file")
    if f is None:
        out.append(f"{w}.file' is missing")
    elif f != AUDIO_FILE:
        out.append(f"{w}.file' is {f!r}, expected {AUDIO_FILE!r}")
    sr = audio.get("sample_rate")
    if sr is None:
        out.append(f"{w}.sample_rate' is missing")
    elif sr != AUDIO_SAMPLE_RATE or not is_int(sr):
        out.append(f"{w}.sample_rate' is {sr!r}, expected {AUDIO_SAMPLE_RATE}")
    n = audio.get("num_samples")
    if n is None:
        out.append(f"{w}.num_samples' is missing")
    elif not (is_int(n) and n >= 0):
        out.append(f"{w}.num_samples' must be an integer >= 0, got {n!r}")
    d = audio.get("duration")
    if d is None:
        out.append(f"{w}.duration' is missing")
    elif not is_number(d):
        out.append(f"{w}.duration' must be a number, got {d!r}")
    elif is_int(n) and sr == AUDIO_SAMPLE_RATE and abs(float(d) - n / AUDIO_SAMPLE_RATE) > 1e-3:
        out.append(f"{w}.duration' is {d}, but num_samples / sample_rate = {n / AUDIO_SAMPLE_RATE:.4f}")
    return out


def audio_covers_video(num_samples: int, sample_rate: int, num_frames: int, fps: float) -> bool:
    """The rule for audio length: it lasts at least as long as the video, less one frame."""
    return num_samples / sample_rate >= (num_frames - 1) / fps - 1e-6


def audio_short_message(where: str, num_samples: int, sample_rate: int, num_frames: int, fps: float) -> str:
    dur = num_samples / sample_rate
    return (f"{where}: audio lasts {dur:.3f} s ({num_samples} samples at {sample_rate} Hz), shorter than the "
            f"video ({num_frames} frames at {fps:g} fps = {num_frames / fps:.3f} s; at least "
            f"{(num_frames - 1) / fps:.3f} s needed)")
