"""Evaluate a trained avatar on its subject: every metric of the paper's section 5.3 and Tables 3-8.

Test frames without a person (``thgs.runs.frames.select_frames``: ``keypoints.npz`` field ``person`` False or
an empty mask) are skipped, as in training, and counted (``test.frame_selection``). For each other test
frame (the subject's own camera) the avatar is rendered from the frame's body parameters
and audio and compared with the ground-truth image composited on the training background:

- full frame (Tables 3, 6): PSNR, SSIM, LPIPS (AlexNet and/or VGG16);
- head and neck (Table 5): the same inside the head box (``thgs.metrics.regions``);
- mouth: the same inside the mouth box, plus the mouth-opening signal of render and ground truth
  (lip sync with ground truth: ``opening_mae``, ``opening_corr``);
- offline audio-visual sync (Table 4 without weights): ``envelope_sync`` of the mouth-opening signal
  against the speech envelope, for the render AND for the ground truth (the table's first row);
- SyncNet (Table 4: AV offset, min dist, confidence) when a SyncNet model is given, again for both;
- with ``lipsync_landmarks``, the face-mesh lip-sync score of :mod:`thgs.metrics.lipsync_landmarks`
  (mouth-opening correlation with the ground truth, lip LMD in pixels, AV offset of render and ground truth).

The subject's extra ground-truth views (the synthetic subject's novel views of the test frames) are
scored on the full frame. Rendering uses :func:`thgs.animate.render.render_frame` and the test drive
:func:`thgs.animate.drive.subject_drive`, exactly as ``thgs render`` does. This is the one evaluator:
``thgs eval``, ``thgs report`` and ``thgs demo`` all use it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from thgs.animate.drive import Drive, subject_drive
from thgs.animate.render import render_frame
from thgs.evaluation.frames import frame_boxes, side_by_side
from thgs.metrics.image import psnr, ssim
from thgs.metrics.regions import Box
from thgs.metrics.sync import envelope_sync, mouth_opening, opening_error, speech_envelope
from thgs.runs.frames import composite, select_frames, subject_camera

REGIONS = ("full", "head", "mouth")
MIN_SYNC_OVERLAP = 8  # frames of overlap envelope_sync needs at the largest shift


@dataclass
class EvalOptions:
    """What to compute.

    lpips_nets: LPIPS backbones ("alex", "vgg"; empty: no LPIPS). views: also score the subject's extra
    ground-truth views. max_frames: at most this many test frames (None: all). mode/backend: rasterization.
    max_error: the error that maps to the top of the heat map. max_offset: largest AV shift searched (frames).
    lipsync_landmarks: also the face-mesh lip-sync score (:mod:`thgs.metrics.lipsync_landmarks`; needs mediapipe).
    view_stride: score every this-many-th frame of each extra view.
    """

    lpips_nets: tuple[str, ...] = ("alex", "vgg")
    views: bool = True
    max_frames: int | None = None
    mode: str = "2dgs"
    backend: str = "auto"
    max_error: float = 0.25
    max_offset: int = 15
    lipsync_landmarks: bool = False
    view_stride: int = 1


@dataclass
class EvalResult:
    """``summary``: the nested metrics (what ``metrics.json`` holds); ``rows``: one flat dict per scored
    frame (test split and views; what ``frames.csv`` holds)."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _image_metrics(pred: Tensor, gt: Tensor, nets: tuple[str, ...]) -> dict[str, float]:
    """PSNR, SSIM and LPIPS per net of two [H, W, 3] images (``lpips_<net>`` keys)."""
    vals = {"psnr": float(psnr(pred, gt)), "ssim": float(ssim(pred, gt))}
    if nets:
        from thgs.metrics.lpips import lpips

        for net in nets:
            vals[f"lpips_{net}"] = float(lpips(pred, gt, net=net))
    return vals


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(finite)) if finite else float("nan")


