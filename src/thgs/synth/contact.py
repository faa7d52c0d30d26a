"""A contact sheet of a synthetic subject: front frames with distinct mouth shapes, face close-ups, and
the novel views of one test frame, as one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from thgs.synth.generate import array_to_names


def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 7 * len(text) + 6, 13], fill=(255, 255, 255))
    d.text((3, 1), text, fill=(0, 0, 0))
    return np.asarray(im)


def _crop(img: np.ndarray, cx: float, cy: float, w: int, h: int) -> np.ndarray:
    """A w x h window centred at (cx, cy), padded with white outside the image."""
    H, W = img.shape[:2]
    out = np.full((h, w, 3), 255, np.uint8)
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(W, x0 + w), min(H, y0 + h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def pick_frames(truth: dict[str, np.ndarray]) -> list[tuple[int, str]]:
    """Frames that show distinct mouth shapes: the most open, rounded, spread and closed mouths, a pause,
    and the largest gesture; (frame index, label) pairs."""
    mouth = truth["mouth"]
    names = array_to_names(truth["mouth_names"])
    phones = array_to_names(truth["phone_names"])
    pf = truth["phone_frames"]
    controls = truth["controls"]
    cnames = array_to_names(truth["control_names"])
    picks: list[tuple[int, str]] = []
    used: set[int] = set()

    def add(i: int, what: str) -> None:
        if i not in used:
            used.add(i)
            picks.append((i, f"{i} {what} /{phones[pf[i]]}/"))

    add(int(np.argmax(mouth[:, names.index("jaw_open")])), "open")
    add(int(np.argmax(mouth[:, names.index("lip_round")])), "round")
    add(int(np.argmax(mouth[:, names.index("lip_wide")])), "wide")
    add(int(np.argmax(mouth[:, names.index("lip_close")])), "closed")
    g = controls[:, cnames.index("gesture_left")] + controls[:, cnames.index("gesture_right")]
    add(int(np.argmax(g)), "gesture")
    return picks


def contact_sheet(subject: str | Path, out_png: str | Path, crop_height: int = 256) -> Path:
    """Write a contact sheet PNG of a synthetic subject (``thgs synth`` output); returns its path.

    Row 1: front frames (picked by :func:`pick_frames`), cropped about the person; row 2: face close-ups of
    the same frames, enlarged 3x; row 3: a test frame from every novel view and the front camera.
    """
    from PIL import Image

    from thgs.body.registry import load_body_model
    from thgs.data.subject import open_subject
    from thgs.synth.motion import semantic_joints
    from thgs.utils.io import atomic_path

    sub = open_subject(subject)
    truth = sub.truth()
    picks = pick_frames(truth)
    H = sub.height
    ch = min(crop_height, H)
    cw = int(round(ch * 0.7))
    cx = sub.width / 2
    # Face centre in the image, from the body parameters.
    body = load_body_model(sub.body["model"], **sub.body.get("options", {}))
    prm = sub.params()
    sem = semantic_joints(body)
    idx = [i for i, _ in picks]
    with torch.no_grad():
        out = body(torch.from_numpy(prm["pose"][idx]), None, torch.from_numpy(prm["expression"][idx]),
                   torch.from_numpy(prm["transl"][idx]))
    if "left_eye" in sem and "right_eye" in sem:  # the eyes' midpoint, a little lower: the face's centre
        anchor, drop = 0.5 * (out.joints[:, sem["left_eye"]] + out.joints[:, sem["right_eye"]]), 0.22
    else:
        anchor, drop = out.joints[:, sem["head"]], 0.1
    cam = sub.camera
    pc = anchor @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3]
    uv = (pc @ cam.K.T)
    uv = (uv[:, :2] / uv[:, 2:3]).numpy()
    face_px = max(24, int(round(0.16 * H)))
    row1, row2 = [], []
    for k, (i, text) in enumerate(picks):
        img = sub.image(i)
        row1.append(_label(_crop(img, cx, H / 2, cw, ch), text))
        f = _crop(img, uv[k, 0], uv[k, 1] + drop * face_px, face_px, face_px)
        f = np.asarray(Image.fromarray(f).resize((cw, cw), Image.NEAREST if face_px * 3 >= cw else Image.BICUBIC))
        row2.append(f)
    test = sub.split["test"]
    t = test[len(test) // 2]
    row3 = []
    yaws = truth["view_yaws"].tolist() if "view_yaws" in truth else []
    entries = [(y, f"yaw{y:g}") for y in yaws] + [(0.0, None)]
    for y, name in sorted(entries, key=lambda e: e[0]):
        img = sub.image(t) if name is None else sub.view(name, t)
        row3.append(_label(_crop(img, cx, H / 2, cw, ch), f"frame {t} yaw {y:+g}" if name else f"frame {t} front"))

    def strip(row: list[np.ndarray], height: int) -> np.ndarray:
        n = max(len(row1), len(row3))
        pad = [np.full((height, cw, 3), 255, np.uint8)] * (n - len(row))
        return np.concatenate(row + pad, 1)

    sheet = np.concatenate([strip(row1, ch), strip(row2, cw), strip(row3, ch)], 0)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG", optimize=True)
    return out_png
