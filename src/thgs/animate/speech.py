"""Speech -> face: a per-subject model from audio features to expression coefficients (and jaw pose).

The avatar takes the expression coefficients psi as an input (Eq. 3); to drive it from speech alone they
have to come from the audio. :class:`SpeechFaceModel` learns that map for one subject from its own training
video, in seconds:

* **inputs**: the audio feature windows ``[T, S, C]`` of :mod:`thgs.audio.features` (the windows SAAM
  reads, same encoder). Each frame's window is mean-pooled into ``POOL`` groups of steps, standardised and
  projected on its first principal axes (``z[t]``, PCA over the training span);
* **context with look-ahead**: the expression of frame ``t`` is read from ``z[t + offset - radius ..
  t + offset + radius]``; ``offset > 0`` means the face anticipates the sound (lips move before the audio
  they make), so the model needs ``lookahead = max(0, offset + radius)`` frames of future audio;
* **map**: one linear map (ridge regression) from the concatenated context to the targets, with a
  temporal-smoothness penalty ``mu * sum_t |y(t + 1) - y(t)|^2`` on the predicted trajectory of the training
  span's audio (closed form, no iterations);
* **targets**: the expression coefficients the subject's tracking provides plus, where the run refined them,
  the joint optimisation's per-frame residuals, over the *training span* (every frame that is not in the
  test split); when the body has a jaw joint (SMPL-X), its axis-angle too;
* **selection by validation** (blocked cross-validation over contiguous parts of the training span): first
  the audio-visual offset (a one-frame model at each offset in ``-MAX_OFFSET..MAX_OFFSET``), then the
  context radius, the ridge weight and the smoothness weight. Units whose cross-validated correlation is
  below ``MIN_CORR`` (blinks, smiles: not speech) are *not driven*: their values come from elsewhere (the
  motion replay of :mod:`thgs.animate.motion`, else the training median).

The model is stored in ``RUN/speech.npz``: plain arrays and a JSON string, read with ``allow_pickle=False``
(nothing in it can execute code).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from thgs.animate.drive import DriveError

SPEECH_FILE = "speech.npz"
FORMAT = "thgs-speech"
VERSION = 1

POOL = 4
"""Groups of feature steps each frame's window is mean-pooled into."""
COMPONENTS = 96
"""Principal axes kept of the pooled, standardised per-frame features."""
MAX_OFFSET = 6
RADII = (0, 1, 2)
LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)
"""Ridge weights (times the number of training rows)."""
SMOOTHS = (0.0, 0.5, 2.0)
"""Temporal-smoothness weights (times rows / consecutive pairs)."""
MIN_CORR = 0.3
FOLDS = 5
MIN_FRAMES = 12
"""Fewer training-span frames than this: no model (too little to validate anything)."""


class SpeechModelError(DriveError):
    """A speech model cannot be fitted or read; the message names the file and field."""


# ------------------------------------------------------------------------------------------- features
def pool_windows(windows: np.ndarray, groups: int = POOL) -> np.ndarray:
    """``[T, S, C]`` per-frame windows -> ``[T, g * C]``: the mean of each of ``g = min(groups, S)``
    consecutive groups of steps, concatenated."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3 or w.shape[0] == 0:
        raise SpeechModelError(f"audio windows must be [T, S, C] with T > 0, got {tuple(w.shape)}")
    S = w.shape[1]
    g = max(1, min(groups, S))
    edges = np.linspace(0, S, g + 1).round().astype(int)
    return np.concatenate([w[:, a:b].mean(1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


def context(z: np.ndarray, frames: np.ndarray, offset: int, radius: int) -> np.ndarray:
    """Rows ``[z[f + offset - radius], ..., z[f + offset + radius]]`` (indices clamped to ``[0, T)``) for
    each ``f`` in ``frames``: ``[N, (2 radius + 1) P]``."""
    T = z.shape[0]
    idx = np.asarray(frames, dtype=np.int64)[:, None] + offset + np.arange(-radius, radius + 1)[None]
    return z[np.clip(idx, 0, T - 1)].reshape(len(frames), -1)


# ---------------------------------------------------------------------------------------------- ridge
# The linear algebra runs in torch (float64) on one thread: these matrices are small (a few hundred
# columns), and a multi-threaded BLAS on a busy machine is many times slower than one thread.
@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _t(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64 through torch (one thread)."""
    with one_thread():
        return (_t(a) @ _t(b)).numpy()