def summarize_rows(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """Means of the metric columns named ``prefix + metric`` over ``rows`` (missing/NaN skipped), with
    ``lpips_<net>_x100`` (the paper's LPIPS*) added and ``frames`` = rows that had a value."""
    keys = sorted({k[len(prefix):] for r in rows for k in r if k.startswith(prefix)
                   and k[len(prefix):].split("_")[0] in ("psnr", "ssim", "lpips")})
    out: dict[str, float] = {}
    n = 0
    for k in keys:
        vals = [r[prefix + k] for r in rows if r.get(prefix + k) is not None]
        n = max(n, len(vals))
        out[k] = _mean(vals)
        if k.startswith("lpips_"):
            out[f"{k}_x100"] = 100.0 * out[k]
    out["frames"] = float(n)
    return out


def ground_truth_image(subject: Any, frame: int, background: Tensor, view: str | None = None,
                       masks: bool = False) -> Tensor:
    """float [H, W, 3] ground truth of ``frame`` (own camera, or the extra ``view``): the stored image
    composited through its mask on ``background``, ``img * mask + background * (1 - mask)``, exactly as the
    trainer composites its training frames (:class:`thgs.train.data.TrainingData`)."""
    if view is None:
        m = subject.mask(frame) if getattr(subject, "has_masks", False) else None
        img = subject.image(frame)
    else:
        m = subject.view_mask(view, frame) if masks else None
        img = subject.view(view, frame)
    return composite(np.asarray(img), m, background.cpu()).float() / 255.0


def _sync_scores(render_sig: list[float], gt_sig: list[float], clip: tuple[np.ndarray, int] | None, fps: float,
                 max_offset: int) -> dict[str, Any]:
    """envelope_sync of the render's and the ground truth's mouth-opening signals against the speech."""
    T = len(render_sig)
    if clip is None or not len(clip[0]):
        return {"skipped": "the subject has no audio"}
    k = min(max_offset, T - MIN_SYNC_OVERLAP)
    if k < 1:
        return {"skipped": f"{T} test frames are too few (need at least {MIN_SYNC_OVERLAP + 1})"}
    env = speech_envelope(clip[0], clip[1], fps, T)
    out: dict[str, Any] = {"max_offset": k, "frames": T}
    for name, sig in (("render", render_sig), ("ground_truth", gt_sig)):
        try:
            out[name] = envelope_sync(torch.tensor(sig, dtype=torch.float32), env, max_offset=k).as_dict()
        except ValueError as exc:
            out[name] = {"skipped": str(exc)}
    return out


def landmark_scores(render: list, truth: list, clip: tuple[np.ndarray, int] | None, fps: float,
                     max_offset: int) -> dict[str, Any]:
    """The landmark lip-sync score of the two face-mesh tracks (lists of [478, 2] or None per frame)."""
    from thgs.metrics.lipsync_landmarks import NUM_LANDMARKS, landmark_lipsync

    def stack(track: list) -> np.ndarray:
        out = np.full((len(track), NUM_LANDMARKS, 2), np.nan)
        for t, lm in enumerate(track):
            if lm is not None:
                out[t] = lm
        return out

    env = None
    if clip is not None and len(clip[0]):
        env = speech_envelope(clip[0], clip[1], fps, len(render)).numpy()
    out = landmark_lipsync(stack(render), stack(truth), env, max_offset)
    out["detector"] = "mediapipe face_mesh (478 points, refined)"
    return out


def _syncnet_scores(syncnet: Any, render_crops: list[Tensor], gt_crops: list[Tensor],
                    clip: tuple[np.ndarray, int] | None, fps: float) -> dict[str, Any]:
    from thgs.metrics.syncnet import evaluate_sync, resample_frame_indices

    if clip is None or not len(clip[0]):
        return {"skipped": "the subject has no audio"}
    idx = torch.as_tensor(resample_frame_indices(len(render_crops), fps))
    out: dict[str, Any] = {"frames_25fps": int(idx.numel())}
    for name, crops in (("render", render_crops), ("ground_truth", gt_crops)):
        video = torch.stack(crops, 1)[:, idx].to(torch.float32)  # [3, T25, 224, 224]
        try:
            out[name] = evaluate_sync(syncnet, video, clip[0], clip[1]).as_dict()
        except ValueError as exc:
            out[name] = {"skipped": str(exc)}
    return out


def _test_selection(subject: Any, o: EvalOptions) -> tuple[list[int], Any]:
    selection = select_frames(subject, list(subject.split["test"]))
    frames = selection.kept
    if o.max_frames is not None:
        frames = frames[: o.max_frames]
    if not frames:
        raise ValueError(f"{getattr(subject, 'root', subject)}: the test split is empty"
                         + (f" after skipping {selection.skipped} frames without a person" if selection.skipped else ""))
    return frames, selection


def scored_test_frames(subject: Any, options: EvalOptions | None = None) -> list[int]:
    """The test frames :func:`evaluate_avatar` scores, in order (its ``on_test_frame`` index ``t`` is a
    position in this list): the test split without frames lacking a person, at most ``max_frames``."""
    return _test_selection(subject, options or EvalOptions())[0]


def evaluate_avatar(model: Any, subject: Any, background: Tensor, audio: Tensor | None,
                    options: EvalOptions | None = None, *, syncnet: Any = None,
                    video_sink: Callable[[Iterable[np.ndarray], Drive], None] | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    on_test_frame: Callable[[int, Tensor, Tensor, dict[str, Box]], None] | None = None) -> EvalResult:
    """Render and score the test split (and the extra views) of ``subject``.

    Args:
        model: a trained :class:`thgs.avatar.model.THGSAvatar` (eval mode, on its device).
        subject: the opened subject. background: [3] RGB in [0, 1].
        audio: the subject's [T_all, 8, 16, C] audio neighbourhoods, or None (no SAAM).
        syncnet: a loaded :class:`thgs.metrics.syncnet.SyncNet`, or None.
        video_sink: called once with an iterator of side-by-side frames (uint8 [H, 3W, 3], ground truth |
            render | error) and the test drive; it must consume the iterator (e.g. write a video). Without
            it the frames are scored and dropped.
        progress: ``progress(stage, done, total)`` after each frame.
        on_test_frame: ``on_test_frame(t, render, truth, boxes)`` for each scored test frame (float [H, W, 3]
            render and composited ground truth, the frame's region boxes), e.g. to keep pictures.
    Returns:
        :class:`EvalResult`.
    """
    o = options or EvalOptions()
    nets = tuple(o.lpips_nets)
    frames, selection = _test_selection(subject, o)
    cam = subject_camera(subject)
    drive = subject_drive(subject, frames, cam, audio)
    body = model.body
    rows: list[dict[str, Any]] = []
    open_r: list[float] = []
    open_g: list[float] = []
    mouth_all = True
    crops_r: list[Tensor] = []
    crops_g: list[Tensor] = []
    render_s: list[float] = []
    last_face: Box | None = None
    trackers = None
    if o.lipsync_landmarks:
        from thgs.metrics.lipsync_landmarks import FaceMeshTracker

        trackers = (FaceMeshTracker(), FaceMeshTracker())  # render, ground truth (tracking keeps state)
    tracks: tuple[list, list] = ([], [])

    def test_frames() -> Iterator[np.ndarray]:
        nonlocal mouth_all, last_face
        dev = next(model.state.parameters()).device
        for t, frame in enumerate(frames):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            pred = render_frame(model, drive, t, background, o.mode, o.backend)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            render_s.append(time.perf_counter() - t0)
            gt = ground_truth_image(subject, frame, background).to(pred.device)
            inp = drive.inputs(t)
            boxes = frame_boxes(body, inp.pose, inp.betas, inp.expression, inp.transl, drive.camera(t))
            row: dict[str, Any] = {"view": "test", "frame": frame}
            with torch.no_grad():
                for region in REGIONS:
                    box = boxes.get(region)
                    if box is None:
                        continue
                    p, g = box.crop(pred), box.crop(gt)
                    prefix = "" if region == "full" else f"{region}_"
                    for k, v in _image_metrics(p, g, nets).items():
                        row[prefix + k] = v
                    if region == "mouth":
                        row["opening_render"] = float(mouth_opening(p))
                        row["opening_gt"] = float(mouth_opening(g))
                if "mouth" in boxes:
                    open_r.append(row["opening_render"])
                    open_g.append(row["opening_gt"])
                else:
                    mouth_all = False
                if syncnet is not None:
                    from thgs.metrics.syncnet import face_crop_box, prepare_video

                    face = boxes.get("face") or last_face or boxes["full"]
                    last_face = face
                    crop = [face_crop_box(face)]
                    crops_r.append(prepare_video(pred[None].float(), crop)[:, 0].round().to(torch.uint8).cpu())
                    crops_g.append(prepare_video(gt[None].float(), crop)[:, 0].round().to(torch.uint8).cpu())
                if trackers is not None:
                    fb = boxes.get("face") or boxes.get("head")
                    box = fb.as_tuple() if fb is not None else None
                    for k, img in enumerate((pred, gt)):
                        u8 = (img.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
                        tracks[k].append(trackers[k].track(u8, box))
            rows.append(row)
            if on_test_frame is not None:
                on_test_frame(t, pred, gt, boxes)
            if progress is not None:
                progress("test", t + 1, len(frames))
            yield side_by_side(gt, pred, o.max_error)

    try:
        if video_sink is not None:
            video_sink(test_frames(), drive)
        else:
            for _ in test_frames():
                pass
    finally:
        if trackers is not None:
            for tr in trackers:
                tr.close()
    if len(rows) != len(frames):
        raise RuntimeError(f"the video writer consumed {len(rows)} of {len(frames)} test frames")

    test_rows = list(rows)
    test: dict[str, Any] = {"frames": len(frames), "first_frame": frames[0], "last_frame": frames[-1],
                            "frame_selection": selection.summary()}
    for region in REGIONS:
        prefix = "" if region == "full" else f"{region}_"
        s = summarize_rows(test_rows, prefix)
        if s["frames"]:
            test[region] = s
    lip: dict[str, Any] = {}
    if "mouth" in test:
        lip["with_ground_truth"] = {f"mouth_{k}": v for k, v in test["mouth"].items() if k != "frames"}
        if len(open_r) >= 2:
            err = opening_error(torch.tensor(open_r), torch.tensor(open_g))
            lip["with_ground_truth"].update(opening_mae=err["mae"], opening_corr=err["corr"])
        lip["with_ground_truth"]["frames"] = float(len(open_r))
    lip["av_sync"] = (_sync_scores(open_r, open_g, drive.clip, drive.fps, o.max_offset) if mouth_all
                      else {"skipped": "the mouth is off-screen in some test frames"})
    if trackers is not None:
        lip["landmarks"] = landmark_scores(tracks[0], tracks[1], drive.clip, drive.fps, o.max_offset)
    if syncnet is not None:
        lip["syncnet"] = _syncnet_scores(syncnet, crops_r, crops_g, drive.clip, drive.fps)
    else:
        lip["syncnet"] = {"skipped": "no SyncNet weights given (--syncnet-weights)"}
    summary: dict[str, Any] = {
        "test": test, "lip_sync": lip, "lpips_nets": list(nets),
        "render_ms_per_frame": 1000.0 * float(np.median(render_s)) if render_s else float("nan"),
        "num_gaussians": int(model.num_gaussians), "mode": o.mode,
    }

    if o.views:
        views: dict[str, Any] = {}
        test_set = set(subject.split["test"])
        for name, info in sorted((getattr(subject, "views", None) or {}).items()):
            vframes = [f for f in info["frames"] if f in test_set] or list(info["frames"])
            vframes = vframes[::max(1, o.view_stride)]
            if o.max_frames is not None:
                vframes = vframes[: o.max_frames]
            if not vframes:
                continue
            vdrive = subject_drive(subject, vframes, info["camera"], audio)
            vrows = []
            for t, frame in enumerate(vframes):
                pred = render_frame(model, vdrive, t, background, o.mode, o.backend)
                gt = ground_truth_image(subject, frame, background, name, bool(info.get("masks"))).to(pred.device)
                with torch.no_grad():
                    vrows.append({"view": name, "frame": frame, **_image_metrics(pred, gt, nets)})
                if progress is not None:
                    progress(f"view {name}", t + 1, len(vframes))
            views[name] = summarize_rows(vrows)
            rows.extend(vrows)
        if views:
            summary["novel_views"] = views
            summary["novel_view_mean"] = summarize_rows([r for r in rows if r["view"] != "test"])
    return EvalResult(summary=summary, rows=rows)


CSV_FIRST = ("view", "frame")


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """The per-frame rows as CSV text (columns: view, frame, then every metric in sorted order; empty
    cells where a region was off-screen)."""
    cols = list(CSV_FIRST) + sorted({k for r in rows for k in r} - set(CSV_FIRST))
    lines = [",".join(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


EVAL_JSON = "metrics.json"
EVAL_CSV = "frames.csv"
EVAL_VIDEO = "side_by_side.mp4"


def write_eval(out_dir: str | Path, model: Any, subject: Any, background: Tensor, audio: Tensor | None,
               options: EvalOptions | None = None, *, syncnet: Any = None, video: bool = True,
               meta: dict[str, Any] | None = None,
               progress: Callable[[str, int, int], None] | None = None,
               on_test_frame: Callable[[int, Tensor, Tensor, dict[str, Box]], None] | None = None) -> EvalResult:
    """:func:`evaluate_avatar` and write ``out_dir/metrics.json``, ``frames.csv`` and (with ``video``)
    ``side_by_side.mp4`` (ground truth | render | error, with the test split's audio). Every file is
    written atomically and only after every frame was scored: a failure leaves the folder as it was."""
    from thgs.animate.render import write_mp4
    from thgs.utils.io import atomic_path, write_json, write_text

    import contextlib

    out = Path(out_dir)
    with (atomic_path(out / EVAL_VIDEO) if video else contextlib.nullcontext()) as tmp_video:
        def sink(frames: Iterable[np.ndarray], drive: Drive) -> None:
            write_mp4(tmp_video, frames, drive.fps, drive.clip)

        result = evaluate_avatar(model, subject, background, audio, options, syncnet=syncnet,
                                 video_sink=sink if video else None, progress=progress,
                                 on_test_frame=on_test_frame)
        summary = {**(meta or {}), **result.summary}
        if video:
            summary["video"] = EVAL_VIDEO
        result.summary = summary
        write_text(out / EVAL_CSV, rows_to_csv(result.rows))
        write_json(out / EVAL_JSON, summary)
    return result


__all__ = ["EVAL_CSV", "EVAL_JSON", "EVAL_VIDEO", "EvalOptions", "EvalResult", "evaluate_avatar",
           "ground_truth_image", "rows_to_csv", "summarize_rows", "write_eval"]
