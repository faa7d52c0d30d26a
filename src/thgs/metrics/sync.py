"""Lip-sync measures that need no learned weights.

(a) With ground truth (self-reenactment): the mouth crop's PSNR/SSIM/LPIPS (:func:`lip_metrics`, via
    :mod:`thgs.metrics.regions`) and the error of the rendered mouth opening. Mouth opening is measured on
    the images by a simple signal, :func:`mouth_opening`: the fraction of *dark* pixels in the mouth box,
    a pixel being dark when its luminance (Rec. 601: 0.299 R + 0.587 G + 0.114 B) is below
    ``rel_threshold`` (0.55) times the median luminance of the box. The mouth box is about 1.7 times the
    mouth width, so skin dominates the median; the oral cavity between parted lips is far darker than skin
    and lips, so the fraction grows with the opening. Teeth are bright and do not count; lit
    well enough, a closed mouth gives nearly 0. The opening error compares the rendered signal to the one
    measured on the ground-truth frames *with the same boxes*: mean absolute difference and Pearson
    correlation over frames.

(b) For any video with audio: an audio-visual offset without a network (:func:`envelope_sync`). The speech
    envelope is the RMS of the waveform over each video frame's time span (:func:`speech_envelope`); the
    mouth signal is :func:`mouth_opening` per frame. For each shift ``k`` in ``-max_offset..max_offset``
    the Pearson correlation of ``mouth[t]`` and ``envelope[t - k]`` over the overlapping frames is computed;
    the offset is the ``k`` of the highest correlation (positive: the video lags the audio by ``k``
    frames, the same sign as SyncNet's AV offset), with the peak correlation and a confidence =
    peak - median correlation over all shifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from thgs.metrics.regions import Box, region_metrics

__all__ = [
    "mouth_opening", "mouth_opening_signal", "opening_error", "speech_envelope", "envelope_sync", "SyncScore",
    "lip_metrics", "shifted_correlations",
]

_LUMA = (0.299, 0.587, 0.114)


def mouth_opening(crop: Tensor, rel_threshold: float = 0.55) -> Tensor:
    """Dark-interior pixel fraction of a mouth crop.

    Args:
        crop: [h, w, 3] or [B, h, w, 3] float RGB in [0, 1].
        rel_threshold: a pixel is dark when its luminance < rel_threshold * median luminance of the crop.
    Returns:
        0-d tensor or [B], in [0, 1].
    """
    if crop.dim() not in (3, 4) or crop.shape[-1] != 3:
        raise ValueError(f"crop must be [h, w, 3] or [B, h, w, 3], got {tuple(crop.shape)}")
    luma = (crop.to(torch.float32) * torch.tensor(_LUMA, device=crop.device)).sum(-1)
    flat = luma.flatten(-2)
    ref = flat.median(dim=-1, keepdim=True).values
    return (flat < rel_threshold * ref).to(torch.float32).mean(-1)


def mouth_opening_signal(frames: Sequence[Tensor] | Tensor, boxes: Sequence[Box] | Box,
                         rel_threshold: float = 0.55) -> Tensor:
    """Per-frame mouth opening: frames [T, H, W, 3] (or T tensors [H, W, 3]) with one mouth box per frame
    (or one box for all) -> [T]."""
    T = len(frames)
    if isinstance(boxes, Box):
        boxes = [boxes] * T
    if len(boxes) != T:
        raise ValueError(f"{len(boxes)} mouth boxes for {T} frames")
    if T == 0:
        return torch.zeros(0)
    return torch.stack([mouth_opening(b.crop(f), rel_threshold) for f, b in zip(frames, boxes, strict=True)])


def _pearson(a: Tensor, b: Tensor) -> float:
    a = a.to(torch.float64) - a.to(torch.float64).mean()
    b = b.to(torch.float64) - b.to(torch.float64).mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else 0.0


def opening_error(pred_signal: Tensor, target_signal: Tensor) -> dict[str, float]:
    """Mouth-opening error between two signals [T]: {"mae": mean |pred - target|, "corr": Pearson r}.

    ``corr`` is 0 when either signal is constant.
    """
    if pred_signal.shape != target_signal.shape or pred_signal.dim() != 1:
        raise ValueError(f"signals must both be [T], got {tuple(pred_signal.shape)} and {tuple(target_signal.shape)}")
    return {"mae": float((pred_signal - target_signal).abs().mean()), "corr": _pearson(pred_signal, target_signal)}


def speech_envelope(audio: Tensor | np.ndarray, sample_rate: int, fps: float, num_frames: int | None = None,
                    ) -> Tensor:
    """RMS of the waveform over each video frame's span [t / fps, (t + 1) / fps).

    Args:
        audio: [N] mono, or [N, C] / [C, N] with C <= 8 channels (averaged).
        sample_rate: Hz. fps: video frame rate.
        num_frames: number of frames T (default: as many whole frames as the audio covers); frames past
            the end of the audio get 0.
    Returns:
        [T] float32.
    """
    a = torch.as_tensor(np.asarray(audio) if not isinstance(audio, Tensor) else audio).to(torch.float64)
    if a.dim() == 2:
        a = a.mean(1) if a.shape[1] <= 8 and a.shape[0] > a.shape[1] else a.mean(0)
    if a.dim() != 1:
        raise ValueError(f"audio must be [N] or [N, C], got {tuple(a.shape)}")
    if sample_rate <= 0 or fps <= 0:
        raise ValueError(f"sample_rate and fps must be positive, got {sample_rate} and {fps}")
    N = a.shape[0]
    if num_frames is None:
        num_frames = int(np.floor(N * fps / sample_rate))
    edges = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64)
    sq = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(a * a, 0)])
    lo = torch.from_numpy(np.minimum(edges[:-1], N))
    hi = torch.from_numpy(np.minimum(edges[1:], N))
    count = (hi - lo).clamp_min(1).to(torch.float64)
    return ((sq[hi] - sq[lo]).clamp_min(0) / count).sqrt().to(torch.float32)


@dataclass
class SyncScore:
    """Result of :func:`envelope_sync`. ``offset`` frames (positive: video lags audio); ``peak`` the best
    correlation; ``confidence`` = peak - median over shifts; ``correlations`` [2 * max_offset + 1] for
    shifts -max_offset..max_offset."""

    offset: int
    peak: float
    confidence: float
    correlations: Tensor

    def as_dict(self) -> dict[str, float]:
        return {"offset": self.offset, "peak_corr": self.peak, "confidence": self.confidence}


def shifted_correlations(video: Tensor, audio: Tensor, max_offset: int = 15, min_overlap: int = 8) -> Tensor:
    """Pearson correlation of ``video[t]`` with ``audio[t - k]`` for k = -max_offset..max_offset.

    Args:
        video, audio: [T] signals of equal length.
    Returns:
        [2 * max_offset + 1] float64; NaN where a constant overlap makes the correlation undefined.
    """
    if video.dim() != 1 or video.shape != audio.shape:
        raise ValueError(f"video and audio signals must both be [T], got {tuple(video.shape)} and {tuple(audio.shape)}")
    T = video.shape[0]
    if T - max_offset < min_overlap:
        raise ValueError(f"{T} frames are too few to search offsets of +-{max_offset} frames "
                         f"(need at least {max_offset + min_overlap})")
    v = video.to(torch.float64)
    a = audio.to(torch.float64)
    out = torch.empty(2 * max_offset + 1, dtype=torch.float64)
    for i, k in enumerate(range(-max_offset, max_offset + 1)):
        vs = v[max(k, 0): T + min(k, 0)]
        as_ = a[max(-k, 0): T - max(k, 0)]
        vs = vs - vs.mean()
        as_ = as_ - as_.mean()
        den = vs.norm() * as_.norm()
        out[i] = (vs * as_).sum() / den if den > 0 else float("nan")
    return out


def envelope_sync(mouth_signal: Tensor, envelope: Tensor, max_offset: int = 15) -> SyncScore:
    """Offset and strength of the best normalised cross-correlation between a mouth-opening signal and
    the speech envelope, searched over +-``max_offset`` frames. Both are [T] per video frame."""
    corr = shifted_correlations(mouth_signal, envelope, max_offset)
    if torch.isnan(corr).all():
        raise ValueError("the mouth signal or the speech envelope is constant: no synchrony can be measured")
    c = torch.nan_to_num(corr, nan=-1.0)
    idx = int(torch.argmax(c))
    peak = float(c[idx])
    finite = corr[~torch.isnan(corr)]
    return SyncScore(offset=idx - max_offset, peak=peak, confidence=peak - float(finite.median()),
                     correlations=corr)


def lip_metrics(pred_frames: Sequence[Tensor] | Tensor, target_frames: Sequence[Tensor] | Tensor,
                mouth_boxes: Sequence[Box], lpips_net: str | None = "alex", rel_threshold: float = 0.55,
                ) -> dict[str, float]:
    """Mouth-region fidelity on frames with ground truth.

    Args:
        pred_frames, target_frames: T frames [H, W, 3] in [0, 1] (a [T, H, W, 3] tensor or a list).
        mouth_boxes: T mouth boxes (from :func:`thgs.metrics.regions.region_boxes`), used for both.
        lpips_net: LPIPS network for the crops, or None to skip LPIPS.
    Returns:
        {"mouth_psnr", "mouth_ssim", ["mouth_lpips", "mouth_lpips_x100",] "opening_mae", "opening_corr",
        "frames"}: means over frames.
    """
    T = len(pred_frames)
    if len(target_frames) != T or len(mouth_boxes) != T:
        raise ValueError(f"{T} rendered frames, {len(target_frames)} ground-truth frames and "
                         f"{len(mouth_boxes)} mouth boxes: they must match")
    if T == 0:
        raise ValueError("no frames given")
    recs = [region_metrics(p, t, {"mouth": b}, lpips_net=lpips_net)["mouth"]
            for p, t, b in zip(pred_frames, target_frames, mouth_boxes, strict=True)]
    out = {f"mouth_{k}": sum(r[k] for r in recs) / T for k in recs[0]}
    if "mouth_lpips" in out:
        out["mouth_lpips_x100"] = 100.0 * out["mouth_lpips"]
    err = opening_error(mouth_opening_signal(pred_frames, mouth_boxes, rel_threshold),
                        mouth_opening_signal(target_frames, mouth_boxes, rel_threshold))
    out["opening_mae"] = err["mae"]
    out["opening_corr"] = err["corr"]
    out["frames"] = float(T)
    return out
