"""FMA against ground truth: fit a synthetic subject's video and compare with the parameters it was made from.

    python benchmarks/prepare_synth_truth.py                      # anny, 4 s, 25 fps, 512x288
    python benchmarks/prepare_synth_truth.py --seconds 8 --size 512 --device cuda

Steps: ``thgs synth`` makes a subject whose every pose and expression is known; its frames and audio are
written to an H.264/AAC mp4 (PyAV) and decoded back; mediapipe holistic (the bundled legacy model, refined
face) finds the 553 keypoints of :mod:`thgs.prepare.layout` in every decoded frame; :func:`thgs.prepare.fit.
fit_subject` fits anny with the subject's true intrinsics. Printed (a table):

* LMD (pixels) per region of the fitted model points against the detections (before / after FMA) and
  against the *true* model points projected by the true camera (those inside the frame);
* MPJPE (mm) of 17 body joints (spine, neck, head, collars, shoulders, elbows, wrists, hips, knees) after aligning the
  root joint, in the camera frame (so the camera's own placement does not count), over all of them and over
  those inside the frame (the synthetic framing cuts at the thighs: the knees are never seen);
* the correlation of the fitted ``jawOpen`` with the true one (the subject's expression track) and with the
  synthetic speech's jaw-opening control.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from thgs.prepare.layout import FACE, LEFT_HAND, NUM_KEYPOINTS, POSE, RIGHT_HAND

MPJPE_JOINTS = ("spine1", "spine2", "spine3", "neck", "head") + tuple(
    f"{s}_{j}" for s in ("left", "right") for j in ("collar", "shoulder", "elbow", "wrist", "hip", "knee"))


def write_mp4(subject, path: Path) -> None:
    """The subject's frames and audio as an H.264 / AAC mp4."""
    import av

    samples, sr = subject.audio()
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(subject.fps).limit_denominator(1000))
        v.width, v.height, v.pix_fmt = subject.width, subject.height, "yuv420p"
        v.options = {"crf": "18"}
        a = out.add_stream("aac", rate=sr)
        for i in range(len(subject)):
            for pkt in v.encode(av.VideoFrame.from_ndarray(subject.image(i), format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = sr
        for pkt in a.encode(frame):
            out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)


def detect(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """mediapipe holistic on every decoded frame -> (kp2d [T, 553, 3], world [T, 33, 4], width, height)."""
    import av
    import mediapipe as mp

    hol = mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1, refine_face_landmarks=True)
    kps, worlds = [], []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            img = fr.to_ndarray(format="rgb24")
            H, W = img.shape[:2]
            r = hol.process(img)
            kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
            wl = np.zeros((33, 4), np.float32)
            for block, lms, vis in ((POSE, r.pose_landmarks, True), (LEFT_HAND, r.left_hand_landmarks, False),
                                    (RIGHT_HAND, r.right_hand_landmarks, False), (FACE, r.face_landmarks, False)):
                if lms is not None:
                    for j, lm in enumerate(lms.landmark):
                        kp[block.start + j] = (lm.x * W, lm.y * H, lm.visibility if vis else 1.0)
            if r.pose_world_landmarks is not None:
                for j, lm in enumerate(r.pose_world_landmarks.landmark):
                    wl[j] = (lm.x, lm.y, lm.z, lm.visibility)
            inside = (kp[:, 0] >= 0) & (kp[:, 0] < W) & (kp[:, 1] >= 0) & (kp[:, 1] < H)
            kp[~inside] = 0
            kps.append(kp)
            worlds.append(wl)
    return np.stack(kps), np.stack(worlds), W, H


def camera_points(body, pose, transl, expression, betas, w2c, corr):
    """(joints [T, J, 3], correspondence points [T, K, 3]) in camera coordinates."""
    T = pose.shape[0]
    b = None if betas is None or not len(betas) else torch.as_tensor(betas)[None].expand(T, -1)
    with torch.no_grad():
        out = body(torch.as_tensor(pose), b, torch.as_tensor(expression), torch.as_tensor(transl))
        pts = corr.gather(out.joints, out.vertices)
    R, t = np.asarray(w2c)[:3, :3], np.asarray(w2c)[:3, 3]
    return out.joints.numpy() @ R.T + t, pts.numpy() @ R.T + t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--size", type=int, default=288, help="frame height (pixels); the 16:9 width must come out even for H.264")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=None, help="folder for the subject and the mp4 (default: a temporary one)")
    ap.add_argument("--options", default="{}", help="FitOptions overrides as JSON")
    args = ap.parse_args(argv)

    from thgs.body.registry import load_body_model
    from thgs.data.subject import open_subject
    from thgs.prepare.correspond import REGIONS, correspondence_for
    from thgs.prepare.fit import FitInput, FitOptions, fit_subject
    from thgs.synth.generate import SynthConfig, array_to_names, generate

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="thgs-fma-truth-"))
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    cfg = SynthConfig(body="anny", seconds=args.seconds, fps=args.fps, size=args.size, seed=args.seed, views=())
    sub_dir = work / "subject"
    if not sub_dir.exists():
        generate(sub_dir, cfg, progress=False)
    sub = open_subject(sub_dir)
    times["synth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    video = work / "video.mp4"
    write_mp4(sub, video)
    kp, world, W, H = detect(video)
    times["detect"] = time.perf_counter() - t0
    T = min(len(sub), kp.shape[0])
    kp, world = kp[:T], world[:T]
    K = sub.camera.K.numpy()
    inp = FitInput(kp2d=kp, world=world, valid=kp[:, :, 2].max(1) > 0, K=K, width=W, height=H, fps=sub.fps)
    t0 = time.perf_counter()
    res = fit_subject(inp, body="anny", options=FitOptions(**json.loads(args.options)), device=args.device,
                      progress=True)
    times["fit"] = time.perf_counter() - t0

    truth_body = load_body_model(sub.meta["body"]["model"], **sub.meta["body"].get("options", {}))
    fit_body = load_body_model(res.body_spec["model"], **res.body_spec["options"])
    p = sub.params()
    tc = correspondence_for(truth_body)
    fc = correspondence_for(fit_body)
    tj, tpts = camera_points(truth_body, p["pose"][:T], p["transl"][:T], p["expression"][:T], p["betas"],
                             sub.camera.world_to_cam.numpy(), tc)
    fj, fpts = camera_points(fit_body, res.pose, res.transl, res.expression, res.betas, res.world_to_cam, fc)
    assert np.array_equal(tc.keypoints, fc.keypoints)

    def pix(x, Km):
        return x[..., :2] / x[..., 2:] * np.diag(Km)[:2] + Km[:2, 2]

    tpx = pix(tpts, K)
    d2 = np.linalg.norm(pix(fpts, res.K) - tpx, axis=-1)
    seen = (tpx[..., 0] >= 0) & (tpx[..., 0] < W) & (tpx[..., 1] >= 0) & (tpx[..., 1] < H)  # true point in view
    lmd_truth = {r: float(d2[seen & np.isin(tc.keypoints, REGIONS[r])[None]].mean()) for r in ("face", "body", "hands")}
    sem = truth_body.meta["semantic_joints"]
    idx = [sem[n] for n in MPJPE_JOINTS]
    root = sem["pelvis"]
    err = np.linalg.norm((fj[:, idx] - fj[:, root:root + 1]) - (tj[:, idx] - tj[:, root:root + 1]), axis=-1)
    tjp = pix(tj[:, idx], K)
    in_view = (tjp[..., 0] >= 0) & (tjp[..., 0] < W) & (tjp[..., 1] >= 0) & (tjp[..., 1] < H)
    jaw = fit_body.expression_names.index("jawOpen")
    corr_expr = float(np.corrcoef(res.expression[:, jaw], p["expression"][:T, jaw])[0, 1])
    truth = sub.truth()
    mouth = truth["mouth"][:T, array_to_names(truth["mouth_names"]).index("jaw_open")]
    corr_mouth = float(np.corrcoef(res.expression[:, jaw], mouth)[0, 1])

    rows = [("frames", f"{T} at {W}x{H}, {sub.fps:g} fps"),
            ("LMD vs detections before FMA (face/body/hands px)", " / ".join(f"{res.lmd_before[r]:.2f}" for r in lmd_truth)),
            ("LMD vs detections after FMA (face/body/hands px)", " / ".join(f"{res.lmd_after[r]:.2f}" for r in lmd_truth)),
            ("LMD vs true model points (face/body/hands px)", " / ".join(f"{v:.2f}" for v in lmd_truth.values())),
            (f"MPJPE, root aligned (mm, {len(idx)} body joints / those in view)",
             f"{1000 * err.mean():.1f} / {1000 * err[in_view].mean():.1f}"),
            ("corr(fitted jawOpen, true jawOpen)", f"{corr_expr:.3f}"),
            ("corr(fitted jawOpen, speech jaw_open control)", f"{corr_mouth:.3f}"),
            ("fitted body", json.dumps(res.body_spec["options"])),
            ("seconds synth / detect / fit", " / ".join(f"{times[k]:.1f}" for k in ("synth", "detect", "fit"))),
            ("fit stages (s)", json.dumps(res.stage_seconds))]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |\n| {'-' * width} | --- |")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
