"""``thgs prepare``'s stages on a subject folder: detect -> shots -> fit -> write.

Each stage's output is cached in ``SUBJECT/prepare/`` (written atomically) and reused by a later run when
its inputs and options are unchanged, so an interrupted run resumes at the stage it stopped in:

=======  =================================================  ===================================================
stage    cache                                              what
=======  =================================================  ===================================================
detect   ``prepare/detect.npz``, ``prepare/masks/``          masks and 553 keypoints per frame (mediapipe)
shots    (recomputed: milliseconds)                         shot cuts, zooms, person switches; the kept shot
fit      ``prepare/fit.npz``                                calibration and FMA body fit (:mod:`thgs.prepare.fit`)
write    the subject itself                                 masks/, keypoints.npz, params.npz, prepare.json,
                                                            meta.json (last), and the overlays
=======  =================================================  ===================================================

The write stage changes the subject atomically: every new file is built in a hidden folder inside the
subject, the old files are moved aside, the new ones renamed into place, ``meta.json`` last; any error
moves the old files back. A run refused for its input (:class:`PrepareError`: nobody in the video, no
usable shot) removes the caches it made, so nothing partial is left.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from thgs.data.format import (
    FORMAT_NAME,
    MASKS_DIR,
    META_FILE,
    PARAMS_FILE,
    frame_file,
    meta_problems,
    params_problems,
    video_split,
)
from thgs.prepare import layout
from thgs.prepare.detect import DetectOptions, Detections, detect_video, mediapipe_version, prefetch
from thgs.prepare.errors import PrepareError
from thgs.prepare.shots import ShotOptions, ShotResult, find_shots, usable_problem

T = TypeVar("T")

PREPARE_DIR = "prepare"
DETECT_FILE = "detect.npz"
FIT_FILE = "fit.npz"
REPORT_FILE = "prepare.json"
KEYPOINTS_FILE = "keypoints.npz"
CONTACT_SHEET = "contact_sheet.png"
OVERLAY_VIDEO = "overlay.mp4"

#: Stages that can be asked for (``--stages``) or redone (``--redo``); shots and write always run.
STAGES = ("detect", "fit")


@dataclass
class PrepareConfig:
    """What to run and how."""

    stages: tuple[str, ...] = STAGES
    redo: frozenset[str] = frozenset()
    body: str = "anny"
    device: str = "cpu"
    detect: DetectOptions = field(default_factory=DetectOptions)
    shots: ShotOptions = field(default_factory=ShotOptions)
    fit: Any = None  # thgs.prepare.fit.FitOptions; None: its defaults
    overlay_video: bool = False
    sheet_frames: int = 12
    progress: bool = True


@dataclass
class FitRecord:
    """The body fit's result as the pipeline stores it (the fields of ``thgs.prepare.fit.FitResult``)."""

    pose: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    expression: np.ndarray
    K: np.ndarray
    world_to_cam: np.ndarray
    model_kp2d: np.ndarray
    body_spec: dict[str, Any]
    lmd_before: dict[str, float]
    lmd_after: dict[str, float]
    stage_seconds: dict[str, float]
    report: dict[str, Any]

    ARRAYS = ("pose", "transl", "betas", "expression", "K", "world_to_cam", "model_kp2d")
    JSON = ("body_spec", "lmd_before", "lmd_after", "stage_seconds", "report")

    @classmethod
    def from_result(cls, res: Any) -> "FitRecord":
        arrays = {k: np.asarray(getattr(res, k), np.float32) for k in cls.ARRAYS}
        extra = {k: json_ready(getattr(res, k, None) or {}) for k in cls.JSON}
        return cls(**arrays, **extra)

    def save(self, path: Path, key: str) -> None:
        meta = {k: getattr(self, k) for k in self.JSON}
        save_npz(path, {**{k: getattr(self, k) for k in self.ARRAYS}, "key": np.array(key),
                        "json": np.array(json.dumps(meta))})

    @classmethod
    def load(cls, path: Path) -> tuple["FitRecord", str]:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in cls.ARRAYS}
            key = str(z["key"])
            meta = json.loads(str(z["json"]))
        return cls(**arrays, **{k: meta.get(k, {}) for k in cls.JSON}), key


