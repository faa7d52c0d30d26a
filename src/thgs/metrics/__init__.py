"""Evaluation metrics: image quality (PSNR, SSIM, LPIPS), region crops, and lip-sync scores.

``thgs.metrics.image`` is light (torch only) and safe to import from training code; the LPIPS and
SyncNet networks live in their own modules and load weights only when asked.
"""

from thgs.metrics.image import mse, psnr, ssim, ssim_map

__all__ = ["mse", "psnr", "ssim", "ssim_map"]
