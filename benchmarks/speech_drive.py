"""Speech-driven avatar on the held-out test split: lip sync against the ground truth, and driving cost.

Usage (from the repository root):

    .venv/bin/python benchmarks/speech_drive.py --run out/demo/run [--vanilla RUN_V] [--data SUBJECT]
        [--device auto] [--backend auto] [--max-frames 0] [--cost-seconds 60] [--stream-seconds 4]

Rows of the first table (all on the subject's test split, from its own camera):

- ``speech only, test poses``: the test frames' body poses; expressions (and jaw) predicted by the run's
  speech model (``RUN/speech.npz``, fitted now if missing) from the test clip's audio alone, SAAM on the same
  audio: no expression input;
- ``speech only, replayed motion``: what ``thgs render RUN --audio test.wav`` does: the body replays the
  training motion chosen by the speech (the mouth boxes are then taken from each image's own pose);
- ``audio, zero expressions``: test poses, SAAM only, every expression 0 (how ``--audio`` drove the avatar
  before the speech model);
- ``tracked expressions``: the standard test split (the subject's tracked expressions and audio);
- ``vanilla`` (with ``--vanilla``): a vanilla run on the standard test split;
- ``ground truth``: the AV offset of the real frames.

Columns: mouth PSNR (dB, the mouth box), mouth-opening correlation with the ground truth (Pearson r of the
dark-pixel opening signal, :func:`thgs.metrics.sync.mouth_opening`) and the AV offset in frames with its
peak correlation (:func:`thgs.metrics.sync.envelope_sync` of the opening signal against the speech
envelope, the project's weight-free sync metric; positive: the video lags).

The second table is the driving cost: speech -> expressions and motion for ``--cost-seconds`` of synthetic
speech (features, speech model, motion replay). The third is the streaming path
(:class:`thgs.animate.stream.SpeechStreamer`): audio pushed in 40 ms chunks, the median / 95th percentile
latency from the chunk that completed a frame's audio to its rendered image, and the look-ahead wait
reported separately.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without an install

import numpy as np  # noqa: E402
import torch  # noqa: E402


LANDMARKS = False  # --lipsync-landmarks: also the face-mesh lip-sync score of each drive


def _frames_metrics(model, drive, subject, test, background, mode, backend, gt_inputs, own_boxes: bool,
                    progress: str) -> dict:
    """Render ``drive`` and score its mouth against the ground-truth frames ``test`` (with :data:`LANDMARKS`,
    also the landmark lip-sync score, :mod:`thgs.metrics.lipsync_landmarks`)."""
    from tqdm import tqdm

    from thgs.animate.render import drive_animator, render_frame
    from thgs.evaluation.evaluate import ground_truth_image
    from thgs.evaluation.frames import frame_boxes
    from thgs.metrics.image import psnr
    from thgs.metrics.sync import envelope_sync, mouth_opening, opening_error, speech_envelope

    anim = drive_animator(model, drive)
    psnrs, op_r, op_g = [], [], []
    trackers, tracks = None, ([], [])
    if LANDMARKS:
        from thgs.metrics.lipsync_landmarks import FaceMeshTracker

        trackers = (FaceMeshTracker(), FaceMeshTracker())
    for t, frame in enumerate(tqdm(test, desc=progress, unit="frame", leave=False)):
        pred = render_frame(model, drive, t, background, mode, backend, animator=anim).cpu()
        gt = ground_truth_image(subject, frame, background)
        g_in = gt_inputs(t)
        boxes_g = frame_boxes(model.body, *g_in, drive.camera(t))
        if trackers is not None:
            fb = boxes_g.get("face") or boxes_g.get("head")
            for k, img in enumerate((pred, gt)):
                u8 = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
                tracks[k].append(trackers[k].track(u8, fb.as_tuple() if fb is not None else None))
        box_g = boxes_g.get("mouth")
        if box_g is None:
            continue
        if own_boxes:
            inp = drive.inputs(t)
            box_r = frame_boxes(model.body, inp.pose, inp.betas, inp.expression, inp.transl, drive.camera(t)).get("mouth")
            if box_r is None:
                continue
        else:
            box_r = box_g
        cg, cr = box_g.crop(gt), box_r.crop(pred)
        if cr.shape != cg.shape:
            cr = torch.nn.functional.interpolate(cr.permute(2, 0, 1)[None], size=cg.shape[:2], mode="bilinear",
                                                 align_corners=False)[0].permute(1, 2, 0)
        psnrs.append(float(psnr(cr.clamp(0, 1), cg)))
        op_r.append(float(mouth_opening(cr)))
        op_g.append(float(mouth_opening(cg)))
    out: dict = {"frames": len(psnrs), "mouth_psnr": float(np.mean(psnrs)) if psnrs else float("nan")}
    if trackers is not None:
        from thgs.evaluation.evaluate import landmark_scores

        for tr in trackers:
            tr.close()
        out["landmarks"] = landmark_scores(tracks[0], tracks[1], drive.clip, drive.fps, 15)
    if len(op_r) >= 2:
        out["opening_corr"] = opening_error(torch.tensor(op_r), torch.tensor(op_g))["corr"]
    clip = drive.clip
    if clip is not None and len(op_r) > 16:
        env = speech_envelope(clip[0], clip[1], drive.fps, len(op_r))
        k = min(15, len(op_r) - 8)
        for name, sig in (("render", op_r), ("gt", op_g)):
            try:
                s = envelope_sync(torch.tensor(sig), env, max_offset=k)
                out[f"offset_{name}"], out[f"peak_{name}"] = s.offset, s.peak
            except ValueError:
                pass
    return out


def evaluate_run(run: Path, data: Path | None, device: str, backend: str, max_frames: int,
                 vanilla: Path | None) -> list[tuple[str, dict]]:
    from thgs.animate.drive import subject_drive
    from thgs.animate.speech import run_speech_face, speech_drive, speech_expressions, summary
    from thgs.audio.features import frame_features
    from thgs.runs.folder import find_avatar, training_subject_root
    from thgs.data.subject import open_subject
    from thgs.runs.frames import audio_neighbourhoods, load_audio_windows, subject_background, subject_camera
    from thgs.runs.avatar_io import load_avatar

    subject = open_subject(data or training_subject_root(run))
    model, cfg, _ = load_avatar(find_avatar(run), subject, device=device)
    face = run_speech_face(run, model, cfg, subject)
    if face is not None:
        print(summary(face), flush=True)
    cam = subject_camera(subject)
    bg = subject_background(subject, cfg.background)
    test = list(subject.split["test"])
    if max_frames:
        test = test[:max_frames]
    ref = subject_drive(subject, test, cam, None)  # ground-truth inputs and the test clip
    T = len(test)

    def gt_inputs(t):
        return ref.pose[t], ref.betas, ref.expression[t], ref.transl[t]

    clip = ref.clip
    rows: list[tuple[str, dict]] = []
    saam_enc = cfg.audio_encoder if model.saam is not None else None
    windows = frame_features(clip, T, ref.fps, encoder=face.encoder if face else "mel", pad_audio=True).windows
    saam_audio = None
    if saam_enc is not None:
        saam_audio = audio_neighbourhoods(torch.from_numpy(frame_features(clip, T, ref.fps, encoder=saam_enc,
                                                                          pad_audio=True).windows))
    # speech only, test poses
    d = subject_drive(subject, test, cam, None)
    d.audio = saam_audio
    rest = torch.as_tensor(face.rest[: model.body.num_expressions], dtype=torch.float32) if face else torch.zeros(
        model.body.num_expressions)
    d.expression, jaw = speech_expressions(face, windows, rest[None].expand(T, -1), model)
    if jaw is not None:
        d.pose = d.pose.clone()
        d.pose[:, face.jaw_joint] = jaw
    rows.append(("speech only, test poses", _frames_metrics(model, d, subject, test, bg, cfg.render.mode, backend,
                                                           gt_inputs, False, "speech+test poses")))
    # speech only, replayed motion (thgs render --audio)
    d = speech_drive(model, subject, clip, cam, face=face, saam_encoder=saam_enc, num_frames=T)
    rows.append(("speech only, replayed motion", _frames_metrics(model, d, subject, test, bg, cfg.render.mode, backend,
                                                                gt_inputs, True, "speech+replay")))
    # audio, zero expressions (SAAM only)
    d = subject_drive(subject, test, cam, None)
    d.audio = saam_audio
    d.expression = torch.zeros_like(d.expression)
    rows.append(("audio, zero expressions", _frames_metrics(model, d, subject, test, bg, cfg.render.mode, backend,
                                                           gt_inputs, False, "zero expressions")))
    # tracked expressions: the standard test split
    audio_all = load_audio_windows(subject, cfg) if model.saam is not None else None
    d = subject_drive(subject, test, cam, audio_all)
    m = _frames_metrics(model, d, subject, test, bg, cfg.render.mode, backend, gt_inputs, False, "tracked")
    rows.append(("tracked expressions", m))
    if vanilla is not None:
        vm, vcfg, _ = load_avatar(find_avatar(vanilla), subject, device=device)
        va = load_audio_windows(subject, vcfg) if vm.saam is not None else None
        d = subject_drive(subject, test, cam, va)
        rows.append(("vanilla", _frames_metrics(vm, d, subject, test, subject_background(subject, vcfg.background),
                                                vcfg.render.mode, backend, gt_inputs, False, "vanilla")))
    rows.append(("ground truth", {"mouth_psnr": float("inf"), "opening_corr": 1.0,
                                  "offset_render": m.get("offset_gt"), "peak_render": m.get("peak_gt")}))
    return rows


def driving_cost(run: Path, data: Path | None, device: str, seconds: float) -> dict:
    from thgs.animate.motion import MotionLibrary, ReplayOptions, replay, speech_activity
    from thgs.animate.speech import run_speech_face
    from thgs.audio.features import frame_features
    from thgs.runs.folder import find_avatar, training_subject_root
    from thgs.data.subject import open_subject
    from thgs.synth.speech import SAMPLE_RATE, synthesize_speech
    from thgs.runs.avatar_io import load_avatar

    subject = open_subject(data or training_subject_root(run))
    model, cfg, _ = load_avatar(find_avatar(run), subject, device=device)
    face = run_speech_face(run, model, cfg, subject, quiet=True)
    samples, _ = synthesize_speech(seconds, seed=11)
    fps = float(subject.fps)
    T = int(seconds * fps)
    times = {}
    t0 = time.perf_counter()
    w = frame_features((samples, SAMPLE_RATE), T, fps, encoder=face.encoder if face else "mel", pad_audio=True).windows
    t1 = time.perf_counter()
    if face is not None:
        face.predict(w)
    t2 = time.perf_counter()
    lib = MotionLibrary.from_subject(subject)
    replay(lib, speech_activity(samples, SAMPLE_RATE, fps, T), ReplayOptions())
    t3 = time.perf_counter()
    times.update(features_s=t1 - t0, face_s=t2 - t1, motion_s=t3 - t2, total_s=t3 - t0, frames=T)
    return times


def streaming(run: Path, data: Path | None, device: str, backend: str, seconds: float) -> dict:
    from thgs.animate.stream import open_streamer
    from thgs.synth.speech import SAMPLE_RATE, synthesize_speech

    st = open_streamer(str(run), data=str(data) if data else None, device=device, backend=backend)
    samples, _ = synthesize_speech(seconds, seed=13)
    chunk = int(0.04 * SAMPLE_RATE)
    frames = []
    for a in range(0, len(samples), chunk):
        if st.device.type == "cuda":
            torch.cuda.synchronize()
        frames += st.push(samples[a:a + chunk], SAMPLE_RATE)
    frames += st.flush()
    lat = [f.latency_s for f in frames[3:]] or [f.latency_s for f in frames]
    # a push that completes several frames gives them one start: each waits for those rendered before it
    return {"frames": len(frames), "median_ms": 1000 * statistics.median(lat),
            "p95_ms": 1000 * float(np.percentile(lat, 95)), "lookahead_ms": 1000 * st.lookahead_s,
            "size": f"{st.camera.width}x{st.camera.height}"}


def _fmt(v, digits=2):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float) and np.isinf(v):
        return "inf"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="run folder (thgs train / thgs demo OUT/run)")
    ap.add_argument("--data", type=Path, default=None, help="subject folder (default: the run's training subject)")
    ap.add_argument("--vanilla", type=Path, default=None, help="a vanilla run on the same subject (optional row)")
    ap.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    ap.add_argument("--backend", default="auto", help="rasterizer backend: auto, gsplat, reference")
    ap.add_argument("--max-frames", type=int, default=0, help="at most this many test frames (0: all)")
    ap.add_argument("--cost-seconds", type=float, default=60.0, help="seconds of speech for the driving cost")
    ap.add_argument("--stream-seconds", type=float, default=4.0, help="seconds of speech streamed (0: skip)")
    ap.add_argument("--lipsync-landmarks", action="store_true",
                    help="also score each drive with the face-mesh lip-sync score (needs mediapipe)")
    args = ap.parse_args(argv)
    global LANDMARKS
    LANDMARKS = args.lipsync_landmarks
    from thgs.utils.device import default_device

    device = default_device(None if args.device == "auto" else args.device)
    dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({platform.processor() or 'cpu'}, {torch.get_num_threads()} threads)"
    print(f"# speech driving, {args.run}, {device} [{dev_name}], {datetime.date.today().isoformat()}", flush=True)
    rows = evaluate_run(args.run, args.data, device, args.backend, args.max_frames, args.vanilla)
    print("\n| drive | mouth PSNR (dB) | opening corr | AV offset (frames) | sync peak |"
          + (" opening corr (landmarks) | lip LMD (px) | AV offset (landmarks) |" if LANDMARKS else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if LANDMARKS else ""))
    for name, m in rows:
        lm = m.get("landmarks") or {}
        extra = ""
        if LANDMARKS:
            off = (lm.get("render") or {}).get("av_sync", {}).get("offset")
            if name == "ground truth":
                tracked = dict(rows).get("tracked expressions", {}).get("landmarks") or {}
                gt_off = (tracked.get("ground_truth") or {}).get("av_sync", {}).get("offset")
                extra = f" 1.000 | 0.00 | {_fmt(gt_off)} |"
            else:
                extra = f" {_fmt(lm.get('opening_corr'), 3)} | {_fmt(lm.get('lip_lmd_px'))} | {_fmt(off)} |"
        print(f"| {name} | {_fmt(m.get('mouth_psnr'))} | {_fmt(m.get('opening_corr'), 3)} | "
              f"{_fmt(m.get('offset_render'))} | {_fmt(m.get('peak_render'), 3)} |" + extra)
    c = driving_cost(args.run, args.data, device, args.cost_seconds)
    print(f"\n| driving cost, {args.cost_seconds:g} s of speech ({c['frames']} frames) | features s | speech model s "
          "| motion replay s | total s |")
    print("|---|---|---|---|---|")
    print(f"| CPU, {torch.get_num_threads()} threads (this path never uses the GPU) | {c['features_s']:.3f} | {c['face_s']:.3f} | {c['motion_s']:.3f} | {c['total_s']:.3f} |")
    if args.stream_seconds > 0:
        s = streaming(args.run, args.data, device, args.backend, args.stream_seconds)
        print("\n| streaming (40 ms chunks) | size | frames | latency median ms | latency p95 ms | look-ahead ms |")
        print("|---|---|---|---|---|---|")
        print(f"| {device} | {s['size']} | {s['frames']} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} | "
              f"{s['lookahead_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