def ridge_fit(X: np.ndarray, Y: np.ndarray, lam: float, Dx: np.ndarray | None = None,
              mu: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``W, b`` minimising ``|X W + b - Y|^2 + lam N |W|^2 + mu (N / M) |Dx W|^2`` (``Dx``: ``[M, D]``
    feature differences of consecutive frames, the smoothness term; the intercept is not penalised)."""
    import torch

    with one_thread():
        Xt, Yt = _t(X), _t(Y)
        n = Xt.shape[0]
        xm, ym = Xt.mean(0), Yt.mean(0)
        Xc = Xt - xm
        A = Xc.T @ Xc + lam * n * torch.eye(Xt.shape[1], dtype=torch.float64)
        if Dx is not None and mu > 0 and len(Dx):
            D = _t(Dx)
            A = A + mu * n / D.shape[0] * (D.T @ D)
        W = torch.linalg.solve(A, Xc.T @ (Yt - ym))
        return W.numpy(), (ym - xm @ W).numpy()


def blocked_folds(n: int, folds: int = FOLDS) -> list[np.ndarray]:
    """Row indices ``0..n-1`` cut into ``folds`` contiguous blocks."""
    k = max(2, min(folds, n // 4))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def cv_predict(X: np.ndarray, Y: np.ndarray, lambdas: Sequence[float], folds: list[np.ndarray],
               Dx: np.ndarray | None = None, mu: float = 0.0) -> list[np.ndarray]:
    """Cross-validated predictions ``[N, K]`` for each ridge weight in ``lambdas``: each block predicted by
    the :func:`ridge_fit` model fitted on the other blocks (one eigen-decomposition per block serves every
    ridge weight)."""
    import torch

    with one_thread():
        Xa, Ya = _t(X), _t(Y)
        outs = [torch.zeros_like(Ya) for _ in lambdas]
        S = None
        if Dx is not None and mu > 0 and len(Dx):
            D = _t(Dx)
            S = (D.T @ D) / D.shape[0]
        every = np.arange(len(X))
        for block in folds:
            train = torch.from_numpy(np.setdiff1d(every, block))
            bl = torch.from_numpy(block)
            Xt, Yt = Xa[train], Ya[train]
            n = Xt.shape[0]
            xm, ym = Xt.mean(0), Yt.mean(0)
            Xc = Xt - xm
            A = Xc.T @ Xc
            if S is not None:
                A = A + mu * n * S
            e, V = torch.linalg.eigh(A)
            B = V.T @ (Xc.T @ (Yt - ym))
            Xv = (Xa[bl] - xm) @ V
            for out, lam in zip(outs, lambdas):
                out[bl] = Xv @ (B / (e.clamp_min(0.0) + lam * n)[:, None]) + ym
        return [o.numpy() for o in outs]


def r2_score(pred: np.ndarray, Y: np.ndarray, units: np.ndarray) -> float:
    """Variance-weighted R^2 over the columns ``units``: ``1 - sum SSE / sum SST``."""
    if not units.any():
        return 0.0
    sse = ((pred - Y)[:, units] ** 2).sum()
    sst = ((Y - Y.mean(0))[:, units] ** 2).sum()
    return float(1.0 - sse / max(sst, 1e-12))


def correlations(pred: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Pearson correlation per column (0 where either column is constant)."""
    a = pred - pred.mean(0)
    b = Y - Y.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 1e-12, (a * b).sum(0) / np.maximum(den, 1e-12), 0.0)


