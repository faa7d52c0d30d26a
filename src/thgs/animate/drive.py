"""Driving signals for a trained avatar: the test split, new motion, new audio, fixed expressions, cameras.

A :class:`Drive` is a sequence of T frames: body parameters, audio windows, one camera per frame, the
audio clip to put in the video, and (for the test split) the subject frames it reproduces.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thgs.avatar.model import FrameInputs
from thgs.errors import ThgsError
from thgs.render.base import Camera

SMPLX_PARTS = (("global_orient", 1), ("body_pose", 21), ("jaw_pose", 1), ("leye_pose", 1), ("reye_pose", 1),
               ("left_hand_pose", 15), ("right_hand_pose", 15))
"""SMPL-X .npz keys in joint order (55 joints)."""


class DriveError(ThgsError, ValueError):
    """A driving input (motion, audio, expression) is unusable; the message names the file and field."""


@dataclass
class Drive:
    """T frames of driving signals.

    pose [T, J, 3]; transl [T, 3]; betas [S]; expression [T, E]; audio [T, 8, 16, C] or None;
    cameras: T cameras (or one, used for every frame); clip: (samples, sample_rate) covering the frames
    or None; frames: the subject frames reproduced (test split) or None.
    """

    pose: Tensor
    transl: Tensor
    betas: Tensor
    expression: Tensor
    fps: float
    cameras: list[Camera]
    audio: Tensor | None = None
    clip: tuple[np.ndarray, int] | None = None
    frames: list[int] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pose.shape[0])

    def camera(self, t: int) -> Camera:
        return self.cameras[t] if len(self.cameras) > 1 else self.cameras[0]

    def inputs(self, t: int) -> FrameInputs:
        return FrameInputs(pose=self.pose[t], transl=self.transl[t], betas=self.betas, expression=self.expression[t],
                           audio_window=self.audio[t] if self.audio is not None else None, frame_index=None)


def _t(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _numeric(path: Path | str, key: str, value: Any) -> Tensor:
    """``value`` as float32, or DriveError naming the file and field when it is not numeric or not finite."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise DriveError(f"{path}: field {key!r} holds {arr.dtype} values, expected numbers")
    t = torch.as_tensor(arr, dtype=torch.float32)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise DriveError(f"{path}: field {key!r} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first "
                         f"at index {first}")
    return t


MAX_ABS_VALUE = 1e4
"""Largest magnitude accepted in a motion or expression (radians, metres, coefficients): anything larger
is a broken file, not a pose."""


def _bounded(path: Path | str, key: str, t: Tensor) -> Tensor:
    if t.numel() and float(t.abs().max()) > MAX_ABS_VALUE:
        raise DriveError(f"{path}: field {key!r} holds a value of magnitude {float(t.abs().max()):g} "
                         f"(more than {MAX_ABS_VALUE:g})")
    return t


def subject_drive(subject: Any, frames: list[int], camera: Camera, audio: Tensor | None) -> Drive:
    """Reproduce ``frames`` of the subject (e.g. its test split) from its own camera.

    ``audio``: the subject's [T_all, 8, 16, C] audio neighbourhoods or None."""
    p = subject.params()
    idx = torch.as_tensor(frames, dtype=torch.long)
    clip = None
    if getattr(subject, "has_audio", False) and frames:
        samples, sr = subject.audio()
        a = int(round(frames[0] / subject.fps * sr))
        b = int(round((frames[-1] + 1) / subject.fps * sr))
        clip = (np.asarray(samples[a:b], dtype=np.float32), int(sr))
    return Drive(pose=_t(p["pose"])[idx], transl=_t(p["transl"])[idx], betas=_t(p["betas"]).reshape(-1),
                 expression=_t(p["expression"])[idx], fps=float(subject.fps), cameras=[camera],
                 audio=audio[idx] if audio is not None else None, clip=clip, frames=list(frames))