# ------------------------------------------------------------------------------------------ helpers


def json_ready(obj: Any) -> Any:
    """Dicts, lists, numpy values and arrays as plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_ready(dataclasses.asdict(obj))
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` into ``path`` atomically."""
    from thgs.utils.io import atomic_path

    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def options_record(options: Any) -> dict[str, Any]:
    """A JSON-ready record of an options object (a dataclass, a dict, or None)."""
    if options is None:
        return {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return json_ready(dataclasses.asdict(options))
    if isinstance(options, dict):
        return json_ready(options)
    return {"repr": repr(options)}


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str(p.dtype).encode() + str(p.shape).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(json_ready(p), sort_keys=True).encode())
    return h.hexdigest()[:32]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _PngSink:
    """Writes masks as PNG files on worker threads (a bounded queue keeps memory flat)."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thgs-mask")
        self._pending: list[Future] = []

    def __call__(self, i: int, mask: np.ndarray) -> None:
        from PIL import Image

        path = self.folder / frame_file(i)
        self._pending.append(self._pool.submit(
            lambda: Image.fromarray(mask, mode="L").save(path, format="PNG", compress_level=1)))
        if len(self._pending) > 8:
            self._pending.pop(0).result()

    def close(self) -> None:
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------- stages


@dataclass
class _Run:
    """The state of one prepare run on one subject."""

    root: Path
    meta: dict[str, Any]
    subject: Any
    config: PrepareConfig
    seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    made: list[Path] = field(default_factory=list)  # cache files this run wrote (removed on a refusal)

    @property
    def cache(self) -> Path:
        return self.root / PREPARE_DIR

    def say(self, text: str) -> None:
        if self.config.progress:
            print(text, flush=True)


def _open(root: Path) -> tuple[dict[str, Any], Any]:
    from thgs.data import SubjectError, open_subject

    if not (root / META_FILE).is_file():
        raise PrepareError(f"{root}: not a thgs subject folder (no {META_FILE}); make one with "
                           "`thgs ingest VIDEO SUBJECT` or run `thgs prepare VIDEO SUBJECT`")
    try:
        subject = open_subject(root)
    except SubjectError as exc:
        raise PrepareError(f"{root}: the subject has problems (run `thgs check {root}`): "
                           + "; ".join(exc.problems[:3])) from exc
    meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_NAME:
        raise PrepareError(f"{root}: {META_FILE} is not a thgs subject's")
    return meta, subject


def cache_key(path: Path) -> str:
    """The ``key`` field of a stage's cache file (the digest of what the stage's result depends on)."""
    with np.load(path, allow_pickle=False) as z:
        return str(z["key"])


def _from_cache(run: _Run, stage: str, path: Path, key: str, read: Callable[[Path], tuple[T, float]], *,
                changed: str, again: str, ready: bool = True) -> T | None:
    """A stage's result from its cache file ``path``, or None when the stage must run: the file is missing
    (or not ``ready``), ``--redo`` names the stage, its key is not ``key`` (the inputs ``changed``) or it cannot
    be read. ``read`` gives (result, seconds the stage took); the reuse is recorded in ``run``."""
    if not path.is_file() or not ready or stage in run.config.redo:
        return None
    try:
        if cache_key(path) != key:
            run.say(f"{stage}: {changed}; {again}")
            return None
        result, seconds = read(path)
    except (OSError, ValueError, KeyError) as exc:
        run.say(f"{stage}: cannot read the cached {path} ({exc}); {again}")
        return None
    run.seconds[stage] = seconds
    run.cached.append(stage)
    run.say(f"{stage}: cached ({path})")
    return result


def _detect_key(run: _Run) -> dict[str, Any]:
    s = run.subject
    return {"options": run.config.detect.record(), "num_frames": s.num_frames, "size": [s.width, s.height]}


def stage_detect(run: _Run) -> Detections:
    """Masks into ``prepare/masks/`` and keypoints into ``prepare/detect.npz`` (or both from the cache)."""
    s = run.subject
    path = run.cache / DETECT_FILE
    key = _digest(_detect_key(run))

    def read(p: Path) -> tuple[Detections, float]:
        with np.load(p, allow_pickle=False) as z:
            return Detections.from_arrays(dict(z), run.config.detect.record()), float(z["seconds"])

    cached = _from_cache(run, "detect", path, key, read, ready=(run.cache / MASKS_DIR).is_dir(),
                         changed="options or frames changed since the cached detection", again="detecting again")
    if cached is not None:
        return cached
    run.cache.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=".masks.partial.", dir=run.cache))
    sink = _PngSink(staging)
    try:
        frames = prefetch(range(s.num_frames), s.image)
        try:
            det = detect_video(frames, s.num_frames, s.width, s.height, options=run.config.detect, on_mask=sink,
                               progress=run.config.progress, desc=f"detect {s.name}")
        finally:
            sink.close()
        old = run.cache / MASKS_DIR
        if old.exists():
            shutil.rmtree(old)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the masks folder is not
        os.replace(staging, old)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    secs = time.perf_counter() - t0
    save_npz(path, {**det.arrays(), "key": np.array(key), "seconds": np.array(secs)})
    run.made += [path, run.cache / MASKS_DIR]
    run.seconds["detect"] = secs
    return det


def stage_shots(run: _Run, det: Detections) -> ShotResult:
    t0 = time.perf_counter()
    res = find_shots(det.kp2d, det.person, det.thumbs, run.config.shots)
    run.seconds["shots"] = time.perf_counter() - t0
    if not det.person.any():
        raise PrepareError(f"{run.root}: no person found in any of the {det.num_frames} frames (mediapipe found "
                           "no head inside the image); thgs prepare needs a video of one person facing the camera")
    why = usable_problem(res, run.config.shots)
    if why:
        raise PrepareError(f"{run.root}: {why}")
    return res


def _fit_api() -> Any:
    try:
        from thgs.prepare import fit as fit_module
    except ImportError as exc:
        raise PrepareError(f"the body fit (thgs.prepare.fit) cannot be imported ({exc}); run "
                           "`thgs prepare SUBJECT --stages detect` for masks and keypoints only") from exc
    return fit_module


def stage_fit(run: _Run, det: Detections, valid: np.ndarray) -> FitRecord:
    """Calibration and FMA (:func:`thgs.prepare.fit.fit_subject`), or the cached result."""
    fm = _fit_api()
    s = run.subject
    options = run.config.fit if run.config.fit is not None else fm.FitOptions()
    K = np.asarray(run.meta["camera"]["K"], np.float64)
    key = _digest(det.kp2d, det.world, valid, K, run.config.body, options_record(options), s.fps)
    path = run.cache / FIT_FILE

    def read(p: Path) -> tuple[FitRecord, float]:
        rec = FitRecord.load(p)[0]
        return rec, float(sum(rec.stage_seconds.values())) if rec.stage_seconds else 0.0

    cached = _from_cache(run, "fit", path, key, read, changed="keypoints, body or options changed since the cached fit",
                         again="fitting again")
    if cached is not None:
        return cached
    inp = fm.FitInput(kp2d=det.kp2d.astype(np.float32), world=det.world.astype(np.float32), valid=valid.astype(bool),
                      K=K, width=int(s.width), height=int(s.height), fps=float(s.fps))
    t0 = time.perf_counter()
    res = fm.fit_subject(inp, body=run.config.body, options=options, device=run.config.device,
                         progress=run.config.progress)
    rec = FitRecord.from_result(res)
    if not rec.stage_seconds:
        rec.stage_seconds = {"fit": time.perf_counter() - t0}
    run.seconds["fit"] = time.perf_counter() - t0
    _check_fit(rec, s.num_frames, run.root)
    run.cache.mkdir(exist_ok=True)
    rec.save(path, key)
    run.made.append(path)
    return rec


def _check_fit(rec: FitRecord, T: int, root: Path) -> None:
    problems = params_problems({"pose": rec.pose, "transl": rec.transl, "betas": rec.betas,
                                "expression": rec.expression}, num_frames=T, where="fit result")
    if rec.model_kp2d.shape != (T, layout.NUM_KEYPOINTS, 2):
        problems.append(f"fit result: field 'model_kp2d' has shape {rec.model_kp2d.shape}, expected "
                        f"({T}, {layout.NUM_KEYPOINTS}, 2)")
    if problems:  # a fit that breaks its own contract is a bug, not bad input
        raise RuntimeError(f"{root}: " + "; ".join(problems))


def split_for(valid: np.ndarray, kept: tuple[int, int], fps: float) -> dict[str, list[int]]:
    """The recorded-video split (:func:`thgs.data.format.video_split`: the paper's rule for a minute or more,
    the last 20% held out and every earlier frame training for shorter clips) over the kept shot, less
    invalid frames."""
    start, end = kept
    base = video_split(end - start, fps)
    return {k: [start + i for i in v if valid[start + i]] for k, v in base.items()}


# ------------------------------------------------------------------------------------------- writing


def install(root: Path, staged: Path, names: list[str]) -> None:
    """Move ``staged/<name>`` to ``root/<name>`` for each name, ``meta.json`` last; on any error every
    replaced entry is moved back and the new ones removed, so the subject is as it was."""
    trash = Path(tempfile.mkdtemp(prefix=".prepare.old.", dir=root))
    order = [n for n in names if n != META_FILE] + ([META_FILE] if META_FILE in names else [])
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in order:
            target = root / name
            if target.exists() or target.is_symlink():
                os.replace(target, trash / name)
                moved.append(name)
            os.replace(staged / name, target)
            placed.append(name)
    except BaseException:
        for name in reversed(placed):
            p = root / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        for name in moved:
            os.replace(trash / name, root / name)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _link_masks(src: Path, dst: Path, T: int) -> None:
    dst.mkdir()
    for i in range(T):
        name = frame_file(i)
        try:
            os.link(src / name, dst / name)
        except OSError:
            shutil.copy2(src / name, dst / name)


def new_meta(meta: dict[str, Any], *, split: dict[str, list[int]], fit: FitRecord | None,
             record: dict[str, Any]) -> dict[str, Any]:
    """The subject's meta.json after prepare: masks, split, body and camera (with a fit), the record."""
    from thgs import __version__

    m = json.loads(json.dumps(meta))
    m["has"]["masks"] = True
    m["split"] = split
    if fit is not None:
        spec = dict(fit.body_spec)
        spec.setdefault("options", {})
        spec["num_joints"] = int(fit.pose.shape[1])
        spec["num_betas"] = int(fit.betas.shape[0])
        spec["num_expressions"] = int(fit.expression.shape[1])
        m["body"] = spec
        m["has"]["body_params"] = True
        cam = dict(m["camera"])
        cam["K"] = np.asarray(fit.K, np.float64).tolist()
        cam["world_to_cam"] = np.asarray(fit.world_to_cam, np.float64).tolist()
        m["camera"] = cam
    m["prepare"] = record
    m["thgs_version"] = __version__
    return m


