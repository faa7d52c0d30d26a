"""Streaming: audio chunks in, rendered frames out, for a caller that produces speech as it goes.

:class:`SpeechStreamer` keeps the audio received so far (a rolling buffer), and as soon as the audio a frame
needs has arrived it computes that frame's feature windows, the speech model's expressions, the online
motion replay's pose (:class:`thgs.animate.motion.OnlineReplay`) and SAAM's input, poses the avatar with the
fast path (:class:`thgs.avatar.inference.Animator`) and renders it.

A frame needs audio past its own end: the speech model's look-ahead, SAAM's neighbourhood (frames up to
t + 3) and half a feature window. :attr:`SpeechStreamer.lookahead_s` is that wait, which no computation can
remove; the *latency* reported per frame (:attr:`StreamFrame.latency_s`) is the time from the call that
delivered the last audio the frame needed to the frame being rendered, i.e. computation only.

Features are the mel encoder's (the only one that runs on a stream); the utterance normalisation of the
offline path becomes a running one (per-band mean and global deviation of what was heard, starting from the
training audio's, :func:`thgs.animate.speech.fit_for_run` stores them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from thgs.animate.drive import DriveError
from thgs.animate.motion import MotionLibrary, OnlineReplay, ReplayOptions
from thgs.animate.speech import SpeechFaceModel

SAMPLE_RATE = 16000
WINDOW_HALF_S = 0.1
"""Audio past a frame's centre that its own feature window reads (7.5 steps of 10 ms plus half the STFT)."""
SAAM_AHEAD = 3
"""SAAM reads the windows of frames t - 4 .. t + 3."""
SAAM_BEHIND = 4
PRIOR_S = 5.0
"""Seconds of audio the training audio's feature statistics count for in the running normalisation."""
BUFFER_S = 4.0


@dataclass
class StreamFrame:
    """A rendered frame: ``index``; ``image`` uint8 [H, W, 3] (None when rendering is off); the driving
    ``pose`` [J, 3] and ``expression`` [E]; ``ready_at``: when the audio it needed had been pushed (the
    ``perf_counter`` at the start of that push); ``done_at``: when it was rendered."""

    index: int
    image: np.ndarray | None
    pose: Tensor
    expression: Tensor
    ready_at: float
    done_at: float

    @property
    def latency_s(self) -> float:
        return self.done_at - self.ready_at


class RunningMelStats:
    """Per-band mean and global standard deviation of raw log-mel steps, starting from a prior."""

    def __init__(self, prior: dict[str, Any] | None, channels: int, steps_per_s: float) -> None:
        n0 = PRIOR_S * steps_per_s if prior else 0.0
        mean = np.asarray(prior["mean"], dtype=np.float64) if prior else np.zeros(channels)
        std = float(prior["std"]) if prior else 1.0
        self.n = n0
        self.band_sum = mean * n0
        g = float(mean.mean())
        self.sum = g * n0 * channels
        self.sq = (std * std + g * g) * n0 * channels
        self.channels = channels

    def add(self, raw: np.ndarray) -> None:
        if len(raw):
            self.n += raw.shape[0]
            self.band_sum += raw.sum(0)
            self.sum += float(raw.sum())
            self.sq += float((raw.astype(np.float64) ** 2).sum())

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        if self.n <= 0:
            return raw - raw.mean(0)
        m = self.sum / (self.n * self.channels)
        std = max(np.sqrt(max(self.sq / (self.n * self.channels) - m * m, 0.0)), 0.1)
        return ((raw - self.band_sum / self.n) / std).astype(np.float32)