# ---------------------------------------------------------------------------------------------- model
@dataclass
class SpeechFaceModel:
    """A fitted speech -> face map (see the module docstring).

    ``units``: names of the K outputs (the body's expression names, then ``jaw_pose.x/y/z`` if it has a jaw
    joint); ``driven`` [K] bool: outputs predicted from the audio (the others take ``rest``); ``lo``/``hi``
    [K]: the training range, predictions are clipped to it; ``feat_mean``/``feat_std`` [D], ``basis`` [D, P]:
    the per-frame feature normalisation and projection; ``weights`` [(2 radius + 1) P, K], ``bias`` [K].
    """

    encoder: str
    fps: float
    offset: int
    radius: int
    num_expressions: int
    jaw_joint: int  # -1: the body has no jaw joint (the jaw opens through an expression)
    units: list[str]
    feat_mean: np.ndarray
    feat_std: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    driven: np.ndarray
    rest: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    pool: int = POOL
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def lookahead(self) -> int:
        """Frames of audio after frame t that its prediction reads."""
        return max(0, self.offset + self.radius)

    @property
    def lookbehind(self) -> int:
        """Frames of audio before frame t that its prediction reads."""
        return max(0, self.radius - self.offset)

    @property
    def driven_expressions(self) -> np.ndarray:
        """[E] bool: expression units the audio drives."""
        return self.driven[: self.num_expressions]

    def frame_codes(self, windows: np.ndarray) -> np.ndarray:
        """``[T, S, C]`` windows -> ``[T, P]`` per-frame codes."""
        f = pool_windows(windows, self.pool)
        if f.shape[1] != self.feat_mean.shape[0]:
            raise SpeechModelError(f"audio features have {f.shape[1] // max(1, self.pool)} channels per step; "
                                   f"the speech model was fitted on {self.feat_mean.shape[0] // self.pool} "
                                   f"(encoder {self.encoder!r})")
        return matmul((f - self.feat_mean) / self.feat_std, self.basis)

    def predict_codes(self, z: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        """Outputs ``[N, K]`` for ``frames`` (default: every frame) of the codes ``z`` ``[T, P]``; undriven
        units hold ``rest``, driven ones are clipped to the training range."""
        frames = np.arange(z.shape[0]) if frames is None else np.asarray(frames)
        y = matmul(context(z, frames, self.offset, self.radius), self.weights) + self.bias
        y = np.clip(y, self.lo, self.hi)
        return np.where(self.driven[None], y, self.rest[None])

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """``[T, S, C]`` audio windows -> ``[T, K]`` outputs."""
        return self.predict_codes(self.frame_codes(windows))

    def split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Outputs ``[T, K]`` -> (expressions ``[T, E]``, jaw axis-angle ``[T, 3]`` or None)."""
        E = self.num_expressions
        return y[:, :E], (y[:, E:E + 3] if self.jaw_joint >= 0 else None)

    # -- storage --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model as an ``.npz`` of plain arrays (atomically)."""
        from thgs.utils.io import atomic_path

        meta = {"format": FORMAT, "version": VERSION, "encoder": self.encoder, "fps": self.fps,
                "offset": self.offset, "radius": self.radius, "num_expressions": self.num_expressions,
                "jaw_joint": self.jaw_joint, "units": list(self.units), "pool": self.pool, "info": self.info}
        arrays = {k: np.asarray(getattr(self, k), dtype=np.float32) for k in _ARRAYS}
        arrays["driven"] = np.asarray(self.driven, dtype=bool)
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(meta, sort_keys=True, default=_json_default)), **arrays)
        return path

    @staticmethod
    def load(path: str | Path) -> "SpeechFaceModel":
        """Read a model written by :meth:`save` (``allow_pickle=False``); bad files raise SpeechModelError."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise SpeechModelError(f"{path}: cannot read the speech model ({exc})") from None
        if "meta" not in arrays:
            raise SpeechModelError(f"{path}: no field 'meta' (not a thgs speech model)")
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            raise SpeechModelError(f"{path}: field 'meta' is not JSON") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SpeechModelError(f"{path}: field 'meta.format' is not {FORMAT!r}")
        if meta.get("version") != VERSION:
            raise SpeechModelError(f"{path}: field 'meta.version' is {meta.get('version')!r}, expected {VERSION}")
        for k in (*_ARRAYS, "driven"):
            if k not in arrays:
                raise SpeechModelError(f"{path}: field {k!r} missing")
        try:
            m = SpeechFaceModel(encoder=str(meta["encoder"]), fps=float(meta["fps"]), offset=int(meta["offset"]),
                                radius=int(meta["radius"]), num_expressions=int(meta["num_expressions"]),
                                jaw_joint=int(meta["jaw_joint"]), units=[str(u) for u in meta["units"]],
                                pool=int(meta["pool"]), info=dict(meta.get("info") or {}),
                                driven=arrays["driven"].astype(bool),
                                **{k: arrays[k].astype(np.float64) for k in _ARRAYS})
        except (KeyError, TypeError, ValueError) as exc:
            raise SpeechModelError(f"{path}: field 'meta' is incomplete ({exc})") from None
        _check_shapes(m, path)
        return m


_ARRAYS = ("feat_mean", "feat_std", "basis", "weights", "bias", "rest", "lo", "hi")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _check_shapes(m: SpeechFaceModel, path: Path) -> None:
    K = len(m.units)
    D, P = m.basis.shape if m.basis.ndim == 2 else (-1, -1)
    want = {"feat_mean": (D,), "feat_std": (D,), "weights": ((2 * m.radius + 1) * P, K), "bias": (K,),
            "rest": (K,), "lo": (K,), "hi": (K,), "driven": (K,)}
    for k, shape in want.items():
        if tuple(getattr(m, k).shape) != shape:
            raise SpeechModelError(f"{path}: field {k!r} has shape {tuple(getattr(m, k).shape)}, expected {shape}")
    if m.num_expressions > K or m.radius < 0:
        raise SpeechModelError(f"{path}: field 'meta' has num_expressions {m.num_expressions} / radius {m.radius} "
                               f"inconsistent with {K} units")


# ------------------------------------------------------------------------------------------------ fit
@dataclass
class FitOptions:
    """The validation grid and thresholds of :func:`fit_speech_face`."""

    max_offset: int = MAX_OFFSET
    radii: tuple[int, ...] = RADII
    lambdas: tuple[float, ...] = LAMBDAS
    smooths: tuple[float, ...] = SMOOTHS
    components: int = COMPONENTS
    min_corr: float = MIN_CORR
    folds: int = FOLDS
    pool: int = POOL


def fit_speech_face(windows: np.ndarray, frames: Sequence[int], targets: np.ndarray, units: Sequence[str], *,
                    num_expressions: int, jaw_joint: int = -1, encoder: str = "mel", fps: float = 25.0,
                    options: FitOptions | None = None) -> SpeechFaceModel:
    """Fit the speech -> face map.

    Args:
        windows: ``[T, S, C]`` audio windows of every frame of the subject.
        frames: the ``N`` frames with targets (sorted; the training span), indices into ``windows``.
        targets: ``[N, K]`` (expressions, then the jaw axis-angle when ``jaw_joint >= 0``).
        units: K output names.
    """
    o = options or FitOptions()
    frames = np.asarray(frames, dtype=np.int64)
    Y = np.asarray(targets, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != len(frames) or Y.shape[1] != len(units):
        raise SpeechModelError(f"targets have shape {tuple(Y.shape)}, expected ({len(frames)}, {len(units)})")
    if len(frames) < MIN_FRAMES:
        raise SpeechModelError(f"{len(frames)} training-span frames are too few to fit a speech model "
                               f"(need {MIN_FRAMES})")
    T = int(np.asarray(windows).shape[0])
    if frames.min() < 0 or frames.max() >= T:
        raise SpeechModelError(f"target frames outside the {T} audio frames")
    feats = pool_windows(windows, o.pool)
    ref = feats[frames]
    mean = ref.mean(0)
    std = np.maximum(ref.std(0), 1e-6)
    zs = (ref - mean) / std
    k = int(max(1, min(o.components, zs.shape[1], len(frames) - 1)))
    import torch

    with one_thread():
        _, _, vt = torch.linalg.svd(_t(zs - zs.mean(0)), full_matrices=False)
    basis = vt[:k].T.numpy()  # [D, P]
    z = matmul((feats - mean) / std, basis)
    varied = Y.std(0) > 1e-4
    folds = blocked_folds(len(frames), o.folds)
    pairs = frames[np.isin(frames + 1, frames)]  # consecutive frames of the span (targets not needed)
    max_off = int(min(o.max_offset, max(0, len(frames) // 4)))

    # 0) which units speech can explain at all: a probe model (offset 0, one frame of context each side);
    #    the selection below scores those units only (blinks and brows would only add noise to it)
    probe = cv_predict(context(z, frames, 0, 1), Y, o.lambdas, folds)
    probe_corr = np.max([correlations(p, Y) for p in probe], axis=0)
    speech_units = varied & (probe_corr >= o.min_corr)
    scored = speech_units if speech_units.any() else varied

    # 1) the audio-visual offset: a one-frame model at every offset
    off_scores: dict[int, float] = {}
    for off in range(-max_off, max_off + 1):
        X = context(z, frames, off, 0)
        off_scores[off] = max(r2_score(p, Y, scored) for p in cv_predict(X, Y, o.lambdas, folds))
    offset = max(off_scores, key=lambda s: (off_scores[s], -abs(s)))

    # 2) context radius, ridge weight and smoothness weight around that offset
    best: tuple[float, int, float, float] | None = None
    for radius in o.radii:
        X = context(z, frames, offset, radius)
        Dx = context(z, pairs + 1, offset, radius) - context(z, pairs, offset, radius) if len(pairs) else None
        for mu in (o.smooths if Dx is not None else (0.0,)):
            for lam, pred in zip(o.lambdas, cv_predict(X, Y, o.lambdas, folds, Dx, mu)):
                s = r2_score(pred, Y, scored)
                if best is None or s > best[0] + 1e-6:
                    best = (s, radius, lam, mu)
    assert best is not None
    score, radius, lam, mu = best
    X = context(z, frames, offset, radius)
    Dx = context(z, pairs + 1, offset, radius) - context(z, pairs, offset, radius) if len(pairs) else None
    pred = cv_predict(X, Y, [lam], folds, Dx, mu)[0]
    corr = correlations(pred, Y)
    driven = scored & (corr >= o.min_corr)
    W, b = ridge_fit(X, Y, lam, Dx, mu)
    lo, hi = Y.min(0), Y.max(0)
    info = {"frames": int(len(frames)), "cv_r2": score, "lambda": lam, "smooth": mu, "components": k,
            "offset_scores": {str(s): v for s, v in off_scores.items()},
            "cv_corr": {u: float(c) for u, c, v in zip(units, corr, varied) if v}}
    return SpeechFaceModel(encoder=encoder, fps=float(fps), offset=int(offset), radius=int(radius),
                           num_expressions=int(num_expressions), jaw_joint=int(jaw_joint), units=list(units),
                           feat_mean=mean, feat_std=std, basis=basis, weights=W, bias=b, driven=driven,
                           rest=np.median(Y, 0), lo=lo, hi=hi, pool=o.pool, info=info)


# ------------------------------------------------------------------------------------- from a trained run
def jaw_joint_of(body: Any) -> int:
    """The body's jaw joint, or -1 when its jaw opens through an expression (jaw joint == head joint)."""
    mouth = getattr(body, "mouth", None)
    if mouth is None or mouth.jaw_joint == mouth.head_joint:
        return -1
    return int(mouth.jaw_joint)