def stage_write(run: _Run, det: Detections, shots: ShotResult, fit: FitRecord | None,
                report: dict[str, Any]) -> None:
    """Install masks, keypoints, params, the report and meta.json into the subject, atomically."""
    from thgs.data.writer import meta_json

    root, s = run.root, run.subject
    split = split_for(shots.valid, shots.kept, s.fps)
    if not split["train"]:
        raise PrepareError(f"{root}: no training frame is left after leaving out invalid frames "
                           f"({report['frames']['valid']} valid of {s.num_frames})")
    meta = new_meta(run.meta, split=split, fit=fit, record=report["record"])
    problems = meta_problems(meta)
    if problems:
        raise RuntimeError(f"{root}: prepare made an invalid meta.json: {'; '.join(problems)}")
    staged = Path(tempfile.mkdtemp(prefix=".prepare.new.", dir=root))
    try:
        _link_masks(run.cache / MASKS_DIR, staged / MASKS_DIR, s.num_frames)
        names = [MASKS_DIR, KEYPOINTS_FILE, REPORT_FILE, META_FILE]
        np.savez_compressed(staged / KEYPOINTS_FILE, kp2d=det.kp2d, world=det.world, person=det.person,
                            valid=shots.valid, layout=np.array(layout.LAYOUT_NAME))
        if fit is not None:
            np.savez(staged / PARAMS_FILE, pose=fit.pose, transl=fit.transl, betas=fit.betas,
                     expression=fit.expression, keypoints=det.kp2d)
            names.insert(2, PARAMS_FILE)
        (staged / REPORT_FILE).write_text(json.dumps(json_ready(report), indent=2) + "\n", encoding="utf-8")
        (staged / META_FILE).write_text(meta_json(meta), encoding="utf-8")
        install(root, staged, names)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