class SpeechStreamer:
    """Audio chunks -> rendered frames of a trained avatar (see the module docstring).

    Args:
        model: the trained avatar (eval mode, on its device).
        subject: its subject (camera, motion library, betas, fps).
        face: the run's speech model or None (then SAAM alone moves the mouth).
        camera, background: the view ([3] RGB in [0, 1]).
        mode, backend: rasterization.
        render: False skips rasterization (frames carry the driving signals only).
    """

    def __init__(self, model: Any, subject: Any, face: SpeechFaceModel | None, camera: Any, background: Tensor, *,
                 mode: str = "2dgs", backend: str = "auto", render: bool = True,
                 replay_options: ReplayOptions | None = None, saam: bool = True) -> None:
        from thgs.audio.encoders import MelEncoder
        from thgs.avatar.inference import Animator

        if face is not None and face.encoder != "mel":
            raise DriveError(f"streaming computes mel features only; this speech model uses {face.encoder!r}")
        self.model = model
        self.face = face
        self.fps = float(subject.fps)
        self.device = next(model.state.parameters()).device
        self.camera = camera.to(self.device)
        self.background = background.to(self.device)
        self.mode, self.backend, self.render = mode, backend, render
        self.encoder = MelEncoder(normalize="none")
        self.saam = bool(saam) and model.saam is not None
        self.replay = OnlineReplay(MotionLibrary.from_subject(subject), replay_options)
        p = subject.params()
        betas = torch.as_tensor(np.asarray(p["betas"]), dtype=torch.float32).reshape(-1)
        self.animator = Animator.from_model(model, betas=betas.to(self.device)) if render else None
        prior = face.info.get("mel_stats") if face is not None else None
        self.stats = RunningMelStats(prior, self.encoder.dim, 1000.0 / self.encoder.options["hop_ms"])
        self.ahead = max(SAAM_AHEAD if self.saam else 0, face.lookahead if face is not None else 0)
        self.behind = max(SAAM_BEHIND if self.saam else 0, face.lookbehind if face is not None else 0)
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.total = 0
        self.total_real: int | None = None  # samples of real audio once the stream has ended
        self.stats_until = 0  # absolute sample up to which feature steps entered the statistics
        self.next = 0
        self.levels: list[float] = []
        self.activity = 0.0
        self.ended = False
        if self.animator is not None and self.device.type == "cuda":
            self.animator.capture(batch=1, audio_shape=(8, 16, self.encoder.dim) if self.saam else (8, 16, 0))

    # -- timing -----------------------------------------------------------------------------------
    @property
    def lookahead_s(self) -> float:
        """Audio past a frame's end that must have arrived before it can be made (seconds)."""
        return (self.ahead + 0.5) / self.fps + WINDOW_HALF_S - 1.0 / self.fps

    def _need(self, t: int) -> int:
        """Absolute samples needed before frame ``t`` is ready."""
        return int(np.ceil(((t + self.ahead + 0.5) / self.fps + WINDOW_HALF_S) * SAMPLE_RATE))

    # -- input ------------------------------------------------------------------------------------
    def push(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[StreamFrame]:
        """Add a chunk of mono samples; returns the frames that became ready (rendered)."""
        from thgs.io.audio_io import load_audio

        t0 = time.perf_counter()
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            x = load_audio((x, int(sample_rate)), SAMPLE_RATE)[0]
        self.buf = np.concatenate([self.buf, x])
        self.total += len(x)
        return list(self._emit(t0))

    def flush(self) -> list[StreamFrame]:
        """End of the stream: the remaining frames (silence stands for the missing look-ahead)."""
        t0 = time.perf_counter()
        last = int(self.total / SAMPLE_RATE * self.fps)  # whole frames the audio covers
        self.ended = True
        pad = max(0, self._need(last) - self.total)
        self.buf = np.concatenate([self.buf, np.zeros(pad, np.float32)])
        self.total_real = self.total
        self.total += pad
        return [f for f in self._emit(t0) if f.index < max(1, last)]

    # -- frames -----------------------------------------------------------------------------------
    def _emit(self, t0: float) -> Iterator[StreamFrame]:
        ready = self.next
        while self._need(ready) <= self.total:
            ready += 1
        if ready == self.next:
            return
        frames = np.arange(self.next, ready)
        lo, hi = max(0, self.next - self.behind), ready - 1 + self.ahead
        win = self._windows(lo, hi)  # [hi - lo + 1, 16, C]
        expr_all = jaw_all = None
        if self.face is not None:
            z = self.face.frame_codes(win)
            e, jaw_all = self.face.split(self.face.predict_codes(z, frames - lo))
            expr_all = torch.as_tensor(e, dtype=torch.float32)
        wt = torch.from_numpy(np.ascontiguousarray(win))
        for k, t in enumerate(frames):
            level = self._level(int(t))
            a = 1.0 - np.exp(-1.0 / (0.25 * self.fps))
            self.activity += a * (level - self.activity)
            pose, expr, transl = self.replay.frame(int(t), self.activity)
            if expr_all is not None:
                d = torch.as_tensor(self.face.driven_expressions)  # type: ignore[union-attr]
                expr = expr.clone()
                expr[d] = expr_all[k][d]
                if jaw_all is not None and self.face.driven[self.face.num_expressions:].any():  # type: ignore[union-attr]
                    pose = pose.clone()
                    pose[self.face.jaw_joint] = torch.as_tensor(jaw_all[k], dtype=torch.float32)  # type: ignore[union-attr]
            image = None
            if self.animator is not None:
                audio = self._neighbourhood(wt, int(t) - lo, lo) if self.saam else None
                image = self._render(pose, expr, audio, transl)
            yield StreamFrame(index=int(t), image=image, pose=pose, expression=expr, ready_at=t0,
                              done_at=time.perf_counter())
        self.next = ready
        keep = max(0, self.total - int(BUFFER_S * SAMPLE_RATE))
        if keep > self.buf_start:
            self.buf = self.buf[keep - self.buf_start:]
            self.buf_start = keep

    def _windows(self, lo: int, hi: int) -> np.ndarray:
        """Normalised mel windows of frames ``lo .. hi``."""
        from thgs.audio.encoders import FeatureSequence
        from thgs.audio.features import window_sequence

        start_s = (lo + 0.5) / self.fps - WINDOW_HALF_S - 0.05
        end_s = (hi + 0.5) / self.fps + WINDOW_HALF_S + 0.05
        a, b = int(np.floor(start_s * SAMPLE_RATE)), int(np.ceil(end_s * SAMPLE_RATE))
        seg = self._samples(a, b)
        seq = self.encoder.encode(seg, (0, len(seg)))
        raw = seq.values.astype(np.float64)
        hop = 1.0 / seq.rate
        step_abs = a + np.round(np.arange(raw.shape[0]) * hop * SAMPLE_RATE).astype(np.int64)
        real = self.total if self.total_real is None else self.total_real
        new = (step_abs >= self.stats_until) & (step_abs < real)
        self.stats.add(raw[new])
        if new.any():
            self.stats_until = int(step_abs[new].max()) + 1
        norm = FeatureSequence(self.stats.normalise(raw), seq.rate, 0.0)
        return window_sequence(norm, hi - lo + 1, self.fps, offset_s=lo / self.fps - a / SAMPLE_RATE)

    def _samples(self, a: int, b: int) -> np.ndarray:
        """Absolute samples ``a .. b - 1``: silence before the stream and past what has arrived."""
        out = np.zeros(b - a, np.float32)
        s, e = max(a, self.buf_start), min(b, self.buf_start + len(self.buf))
        if e > s:
            out[s - a:e - a] = self.buf[s - self.buf_start:e - self.buf_start]
        return out

    def _level(self, t: int) -> float:
        """Speech activity of frame ``t`` in [0, 1] from its RMS (dB relative to the loud frames so far)."""
        a = int(round(t / self.fps * SAMPLE_RATE))
        b = int(round((t + 1) / self.fps * SAMPLE_RATE))
        x = self._samples(a, b).astype(np.float64)
        db = 20 * np.log10(max(float(np.sqrt((x * x).mean())) if len(x) else 0.0, 1e-6))
        self.levels.append(db)
        hist = self.levels[-int(30 * self.fps):]
        top = float(np.percentile(hist, 95)) if len(hist) >= self.fps else max(db, -20.0)
        return float(np.clip((db - (top - 30.0)) / 24.0, 0.0, 1.0))

    @staticmethod
    def _neighbourhood(windows: Tensor, row: int, lo: int) -> Tensor:
        """SAAM's [8, S, C] input of the frame at ``row`` of ``windows`` (whose row 0 is frame ``lo``):
        frames t - 4 .. t + 3, zeros before the stream's first frame."""
        idx = torch.arange(row - SAAM_BEHIND, row + SAAM_AHEAD + 1)
        out = windows[idx.clamp(0, windows.shape[0] - 1)].clone()
        out[(idx + lo) < 0] = 0
        return out

    @torch.no_grad()
    def _render(self, pose: Tensor, expr: Tensor, audio: Tensor | None, transl: Tensor) -> np.ndarray:
        from thgs.render.base import render

        dev = self.device
        gs = self.animator(pose.to(dev), expr.to(dev), audio.to(dev) if audio is not None else None,  # type: ignore[misc]
                           transl.to(dev))
        res = render(gs, self.camera, self.background, mode=self.mode, backend=self.backend,  # type: ignore[arg-type]
                     outputs="rgb")
        return (res.rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def open_streamer(run: str, *, data: str | None = None, device: str = "auto", render: bool = True,
                  backend: str = "auto") -> SpeechStreamer:
    """A :class:`SpeechStreamer` for the run folder ``run`` (its avatar, speech model, subject and camera)."""
    from pathlib import Path

    from thgs.animate.speech import run_speech_face
    from thgs.runs.folder import open_run
    from thgs.runs.frames import subject_background, subject_camera

    opened = open_run(Path(run), Path(data) if data is not None else None, device)
    model, cfg, subject = opened.model, opened.cfg, opened.subject
    face = run_speech_face(run, model, cfg, subject, quiet=True)
    return SpeechStreamer(model, subject, face, subject_camera(subject), subject_background(subject, cfg.background),
                          mode=cfg.render.mode, backend=backend, render=render)


__all__ = ["SpeechStreamer", "StreamFrame", "open_streamer"]
