"""Spatial Audio Attention Module (section 4.4, Eq. 10-15), in pure PyTorch.

- :class:`HashGrid2D`: a multi-resolution 2D hash grid (vectorised bilinear look-ups over every level
  at once); :class:`TriPlaneHash` concatenates three of them over the xy, yz and xz planes (Eq. 10).
  The table look-up is a gather whose backward is deterministic on the CPU (see ``HashGrid2D.forward``).
- :class:`AudioEncoder`: strided Conv1d stack over a frame's [16, C] feature window, then temporal
  smoothing over 8 neighbouring frames (attention weights over frames idx-4 .. idx+3).
- :class:`SAAM`: region attention ``Att = ReLU(f W_k) W_v`` (Eq. 11), ``q = Att * A`` (Eq. 12) and a
  four-layer MLP decoder of ``[f, q]`` into (d_position, d_rotation, d_scale) (Eq. 15), last layer
  zero-initialised so that the module starts as the identity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_PRIMES = (1, 2654435761)


class HashGrid2D(nn.Module):
    """Multi-resolution hash encoding of 2D points in [0, 1]^2.

    Args:
        levels: number of resolutions L.
        features: features per level F.
        base_resolution / max_resolution: grid sizes of the coarsest and finest levels (geometric).
        log2_table: table size T = 2^log2_table per level; levels with (res+1)^2 <= T index densely.
    Output: [N, L * F].
    """

    def __init__(self, levels: int = 12, features: int = 2, base_resolution: int = 16, max_resolution: int = 512,
                 log2_table: int = 14, init_scale: float = 1e-4) -> None:
        super().__init__()
        self.levels, self.features, self.table_size = levels, features, 2 ** log2_table
        growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(1, levels - 1))
        res = [int(math.floor(base_resolution * growth ** i)) for i in range(levels)]
        self.register_buffer("resolution", torch.tensor(res, dtype=torch.float32), persistent=False)
        self.register_buffer("dense", torch.tensor([(r + 1) ** 2 <= self.table_size for r in res]), persistent=False)
        self.register_buffer("level_offset", torch.arange(levels) * self.table_size, persistent=False)
        self.register_buffer("corners", torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]]), persistent=False)
        self.table = nn.Parameter(torch.empty(levels * self.table_size, features).uniform_(-init_scale, init_scale))

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 2] in [0, 1] -> [N, L * F]."""
        n = x.shape[0]
        pos = x.clamp(0, 1)[:, None, :] * self.resolution[None, :, None]  # [N, L, 2]
        cell = pos.floor().clamp_max(self.resolution[None, :, None] - 1)
        frac = pos - cell
        cell = cell.long()
        c = cell[:, :, None, :] + self.corners[None, None]  # [N, L, 4, 2]
        stride = (self.resolution.long() + 1)[None, :, None]
        dense_idx = c[..., 0] + c[..., 1] * stride
        hashed = (c[..., 0] * _PRIMES[0]) ^ (c[..., 1] * _PRIMES[1])
        idx = torch.where(self.dense[None, :, None], dense_idx, hashed) % self.table_size
        idx = idx + self.level_offset[None, :, None]
        fx, fy = frac[..., 0:1], frac[..., 1:2]  # [N, L, 1]
        w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=2)  # [N, L, 4, 1]
        # index_select, not advanced indexing: its backward is index_add_, which adds the rows of one
        # table entry in index order on the CPU (deterministic whatever the thread count), while
        # advanced indexing's backward (index_put_ with accumulate) is not deterministic on 2+ threads.
        feats = self.table.index_select(0, idx.reshape(-1)).reshape(n, self.levels, 4, self.features)
        return (feats * w).sum(2).reshape(n, self.levels * self.features)


class TriPlaneHash(nn.Module):
    """Eq. 10: ``H(x) = H_xy(x, y) (+) H_yz(y, z) (+) H_xz(x, z)`` for x [N, 3] in [0, 1]^3 -> [N, 3 L F]."""

    def __init__(self, **grid_kwargs) -> None:
        super().__init__()
        self.xy = HashGrid2D(**grid_kwargs)
        self.yz = HashGrid2D(**grid_kwargs)
        self.xz = HashGrid2D(**grid_kwargs)

    @property
    def out_dim(self) -> int:
        return 3 * self.xy.out_dim

    def forward(self, x: Tensor) -> Tensor:
        # slices, not index lists: a list index is a host-built tensor copied to the device every call
        return torch.cat([self.xy(x[:, 0:2]), self.yz(x[:, 1:3]), self.xz(x[:, 0::2])], dim=-1)