# -------------------------------------------------------------------------------------------- report


def build_report(run: _Run, det: Detections, shots: ShotResult, fit: FitRecord | None) -> dict[str, Any]:
    """Everything ``prepare.json`` holds; ``record`` is what meta.json's ``prepare`` key gets."""
    from thgs import __version__

    s = run.subject
    split = split_for(shots.valid, shots.kept, s.fps)
    others = det.others.astype(int)
    switches = [c.frame for c in shots.cuts if c.kind == "switch"]
    record = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "thgs_version": __version__,
        "mediapipe": mediapipe_version(),
        "detector": {"holistic": {k: run.config.detect.record()[k] for k in (
            "model_complexity", "refine_face_landmarks", "min_detection_confidence", "min_tracking_confidence")},
            "selfie_segmentation": {"model_selection": run.config.detect.segmentation_model},
            "mask": {k: run.config.detect.record()[k] for k in (
                "mask_threshold", "soft_mask", "mask_margin", "person_min_area")}},
        "shots": run.config.shots.record(),
        "keypoints": {"file": KEYPOINTS_FILE, "layout": layout.LAYOUT_NAME},
        "kept_frames": list(shots.kept),
        "valid_frames": int(shots.valid.sum()),
    }
    if fit is not None:
        record["fit"] = {"body": run.config.body, "device": run.config.device,
                         "options": options_record(run.config.fit) or "defaults", "body_spec": fit.body_spec}
    return {
        "subject": s.name,
        "frames": {"total": s.num_frames, "valid": int(shots.valid.sum()), "train": len(split["train"]),
                   "test": len(split["test"])},
        "size": [s.width, s.height],
        "fps": s.fps,
        "detection": {
            "rates": det.rates(),
            "hands_swapped_frames": int(det.swapped.sum()),
            "mask_area_mean": float(det.mask_area.mean()),
            "people": {"followed": "the person holistic tracks (one at a time)",
                       "frames_with_others": int((others > 0).sum()), "max_others": int(others.max(initial=0)),
                       "frames_with_a_larger_other": int(det.larger_other.sum()),
                       "switches_at": switches},
        },
        "shots": shots.summary(),
        "fit": None if fit is None else {"lmd_before": fit.lmd_before, "lmd_after": fit.lmd_after,
                                         "stage_seconds": fit.stage_seconds, "report": fit.report},
        "seconds": dict(run.seconds),
        "cached": list(run.cached),
        "record": record,
    }