def training_span(subject: Any) -> list[int]:
    """Every frame of the subject that is not in its test split (its poses and expressions are known and
    its images were not held out)."""
    test = set(int(f) for f in subject.split.get("test", []))
    return [f for f in range(int(subject.num_frames)) if f not in test]


def training_targets(model: Any, subject: Any) -> tuple[list[int], np.ndarray, list[str], int]:
    """(span frames, targets ``[N, K]``, unit names, jaw joint) of a trained avatar on its subject: the
    tracked expressions (+ jaw axis-angle) plus the run's per-frame refinements where it has them."""
    import torch

    body = model.body
    p = subject.params()
    span = training_span(subject)
    idx = np.asarray(span, dtype=np.int64)
    E = body.num_expressions
    expr = np.zeros((len(span), E))
    src = np.asarray(p["expression"], dtype=np.float64).reshape(int(subject.num_frames), -1)
    k = min(E, src.shape[1])
    expr[:, :k] = src[idx, :k]
    jaw = jaw_joint_of(body)
    pose = np.asarray(p["pose"], dtype=np.float64).reshape(int(subject.num_frames), -1, 3)
    refine = getattr(model, "refine", None)
    if refine is not None and refine.num_frames == int(subject.num_frames):
        with torch.no_grad():
            if model.is_active("expression") and model.options.use_expression:
                d = refine.expression.detach().cpu().double().numpy()[idx]
                expr[:, : min(E, d.shape[1])] += d[:, :E]
            if jaw >= 0 and model.is_active("pose"):
                pose = pose.copy()
                pose[idx, jaw] += refine.pose.detach().cpu().double().numpy()[idx, jaw]
    units = list(body.expression_names)
    Y = expr
    if jaw >= 0:
        Y = np.concatenate([expr, pose[idx, jaw]], 1)
        units += ["jaw_pose.x", "jaw_pose.y", "jaw_pose.z"]
    return span, Y, units, jaw


