"""JPEG encoding of the viewer's frames: on the GPU when it can, else on the CPU as before.

On a CUDA device with a CUDA build of torchvision, :func:`torchvision.io.encode_jpeg` encodes a uint8 image
that is still on the GPU (nvJPEG): only the compressed bytes cross to the host, instead of the raw frame
(6 MB at 1080p) followed by a CPU encode (about half of a 1080p frame's time). Anywhere else (a CPU device,
torchvision absent or CPU-only, or the GPU encoder failing once), the frame goes to the host and viser's own
encoder (OpenCV, else imageio) is used, which is what the viewer always did.

:class:`FrameSender` sends the encoded frame to a viser scene; with ``overlap`` the CPU encode and send of
one frame run on a worker thread while the caller renders the next one.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

_GPU_JPEG: dict[str, bool] = {}


def gpu_jpeg_available(device: torch.device | str) -> bool:
    """Whether :func:`torchvision.io.encode_jpeg` encodes tensors on ``device`` (a CUDA device with a CUDA
    build of torchvision; tried once on a small image per device)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return False
    key = str(dev)
    if key not in _GPU_JPEG:
        try:
            from torchvision.io import encode_jpeg

            data = encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8, device=dev), quality=80)
            _GPU_JPEG[key] = bool(_as_bytes(data)[:2] == b"\xff\xd8")
        except Exception:  # noqa: BLE001 - missing, CPU-only or broken torchvision: the CPU encoder is used
            _GPU_JPEG[key] = False
    return _GPU_JPEG[key]


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, list):
        data = data[0]
    return data.cpu().numpy().tobytes() if isinstance(data, Tensor) else bytes(data)


def encode_jpeg_gpu(image: Tensor, quality: int) -> bytes:
    """JPEG bytes of a uint8 [H, W, 3] image on a CUDA device (nvJPEG through torchvision)."""
    from torchvision.io import encode_jpeg

    return _as_bytes(encode_jpeg(image.permute(2, 0, 1).contiguous(), quality=int(quality)))


def send_jpeg(scene: Any, data: bytes) -> bool:
    """Queue already encoded JPEG ``data`` as ``scene``'s background image (viser's background message, the one
    ``set_background_image`` sends). False when this viser has no such message (the caller encodes on the CPU)."""
    try:
        from viser import _messages

        message = _messages.BackgroundImageMessage(format="jpeg", rgb_data=data, depth_data=None)
        scene._websock_interface.queue_message(message)
    except (ImportError, AttributeError, TypeError):
        return False
    return True


class FrameSender:
    """Encodes and sends rendered frames (uint8 [H, W, 3] tensors) to a viser scene.

    ``gpu``: encode on the GPU (None: when :func:`gpu_jpeg_available` for the frame's device). ``overlap``: the
    CPU path encodes and sends on a worker thread, so the next frame renders meanwhile (:meth:`flush` waits)."""

    def __init__(self, quality: int = 85, gpu: bool | None = None, overlap: bool = False) -> None:
        self.quality = int(quality)
        self.gpu = gpu
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thgs-jpeg") if overlap else None
        self._pending: Future | None = None
        self.last_size: tuple[int, int] | None = None

    def uses_gpu(self, image: Tensor) -> bool:
        return gpu_jpeg_available(image.device) if self.gpu is None else bool(self.gpu)

    def send(self, scene: Any, image: Tensor) -> None:
        """Encode ``image`` and queue it on ``scene`` (after the previous frame's send, when overlapping)."""
        self.last_size = (int(image.shape[1]), int(image.shape[0]))
        if self.uses_gpu(image):
            try:
                data = encode_jpeg_gpu(image, self.quality)
            except RuntimeError:
                self.gpu = False  # the GPU encoder failed here: CPU from now on
            else:
                self.flush()
                if send_jpeg(scene, data):
                    return
        host = image.cpu().numpy()
        if self._pool is None:
            self._send_cpu(scene, host)
            return
        self.flush()
        self._pending = self._pool.submit(self._send_cpu, scene, host)

    def _send_cpu(self, scene: Any, image: np.ndarray) -> None:
        scene.set_background_image(image, format="jpeg", jpeg_quality=self.quality)

    def flush(self) -> None:
        """Wait for the frame being encoded on the worker thread (re-raising its error)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


__all__ = ["FrameSender", "encode_jpeg_gpu", "gpu_jpeg_available", "send_jpeg"]
