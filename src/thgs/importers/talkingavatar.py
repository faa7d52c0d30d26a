"""The TalkingAvatar dataset layout (the THGS authors' release), read in place or converted.

Layout of one subject folder::

    SUBJECT/
      optimized_camera_params.npz   focal_length (), avg_transl (3,)
      poses_optimized.npz           betas (1, S), transl (N, 3), global_orient (N, 1, 3), body_pose (N, 63),
                                    jaw_pose, leye_pose, reye_pose (N, 3), left/right_hand_pose (N, 45)
                                    (or (N, k) PCA), expression (N, E)
      <Name>_output000/             10 s segments, in order
        image/000000.jpg ...        frames (30 fps)
        parsing_full_body/...       foreground masks, 255 = person
        aud.wav                     the segment's speech
        aud_eo.npy                  wav2vec2 (esperanto xlsr-53) logits [T', 16, 44] at 25 fps
        face_mask/000000.npz ...    face parsing label stacks (key arr_0) [K, H, W]
        keypoints.npy               2D keypoints of the segment's frames
      <Name>_output001/ ...

Choices (see docs/importers.md):

* camera: K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]], identity rotation. The authors' loader builds
  camera-to-world = [I | avg_transl], i.e. world_to_cam translation = -avg_transl; that is used when it puts
  the body in front of the camera (median camera-space depth of ``transl`` > 0). Otherwise the file follows
  the SHOW tracker's sign (x_cam = x + camera_transl) and +avg_transl is used; :meth:`warnings` says so.
* frames are composited on white (``img * m + 255 (1 - m)``, m the binarised mask): background (1, 1, 1).
* masks: the blue channel of colour mask images (the channel the authors' OpenCV loader reads first) or the
  single channel of grey ones, thresholded at 128 (robust to JPEG noise; the loader takes any non-zero).
* audio: each segment's aud.wav is fitted to its frame span (silence-padded or trimmed) and the segments are
  concatenated, so sample times stay locked to frame times across segments.
* ``wav2vec2-eo`` features: each segment's aud_eo.npy resampled linearly to its frame count with the ends
  aligned (as the authors' loader does), then concatenated.
* split: train = frames 0, 4, ..., 1496 (375 frames), test = 1500 .. min(1800, N) - 1, as in the paper's
  section 5.1; frame 1500 is kept out of the training list so the sets are disjoint. Subjects with at most
  1500 frames use :func:`thgs.data.format.default_split`.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from thgs.data.format import AUDIO_SAMPLE_RATE, SubjectError, default_split
from thgs.data.subject import Decode, Subject, register_layout

CAMERA_FILE = "optimized_camera_params.npz"
POSES_FILE = "poses_optimized.npz"
SEGMENT_RE = re.compile(r"^(?P<name>.+)_output(?P<index>\d{3,})$")
IMAGE_DIR = "image"
MASK_DIR = "parsing_full_body"
FACE_DIR = "face_mask"
AUDIO_NAME = "aud.wav"
EO_NAME = "aud_eo.npy"
KEYPOINTS_NAME = "keypoints.npy"
FPS = 30.0
EO_FEATURE = "wav2vec2-eo"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
TRAIN_END, TEST_END, TRAIN_STEP = 1500, 1800, 4


def _numeric_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` with a numeric stem and one of ``exts``, in numeric order."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() in exts and p.stem.isdigit()
             and not p.name.startswith(".")]
    return sorted(files, key=lambda p: int(p.stem))


def segment_dirs(root: Path) -> list[Path]:
    """The ``<Name>_outputNNN`` folders of ``root``, in numeric order."""
    if not root.is_dir():
        return []
    segs = [p for p in root.iterdir() if p.is_dir() and SEGMENT_RE.match(p.name)]
    return sorted(segs, key=lambda p: int(SEGMENT_RE.match(p.name).group("index")))  # type: ignore[union-attr]


def is_talkingavatar(path: Path) -> bool:
    """``path`` holds the camera and pose files and at least one segment with an image/ folder."""
    path = Path(path)
    return ((path / CAMERA_FILE).is_file() and (path / POSES_FILE).is_file()
            and any((s / IMAGE_DIR).is_dir() for s in segment_dirs(path)))


def talkingavatar_split(num_frames: int) -> dict[str, list[int]]:
    """The paper's TalkingAvatar split (see the module docstring)."""
    if num_frames <= TRAIN_END:
        return default_split(num_frames)
    return {"train": list(range(0, TRAIN_END, TRAIN_STEP)), "test": list(range(TRAIN_END, min(TEST_END, num_frames)))}


