"""A clip of a trained avatar saying speech it never heard, and a contact sheet of it.

Usage (from the repository root):

    .venv/bin/python scripts/speech_clip.py --run out/demo/run --out out/speech_clip [--seconds 6] [--seed 2027]
        [--sheet docs/images/speech_contact_sheet.png]

1. makes ``--seconds`` of new speech with the project's speech synthesiser (:mod:`thgs.synth.speech`, a seed
   the subject was not made with) into OUT/speech.wav;
2. renders it with ``thgs render RUN --audio OUT/speech.wav --out OUT/clip.mp4 --png-dir OUT/frames``;
3. writes a contact sheet: ``--cells`` frames evenly spaced, each as the whole frame and a close-up of the
   face, labelled with the time, the speech activity and the predicted jaw opening.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works without an install

import numpy as np  # noqa: E402


def _label(img: np.ndarray, lines: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    w = 6 * max(len(s) for s in lines) + 6
    d.rectangle([0, 0, w, 12 * len(lines) + 2], fill=(255, 255, 255))
    for i, s in enumerate(lines):
        d.text((3, 1 + 12 * i), s, fill=(0, 0, 0))
    return np.asarray(im)


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="folder for speech.wav, clip.mp4 and frames/")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=2027, help="speech synthesiser seed (not the subject's)")
    ap.add_argument("--cells", type=int, default=12, help="frames on the sheet")
    ap.add_argument("--columns", type=int, default=4)
    ap.add_argument("--reuse", action="store_true", help="keep OUT/clip.mp4 and OUT/frames/ when they exist")
    ap.add_argument("--sheet", type=Path, default=None, help="contact sheet PNG (default: OUT/contact_sheet.png)")
    args = ap.parse_args(argv)

    import argparse as _ap

    from PIL import Image

    from thgs.cli import main as thgs
    from thgs.commands.render import build_drive
    from thgs.runs.folder import find_avatar, training_subject_root
    from thgs.data.subject import open_subject
    from thgs.evaluation.frames import frame_boxes
    from thgs.io.audio_io import write_wav
    from thgs.synth.speech import SAMPLE_RATE, synthesize_speech
    from thgs.runs.avatar_io import load_avatar
    from thgs.utils.io import atomic_path

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    samples, _ = synthesize_speech(args.seconds, seed=args.seed)
    wav = write_wav(out / "speech.wav", np.asarray(samples, np.float32), SAMPLE_RATE)
    frames_dir = out / "frames"
    rc = 0 if (args.reuse and (out / "clip.mp4").is_file() and frames_dir.is_dir()) else thgs(["render", str(args.run), "--audio", str(wav), "--out", str(out / "clip.mp4"), "--png-dir",
               str(frames_dir)])
    if rc:
        return rc
    # the same drive again (deterministic) for the face boxes and the labels
    subject = open_subject(training_subject_root(args.run))
    model, cfg, _ = load_avatar(find_avatar(args.run), subject, device="cpu")
    ns = _ap.Namespace(run=args.run, size=0, audio=wav, motion=None, expression=None, frames=0, orbit=False, yaw=0.0)
    drive = build_drive(ns, model, cfg, subject)
    from thgs.animate.motion import speech_activity

    act = speech_activity(drive.clip[0], drive.clip[1], drive.fps, len(drive))
    names = list(model.body.expression_names)
    jaw_name = next((n for n in ("jawOpen", "jaw_open") if n in names), None)
    T = len(drive)
    picks = np.linspace(0, T - 1, args.cells).round().astype(int)
    cells = []
    for t in picks:
        img = np.asarray(Image.open(frames_dir / f"{t:06d}.png").convert("RGB"))
        inp = drive.inputs(int(t))
        boxes = frame_boxes(model.body, inp.pose, inp.betas, inp.expression, inp.transl, drive.camera(int(t)))
        face = boxes.get("face") or boxes.get("head")
        full = _fit(img, 192)
        if face is not None:
            cx, cy = (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2
            half = int(max(face.width, face.height) * 0.6)
            padded = np.pad(img, ((half, half), (half, half), (0, 0)), constant_values=255)
            x0, y0 = int(cx), int(cy)  # the centre, in the padded image's offset coordinates
            crop = padded[y0:y0 + 2 * half, x0:x0 + 2 * half]
            close = _fit(crop, 192)
        else:
            close = np.full((192, 192, 3), 255, np.uint8)
        lines = [f"t={t / drive.fps:.2f}s", f"speech {act[t]:.2f}"]
        if jaw_name is not None:
            lines.append(f"{jaw_name} {float(drive.expression[t, names.index(jaw_name)]):.2f}")
        cells.append(np.concatenate([_label(full, lines), close], 1))
    h = max(c.shape[0] for c in cells)
    w = max(c.shape[1] for c in cells)
    pad = [np.pad(c, ((0, h - c.shape[0]), (0, w - c.shape[1]), (0, 0)), constant_values=255) for c in cells]
    rows = [np.concatenate(pad[i:i + args.columns] + [np.full((h, w, 3), 255, np.uint8)] *
                           (args.columns - len(pad[i:i + args.columns])), 1)
            for i in range(0, len(pad), args.columns)]
    sheet = np.concatenate(rows, 0)
    path = args.sheet or out / "contact_sheet.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    print(f"speech: {wav}\nclip: {out / 'clip.mp4'}\nsheet: {path} ({len(cells)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
