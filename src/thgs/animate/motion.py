"""Speech -> body: replay the subject's own motion in segments chosen by the speech, blended on the sphere.

When new speech drives an avatar and no motion is given, the body, head and hands move with the subject's
own training motion, cut into segments and re-assembled to fit the speech:

* **library**: the poses (and expressions) of the training span (every frame not in the test split), in
  contiguous runs, with each frame's *motion energy* (the summed angular speed of every joint, smoothed);
* **speech activity** per output frame: the speech envelope's level in dB relative to the clip's loud
  frames, mapped to [0, 1] and smoothed (:func:`speech_activity`);
* **selection**: the output is cut into segments of ``segment_s`` seconds; for each, a source window is
  picked whose motion-energy quantile matches the segment's speech-activity quantile (more gesture while
  speaking, calmer motion in pauses), chosen at random among the best few (seeded), never the same window
  twice in a row;
* **blending**: consecutive segments overlap by ``crossfade_s``; over the overlap every joint's rotation
  goes from one segment's to the next one's by spherical linear interpolation of unit quaternions with a
  smoothstep weight, so there is no jump at a seam; expressions cross-fade linearly;
* **calm**: each frame's rotations are additionally slerped towards the library's mean pose by
  ``1 - (calm + (1 - calm) * activity)``, so pauses quieten the gestures;
* **root**: the translation stays at the library's median (the avatar stays in place); the root rotation
  is replayed like any joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from thgs.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, quaternion_to_matrix


# --------------------------------------------------------------------------------------- quaternions
def aa_to_quat(aa: Tensor) -> Tensor:
    """[..., 3] axis-angle -> [..., 4] unit quaternion (w, x, y, z), w >= 0."""
    return matrix_to_quaternion(axis_angle_to_matrix(aa.to(torch.float64)))


def quat_to_aa(q: Tensor) -> Tensor:
    """[..., 4] unit quaternion -> [..., 3] axis-angle."""
    return matrix_to_axis_angle(quaternion_to_matrix(q))


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation of unit quaternions [..., 4] by ``t`` (broadcast to [..., 1]) along
    the shorter arc (``b`` is flipped into ``a``'s hemisphere); nearly equal quaternions are lerped."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    while t.dim() < a.dim():
        t = t[..., None]
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    small = sin < 1e-6
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / sin.clamp_min(1e-12))
    wb = torch.where(small, t, torch.sin(t * theta) / sin.clamp_min(1e-12))
    q = wa * a + wb * b
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def mean_quaternion(q: Tensor) -> Tensor:
    """Chordal mean over the first axis of [T, ..., 4] unit quaternions (each flipped into the first
    frame's hemisphere) -> [..., 4]."""
    ref = q[:1]
    q = torch.where((q * ref).sum(-1, keepdim=True) < 0, -q, q)
    m = q.mean(0)
    return m / m.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def angular_distance(a: Tensor, b: Tensor) -> Tensor:
    """Rotation angle (radians) between unit quaternions [..., 4] -> [...]."""
    return 2 * torch.acos((a * b).sum(-1).abs().clamp(max=1.0))


# ------------------------------------------------------------------------------------------- signals
def smooth(x: np.ndarray, frames: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with sigma ``frames`` (edges repeated)."""
    x = np.asarray(x, dtype=np.float64)
    if frames <= 0 or len(x) < 2:
        return x.copy()
    r = int(np.ceil(3 * frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / frames) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)], 0)
    out = np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(pad.shape[1])], 1) if x.ndim == 2 \
        else np.convolve(pad, k, mode="valid")
    return out


def motion_energy(pose: Tensor, fps: float) -> np.ndarray:
    """Per-frame motion energy [T]: the summed angular speed (rad/s) of every joint between consecutive
    frames, smoothed over 0.2 s."""
    q = aa_to_quat(pose)
    T = q.shape[0]
    if T < 2:
        return np.zeros(T)
    speed = angular_distance(q[1:], q[:-1]).sum(-1).numpy() * fps
    e = np.concatenate([speed[:1], speed])
    return smooth(e, 0.2 * fps)


def speech_activity(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int,
                    range_db: float = 30.0) -> np.ndarray:
    """How much speech there is around each frame, in [0, 1]: the RMS envelope per frame in dB relative
    to its 95th percentile, mapped from ``-range_db`` (0) to -6 dB (1), smoothed over 0.25 s."""
    from thgs.metrics.sync import speech_envelope

    env = speech_envelope(np.asarray(samples, dtype=np.float32), int(sample_rate), fps, num_frames).numpy()
    db = 20 * np.log10(np.maximum(env.astype(np.float64), 1e-6))
    if not np.isfinite(db).any() or env.max() <= 1e-6:
        return np.zeros(num_frames)
    top = np.percentile(db, 95)
    a = np.clip((db - (top - range_db)) / (range_db - 6.0), 0.0, 1.0)
    return np.clip(smooth(a, 0.25 * fps), 0.0, 1.0)


def quantiles(x: np.ndarray) -> np.ndarray:
    """Rank of every value in [0, 1] (ties share the mean rank)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(len(x))
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks / (len(x) - 1)


# ------------------------------------------------------------------------------------------- library
@dataclass
class MotionLibrary:
    """The subject's own motion to replay: pose [F, J, 3], expression [F, E] of the library frames (in
    order), ``runs``: (start, end) row ranges of consecutive subject frames, ``energy`` [F], ``transl`` [3]
    (where the avatar stays), ``fps``."""

    pose: Tensor
    expression: Tensor
    transl: Tensor
    energy: np.ndarray
    runs: list[tuple[int, int]]
    fps: float

    @staticmethod
    def from_params(pose: Tensor, expression: Tensor, transl: Tensor, frames: list[int], fps: float) -> "MotionLibrary":
        """The library of subject ``frames`` (sorted) out of per-frame parameters of all frames."""
        idx = torch.as_tensor(frames, dtype=torch.long)
        runs: list[tuple[int, int]] = []
        start = 0
        for k in range(1, len(frames) + 1):
            if k == len(frames) or frames[k] != frames[k - 1] + 1:
                runs.append((start, k))
                start = k
        p = pose[idx].to(torch.float64)
        energy = np.concatenate([motion_energy(p[a:b], fps) for a, b in runs]) if frames else np.zeros(0)
        return MotionLibrary(pose=p, expression=expression[idx].to(torch.float64),
                             transl=transl[idx].to(torch.float64).median(0).values, energy=energy, runs=runs,
                             fps=float(fps))

    @staticmethod
    def from_subject(subject, frames: list[int] | None = None) -> "MotionLibrary":
        """The library of a subject's training span (default) or of ``frames``."""
        from thgs.animate.speech import training_span

        p = subject.params()
        f = training_span(subject) if frames is None else list(frames)
        if not f:
            raise ValueError(f"subject {getattr(subject, 'root', '?')}: no frames to replay motion from")
        as_t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        return MotionLibrary.from_params(as_t(p["pose"]), as_t(p["expression"]), as_t(p["transl"]), f,
                                         float(subject.fps))

    def windows(self, length: int) -> np.ndarray:
        """Start rows of every window of ``length`` consecutive frames inside one run (all rows of the
        longest run when none is long enough)."""
        starts = [np.arange(a, b - length + 1) for a, b in self.runs if b - a >= length]
        if starts:
            return np.concatenate(starts)
        a, _ = max(self.runs, key=lambda r: r[1] - r[0])
        return np.array([a])


@dataclass
class ReplayOptions:
    """Segment length and cross-fade (seconds), calm factor in pauses (1: no calming), how many best
    windows a segment picks from at random, and the seed."""

    segment_s: float = 2.4
    crossfade_s: float = 0.5
    calm: float = 0.55
    choices: int = 4
    seed: int = 0


@dataclass
class Segment:
    """Output frames ``out_start .. out_start + length - 1`` play library rows from ``src_start`` on (the
    last row of its run repeated past the run's end); the first ``overlap`` frames cross-fade from the
    segment before."""

    out_start: int
    src_start: int
    length: int
    overlap: int = 0


def segment_sizes(library: MotionLibrary, options: ReplayOptions) -> tuple[int, int]:
    """(segment length L, cross-fade C) in frames: segments start every L frames and last L + C; shortened
    when the library's longest run is shorter than L + C."""
    fps = library.fps
    L = max(2, int(round(options.segment_s * fps)))
    C = max(1, min(L - 1, int(round(options.crossfade_s * fps))))
    longest = max(b - a for a, b in library.runs)
    if longest < L + C:
        C = max(0, min(C, longest // 3))
        L = max(1, longest - C)
    return L, C


def window_energy(library: MotionLibrary, starts: np.ndarray, length: int) -> np.ndarray:
    """Mean motion energy of the windows ``starts .. starts + length`` (clamped to the library)."""
    cum = np.concatenate([[0.0], np.cumsum(library.energy)])
    end = np.minimum(starts + length, len(library.energy))
    return (cum[end] - cum[starts]) / np.maximum(1, end - starts)


class SegmentPicker:
    """Chooses each segment's source window: the windows whose motion-energy quantile is nearest a target
    in [0, 1] (the speech activity), one of the best ``choices`` at random, never one that starts within L
    frames of the previous pick."""

    def __init__(self, library: MotionLibrary, options: ReplayOptions | None = None) -> None:
        self.library = library
        self.options = options or ReplayOptions()
        self.L, self.C = segment_sizes(library, self.options)
        self.starts = library.windows(self.L + self.C)
        self.q_motion = quantiles(window_energy(library, self.starts, self.L + self.C))
        self.rng = np.random.default_rng(self.options.seed)
        self.prev = -10 ** 9

    def pick(self, target: float) -> int:
        cost = np.abs(self.q_motion - float(target)) + 1e-3 * self.rng.random(len(self.starts))
        if len(self.starts) > 1:
            cost = np.where(np.abs(self.starts - self.prev) < self.L, np.inf, cost)
        n = max(1, min(self.options.choices, int(np.isfinite(cost).sum())))
        src = int(self.starts[self.rng.choice(np.argsort(cost)[:n])])
        self.prev = src
        return src

    def segment(self, k: int, target: float) -> Segment:
        """Segment ``k`` (output frames from ``k L``) for the activity target."""
        return Segment(out_start=k * self.L, src_start=self.pick(target), length=self.L + self.C,
                       overlap=self.C if k > 0 else 0)


def plan_segments(library: MotionLibrary, activity: np.ndarray, options: ReplayOptions | None = None) -> list[Segment]:
    """Segments covering ``len(activity)`` output frames, each segment's target being the quantile of its
    mean speech activity among all segments of the clip."""
    picker = SegmentPicker(library, options)
    L = picker.L
    T = len(activity)
    seg_act = np.asarray([float(np.mean(activity[s:s + L])) for s in range(0, max(T, 1), L)])
    target = quantiles(seg_act) if len(seg_act) > 1 else np.full(1, 0.5)
    return [picker.segment(k, float(target[k])) for k in range(len(seg_act))]


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _rows(library: MotionLibrary, seg: Segment, t: np.ndarray) -> np.ndarray:
    end = next(b for a, b in library.runs if a <= seg.src_start < b)
    return np.minimum(seg.src_start + (t - seg.out_start), end - 1)


def frames_from_plan(library: MotionLibrary, qlib: Tensor, plan: list[Segment], t: np.ndarray
                     ) -> tuple[Tensor, Tensor]:
    """Quaternions [N, J, 4] and expressions [N, E] of output frames ``t`` (sorted, covered by ``plan``):
    each frame's own segment, slerped from the previous segment over the overlap."""
    t = np.asarray(t, dtype=np.int64)
    starts = np.asarray([s.out_start for s in plan])
    seg = np.searchsorted(starts, t, side="right") - 1
    q = torch.empty(len(t), qlib.shape[1], 4, dtype=qlib.dtype)
    ex = torch.empty(len(t), library.expression.shape[1], dtype=library.expression.dtype)
    for i in np.unique(seg):
        sel = np.nonzero(seg == i)[0]
        s = plan[i]
        tb = t[sel]
        rb = torch.as_tensor(_rows(library, s, tb))
        qb, eb = qlib[rb], library.expression[rb]
        k = tb - s.out_start
        fade = k < s.overlap
        if i > 0 and fade.any():
            p = plan[i - 1]
            ra = torch.as_tensor(_rows(library, p, tb))
            w = torch.as_tensor(np.where(fade, smoothstep((k + 1) / (s.overlap + 1)), 1.0))
            qb = slerp(qlib[ra], qb, w[:, None])
            eb = (1 - w[:, None]) * library.expression[ra] + w[:, None] * eb
        q[torch.as_tensor(sel)] = qb
        ex[torch.as_tensor(sel)] = eb
    return q, ex


def calm_towards(rest: Tensor, q: Tensor, activity: np.ndarray, calm: float) -> Tensor:
    """Each frame's rotations slerped from the library's mean pose ``rest`` [J, 4] towards ``q`` [T, J, 4]
    by ``calm + (1 - calm) * activity``."""
    keep = torch.as_tensor(calm + (1 - calm) * np.clip(np.asarray(activity, dtype=np.float64), 0, 1))
    return slerp(rest[None].expand_as(q).to(q.dtype), q, keep[:, None])


def replay(library: MotionLibrary, activity: np.ndarray, options: ReplayOptions | None = None
           ) -> tuple[Tensor, Tensor, Tensor]:
    """The replayed motion for ``len(activity)`` frames: (pose [T, J, 3], expression [T, E], transl [T, 3])
    in float32."""
    o = options or ReplayOptions()
    T = len(activity)
    J = library.pose.shape[1]
    E = library.expression.shape[1]
    if T == 0:
        return torch.zeros(0, J, 3), torch.zeros(0, E), torch.zeros(0, 3)
    qlib = aa_to_quat(library.pose)
    plan = plan_segments(library, activity, o)
    q, ex = frames_from_plan(library, qlib, plan, np.arange(T))
    q = calm_towards(mean_quaternion(qlib), q, activity, o.calm)
    transl = library.transl.to(torch.float32)[None].expand(T, 3).clone()
    return quat_to_aa(q).to(torch.float32), ex.to(torch.float32), transl


class OnlineReplay:
    """The replay for a stream: frame by frame, each next segment chosen when the previous one's overlap
    begins, from the mean speech activity of the last L frames heard (no future audio)."""

    def __init__(self, library: MotionLibrary, options: ReplayOptions | None = None) -> None:
        self.library = library
        self.options = options or ReplayOptions()
        self.picker = SegmentPicker(library, self.options)
        self.qlib = aa_to_quat(library.pose)
        self.rest = mean_quaternion(self.qlib)
        self.plan: list[Segment] = [self.picker.segment(0, 0.5)]
        self.history: list[float] = []

    def frame(self, t: int, activity: float) -> tuple[Tensor, Tensor, Tensor]:
        """Frame ``t`` (called for t = 0, 1, 2, ...) at speech ``activity`` in [0, 1]: pose [J, 3],
        expression [E], transl [3] (float32)."""
        self.history.append(float(activity))
        L = self.picker.L
        while self.plan[-1].out_start + L <= t:
            recent = float(np.mean(self.history[-L:]))
            self.plan.append(self.picker.segment(len(self.plan), recent))
        q, ex = frames_from_plan(self.library, self.qlib, self.plan[-2:], np.array([t]))
        q = calm_towards(self.rest, q, np.array([activity]), self.options.calm)
        return quat_to_aa(q[0]).to(torch.float32), ex[0].to(torch.float32), self.library.transl.to(torch.float32)


def max_joint_jump(pose: Tensor) -> float:
    """Largest rotation (radians) of any joint between consecutive frames of [T, J, 3] axis-angle poses."""
    if pose.shape[0] < 2:
        return 0.0
    q = aa_to_quat(pose)
    return float(angular_distance(q[1:], q[:-1]).max())


__all__ = ["MotionLibrary", "OnlineReplay", "ReplayOptions", "Segment", "SegmentPicker", "calm_towards",
           "frames_from_plan", "aa_to_quat", "angular_distance", "max_joint_jump",
           "mean_quaternion", "motion_energy", "plan_segments", "quat_to_aa", "replay", "slerp", "smooth",
           "speech_activity"]