class AudioEncoder(nn.Module):
    """Per-frame audio code with temporal smoothing.

    Input: ``windows`` [W, 16, C] -- the [16, C] feature windows of W = 8 neighbouring frames (idx-4 ..
    idx+3). Output: [D] (``dim``).
    """

    def __init__(self, in_channels: int, dim: int = 32, smooth: bool = True) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.02)
        self.in_channels = in_channels
        self.conv = nn.Sequential(  # 16 -> 8 -> 4 -> 2 -> 1
            nn.Conv1d(in_channels, 32, 3, 2, 1), act,
            nn.Conv1d(32, 32, 3, 2, 1), act,
            nn.Conv1d(32, 64, 3, 2, 1), act,
            nn.Conv1d(64, 64, 3, 2, 1), act,
        )
        self.fc = nn.Sequential(nn.Linear(64, 64), act, nn.Linear(64, dim))
        self.smooth = smooth
        self.att_conv = nn.Sequential(
            nn.Conv1d(dim, 16, 3, 1, 1), act, nn.Conv1d(16, 8, 3, 1, 1), act,
            nn.Conv1d(8, 4, 3, 1, 1), act, nn.Conv1d(4, 2, 3, 1, 1), act, nn.Conv1d(2, 1, 3, 1, 1), act,
        )
        self.att_fc = nn.Linear(8, 8)
        self.dim = dim

    def encode(self, windows: Tensor) -> Tensor:
        """[W, 16, C] -> per-frame codes [W, D]."""
        if windows.dim() != 3 or windows.shape[-1] != self.in_channels:
            raise ValueError(f"audio windows must be [W, 16, {self.in_channels}], got {tuple(windows.shape)}")
        h = self.conv(windows.transpose(1, 2))  # [W, 64, L']
        return self.fc(h.mean(-1))

    def forward(self, windows: Tensor) -> Tensor:
        codes = self.encode(windows)  # [W, D]
        if not self.smooth or codes.shape[0] == 1:
            return codes[codes.shape[0] // 2]
        if codes.shape[0] != self.att_fc.in_features:
            raise ValueError(f"audio smoothing expects {self.att_fc.in_features} frames, got {codes.shape[0]}")
        logits = self.att_fc(self.att_conv(codes.T[None])[0, 0])  # [W]
        weights = torch.softmax(logits, dim=0)
        return (weights[:, None] * codes).sum(0)


class SAAM(nn.Module):
    """Predicts (d_mu [M, 3], d_quat [M, 4], d_log_scale [M, 3]) for mouth Gaussians.

    Args:
        audio_channels: C of the [16, C] audio windows.
        box: [2, 3] region (min, max) in canonical space that positions are normalised into (the head).
        audio_dim / hidden: widths; grid_kwargs: the tri-plane hash grid's options.
    """

    def __init__(self, audio_channels: int, box: Tensor, audio_dim: int = 32, hidden: int = 64,
                 smooth: bool = True, **grid_kwargs) -> None:
        super().__init__()
        self.register_buffer("box", box.detach().float().clone())
        self.encoding = TriPlaneHash(**grid_kwargs)
        self.audio = AudioEncoder(audio_channels, audio_dim, smooth=smooth)
        f = self.encoding.out_dim
        self.w_k = nn.Linear(f, hidden)  # external memory units (Eq. 11)
        self.w_v = nn.Linear(hidden, audio_dim)
        self.decoder = nn.Sequential(
            nn.Linear(f + audio_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def normalise(self, points: Tensor) -> Tensor:
        lo, hi = self.box[0], self.box[1]
        return ((points - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)

    def deltas(self, points: Tensor, audio_windows: Tensor) -> Tensor:
        """points [M, 3] canonical (head-masked) positions; audio_windows [8, 16, C] -> [M, 10]: the position
        (3), raw-quaternion (4) and log-scale (3) deltas of Eq. 15."""
        f = self.encoding(self.normalise(points))  # Eq. 14
        a = self.audio(audio_windows)  # [D]
        att = self.w_v(torch.relu(self.w_k(f)))  # Eq. 11
        q = att * a[None]  # Eq. 12
        return self.decoder(torch.cat([f, q], dim=-1))  # Eq. 15

    def forward(self, points: Tensor, audio_windows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`deltas` split into (d_mu [M, 3], d_q [M, 4], d_s [M, 3])."""
        out = self.deltas(points, audio_windows)
        return out[:, :3], out[:, 3:7], out[:, 7:10]


__all__ = ["AudioEncoder", "HashGrid2D", "SAAM", "TriPlaneHash"]
