"""Shot cuts, strong zooms and person switches, found from the keypoints' scale and position jumps between
frames (and, optionally, the frames' own difference), and the choice of the one shot ``thgs prepare`` keeps.

A subject has one static camera, so a video with cuts is split into shots and the shot with the most
frames showing the person is kept; the others are left out of training. A jump of the tracked person that
returns within a few frames (the tracker briefly following someone else, or a detection glitch) does not
cut the shot: those frames are marked invalid instead. Frames where the person is not shown (left the
image, or was not found) are invalid too.

All functions are pure (numpy in, numpy and dataclasses out); :func:`find_shots` is the entry point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thgs.config import option
from thgs.prepare import layout

#: Pose landmarks whose spread measures the person's scale: head, shoulders, elbows, hips (0..24 minus
#: the wrists' hand points, which move fast).
TRACK_POINTS = tuple(i for i in range(25) if i not in (17, 18, 19, 20, 21, 22))


@dataclass(frozen=True)
class ShotOptions:
    """Thresholds of the cut detector (recorded in the subject's ``prepare`` record)."""

    zoom_ratio: float = option(1.3, help="a frame-to-frame change of the person's scale by this factor is a zoom")
    jump: float = option(0.6, help="a frame-to-frame move of the person's centre by this many scale units is a "
                                   "person switch")
    min_confidence: float = option(0.5, help="confidence of the keypoints used to measure scale and position")
    min_points: int = option(4, help="points two frames must share to be compared")
    frame_diff: bool = option(True, help="also cut where the frames' own difference jumps")
    diff_min: float = option(25.0, help="... above this mean absolute difference of 32x32 thumbnails (0..255)")
    diff_factor: float = option(6.0, help="... and this many times the video's median difference")
    glitch_frames: int = option(3, help="a jump that comes back within this many frames marks them invalid instead "
                                        "of cutting")
    settle_frames: int = option(4, help="frames after a cut left out while holistic's landmark smoothing catches "
                                        "up with the new shot")
    min_shot_frames: int = option(10, help="frames showing the person the kept shot needs")

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Cut:
    """A shot boundary: ``frame`` is the first frame of the new shot; ``kind`` is ``"cut"`` (the frame
    changed), ``"zoom"`` (the person's scale jumped) or ``"switch"`` (the person jumped while the frame
    did not: another person is followed)."""

    frame: int
    kind: str
    scale_ratio: float | None = None
    shift: float | None = None
    frame_diff: float | None = None


@dataclass
class ShotResult:
    """Shots of a video, the kept one, and the frames left out (and why)."""

    num_frames: int
    cuts: list[Cut]
    shots: list[tuple[int, int]]  # half-open [start, end) frame ranges, in order
    kept: tuple[int, int]  # the kept shot
    valid: np.ndarray  # [T] bool: in the kept shot and showing the person
    left_out: dict[str, list[int]] = field(default_factory=dict)  # reason -> frames

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record for the report."""
        return {
            "shots": [list(s) for s in self.shots],
            "kept": list(self.kept),
            "cuts": [dataclasses.asdict(c) for c in self.cuts],
            "valid_frames": int(self.valid.sum()),
            "left_out": {k: {"count": len(v), "frames": frame_ranges(v)} for k, v in self.left_out.items() if v},
        }


def frame_ranges(frames: list[int] | np.ndarray) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    fs = sorted(int(f) for f in frames)
    parts: list[str] = []
    i = 0
    while i < len(fs):
        j = i
        while j + 1 < len(fs) and fs[j + 1] == fs[j] + 1:
            j += 1
        parts.append(str(fs[i]) if i == j else f"{fs[i]}-{fs[j]}")
        i = j + 1
    return ", ".join(parts)


def _spread(a: np.ndarray, b: np.ndarray, options: ShotOptions) -> tuple[float, float] | None:
    """Scale ratio and centre shift from points ``a`` to ``b`` (``[N, 3]``), over those confident in both."""
    common = (a[:, 2] >= options.min_confidence) & (b[:, 2] >= options.min_confidence)
    if common.sum() < options.min_points:
        return None
    xa, xb = a[common, :2].astype(np.float64), b[common, :2].astype(np.float64)
    ca, cb = xa.mean(axis=0), xb.mean(axis=0)
    sa = float(np.sqrt(((xa - ca) ** 2).sum(axis=1).mean()))
    sb = float(np.sqrt(((xb - cb) ** 2).sum(axis=1).mean()))
    if sa < 1e-6 or sb < 1e-6:
        return None
    return sb / sa, float(np.linalg.norm(cb - ca)) / sa


def compare(a: np.ndarray, b: np.ndarray, options: ShotOptions) -> tuple[float, float] | None:
    """Scale ratio and centre shift (in units of ``a``'s scale) from frame ``a`` to frame ``b``
    (``[553, 3]`` keypoints): over the face mesh when both frames have it (its 478 points follow a zoom
    exactly, while pose points near the border lag), else over the pose's tracking points confident in
    both; None with too few of them."""
    fa, fb = a[layout.FACE], b[layout.FACE]
    if (fa[:, 2] > 0).sum() >= layout.NUM_FACE // 2 and (fb[:, 2] > 0).sum() >= layout.NUM_FACE // 2:
        res = _spread(fa, fb, options)
        if res is not None:
            # the face is smaller than the body: express the shift in units of the body's spread when it can
            body = _spread(a[list(TRACK_POINTS)], b[list(TRACK_POINTS)], options)
            if body is not None:
                return res[0], res[1] * _scale(fa, options) / max(_scale(a[list(TRACK_POINTS)], options), 1e-6)
            return res
    return _spread(a[list(TRACK_POINTS)], b[list(TRACK_POINTS)], options)


def _scale(p: np.ndarray, options: ShotOptions) -> float:
    x = p[p[:, 2] >= options.min_confidence, :2].astype(np.float64)
    if len(x) < 2:
        return 0.0
    return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))


def frame_differences(thumbs: np.ndarray) -> np.ndarray:
    """``[T]`` mean absolute difference of each frame's thumbnail from the previous one (0 for frame 0)."""
    t = thumbs.astype(np.float32)
    d = np.zeros(len(t), np.float32)
    if len(t) > 1:
        d[1:] = np.abs(t[1:] - t[:-1]).reshape(len(t) - 1, -1).mean(axis=1)
    return d


def _jumps(res: tuple[float, float] | None, options: ShotOptions) -> bool:
    if res is None:
        return False
    ratio, shift = res
    return abs(np.log(ratio)) > np.log(options.zoom_ratio) or shift > options.jump


def find_shots(kp2d: np.ndarray, person: np.ndarray, thumbs: np.ndarray | None = None,
               options: ShotOptions = ShotOptions()) -> ShotResult:
    """Split a video into shots from its keypoints ``[T, 553, 3]``, the per-frame person flags ``[T]`` and
    (optionally) thumbnails ``[T, h, w]``; keep the shot with the most frames showing the person.

    The kept shot may hold fewer than ``options.min_shot_frames`` frames; :func:`usable_problem` says
    whether the result can be used.
    """
    T = int(kp2d.shape[0])
    if kp2d.shape[1:] != (layout.NUM_KEYPOINTS, 3) or person.shape != (T,):
        raise ValueError(f"expected kp2d [T, {layout.NUM_KEYPOINTS}, 3] and person [T], got {kp2d.shape}, "
                         f"{person.shape}")
    person = person.astype(bool)
    diff = frame_differences(thumbs) if thumbs is not None and options.frame_diff else np.zeros(T, np.float32)
    diff_cut = np.zeros(T, bool)
    if thumbs is not None and options.frame_diff and T > 2:
        level = max(options.diff_min, options.diff_factor * float(np.median(diff[1:])))
        diff_cut[1:] = diff[1:] > level
    cuts: list[Cut] = []
    glitch: list[int] = []
    last = -1  # the last frame showing the person in the current shot
    t = 0
    while t < T:
        if diff_cut[t]:
            # the frame changed: a zoom when the person's scale jumped with it, else a cut
            res = compare(kp2d[last], kp2d[t], options) if last >= 0 and person[t] else None
            zoom = res is not None and abs(np.log(res[0])) > np.log(options.zoom_ratio)
            cuts.append(Cut(t, "zoom" if zoom else "cut", scale_ratio=None if res is None else round(res[0], 4),
                            shift=None if res is None else round(res[1], 4), frame_diff=float(diff[t])))
            last = t if person[t] else -1
            t += 1
            continue
        if not person[t]:
            if last >= 0 and t - last > options.glitch_frames:
                last = -1  # the person was away for a while: where they come back is no jump
            t += 1
            continue
        if last < 0:
            last = t
            t += 1
            continue
        res = compare(kp2d[last], kp2d[t], options)
        if not _jumps(res, options):
            last = t
            t += 1
            continue
        # a jump: does the person come back within a few frames (no frame cut in between)?
        back = None
        for k in range(t + 1, min(T, t + 1 + options.glitch_frames)):
            if diff_cut[k]:
                break
            if person[k] and not _jumps(compare(kp2d[last], kp2d[k], options), options):
                back = k
                break
        if back is not None:
            glitch.extend(f for f in range(t, back) if person[f])
            last = back
            t = back + 1
            continue
        assert res is not None
        ratio, shift = res
        kind = "zoom" if abs(np.log(ratio)) > np.log(options.zoom_ratio) else "switch"
        cuts.append(Cut(t, kind, scale_ratio=round(ratio, 4), shift=round(shift, 4), frame_diff=float(diff[t])))
        last = t
        t += 1
    bounds = [0] + [c.frame for c in cuts] + [T]
    shots = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if bounds[i + 1] > bounds[i]]
    ok = person.copy()
    ok[glitch] = False
    settling = sorted({f for c in cuts for f in range(c.frame, min(T, c.frame + options.settle_frames))})
    ok[settling] = False
    counts = [int(ok[s:e].sum()) for s, e in shots]
    best = int(np.argmax(counts))  # the first of the longest on a tie
    kept = shots[best]
    valid = np.zeros(T, bool)
    valid[kept[0]:kept[1]] = ok[kept[0]:kept[1]]
    inside = np.zeros(T, bool)
    inside[kept[0]:kept[1]] = True
    left_out = {
        "other shots": np.flatnonzero(~inside).tolist(),
        "person not shown": np.flatnonzero(inside & ~person).tolist(),
        "tracking jumps": sorted(f for f in glitch if inside[f]),
        "settling after a cut": [f for f in settling if inside[f] and person[f]],
    }
    return ShotResult(num_frames=T, cuts=cuts, shots=shots, kept=kept, valid=valid, left_out=left_out)


def usable_problem(result: ShotResult, options: ShotOptions = ShotOptions()) -> str | None:
    """Why the kept shot cannot be used (too few frames showing the person), or None."""
    n = int(result.valid.sum())
    if n >= options.min_shot_frames:
        return None
    if len(result.shots) == 1:
        return (f"only {n} of the {result.num_frames} frames show the person (at least "
                f"{options.min_shot_frames} needed)")
    desc = "; ".join(f"frames {s}-{e - 1}" for s, e in result.shots)
    kinds = ", ".join(f"{c.kind} at frame {c.frame}" for c in result.cuts)
    return (f"no usable shot: the video splits into {len(result.shots)} shots ({desc}; {kinds}) and the longest "
            f"shows the person in {n} frames (at least {options.min_shot_frames} needed)")


__all__ = ["Cut", "ShotOptions", "ShotResult", "TRACK_POINTS", "compare", "find_shots", "frame_differences",
           "frame_ranges", "usable_problem"]