def subject_windows(subject: Any, encoder: str) -> np.ndarray:
    """The subject's ``[T, S, C]`` audio windows with ``encoder`` (``mel`` when the run used none)."""
    from thgs.audio.features import AudioFeatureError, subject_features

    try:
        return subject_features(subject, encoder).windows
    except AudioFeatureError as exc:
        raise SpeechModelError(str(exc)) from None


def fit_for_run(model: Any, subject: Any, encoder: str = "mel",
                options: FitOptions | None = None) -> SpeechFaceModel:
    """Fit the speech model of a trained avatar from its subject's training span."""
    if not getattr(subject, "has_audio", False):
        raise SpeechModelError(f"subject {getattr(subject, 'root', '?')} has no audio: no speech model")
    windows = subject_windows(subject, encoder)
    span, Y, units, jaw = training_targets(model, subject)
    m = fit_speech_face(windows, span, Y, units, num_expressions=model.body.num_expressions, jaw_joint=jaw,
                        encoder=encoder, fps=float(subject.fps), options=options)
    m.info["mel_stats"] = _mel_stats(subject) if encoder == "mel" else None
    return m


def _mel_stats(subject: Any) -> dict[str, Any]:
    """Per-band mean and global standard deviation of the subject's raw log-mel (the start of the
    streaming driver's running normalisation)."""
    from thgs.audio.encoders import SAMPLE_RATE, MelEncoder
    from thgs.io.audio_io import load_audio

    samples, _ = load_audio(subject.audio(), SAMPLE_RATE)
    raw = MelEncoder(normalize="none").encode(samples, (0, len(samples))).values.astype(np.float64)
    return {"mean": raw.mean(0).tolist(), "std": float(max(raw.std(), 0.1)), "seconds": len(samples) / SAMPLE_RATE}