def load_motion(path: str | Path, num_joints: int, num_expressions: int) -> dict[str, Tensor]:
    """Read per-frame poses: our params.npz (pose [T, J, 3], transl, betas, expression) or an SMPL-X .npz
    (global_orient, body_pose, jaw_pose, leye_pose, reye_pose, left/right_hand_pose (axis-angle, not PCA),
    transl, betas, expression). Returns pose [T, J, 3], transl [T, 3], and betas/expression when present."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DriveError(f"{path}: not a readable .npz motion file ({type(exc).__name__})") from None
    except (TypeError, AttributeError):  # a .npy: one array, not a dict of fields
        raise DriveError(f"{path}: a single array, not a .npz motion file with field 'pose' (or SMPL-X fields)") \
            from None
    data = {k: _bounded(path, k, _numeric(path, k, v)) for k, v in data.items() if k in _MOTION_KEYS}
    out: dict[str, Tensor] = {}
    if "pose" in data:
        pose = _t(data["pose"])
        if pose.dim() == 2 and pose.shape[1] == num_joints * 3:
            pose = pose.reshape(-1, num_joints, 3)
        if pose.dim() != 3 or pose.shape[1:] != (num_joints, 3):
            raise DriveError(f"{path}: field 'pose' has shape {tuple(pose.shape)}, expected (T, {num_joints}, 3)")
    elif "global_orient" in data and "body_pose" in data:
        if num_joints != 55:
            raise DriveError(f"{path}: an SMPL-X motion needs a 55-joint body; this avatar's body has {num_joints}")
        T = int(np.asarray(data["global_orient"]).reshape(len(data["global_orient"]), -1).shape[0])
        parts = []
        for key, n in SMPLX_PARTS:
            if key in data:
                arr = _t(data[key]).reshape(T, -1)
                if arr.shape[1] != n * 3:
                    raise DriveError(f"{path}: field {key!r} has {arr.shape[1]} values per frame, expected {n * 3} "
                                     "(axis-angle; PCA hand poses are not supported)")
                parts.append(arr.reshape(T, n, 3))
            else:
                parts.append(torch.zeros(T, n, 3))
        pose = torch.cat(parts, 1)
    else:
        raise DriveError(f"{path}: no field 'pose' (params.npz) and no 'global_orient'/'body_pose' (SMPL-X)")
    T = pose.shape[0]
    out["pose"] = pose
    transl = _t(data["transl"]).reshape(T, 3) if "transl" in data else torch.zeros(T, 3)
    out["transl"] = transl
    if "betas" in data:
        out["betas"] = _t(data["betas"]).reshape(-1)
    if "expression" in data:
        e = _t(data["expression"]).reshape(T, -1)
        k = min(e.shape[1], num_expressions)
        full = torch.zeros(T, num_expressions)
        full[:, :k] = e[:, :k]
        out["expression"] = full
    return out


_MOTION_KEYS = {"pose", "transl", "betas", "expression", *(k for k, _ in SMPLX_PARTS)}


def parse_expression(spec: str, names: list[str], num_frames: int) -> Tensor:
    """``name=value[,name=value...]`` (names from the body's expression names, or ``expr<k>``) or a .npy of
    [E] or [T, E] -> [T, E]."""
    E = len(names)
    if spec.endswith(".npy"):
        try:
            raw = np.load(spec, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DriveError(f"{spec}: not a readable .npy expression file ({type(exc).__name__})") from None
        if not isinstance(raw, np.ndarray):
            raise DriveError(f"{spec}: not a .npy array of expression coefficients")
        arr = _bounded(spec, "expression", _numeric(spec, "expression", raw))
        if arr.dim() == 1:
            arr = arr[None].expand(num_frames, -1)
        if arr.dim() != 2 or arr.shape[0] != num_frames:
            raise DriveError(f"{spec}: expression has shape {tuple(arr.shape)}, expected ({E},) or ({num_frames}, {E})")
        out = torch.zeros(num_frames, E)
        k = min(E, arr.shape[1])
        out[:, :k] = arr[:, :k]
        return out
    vec = torch.zeros(E)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, eq, value = item.partition("=")
        if not eq:
            raise DriveError(f"--expression: {item!r} is not name=value")
        if name in names:
            k = names.index(name)
        elif name.startswith("expr") and name[4:].isdigit() and int(name[4:]) < E:
            k = int(name[4:])
        else:
            raise DriveError(f"--expression: unknown expression {name!r}; known: {', '.join(names)}")
        try:
            v = float(value)
        except ValueError:
            raise DriveError(f"--expression: {item!r}: {value!r} is not a number") from None
        if not math.isfinite(v) or abs(v) > MAX_ABS_VALUE:
            raise DriveError(f"--expression: {item!r}: the value must be a finite number of magnitude at most "
                             f"{MAX_ABS_VALUE:g}")
        vec[k] = v
    return vec[None].expand(num_frames, -1).clone()


def rotate_camera(camera: Camera, center: Tensor, up: Tensor, degrees: float) -> Camera:
    """The camera moved on a circle about the vertical axis ``up`` through ``center`` by ``degrees``
    (still looking the same way relative to the body)."""
    a = math.radians(degrees)
    k = torch.nn.functional.normalize(up.float(), dim=0)
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = torch.eye(3) + math.sin(a) * K + (1 - math.cos(a)) * (K @ K)
    M = torch.eye(4)  # world -> world rotation about the axis through center
    M[:3, :3] = R
    M[:3, 3] = center - R @ center
    w2c = camera.world_to_cam @ torch.linalg.inv(M)
    return Camera(camera.K.clone(), w2c, camera.width, camera.height, camera.near, camera.far)


def orbit(camera: Camera, center: Tensor, up: Tensor, num_frames: int, degrees: float = 360.0,
          start: float = 0.0) -> list[Camera]:
    """``num_frames`` cameras going once round the body (``degrees`` in all)."""
    return [rotate_camera(camera, center, up, start + degrees * t / max(1, num_frames)) for t in range(num_frames)]


def with_cameras(drive: Drive, cameras: list[Camera]) -> Drive:
    return replace(drive, cameras=cameras)


@dataclass(frozen=True)
class DriveRequest:
    """What to drive an avatar with (the flags of ``thgs render``).

    ``run``: the run folder (its speech model drives the face with ``audio``); ``size``: output height in
    pixels (0: the subject's); ``audio``: a speech file; ``motion``: a motion .npz; ``expression``: name=value
    pairs or a .npy; ``frames``: at most this many (0: all); ``orbit`` / ``yaw``: camera moves. Without audio
    and motion the subject's test split is replayed."""

    run: Path | None = None
    size: int = 0
    audio: Path | None = None
    motion: Path | None = None
    expression: str | None = None
    frames: int = 0
    orbit: bool = False
    yaw: float = 0.0


def build_drive(args: DriveRequest, model: Any, cfg: Any, subject: Any) -> Drive:
    """The driving sequence ``args`` asks for (``thgs render``, the viewer and the exporter share it).

    Raises :class:`DriveError` naming the file and field for an unusable audio, motion or expression input."""
    from thgs.audio.features import frame_features
    from thgs.runs.frames import audio_neighbourhoods, load_audio_windows, subject_camera

    cam = subject_camera(subject)
    if args.size:
        cam = cam.scaled(args.size / cam.height)
    body = model.body
    fps = float(subject.fps)
    p = subject.params()
    test = list(subject.split["test"]) or list(range(subject.num_frames))
    clip = None
    if args.audio is not None:
        from thgs.io.audio_io import AudioError, load_audio

        try:
            samples, sr = load_audio(args.audio)
        except AudioError as exc:
            raise DriveError(str(exc)) from None
        clip = (np.asarray(samples, np.float32), int(sr))
    face = None
    if clip is not None:  # speech drives the face (and, without --motion, the body): thgs.animate.speech
        from thgs.animate.speech import run_speech_face, speech_drive, summary

        face = run_speech_face(args.run, model, cfg, subject)
        if face is not None:
            print(summary(face))
    if args.motion is not None and clip is not None:
        m = load_motion(args.motion, body.num_joints, body.num_expressions)
        drive = speech_drive(model, subject, clip, cam, face=face, motion=m,
                             saam_encoder=cfg.audio_encoder if model.saam is not None else None)
    elif args.motion is not None:
        m = load_motion(args.motion, body.num_joints, body.num_expressions)
        T = int(m["pose"].shape[0])
        drive = Drive(pose=m["pose"], transl=m["transl"],
                      betas=m.get("betas", torch.as_tensor(np.asarray(p["betas"]), dtype=torch.float32).reshape(-1)),
                      expression=m.get("expression", torch.zeros(T, body.num_expressions)), fps=fps, cameras=[cam])
    elif clip is not None:
        drive = speech_drive(model, subject, clip, cam, face=face,
                             saam_encoder=cfg.audio_encoder if model.saam is not None else None)
    else:
        audio_all = load_audio_windows(subject, cfg) if model.saam is not None else None
        drive = subject_drive(subject, test, cam, audio_all)
        clip = drive.clip
    T = len(drive)
    if args.audio is not None and "speech" not in drive.extras:
        if model.saam is not None:
            feats = frame_features(args.audio, T, fps, encoder=cfg.audio_encoder, pad_audio=True)
            drive.audio = audio_neighbourhoods(feats.tensor())
        drive.clip = clip
    if args.expression:
        fixed = parse_expression(args.expression, body.expression_names, T)
        if "speech" in drive.extras:  # the named units only; speech keeps driving the others
            from thgs.animate.speech import override_units

            fixed = override_units(drive.expression, fixed, args.expression, body.expression_names)
        drive.expression = fixed
    if args.frames and args.frames < T:
        n = args.frames
        drive = Drive(pose=drive.pose[:n], transl=drive.transl[:n], betas=drive.betas, expression=drive.expression[:n],
                      fps=fps, cameras=drive.cameras[:n] if len(drive.cameras) > 1 else drive.cameras,
                      audio=drive.audio[:n] if drive.audio is not None else None,
                      clip=(drive.clip[0][: int(round(n / fps * drive.clip[1]))], drive.clip[1]) if drive.clip else None,
                      frames=drive.frames[:n] if drive.frames else None)
        T = n
    if args.orbit or args.yaw:
        with torch.no_grad():
            out = body(drive.pose[:1].to(body.v_template.device), drive.betas[None].to(body.v_template.device),
                       None, drive.transl[:1].to(body.v_template.device))
        v = out.vertices[0].cpu()
        center = (v.min(0).values + v.max(0).values) / 2
        up = -cam.world_to_cam[1, :3]  # image up, in world coordinates
        base = rotate_camera(cam, center, up, args.yaw) if args.yaw else cam
        drive.cameras = orbit(base, center, up, T) if args.orbit else [base]
    return drive


__all__ = ["Drive", "DriveError", "DriveRequest", "build_drive", "load_motion", "orbit", "parse_expression",
           "rotate_camera", "subject_drive", "with_cameras"]