def format_report(report: dict[str, Any]) -> str:
    """The printed summary: detection rates, frames left out, shots, LMD before/after, stage times."""
    lines = [f"prepare {report['subject']}: {report['frames']['total']} frames {report['size'][0]}x"
             f"{report['size'][1]} at {report['fps']:g} fps; {report['frames']['valid']} used "
             f"(train {report['frames']['train']}, test {report['frames']['test']})"]
    rates = report["detection"]["rates"]
    lines.append("  detected   " + "  ".join(f"{k} {100 * v:5.1f}%" for k, v in rates.items()))
    people = report["detection"]["people"]
    if people["frames_with_others"]:
        lines.append(f"  people     others visible in {people['frames_with_others']} frames (at most "
                     f"{people['max_others']}; larger than the followed one in "
                     f"{people['frames_with_a_larger_other']}); followed {people['followed']}")
    sh = report["shots"]
    lines.append(f"  shots      {len(sh['shots'])}: " + ", ".join(f"{a}-{b - 1}" for a, b in sh["shots"])
                 + f"; kept {sh['kept'][0]}-{sh['kept'][1] - 1}")
    for c in sh["cuts"]:
        lines.append(f"             {c['kind']} at frame {c['frame']}")
    for why, v in sh["left_out"].items():
        lines.append(f"  left out   {v['count']:5d} frames: {why} ({v['frames']})")
    fit = report.get("fit")
    if fit:
        lines.append("  LMD (px)   region   before    after")
        for region in sorted(set(fit["lmd_before"]) | set(fit["lmd_after"])):
            b, a = fit["lmd_before"].get(region), fit["lmd_after"].get(region)
            fmt = lambda x: "    -" if x is None else f"{x:8.2f}"  # noqa: E731
            lines.append(f"             {region:7s}{fmt(b)} {fmt(a)}")
    lines.append("  seconds    " + "  ".join(
        f"{k} {v:.1f}" + (" (cached)" if k in report["cached"] else "") for k, v in report["seconds"].items()))
    if report.get("cpu_seconds"):
        lines.append("  CPU s      " + "  ".join(f"{k} {v:.1f}" for k, v in report["cpu_seconds"].items()))
    if fit and fit.get("stage_seconds"):
        lines.append("  fit stages " + "  ".join(f"{k} {v:.1f}" for k, v in fit["stage_seconds"].items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- entry


def prepare_subject(root: str | os.PathLike, config: PrepareConfig = PrepareConfig(),
                    after_detect: Callable[[Detections], None] | None = None) -> dict[str, Any]:
    """Run the stages on the subject at ``root``; returns the report (also in ``SUBJECT/prepare.json``).

    Raises:
        PrepareError: the input cannot be prepared (not a subject, nobody in it, no usable shot, mediapipe
            missing); the subject is left as it was and this run's caches are removed.
    """
    root = Path(root)
    unknown = set(config.stages) - set(STAGES)
    if unknown or "detect" not in config.stages:
        raise PrepareError(f"--stages must list detect (and optionally fit), got {','.join(config.stages)}")
    meta, subject = _open(root)
    run = _Run(root=root, meta=meta, subject=subject, config=config)
    cpu: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        c0 = time.process_time()  # every thread of the process: on an idle machine, cores x wall at most
        try:
            return fn(*args)
        finally:
            cpu[name] = time.process_time() - c0

    try:
        det = timed("detect", stage_detect, run)
        if after_detect is not None:
            after_detect(det)
        shots = timed("shots", stage_shots, run, det)
        fit = timed("fit", stage_fit, run, det, shots.valid) if "fit" in config.stages else None
        c0 = time.process_time()
        t0 = time.perf_counter()
        from thgs.prepare.overlay import contact_sheet, overlay_video

        sheet = contact_sheet(subject, det, shots.valid, fit, run.cache / CONTACT_SHEET, frames=config.sheet_frames)
        video = None
        if config.overlay_video:
            video = overlay_video(subject, det, fit, run.cache / OVERLAY_VIDEO, progress=config.progress)
        run.seconds["overlay"] = time.perf_counter() - t0
        cpu["overlay"] = time.process_time() - c0
        report = build_report(run, det, shots, fit)
        report["overlays"] = [str(p.relative_to(root)) for p in (sheet, video) if p is not None]
        t0 = time.perf_counter()
        stage_write(run, det, shots, fit, report)
        run.seconds["write"] = time.perf_counter() - t0
        report["seconds"] = dict(run.seconds)
        report["cpu_seconds"] = {k: round(v, 3) for k, v in cpu.items()}
        from thgs.utils.io import write_text

        write_text(root / REPORT_FILE, json.dumps(json_ready(report), indent=2) + "\n")
        return report
    except PrepareError:
        for p in run.made:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        for p in (run.cache / CONTACT_SHEET, run.cache / OVERLAY_VIDEO):
            if run.made:
                p.unlink(missing_ok=True)
        if run.cache.is_dir() and not any(run.cache.iterdir()):
            run.cache.rmdir()
        raise


__all__ = ["CONTACT_SHEET", "DETECT_FILE", "FIT_FILE", "FitRecord", "KEYPOINTS_FILE", "OVERLAY_VIDEO", "PREPARE_DIR",
           "PrepareConfig", "REPORT_FILE", "STAGES", "build_report", "format_report", "install", "new_meta",
           "prepare_subject", "split_for"]