def speech_model_path(run: str | Path) -> Path:
    """``RUN/speech.npz`` (``run`` a run folder or a checkpoint inside one)."""
    run = Path(run)
    return (run if run.is_dir() else run.parent) / SPEECH_FILE


def load_or_fit(run: str | Path, model: Any, subject: Any, encoder: str = "mel",
                quiet: bool = False) -> SpeechFaceModel | None:
    """The run's stored speech model; fitted now (not stored) when the run has none. None when the
    subject gives nothing to fit (no audio, too few frames)."""
    path = speech_model_path(run)
    if path.is_file():
        return SpeechFaceModel.load(path)
    try:
        m = fit_for_run(model, subject, encoder)
    except SpeechModelError as exc:
        if not quiet:
            print(f"speech: no speech model ({exc}); the face follows SAAM only")
        return None
    if not quiet:
        print(f"speech: {path} missing, fitted a speech model now (store it with `thgs train-speech {run}`)")
    return m


def face_encoder(cfg: Any) -> str:
    """The audio encoder of a run's speech model: the run's own when it can encode new audio, else mel."""
    from thgs.audio.encoders import encoder_names

    enc = getattr(cfg, "audio_encoder", "mel") or "mel"
    return enc if enc in encoder_names() and enc != "precomputed" else "mel"