def resample_ends(arr: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling along axis 0 to ``n`` rows with the first and last rows aligned."""
    arr = np.asarray(arr, dtype=np.float32)
    m = arr.shape[0]
    if m == n:
        return arr.copy()
    if m == 1 or n == 1:
        return np.repeat(arr[:1], n, axis=0) if m == 1 else arr[:1].copy()
    pos = np.linspace(0.0, m - 1.0, n)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (arr.ndim - 1)).astype(np.float32)
    return (arr[lo] * (1.0 - w) + arr[hi] * w).astype(np.float32)


class TalkingAvatarSubject(Subject):
    """A TalkingAvatar subject folder read in place (nothing is converted or written)."""

    def __init__(self, root: str | os.PathLike, *, smplx_model: str | os.PathLike | None = None,
                 keep_hand_pca: bool = False):
        self.root = Path(root)
        self.smplx_model = smplx_model
        self.keep_hand_pca = keep_hand_pca
        self.segments = segment_dirs(self.root)
        problems: list[str] = []
        if not (self.root / CAMERA_FILE).is_file():
            problems.append(f"{CAMERA_FILE}: missing")
        if not (self.root / POSES_FILE).is_file():
            problems.append(f"{POSES_FILE}: missing")
        if not self.segments:
            problems.append("no segment folders '<Name>_output000', '<Name>_output001', ... found")
        self._images: list[Path] = []
        self._seg_of: list[int] = []
        self.segment_frames: list[int] = []
        for k, seg in enumerate(self.segments):
            imgs = _numeric_files(seg / IMAGE_DIR, IMAGE_EXTS)
            if not imgs:
                problems.append(f"{seg.name}/{IMAGE_DIR}/: no frames (numbered .jpg/.png files)")
            self._images += imgs
            self._seg_of += [k] * len(imgs)
            self.segment_frames.append(len(imgs))
        if problems:
            raise SubjectError(self.root, problems)
        m = SEGMENT_RE.match(self.segments[0].name)
        self.name = m.group("name") if m else self.root.name
        self.num_frames = len(self._images)
        self.fps = FPS
        from PIL import Image

        try:
            with Image.open(self._images[0]) as im:
                self.width, self.height = im.size
        except OSError as exc:
            raise SubjectError(self.root, [f"{self._rel(self._images[0])}: cannot be read as an image ({exc})"]) \
                from exc
        self._cam = self._read_camera()
        from thgs.render.base import Camera
        import torch

        self.camera = Camera(torch.tensor(self._cam["K"], dtype=torch.float32),
                             torch.tensor(self._cam["world_to_cam"], dtype=torch.float32), self.width, self.height)
        self.background = (1.0, 1.0, 1.0)
        self.split = talkingavatar_split(self.num_frames)
        self.views = {}
        self._masks = [_numeric_files(s / MASK_DIR, IMAGE_EXTS) for s in self.segments]
        self.has_masks = all(len(m) == n for m, n in zip(self._masks, self.segment_frames))
        self.has_audio = all((s / AUDIO_NAME).is_file() for s in self.segments)
        self.has_params = True
        self.body = {"model": "smplx", "options": ({"model_path": str(Path(smplx_model).resolve())}
                                                   if smplx_model else {}), "num_joints": 55}
        try:
            poses = self._poses
            if np.ndim(poses.get("betas")) >= 1:
                self.body["num_betas"] = int(np.shape(poses["betas"])[-1])
            if np.ndim(poses.get("expression")) == 2:
                self.body["num_expressions"] = int(np.shape(poses["expression"])[1])
        except SubjectError:
            pass  # reported by problems()

    # ---- helpers
    def _rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def _read_camera(self) -> dict[str, Any]:
        from thgs.importers.common import pinhole

        path = self.root / CAMERA_FILE
        try:
            with np.load(path, allow_pickle=False) as z:
                fields = {k: np.asarray(z[k]) for k in z.files}
        except (OSError, ValueError) as exc:
            raise SubjectError(self.root, [f"{CAMERA_FILE}: cannot be read ({exc})"]) from exc
        problems = []
        for key, size in (("focal_length", 1), ("avg_transl", 3)):
            if key not in fields:
                problems.append(f"{CAMERA_FILE}: field '{key}' missing")
            elif fields[key].size != size or fields[key].dtype.kind not in "fiu" or \
                    not np.isfinite(fields[key]).all():
                problems.append(f"{CAMERA_FILE}: field '{key}' has shape {fields[key].shape}, expected "
                                f"{'()' if size == 1 else '(3,)'} finite numbers")
        if problems:
            raise SubjectError(self.root, problems)
        f = float(fields["focal_length"].reshape(-1)[0])
        if not f > 0:
            raise SubjectError(self.root, [f"{CAMERA_FILE}: field 'focal_length' must be > 0, got {f}"])
        avg = fields["avg_transl"].reshape(3).astype(np.float64)
        self.camera_sign = -1.0
        try:
            with np.load(self.root / POSES_FILE, allow_pickle=False) as z:
                transl = np.asarray(z["transl"], dtype=np.float64).reshape(-1, 3) if "transl" in z.files else None
        except (OSError, ValueError):
            transl = None
        if transl is not None and len(transl):
            depth_loader = float(np.median(transl[:, 2] - avg[2]))
            depth_show = float(np.median(transl[:, 2] + avg[2]))
            if depth_loader <= 0 < depth_show:
                self.camera_sign = 1.0
        self.focal_length = f
        self.avg_transl = avg
        return pinhole(f, self.width, self.height, self.camera_sign * avg)

    # ---- Subject interface
    def _check_index(self, i: int) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < self.num_frames:
            raise IndexError(f"{self.root}: frame {i!r} out of range 0..{self.num_frames - 1}")
        return int(i)

    def _local(self, i: int) -> tuple[int, int]:
        k = self._seg_of[i]
        return k, i - sum(self.segment_frames[:k])

    def raw_image(self, i: int) -> np.ndarray:
        """Frame ``i`` as stored (not composited), [H, W, 3] uint8."""
        from PIL import Image

        i = self._check_index(i)
        path = self._images[i]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SubjectError(self.root, [f"{self._rel(path)}: cannot be decoded ({exc})"]) from exc
        if arr.shape[:2] != (self.height, self.width):
            raise SubjectError(self.root, [f"{self._rel(path)}: size {arr.shape[1]}x{arr.shape[0]}, expected "
                                           f"{self.width}x{self.height}"])
        return arr

    def image(self, i: int) -> np.ndarray:
        img = self.raw_image(i)
        m = self.mask(i)
        if m is None:
            return img
        keep = (m >= 128)[..., None]
        return np.where(keep, img, np.uint8(255)).astype(np.uint8)

    def mask(self, i: int) -> np.ndarray | None:
        from PIL import Image

        i = self._check_index(i)
        if not self.has_masks:
            return None
        k, j = self._local(i)
        path = self._masks[k][j]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise SubjectError(self.root, [f"{self._rel(path)}: cannot be decoded ({exc})"]) from exc
        if arr.ndim == 3:
            arr = arr[..., 2] if arr.shape[2] >= 3 else arr[..., 0]
        if arr.shape != (self.height, self.width):
            raise SubjectError(self.root, [f"{self._rel(path)}: size {arr.shape[1]}x{arr.shape[0]}, expected "
                                           f"{self.width}x{self.height}"])
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.where(arr >= 128, np.uint8(255), np.uint8(0))

    def face_labels(self, i: int) -> np.ndarray | None:
        """The face parsing label stack of frame ``i`` (``face_mask/*.npz`` key ``arr_0``), or None."""
        i = self._check_index(i)
        k, j = self._local(i)
        files = _numeric_files(self.segments[k] / FACE_DIR, (".npz",))
        if len(files) != self.segment_frames[k]:
            return None
        with np.load(files[j], allow_pickle=False) as z:
            return np.asarray(z["arr_0"]) if "arr_0" in z.files else None

    @cached_property
    def _poses(self) -> dict[str, np.ndarray]:
        path = self.root / POSES_FILE
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: np.asarray(z[k]) for k in z.files}
        except (OSError, ValueError) as exc:
            raise SubjectError(self.root, [f"{POSES_FILE}: cannot be read ({exc})"]) from exc

    def params(self) -> dict[str, np.ndarray]:
        from thgs.importers.common import ImportProblem, smplx_params

        try:
            params, body = smplx_params(self._poses, self.num_frames, POSES_FILE, smplx_model=self.smplx_model,
                                        keep_pca=self.keep_hand_pca)
        except ImportProblem as exc:
            raise SubjectError(self.root, [str(exc)]) from exc
        self.body.update({k: v for k, v in body.items() if k != "options"})
        kp = self.keypoints()
        if kp is not None:
            params["keypoints"] = kp
        return params

    def keypoints(self) -> np.ndarray | None:
        """The segments' keypoints.npy concatenated ``[T, ...]``, or None if any is missing or mismatched."""
        parts = []
        for seg, n in zip(self.segments, self.segment_frames):
            p = seg / KEYPOINTS_NAME
            if not p.is_file():
                return None
            try:
                a = np.load(p, allow_pickle=False)
            except (OSError, ValueError):
                return None
            if a.ndim < 1 or a.shape[0] != n or a.dtype.kind not in "fiu":
                return None
            parts.append(a.astype(np.float32))
        if len({p.shape[1:] for p in parts}) != 1:
            return None
        return np.concatenate(parts)

    def audio_path(self) -> Path | None:
        return None  # the speech is split over the segments' aud.wav files; use audio()

    def audio(self) -> tuple[np.ndarray, int]:
        from thgs.io.audio_io import AudioError, load_audio

        if not self.has_audio:
            missing = [s.name for s in self.segments if not (s / AUDIO_NAME).is_file()]
            raise SubjectError(self.root, [f"{m}/{AUDIO_NAME}: missing" for m in missing])
        parts = []
        for seg, n in zip(self.segments, self.segment_frames):
            try:
                x, _ = load_audio(seg / AUDIO_NAME, AUDIO_SAMPLE_RATE)
            except AudioError as exc:
                raise SubjectError(self.root, [f"{seg.name}/{AUDIO_NAME}: {exc}"]) from exc
            want = int(round(n / self.fps * AUDIO_SAMPLE_RATE))
            x = x[:want] if len(x) >= want else np.concatenate([x, np.zeros(want - len(x), np.float32)])
            parts.append(x)
        return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32), AUDIO_SAMPLE_RATE

    @property
    def feature_names(self) -> list[str]:
        return [EO_FEATURE] if all((s / EO_NAME).is_file() for s in self.segments) else []

    def features(self, encoder: str) -> np.ndarray | None:
        if encoder != EO_FEATURE or not self.feature_names:
            return None
        parts = []
        for seg, n in zip(self.segments, self.segment_frames):
            p = seg / EO_NAME
            try:
                a = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise SubjectError(self.root, [f"{seg.name}/{EO_NAME}: cannot be read ({exc})"]) from exc
            if a.ndim != 3 or a.shape[0] == 0 or a.dtype.kind not in "fiu":
                raise SubjectError(self.root, [f"{seg.name}/{EO_NAME}: has shape {a.shape}, expected (T, 16, 44)"])
            parts.append(resample_ends(a, n))
        return np.concatenate(parts)

    # ---- checks
    def problems(self, decode: Decode = "sample", *, sample: int = 8, progress: bool = False) -> list[str]:
        out: list[str] = []
        for seg, n, masks in zip(self.segments, self.segment_frames, self._masks):
            if len(masks) != n:
                out.append(f"{seg.name}/{MASK_DIR}/: {len(masks)} mask file(s) for {n} frames")
            if not (seg / AUDIO_NAME).is_file():
                out.append(f"{seg.name}/{AUDIO_NAME}: missing")
            if (seg / EO_NAME).is_file():
                try:
                    a = np.load(seg / EO_NAME, mmap_mode="r", allow_pickle=False)
                    if a.ndim != 3 or a.shape[0] == 0:
                        out.append(f"{seg.name}/{EO_NAME}: has shape {a.shape}, expected (T, 16, 44)")
                except (OSError, ValueError) as exc:
                    out.append(f"{seg.name}/{EO_NAME}: cannot be read ({exc})")
        poses = None
        try:
            poses = self._poses
        except SubjectError as exc:
            out += exc.problems
        if poses is not None:
            from thgs.importers.common import ImportProblem, smplx_params

            try:
                smplx_params(poses, self.num_frames, POSES_FILE, smplx_model=self.smplx_model, keep_pca=True)
            except ImportProblem as exc:
                out.append(str(exc) + f" (the segments hold {self.num_frames} frames)")
        if self.has_audio and decode != "none":
            try:
                x, sr = self.audio()
            except SubjectError as exc:
                out += exc.problems
        if decode != "none":
            from tqdm import tqdm

            idx = list(range(self.num_frames))
            if decode == "sample" and len(idx) > sample:
                idx = sorted({int(round(v)) for v in np.linspace(0, len(idx) - 1, max(1, sample))})
            for i in tqdm(idx, desc="decoding frames", unit="frame", disable=not progress, leave=False):
                try:
                    self.raw_image(i)
                    if self.has_masks:
                        self.mask(i)
                except SubjectError as exc:
                    out += exc.problems
        return out

    def warnings(self) -> list[str]:
        out = []
        if self.camera_sign > 0:
            out.append(f"{CAMERA_FILE}: field 'avg_transl' used as the world-to-camera translation (SHOW sign): "
                       "read as the camera position, it would put the body behind the camera")
        if not self.has_masks:
            out.append(f"{MASK_DIR}/: masks missing or incomplete in some segment; frames are used as stored")
        poses = self._poses
        lh = poses.get("left_hand_pose")
        if lh is not None and lh.ndim == 2 and lh.shape[1] != 45 and self.smplx_model is None:
            out.append(f"{POSES_FILE}: hand poses are PCA coefficients; params() needs smplx_model (or "
                       "keep_hand_pca)")
        for seg, n in zip(self.segments, self.segment_frames):
            p = seg / AUDIO_NAME
            if p.is_file():
                try:
                    from thgs.io.audio_io import read_audio

                    x, sr = read_audio(p)
                    if abs(len(x) / sr - n / self.fps) > 1.0 / self.fps:
                        out.append(f"{seg.name}/{AUDIO_NAME}: lasts {len(x) / sr:.3f} s for {n} frames "
                                   f"({n / self.fps:.3f} s); fitted to the frames")
                except Exception:  # noqa: BLE001 - reported by problems()
                    pass
        return out


def open_talkingavatar(path: str | os.PathLike) -> TalkingAvatarSubject:
    return TalkingAvatarSubject(path)


register_layout(is_talkingavatar, open_talkingavatar, name="talkingavatar")


def convert_talkingavatar(src: TalkingAvatarSubject, out_dir: str | os.PathLike, *, overwrite: bool = False,
                          progress: bool = True) -> Path:
    """Copy a TalkingAvatar subject into our format at ``out_dir`` (frames composited on white, masks,
    concatenated 16 kHz audio, SMPL-X params with keypoints, ``features/wav2vec2-eo.npy``), streamed through
    :class:`thgs.data.writer.SubjectWriter`: nothing is left behind on failure."""
    from tqdm import tqdm

    from thgs.data.writer import SubjectWriter

    problems = src.problems(decode="none")
    if problems:
        raise SubjectError(src.root, problems)
    params = src.params()
    audio = src.audio() if src.has_audio else None
    feats = {EO_FEATURE: src.features(EO_FEATURE)} if src.feature_names else None
    with SubjectWriter(out_dir, fps=src.fps, width=src.width, height=src.height, overwrite=overwrite) as w, \
            tqdm(total=src.num_frames, desc=f"import {src.name}", unit="frame", disable=not progress,
                 leave=False) as bar:
        for i in range(src.num_frames):
            w.add_frame(src.image(i), src.mask(i) if src.has_masks else None)
            bar.update(1)
        return w.finish(camera=src._cam, audio=audio, params=params, body=dict(src.body), split=src.split,
                        name=src.name, background=src.background, features=feats,
                        source=f"talkingavatar:{src.root.name}")
