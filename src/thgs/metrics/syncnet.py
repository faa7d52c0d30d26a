"""SyncNet (Chung & Zisserman 2016) in the layout of the public ``syncnet_v2.model`` weights, and the
audio-visual offset / min distance / confidence that THGS Table 4 reports (AO, MD, Conf).

No weights ship with thgs; pass the path of a ``syncnet_v2.model``-style state dict to :func:`load_syncnet`.

Inputs, as the reference evaluation prepares them:

* video: face crops resized to 224 x 224, **BGR** channel order, values 0..255 (not normalised), 25 fps;
  the lip branch sees 5 consecutive frames at once: [N, 3, 5, 224, 224]. :func:`face_crop_box` builds the
  crop from a face box, :func:`prepare_video` crops, resizes and reorders frames.
* audio: 16 kHz mono at int16 scale, 13 MFCCs every 10 ms (:func:`mfcc`, 25 ms rectangular windows,
  26 mel filters, 512-point FFT, pre-emphasis 0.97, lifter 22, c0 replaced by the log frame energy);
  4 MFCC steps per video frame, the audio branch sees 20 steps: [N, 1, 13, 20].

Network (layer shapes of the published model; keys ``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``,
``netfclip.*``):

* audio CNN on [1, 13, 20]: conv3x3 64 - maxpool1x1 - conv3x3 192 - maxpool3x3/(1,2) - conv3x3 384 -
  conv3x3 256 - conv3x3 256 - maxpool3x3/2 - conv(5,4) 512, each conv followed by BatchNorm and ReLU;
  then FC 512 - BN - ReLU - FC 1024.
* lip CNN on [3, 5, 224, 224]: conv(5,7,7)/(1,2,2) 96 - maxpool(1,3,3)/(1,2,2) - conv(1,5,5)/(1,2,2) pad
  (0,1,1) 256 - maxpool(1,3,3)/(1,2,2) pad (0,1,1) - 3 x conv(1,3,3) 256 - maxpool(1,3,3)/(1,2,2) -
  conv(1,6,6) 512, each conv followed by BatchNorm and ReLU; then FC 512 - BN - ReLU - FC 1024.

Scores (:func:`sync_offset`): with one video and one audio embedding per 5-frame window, the audio
embeddings are zero-padded by ``vshift`` (15) windows at both ends; for every video window i the Euclidean
distances to audio windows i - vshift .. i + vshift are taken; their mean over i gives one distance per
shift; **AV offset** = vshift - argmin (positive: the video lags the audio), **min dist** = the minimum,
**confidence** = median - minimum. ``distance="cosine"`` uses 1 - cosine similarity instead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thgs.metrics.regions import Box

__all__ = [
    "SyncNet", "SyncNetScore", "load_syncnet", "sync_offset", "mfcc", "face_crop_box", "prepare_video",
    "evaluate_sync", "resample_frame_indices", "AUDIO_RATE", "VIDEO_FPS", "WINDOW_FRAMES",
]

AUDIO_RATE = 16000
VIDEO_FPS = 25
WINDOW_FRAMES = 5
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video
CROP_SIZE = 224


def _conv_block(conv: nn.Module, bn: nn.Module) -> list[nn.Module]:
    return [conv, bn, nn.ReLU()]


def _audio_cnn() -> nn.Sequential:
    return nn.Sequential(
        *_conv_block(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64)),
        nn.MaxPool2d(1, 1),
        *_conv_block(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192)),
        nn.MaxPool2d(3, (1, 2)),
        *_conv_block(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
        *_conv_block(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
        *_conv_block(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256)),
        nn.MaxPool2d(3, 2),
        *_conv_block(nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512)),
    )


def _lip_cnn() -> nn.Sequential:
    return nn.Sequential(
        *_conv_block(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
        *_conv_block(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
        *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
        *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
        *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
        *_conv_block(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512)),
    )


def _head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """Two-stream audio/lip embedding network. Evaluation mode by default; weights frozen."""

    def __init__(self, embedding_dim: int = 1024) -> None:
        super().__init__()
        self.netcnnaud = _audio_cnn()
        self.netfcaud = _head(embedding_dim)
        self.netcnnlip = _lip_cnn()
        self.netfclip = _head(embedding_dim)
        self.requires_grad_(False)
        self.eval()

    def forward_audio(self, mfcc_windows: Tensor) -> Tensor:
        """[N, 1, 13, 20] MFCC windows -> [N, D] embeddings."""
        if mfcc_windows.dim() != 4 or tuple(mfcc_windows.shape[1:]) != (1, 13, 20):
            raise ValueError(f"audio input must be [N, 1, 13, 20], got {tuple(mfcc_windows.shape)}")
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def forward_video(self, clips: Tensor) -> Tensor:
        """[N, 3, 5, 224, 224] BGR 0..255 clips -> [N, D] embeddings."""
        if clips.dim() != 5 or tuple(clips.shape[1:]) != (3, WINDOW_FRAMES, CROP_SIZE, CROP_SIZE):
            raise ValueError(f"video input must be [N, 3, 5, 224, 224], got {tuple(clips.shape)}")
        return self.netfclip(self.netcnnlip(clips).flatten(1))


_PREFIXES = ("module.", "__S__.", "S.", "model.")


def load_syncnet(path: str | os.PathLike, device: torch.device | str = "cpu") -> SyncNet:
    """Load a ``syncnet_v2.model``-style state dict (keys ``netcnnaud.0.weight`` ...; common prefixes
    such as ``module.`` or ``__S__.`` are stripped; BatchNorm ``num_batches_tracked`` may be absent).

    Raises ValueError naming the file and the offending key on any mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SyncNet weights {path} do not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: cannot read as a torch state dict ({e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    state: dict[str, Tensor] = {}
    for k, v in obj.items():
        name = str(k)
        for p in _PREFIXES:
            if name.startswith(p):
                name = name[len(p):]
        state[name] = v
    emb = state.get("netfcaud.3.weight")
    if emb is None:
        raise ValueError(f"{path}: missing key netfcaud.3.weight (not a SyncNet state dict?)")
    model = SyncNet(embedding_dim=int(emb.shape[0]))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{path}: unexpected keys {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    for k, t in own.items():
        if k not in state:
            if k.endswith("num_batches_tracked"):
                continue
            raise ValueError(f"{path}: missing key {k}")
        if tuple(state[k].shape) != tuple(t.shape):
            raise ValueError(f"{path}: key {k} has shape {tuple(state[k].shape)}, expected {tuple(t.shape)}")
        with torch.no_grad():
            t.copy_(state[k].to(t.dtype))
    return model.to(device)


# ---------------------------------------------------------------------------------------------------
# Audio features
# ---------------------------------------------------------------------------------------------------

def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _mel_filterbank(n_filters: int, nfft: int, sample_rate: int) -> np.ndarray:
    """[n_filters, nfft // 2 + 1] triangular filters on FFT bins, edges evenly spaced in mel."""
    mel = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_filters + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel) / sample_rate).astype(np.int64)
    fb = np.zeros((n_filters, nfft // 2 + 1))
    for j in range(n_filters):
        a, b, c = bins[j], bins[j + 1], bins[j + 2]
        for i in range(a, b):
            fb[j, i] = (i - a) / (b - a)
        for i in range(b, c):
            fb[j, i] = (c - i) / (c - b)
    return fb


def mfcc(audio: np.ndarray | Tensor, sample_rate: int = AUDIO_RATE, num_ceps: int = 13, n_filters: int = 26,
         nfft: int = 512, win_s: float = 0.025, hop_s: float = 0.01, preemph: float = 0.97,
         lifter: int = 22) -> np.ndarray:
    """Mel-frequency cepstral coefficients as SyncNet's audio branch expects them.

    Args:
        audio: [N] mono samples at int16 scale (a float waveform in [-1, 1] must be multiplied by 32768).
    Returns:
        [num_ceps, M] float64 with M = 1 + ceil((N - win) / hop) frames (the last one zero-padded);
        row 0 is the log frame energy.
    """
    from scipy.fft import dct

    x = np.asarray(audio.cpu().numpy() if isinstance(audio, Tensor) else audio, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("empty audio")
    x = np.concatenate([x[:1], x[1:] - preemph * x[:-1]])
    win = int(math.floor(win_s * sample_rate + 0.5))
    hop = int(math.floor(hop_s * sample_rate + 0.5))
    n = 1 if x.size <= win else 1 + int(math.ceil((x.size - win) / hop))
    x = np.concatenate([x, np.zeros((n - 1) * hop + win - x.size)])
    idx = np.arange(win)[None] + hop * np.arange(n)[:, None]
    frames = x[idx]
    if win > nfft:
        frames = frames[:, :nfft]
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    eps = np.finfo(np.float64).eps
    energy = power.sum(1)
    energy = np.where(energy == 0, eps, energy)
    mel = power @ _mel_filterbank(n_filters, nfft, sample_rate).T
    mel = np.where(mel == 0, eps, mel)
    ceps = dct(np.log(mel), type=2, axis=1, norm="ortho")[:, :num_ceps]
    if lifter > 0:
        ceps = ceps * (1.0 + (lifter / 2.0) * np.sin(np.pi * np.arange(num_ceps) / lifter))
    ceps[:, 0] = np.log(energy)
    return ceps.T


def _to_16k_int16_scale(audio: np.ndarray | Tensor, sample_rate: int) -> np.ndarray:
    """Mono float waveform in [-1, 1] (any rate) -> int16-scale samples at 16 kHz (float64)."""
    from thgs.io.audio_io import resample

    a = np.asarray(audio.cpu().numpy() if isinstance(audio, Tensor) else audio, dtype=np.float64)
    if a.ndim == 2:
        a = a.mean(1) if a.shape[1] <= 8 and a.shape[0] > a.shape[1] else a.mean(0)
    if a.ndim != 1:
        raise ValueError(f"audio must be [N] or [N, C], got shape {a.shape}")
    if sample_rate != AUDIO_RATE:
        a = resample(a, int(sample_rate), AUDIO_RATE).astype(np.float64)
    return np.round(np.clip(a, -1.0, 1.0) * 32768.0).clip(-32768, 32767)


# ---------------------------------------------------------------------------------------------------
# Video crops
# ---------------------------------------------------------------------------------------------------

def face_crop_box(face: Box, crop_scale: float = 0.4) -> tuple[float, float, float, float]:
    """The square-ish crop around a face box that SyncNet was trained on: with s = half the face box's
    larger side and (cx, cy) its centre, x spans cx +- s (1 + crop_scale) and y spans
    cy - s .. cy + s (1 + 2 crop_scale) (more room below, for the mouth and chin).

    Returns float (x0, y0, x1, y1); parts outside the image are filled with grey by :func:`prepare_video`.
    """
    s = max(face.width, face.height) / 2.0
    cx = (face.x0 + face.x1) / 2.0
    cy = (face.y0 + face.y1) / 2.0
    return (cx - s * (1 + crop_scale), cy - s, cx + s * (1 + crop_scale), cy + s * (1 + 2 * crop_scale))


def prepare_video(frames: Sequence[Tensor] | Tensor, crops: Sequence[tuple[float, float, float, float]],
                  ) -> Tensor:
    """Crop, resize to 224 x 224 and convert to SyncNet's input: [T, H, W, 3] RGB in [0, 1] with one
    crop rectangle (x0, y0, x1, y1) per frame -> [3, T, 224, 224] BGR 0..255. Bilinear sampling at the
    centres of the 224 x 224 cells; parts of the crop outside the image are grey 110, as the reference
    pads its frames."""
    if len(frames) != len(crops):
        raise ValueError(f"{len(crops)} crops for {len(frames)} frames")
    out = []
    for f, (x0, y0, x1, y1) in zip(frames, crops, strict=True):
        if f.dim() != 3 or f.shape[-1] != 3:
            raise ValueError(f"frames must be [H, W, 3], got {tuple(f.shape)}")
        H, W = f.shape[:2]
        img = f.permute(2, 0, 1)[None].to(torch.float32) * 255.0
        # sample the crop with a bilinear grid; out-of-image samples read the grey border value
        xs = torch.linspace(x0, x1, CROP_SIZE + 1, dtype=torch.float32)
        ys = torch.linspace(y0, y1, CROP_SIZE + 1, dtype=torch.float32)
        xs = (xs[:-1] + xs[1:]) / 2
        ys = (ys[:-1] + ys[1:]) / 2
        gx = xs / W * 2 - 1
        gy = ys / H * 2 - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None].to(img.device)
        sample = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        outside = (grid[0].abs() > 1).any(-1)  # [224, 224] samples beyond the image
        sample = torch.where(outside[None], torch.full_like(sample, 110.0), sample)
        out.append(sample.flip(0))  # RGB -> BGR
    return torch.stack(out, 1)


def resample_frame_indices(num_frames: int, fps: float, target_fps: float = VIDEO_FPS) -> np.ndarray:
    """Indices of the source frames shown at ``target_fps`` (nearest earlier frame), e.g. 30 -> 25 fps."""
    duration = num_frames / fps
    n = int(math.floor(duration * target_fps + 1e-9))
    return np.minimum(np.floor(np.arange(n) * fps / target_fps + 1e-9).astype(np.int64), num_frames - 1)


# ---------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------

@dataclass
class SyncNetScore:
    """``offset`` (AV offset, frames; positive: video lags audio), ``min_dist`` (MD), ``confidence``
    (Conf), ``mean_dists`` [2 * vshift + 1] the mean distance per shift (index j: audio window i + j - vshift)."""

    offset: int
    min_dist: float
    confidence: float
    mean_dists: Tensor

    def as_dict(self) -> dict[str, float]:
        return {"av_offset": self.offset, "min_dist": self.min_dist, "confidence": self.confidence}


def sync_offset(video_emb: Tensor, audio_emb: Tensor, vshift: int = 15,
                distance: Literal["euclidean", "cosine"] = "euclidean") -> SyncNetScore:
    """AV offset / min distance / confidence from per-window embeddings.

    Args:
        video_emb, audio_emb: [N, D] embeddings of the same N windows.
        vshift: shifts searched, -vshift..vshift windows.
        distance: "euclidean" (the reference) or "cosine" (1 - cosine similarity).
    """
    if video_emb.dim() != 2 or video_emb.shape != audio_emb.shape:
        raise ValueError(f"embeddings must both be [N, D], got {tuple(video_emb.shape)} and {tuple(audio_emb.shape)}")
    N = video_emb.shape[0]
    if N < 1:
        raise ValueError("no windows to score")
    K = 2 * vshift + 1
    v = video_emb.to(torch.float32)
    a = F.pad(audio_emb.to(torch.float32), (0, 0, vshift, vshift))
    idx = torch.arange(N)[:, None] + torch.arange(K)[None]  # [N, K] rows of the padded audio
    cand = a[idx]  # [N, K, D]
    vv = v[:, None].expand_as(cand)
    if distance == "euclidean":
        d = F.pairwise_distance(vv.reshape(-1, v.shape[1]), cand.reshape(-1, v.shape[1])).view(N, K)
    elif distance == "cosine":
        d = 1.0 - F.cosine_similarity(vv, cand, dim=-1)
    else:
        raise ValueError(f"distance must be 'euclidean' or 'cosine', got {distance!r}")
    mean = d.mean(0)
    minval, minidx = mean.min(0)
    return SyncNetScore(offset=vshift - int(minidx), min_dist=float(minval),
                        confidence=float(mean.median() - minval), mean_dists=mean)


@torch.no_grad()
def evaluate_sync(model: SyncNet, video: Tensor, audio: np.ndarray | Tensor, sample_rate: int,
                  vshift: int = 15, batch_size: int = 20) -> SyncNetScore:
    """Score a clip with SyncNet.

    Args:
        model: a loaded :class:`SyncNet`.
        video: [3, T, 224, 224] BGR 0..255 at 25 fps (from :func:`prepare_video`).
        audio: the clip's waveform, float in [-1, 1] ([N] or [N, C]), at ``sample_rate`` Hz.
    """
    if video.dim() != 4 or video.shape[0] != 3 or tuple(video.shape[2:]) != (CROP_SIZE, CROP_SIZE):
        raise ValueError(f"video must be [3, T, 224, 224], got {tuple(video.shape)}")
    pcm = _to_16k_int16_scale(audio, sample_rate)
    cc = torch.from_numpy(mfcc(pcm)).to(torch.float32)  # [13, M], 100 Hz
    T = video.shape[1]
    length = min(T, pcm.shape[0] // (AUDIO_RATE // VIDEO_FPS))  # whole 40 ms steps of audio
    n = length - WINDOW_FRAMES
    if n < 1:
        raise ValueError(f"clip too short for SyncNet: {T} frames and {cc.shape[1]} MFCC steps "
                         f"(need more than {WINDOW_FRAMES} frames of both)")
    dev = next(model.parameters()).device
    vid, aud = [], []
    for s in range(0, n, batch_size):
        ids = range(s, min(n, s + batch_size))
        clips = torch.stack([video[:, i:i + WINDOW_FRAMES] for i in ids]).to(dev)
        mf = torch.stack([cc[None, :, i * MFCC_PER_FRAME:i * MFCC_PER_FRAME + 4 * WINDOW_FRAMES] for i in ids]).to(dev)
        vid.append(model.forward_video(clips).cpu())
        aud.append(model.forward_audio(mf).cpu())
    return sync_offset(torch.cat(vid), torch.cat(aud), vshift=vshift)