def run_speech_face(run: str | Path | None, model: Any, cfg: Any, subject: Any,
                    quiet: bool = False) -> SpeechFaceModel | None:
    """The speech model of a run (``run`` None: fitted now): see :func:`load_or_fit`."""
    if run is None:
        try:
            return fit_for_run(model, subject, face_encoder(cfg))
        except SpeechModelError:
            return None
    return load_or_fit(run, model, subject, face_encoder(cfg), quiet=quiet)


def write_run_speech(run_dir: str | Path, model: Any, subject: Any, cfg: Any,
                     quiet: bool = False) -> SpeechFaceModel | None:
    """Fit the speech model of a trained avatar and store it as ``RUN/speech.npz``; a subject without audio
    or with too few frames gets none (said in one line)."""
    path = Path(run_dir) / SPEECH_FILE
    try:
        m = fit_for_run(model, subject, face_encoder(cfg))
    except SpeechModelError as exc:
        if not quiet:
            print(f"speech: no speech model ({exc})")
        return None
    m.save(path)
    if not quiet:
        print(f"{summary(m)}\nspeech: {path}")
    return m


def summary(m: SpeechFaceModel) -> str:
    """One line: what the model drives, its offset, look-ahead and validation score."""
    names = [u for u, d in zip(m.units, m.driven) if d]
    shown = ", ".join(names[:6]) + (f" (+{len(names) - 6})" if len(names) > 6 else "")
    return (f"speech model: {len(names)} of {len(m.units)} units driven ({shown or 'none'}); offset {m.offset:+d}, "
            f"context +-{m.radius}, look-ahead {m.lookahead} frames ({1000 * m.lookahead / m.fps:.0f} ms); "
            f"cross-validated R^2 {m.info.get('cv_r2', float('nan')):.3f} on {m.info.get('frames', 0)} frames")


# ---------------------------------------------------------------------------------------------- drives
def expression_units(spec: str, names: Sequence[str]) -> list[int]:
    """The expression columns a ``name=value[,...]`` spec names (every column for a ``.npy`` file).
    The spec is assumed valid (:func:`thgs.animate.drive.parse_expression` checks it)."""
    if spec.endswith(".npy"):
        return list(range(len(names)))
    cols = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name = item.partition("=")[0]
        cols.append(list(names).index(name) if name in names else int(name[4:]))
    return cols


def override_units(expression: Any, fixed: Any, spec: str, names: Sequence[str]) -> Any:
    """``expression`` [T, E] with the columns ``spec`` names replaced by those of ``fixed`` [T, E]."""
    out = expression.clone()
    cols = expression_units(spec, names)
    out[:, cols] = fixed[:, cols]
    return out


def speech_expressions(face: SpeechFaceModel | None, windows: np.ndarray | None, base: Any, model: Any,
                       jaw_pose: Any | None = None) -> tuple[Any, Any | None]:
    """Expressions [T, E] for a speech-driven drive: the units ``face`` drives from ``windows`` [T, S, C],
    the others from ``base`` [T, E] (e.g. the motion replay's). Returns (expressions, jaw axis-angle [T, 3]
    or None) as float32 tensors."""
    import torch

    expr = base.clone().float()
    if face is None or windows is None:
        return expr, None
    E = model.body.num_expressions
    if face.num_expressions != E:
        raise SpeechModelError(f"speech model: fitted for {face.num_expressions} expressions, the body has {E}")
    y = face.predict(windows)
    e, jaw = face.split(y)
    drive = torch.as_tensor(face.driven_expressions)
    expr[:, drive] = torch.as_tensor(e, dtype=torch.float32)[:, drive]
    jaw_t = torch.as_tensor(jaw, dtype=torch.float32) if jaw is not None and face.driven[E:].any() else None
    return expr, jaw_t


