"""Read subjects: the :class:`Subject` interface the trainer uses, our folder layout, and a layout registry.

``open_subject(path)`` picks the layout of ``path`` (our ``meta.json`` folder, or any layout registered
with :func:`register_layout`) and, with ``validate=True``, raises :class:`SubjectError` listing every
problem the cheap checks find. ``subject.problems()`` runs the same checks and also decodes a sample of
the images (``decode="all"``: every image).
"""

from __future__ import annotations

import abc
import json
import operator
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from thgs.data.format import (
    AUDIO_FILE,
    AUDIO_SAMPLE_RATE,
    FEATURES_DIR,
    IMAGES_DIR,
    MASKS_DIR,
    META_FILE,
    PARAMS_FILE,
    TRUTH_FILE,
    VIEWS_DIR,
    SubjectError,
    audio_covers_video,
    audio_short_message,
    frame_file,
    frame_index,
    meta_problems,
    params_problems,
)

if TYPE_CHECKING:
    from thgs.render.base import Camera

Decode = Literal["none", "sample", "all"]

#: How many frames ``problems(decode="sample")`` decodes (first, last and evenly spaced between).
SAMPLE_DECODES = 8


class Subject(abc.ABC):
    """One talking-person recording, as the trainer sees it, whatever its layout on disk.

    Attributes:
        name, root (the folder), fps, width, height (pixels), num_frames (T).
        camera: ``thgs.render.Camera`` (one static camera, OpenCV convention).
        background: (r, g, b) in 0..1 the frames were composited on, or None for a raw background.
        split: {"train": [frame indices], "test": [frame indices]}.
        body: dict(model, options, num_joints, num_betas, num_expressions), or None without body params.
        views: {name: {"camera": Camera, "frames": [indices], "masks": bool}} extra ground-truth views.
        has_masks, has_params, has_audio: what the subject holds.
    """

    name: str
    root: Path
    fps: float
    width: int
    height: int
    num_frames: int
    camera: "Camera"
    background: tuple[float, float, float] | None
    split: dict[str, list[int]]
    body: dict[str, Any] | None
    views: dict[str, dict[str, Any]]
    has_masks: bool
    has_params: bool
    has_audio: bool

    @abc.abstractmethod
    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` as [H, W, 3] uint8 RGB."""

    @abc.abstractmethod
    def mask(self, i: int) -> np.ndarray | None:
        """Foreground mask of frame ``i`` as [H, W] uint8 (255 = person), or None without masks."""

    @abc.abstractmethod
    def params(self) -> dict[str, np.ndarray]:
        """Body parameters: pose [T, J, 3] local axis-angle (root first), transl [T, 3], betas [S],
        expression [T, E], plus any other per-subject arrays (e.g. keypoints [T, K, 3])."""

    @abc.abstractmethod
    def audio(self) -> tuple[np.ndarray, int]:
        """The speech track: (float32 mono samples [N] in [-1, 1], 16000)."""

    @abc.abstractmethod
    def audio_path(self) -> Path | None:
        """A 16 kHz mono WAV file of the speech track, or None without audio."""

    @abc.abstractmethod
    def problems(self, decode: Decode = "sample", *, sample: int = SAMPLE_DECODES,
                 progress: bool = False) -> list[str]:
        """Every problem found, each naming the file and field; empty if the subject is fine.

        ``decode``: "none" runs only the cheap checks (listing files, reading headers), "sample" also
        decodes ``sample`` frames (first, last and evenly spaced between; their images and masks), "all"
        decodes every image and mask. ``progress`` shows a progress bar of the decoding on stderr.
        """

    def warnings(self) -> list[str]:
        """Things that are allowed but limit what can be done with the subject (no masks, ...)."""
        return []

    def view(self, name: str, i: int) -> np.ndarray:
        """Ground-truth image [h, w, 3] uint8 of frame ``i`` seen from the extra view ``name``."""
        raise KeyError(f"{self.root}: subject has no view {name!r}")

    def view_mask(self, name: str, i: int) -> np.ndarray | None:
        """Foreground mask [h, w] uint8 of frame ``i`` in view ``name``, or None."""
        raise KeyError(f"{self.root}: subject has no view {name!r}")

    def truth(self) -> dict[str, np.ndarray]:
        """Ground-truth arrays of synthetic subjects (empty dict for real recordings)."""
        return {}

    @property
    def feature_names(self) -> list[str]:
        """Encoders whose per-frame audio features are cached with the subject."""
        return []

    def features(self, encoder: str) -> np.ndarray | None:
        """Cached audio features of ``encoder``, [T, ...], or None if not cached."""
        return None

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.root)!r}, {self.num_frames} frames, {self.width}x{self.height}, "
                f"{self.fps:g} fps)")


# ------------------------------------------------------------------------------------------ helpers


def _read_png(path: Path, mode: str, size: tuple[int, int], rel: str, root: Path | None = None) -> np.ndarray:
    """Decode a PNG of the given PIL mode and (width, height); otherwise :class:`SubjectError` of the
    subject ``root`` (default: the file) with one problem naming ``rel`` (a truncated or corrupt file,
    a wrong mode or size)."""
    from PIL import Image, UnidentifiedImageError

    where = root if root is not None else path
    try:
        with Image.open(path) as im:
            if im.mode != mode:
                raise SubjectError(where, [f"{rel}: image mode {im.mode!r}, expected 8-bit {mode!r}"])
            if im.size != size:
                raise SubjectError(where, [f"{rel}: size {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]}"])
            im.load()
            return np.asarray(im)
    except FileNotFoundError:
        raise SubjectError(where, [f"{rel}: missing"]) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SubjectError(where, [f"{rel}: cannot be decoded, the file is truncated or corrupt ({exc})"]) from exc


def _png_header(path: Path, mode: str, size: tuple[int, int], rel: str) -> list[str]:
    """Check a PNG's mode and size from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            out = []
            if im.format != "PNG":
                out.append(f"{rel}: is {im.format}, expected PNG")
            if im.mode != mode:
                out.append(f"{rel}: image mode {im.mode!r}, expected 8-bit {mode!r}")
            if im.size != size:
                out.append(f"{rel}: size {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]} "
                           f"(meta.json fields 'width', 'height')")
            return out
    except FileNotFoundError:
        return [f"{rel}: missing"]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return [f"{rel}: cannot be read as an image ({exc})"]


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _frame_folder_problems(folder: Path, rel: str, expected: list[int], what: str) -> list[str]:
    """List ``folder`` and compare its frame files with ``expected`` indices."""
    if not folder.is_dir():
        return [f"{rel}/: folder missing ({what})"]
    present: set[int] = set()
    stray: list[str] = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            idx = frame_index(entry.name)
            if idx is None:
                if not entry.is_dir():
                    stray.append(entry.name)
            else:
                present.add(idx)
    want = set(expected)
    out = []
    missing = sorted(want - present)
    if len(missing) == 1:
        out.append(f"{rel}/{frame_file(missing[0])}: missing ({what})")
    elif missing:
        out.append(f"{rel}/: {len(missing)} frame files missing: {_few([frame_file(i) for i in missing])} ({what})")
    extra = sorted(present - want)
    if extra:
        out.append(f"{rel}/: {len(extra)} unexpected frame file(s): {_few([frame_file(i) for i in extra])} ({what})")
    if stray:
        out.append(f"{rel}/: unexpected file(s) {_few(sorted(stray))}")
    return out


def _sample(indices: list[int], k: int) -> list[int]:
    if len(indices) <= k:
        return list(indices)
    pos = np.unique(np.round(np.linspace(0, len(indices) - 1, k)).astype(int))
    return [indices[p] for p in pos]


def _load_npz(path: Path, rel: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise SubjectError(path, [f"{rel}: missing"]) from None
    except (OSError, ValueError, EOFError) as exc:
        raise SubjectError(path, [f"{rel}: cannot be read ({exc})"]) from exc


# ----------------------------------------------------------------------------------- folder layout


class FolderSubject(Subject):
    """A subject in the thgs folder format (``docs/data-format.md``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        meta_path = self.root / META_FILE
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SubjectError(self.root, [f"{META_FILE}: missing"]) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SubjectError(self.root, [f"{META_FILE}: cannot be parsed ({exc})"]) from exc
        problems = meta_problems(self.meta)
        if problems:
            raise SubjectError(self.root, problems)
        from thgs.render.base import Camera
        import torch

        m = self.meta
        self.name = m["name"]
        self.fps = float(m["fps"])
        self.width, self.height, self.num_frames = int(m["width"]), int(m["height"]), int(m["num_frames"])
        self.camera = Camera(torch.tensor(m["camera"]["K"], dtype=torch.float32),
                             torch.tensor(m["camera"]["world_to_cam"], dtype=torch.float32), self.width, self.height)
        self.camera_estimated = bool(m["camera"].get("estimated", False))
        self.background = tuple(float(c) for c in m["background"]) if m["background"] is not None else None
        self.split = {k: [int(i) for i in v] for k, v in m["split"].items()}
        self.body = dict(m["body"]) if m["body"] is not None else None
        self.has_masks = bool(m["has"]["masks"])
        self.has_params = bool(m["has"]["body_params"])
        self.has_audio = m["audio"] is not None
        self.views = {}
        for vname, v in m["views"].items():
            w, h = int(v.get("width", self.width)), int(v.get("height", self.height))
            cam = Camera(torch.tensor(v["K"], dtype=torch.float32), torch.tensor(v["world_to_cam"], dtype=torch.float32),
                         w, h)
            self.views[vname] = {"camera": cam, "frames": [int(f) for f in v["frames"]], "masks": bool(v.get("masks"))}
        self._params: dict[str, np.ndarray] | None = None

    # ---- data

    def _check_index(self, i: int) -> int:
        try:
            k = operator.index(i)
        except TypeError:
            raise TypeError(f"{self.root}: frame index must be an integer, got {type(i).__name__}") from None
        if not 0 <= k < self.num_frames:
            raise IndexError(f"{self.root}: frame {k} out of range 0..{self.num_frames - 1}")
        return k

    def image(self, i: int) -> np.ndarray:
        i = self._check_index(i)
        rel = f"{IMAGES_DIR}/{frame_file(i)}"
        return _read_png(self.root / rel, "RGB", (self.width, self.height), rel, self.root)

    def mask(self, i: int) -> np.ndarray | None:
        i = self._check_index(i)
        if not self.has_masks:
            return None
        rel = f"{MASKS_DIR}/{frame_file(i)}"
        return _read_png(self.root / rel, "L", (self.width, self.height), rel, self.root)

    def params(self) -> dict[str, np.ndarray]:
        if not self.has_params:
            raise SubjectError(self.root, [f"{PARAMS_FILE}: this subject has no body parameters "
                                           f"(meta.json field 'has.body_params' is false)"])
        if self._params is None:
            self._params = _load_npz(self.root / PARAMS_FILE, PARAMS_FILE)
        return {k: v.copy() for k, v in self._params.items()}

    def audio_path(self) -> Path | None:
        return self.root / AUDIO_FILE if self.has_audio else None

    def audio(self) -> tuple[np.ndarray, int]:
        if not self.has_audio:
            raise SubjectError(self.root, [f"{AUDIO_FILE}: this subject has no audio (meta.json field 'audio' is null)"])
        from thgs.io.audio_io import WAV_ERRORS, read_wav

        path = self.root / AUDIO_FILE
        try:
            f, data = read_wav(path)
            if (f.channels, f.sample_width, f.sample_rate) != (1, 2, AUDIO_SAMPLE_RATE):
                raise SubjectError(path, [f"{AUDIO_FILE}: expected 16-bit mono at {AUDIO_SAMPLE_RATE} Hz, got "
                                          f"{8 * f.sample_width}-bit, {f.channels} channel(s) at "
                                          f"{f.sample_rate} Hz"])
        except FileNotFoundError:
            raise SubjectError(path, [f"{AUDIO_FILE}: missing"]) from None
        except WAV_ERRORS as exc:
            raise SubjectError(path, [f"{AUDIO_FILE}: cannot be read ({exc})"]) from exc
        pcm = np.frombuffer(data, dtype="<i2")
        return (pcm.astype(np.float32) / 32767.0).clip(-1.0, 1.0), AUDIO_SAMPLE_RATE

    def _view_info(self, name: str, i: int) -> dict[str, Any]:
        if name not in self.views:
            raise KeyError(f"{self.root}: no view {name!r}; views: {sorted(self.views)}")
        v = self.views[name]
        if i not in v["frames"]:
            raise KeyError(f"{self.root}: view {name!r} has no image of frame {i}")
        return v

    def view(self, name: str, i: int) -> np.ndarray:
        v = self._view_info(name, i)
        rel = f"{VIEWS_DIR}/{name}/{frame_file(i)}"
        return _read_png(self.root / rel, "RGB", (v["camera"].width, v["camera"].height), rel, self.root)

    def view_mask(self, name: str, i: int) -> np.ndarray | None:
        v = self._view_info(name, i)
        if not v["masks"]:
            return None
        rel = f"{VIEWS_DIR}/{name}/{MASKS_DIR}/{frame_file(i)}"
        return _read_png(self.root / rel, "L", (v["camera"].width, v["camera"].height), rel, self.root)

    def truth(self) -> dict[str, np.ndarray]:
        path = self.root / TRUTH_FILE
        return _load_npz(path, TRUTH_FILE) if path.is_file() else {}

    @property
    def feature_names(self) -> list[str]:
        names = set(self.meta["has"]["audio_features"])
        folder = self.root / FEATURES_DIR
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.npy") if not p.name.startswith(".")}
        return sorted(names)

    def features(self, encoder: str) -> np.ndarray | None:
        path = self.root / FEATURES_DIR / f"{encoder}.npy"
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise SubjectError(path, [f"{FEATURES_DIR}/{encoder}.npy: cannot be read ({exc})"]) from exc

    # ---- checks

    def warnings(self) -> list[str]:
        out = []
        if not self.has_masks:
            out.append(f"{MASKS_DIR}/: no foreground masks (meta.json field 'has.masks' is false)")
        if not self.has_params:
            out.append(f"{PARAMS_FILE}: no body parameters (meta.json field 'has.body_params' is false)")
        if not self.has_audio:
            out.append(f"{AUDIO_FILE}: no audio (meta.json field 'audio' is null)")
        if self.camera_estimated:
            out.append(f"{META_FILE}: field 'camera' is an estimate ('camera.estimated' is true)")
        return out

    def problems(self, decode: Decode = "sample", *, sample: int = SAMPLE_DECODES,
                 progress: bool = False) -> list[str]:
        if decode not in ("none", "sample", "all"):
            raise ValueError(f"decode must be 'none', 'sample' or 'all', got {decode!r}")
        meta_now = self.root / META_FILE
        if not meta_now.is_file():
            return [f"{META_FILE}: missing"]
        out: list[str] = []
        T, size = self.num_frames, (self.width, self.height)
        frames = list(range(T))
        out += _frame_folder_problems(self.root / IMAGES_DIR, IMAGES_DIR, frames, f"meta.json field 'num_frames' is {T}")
        if (self.root / IMAGES_DIR).is_dir():
            out += [p for p in _png_header(self.root / IMAGES_DIR / frame_file(0), "RGB", size,
                                           f"{IMAGES_DIR}/{frame_file(0)}") if not p.endswith(": missing")]
        if self.has_masks:
            out += _frame_folder_problems(self.root / MASKS_DIR, MASKS_DIR, frames,
                                          f"meta.json field 'has.masks' is true, 'num_frames' is {T}")
            if (self.root / MASKS_DIR).is_dir():
                out += [p for p in _png_header(self.root / MASKS_DIR / frame_file(0), "L", size,
                                               f"{MASKS_DIR}/{frame_file(0)}") if not p.endswith(": missing")]
        if self.has_params:
            out += self._params_problems()
        if self.has_audio:
            out += self._audio_problems(full=decode != "none")
        out += self._features_problems(full=decode != "none")
        out += self._views_problems()
        if (self.root / TRUTH_FILE).exists():
            try:
                self.truth()
            except SubjectError as exc:
                out += exc.problems
        if decode != "none":
            out += self._decode_problems(decode, sample, progress)
        return out

    def _params_problems(self) -> list[str]:
        try:
            arrays = _load_npz(self.root / PARAMS_FILE, PARAMS_FILE)
        except SubjectError as exc:
            return exc.problems
        b = self.body or {}
        return params_problems(arrays, num_frames=self.num_frames, num_joints=b.get("num_joints"),
                               num_betas=b.get("num_betas"), num_expressions=b.get("num_expressions"))

    def _audio_problems(self, full: bool) -> list[str]:
        from thgs.io.audio_io import WAV_ERRORS, read_wav

        path = self.root / AUDIO_FILE
        declared = self.meta["audio"]["num_samples"]
        try:
            f, data = read_wav(path, samples=full)
            fmt, n = (f.channels, f.sample_width, f.sample_rate), f.num_samples
            if fmt != (1, 2, AUDIO_SAMPLE_RATE):
                return [f"{AUDIO_FILE}: expected 16-bit mono at {AUDIO_SAMPLE_RATE} Hz, got {8 * fmt[1]}-bit, "
                        f"{fmt[0]} channel(s) at {fmt[2]} Hz"]
            if full and len(data) != 2 * n:
                return [f"{AUDIO_FILE}: truncated (header declares {n} samples)"]
        except FileNotFoundError:
            return [f"{AUDIO_FILE}: missing (declared in meta.json field 'audio')"]
        except WAV_ERRORS as exc:
            return [f"{AUDIO_FILE}: cannot be read as a WAV file ({exc})"]
        out = []
        if n != declared:
            out.append(f"{AUDIO_FILE}: holds {n} samples, meta.json field 'audio.num_samples' says {declared}")
        if not audio_covers_video(n, AUDIO_SAMPLE_RATE, self.num_frames, self.fps):
            out.append(audio_short_message(AUDIO_FILE, n, AUDIO_SAMPLE_RATE, self.num_frames, self.fps))
        return out

    def _features_problems(self, full: bool) -> list[str]:
        out = []
        listed = set(self.meta["has"]["audio_features"])
        for name in self.feature_names:
            rel = f"{FEATURES_DIR}/{name}.npy"
            path = self.root / rel
            if not path.is_file():
                out.append(f"{rel}: missing (listed in meta.json field 'has.audio_features')")
                continue
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                out.append(f"{rel}: cannot be read ({exc})")
                continue
            if arr.dtype.kind not in "fiu" or arr.ndim < 1:
                out.append(f"{rel}: has dtype {arr.dtype} and shape {arr.shape}, expected numeric [num_frames, ...]")
            elif arr.shape[0] != self.num_frames:
                out.append(f"{rel}: first dimension is {arr.shape[0]}, expected num_frames = {self.num_frames}"
                           + ("" if name in listed else " (file not listed in meta.json 'has.audio_features')"))
            elif full and arr.dtype.kind == "f" and not np.isfinite(np.asarray(arr)).all():
                out.append(f"{rel}: holds non-finite values")
        return out

    def _views_problems(self) -> list[str]:
        out = []
        for name, v in self.views.items():
            base = self.root / VIEWS_DIR / name
            rel = f"{VIEWS_DIR}/{name}"
            what = f"meta.json field 'views.{name}.frames'"
            out += _frame_folder_problems(base, rel, v["frames"], what)
            size = (v["camera"].width, v["camera"].height)
            if v["frames"] and base.is_dir():
                f0 = frame_file(v["frames"][0])
                out += [p for p in _png_header(base / f0, "RGB", size, f"{rel}/{f0}") if not p.endswith(": missing")]
            if v["masks"]:
                out += _frame_folder_problems(base / MASKS_DIR, f"{rel}/{MASKS_DIR}", v["frames"], what)
        return out

    def _decode_problems(self, decode: Decode, sample: int = SAMPLE_DECODES, progress: bool = False) -> list[str]:
        size = (self.width, self.height)
        frames = list(range(self.num_frames))
        chosen = frames if decode == "all" else _sample(frames, sample)
        jobs: list[tuple[Path, str, tuple[int, int], str]] = []
        for i in chosen:
            jobs.append((self.root / IMAGES_DIR / frame_file(i), "RGB", size, f"{IMAGES_DIR}/{frame_file(i)}"))
            if self.has_masks:
                jobs.append((self.root / MASKS_DIR / frame_file(i), "L", size, f"{MASKS_DIR}/{frame_file(i)}"))
        for name, v in self.views.items():
            vs = (v["camera"].width, v["camera"].height)
            for i in (v["frames"] if decode == "all" else _sample(v["frames"], max(1, min(2, sample)))):
                jobs.append((self.root / VIEWS_DIR / name / frame_file(i), "RGB", vs,
                             f"{VIEWS_DIR}/{name}/{frame_file(i)}"))
                if v["masks"]:
                    jobs.append((self.root / VIEWS_DIR / name / MASKS_DIR / frame_file(i), "L", vs,
                                 f"{VIEWS_DIR}/{name}/{MASKS_DIR}/{frame_file(i)}"))

        def one(job: tuple[Path, str, tuple[int, int], str]) -> str | None:
            path, mode, sz, rel = job
            if not path.exists():
                return None  # reported by the listing checks
            try:
                _read_png(path, mode, sz, rel)
            except SubjectError as exc:
                return exc.problems[0]
            return None

        from tqdm import tqdm

        workers = min(8, os.cpu_count() or 1)
        bar = tqdm(total=len(jobs), desc="decoding images", unit="file", disable=not progress, leave=False)
        try:
            if len(jobs) > 16 and workers > 1:
                with ThreadPoolExecutor(workers) as pool:
                    results = []
                    for r in pool.map(one, jobs):
                        results.append(r)
                        bar.update()
            else:
                results = []
                for j in jobs:
                    results.append(one(j))
                    bar.update()
        finally:
            bar.close()
        return [r for r in results if r]


# ------------------------------------------------------------------------------------------ registry

Detect = Callable[[Path], bool]
Opener = Callable[[Path], Subject]
_LAYOUTS: list[tuple[str, Detect, Opener]] = []


def register_layout(detect: Detect, opener: Opener, name: str | None = None) -> None:
    """Teach :func:`open_subject` another layout: ``detect(path)`` says whether ``path`` is one,
    ``opener(path)`` opens it. Registering the same opener again replaces the earlier entry."""
    label = name or getattr(opener, "__qualname__", repr(opener))
    _LAYOUTS[:] = [entry for entry in _LAYOUTS if entry[2] is not opener and entry[0] != label]
    _LAYOUTS.append((label, detect, opener))


def registered_layouts() -> list[str]:
    """Names of the layouts :func:`open_subject` recognises, in the order it tries them."""
    return [name for name, _, _ in _LAYOUTS]


def _is_folder_subject(path: Path) -> bool:
    return (path / META_FILE).is_file()


register_layout(_is_folder_subject, FolderSubject, name="thgs")


#: Modules that register further layouts when imported; imported the first time a path matches none.
LAYOUT_PROVIDERS = ("thgs.importers",)


def _find_layout(path: Path) -> Opener | None:
    for _, detect, opener in _LAYOUTS:
        if detect(path):
            return opener
    return None


def _import_layout_providers() -> None:
    import importlib

    for name in LAYOUT_PROVIDERS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def open_subject(path: str | os.PathLike, validate: bool = True) -> Subject:
    """Open the subject at ``path`` in whichever registered layout it is.

    With ``validate`` the cheap checks run (folder listings, headers, params, audio length, split) and
    any problem raises :class:`SubjectError` listing them all. Use ``subject.problems()`` for the
    checks that decode images too.
    """
    p = Path(path)
    if not p.exists():
        raise SubjectError(p, [f"{p}: no such file or folder"])
    opener = _find_layout(p)
    if opener is None:
        _import_layout_providers()
        opener = _find_layout(p)
    if opener is None:
        raise SubjectError(p, [f"{META_FILE}: missing; {p} is not a subject in any known layout "
                               f"({', '.join(registered_layouts())})"])
    subject = opener(p)
    if validate:
        problems = subject.problems(decode="none")
        if problems:
            raise SubjectError(p, problems)
    return subject