def speech_drive(model: Any, subject: Any, clip: tuple[np.ndarray, int], camera: Any, *,
                 face: SpeechFaceModel | None, saam_encoder: str | None = "mel", motion: dict | None = None,
                 replay_options: Any = None, num_frames: int | None = None) -> Any:
    """A :class:`thgs.animate.drive.Drive` of an avatar saying ``clip`` = (samples, sample rate).

    * face: ``face`` predicts the expressions (and jaw) from the clip's audio features; units it does not
      drive come from the motion (replay or file), else zero;
    * body: ``motion`` (a :func:`thgs.animate.drive.load_motion` dict) drives the poses exactly, its
      expressions (when it has them) win over the face model's; without it the subject's own motion is
      replayed (:func:`thgs.animate.motion.replay`), the jaw taken from the face model;
    * SAAM reads the clip's feature windows (``saam_encoder``; None: no SAAM input).
    """
    import torch

    from thgs.animate.drive import Drive
    from thgs.animate.motion import MotionLibrary, ReplayOptions, replay, speech_activity
    from thgs.audio.features import frame_features
    from thgs.runs.frames import audio_neighbourhoods

    samples, sr = np.asarray(clip[0], dtype=np.float32), int(clip[1])
    fps = float(subject.fps)
    T = int(num_frames) if num_frames else max(1, int(len(samples) / sr * fps))
    E = model.body.num_expressions
    cache: dict[str, np.ndarray] = {}

    def windows(encoder: str) -> np.ndarray:
        if encoder not in cache:
            cache[encoder] = frame_features((samples, sr), T, fps, encoder=encoder, pad_audio=True).windows
        return cache[encoder]

    p = subject.params()
    betas = torch.as_tensor(np.asarray(p["betas"]), dtype=torch.float32).reshape(-1)
    info: dict[str, Any] = {"face": summary(face) if face is not None else None}
    if motion is not None:
        Tm = int(motion["pose"].shape[0])
        if num_frames is None:
            T = Tm
        pose = motion["pose"][:T].clone()
        transl = motion["transl"][:T].clone()
        betas = motion.get("betas", betas)
        base = motion["expression"][:T] if "expression" in motion else torch.zeros(T, E)
        info["body"] = "motion file"
    else:
        lib = MotionLibrary.from_subject(subject)
        activity = speech_activity(samples, sr, fps, T)
        pose, base, transl = replay(lib, activity, replay_options or ReplayOptions())
        info["body"] = "replay"
    if motion is not None and "expression" in motion:
        expr, jaw = base.clone().float(), None
    else:
        expr, jaw = speech_expressions(face, windows(face.encoder) if face is not None else None, base, model)
    if jaw is not None and motion is None:
        pose[:, face.jaw_joint] = jaw  # type: ignore[union-attr]
    audio = None
    if saam_encoder is not None and model.saam is not None:
        audio = audio_neighbourhoods(torch.from_numpy(np.ascontiguousarray(windows(saam_encoder))))
    n = int(round(T / fps * sr))
    clip_out = (samples[:n], sr) if len(samples) >= n else (np.pad(samples, (0, n - len(samples))), sr)
    return Drive(pose=pose.float(), transl=transl.float(), betas=betas.float(), expression=expr.float(), fps=fps,
                 cameras=[camera], audio=audio, clip=clip_out, extras={"speech": info})


__all__ = ["FitOptions", "SPEECH_FILE", "SpeechFaceModel", "SpeechModelError", "context", "expression_units",
           "fit_for_run", "fit_speech_face", "jaw_joint_of", "load_or_fit", "override_units", "pool_windows",
           "ridge_fit", "run_speech_face", "face_encoder", "speech_drive", "speech_expressions", "speech_model_path", "summary", "training_span",
           "training_targets", "write_run_speech"]
