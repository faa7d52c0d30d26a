"""Gaussian renderers behind one interface: :func:`thgs.render.render` (one frame) and
:func:`thgs.render.render_batch` (B frames of the same Gaussians, one rasterizer call where the backend can).

Backends: ``gsplat`` (CUDA, 3DGS and 2DGS) and ``reference`` (pure PyTorch, any device).
"""

from thgs.render.base import (BatchRenderResult, Camera, GaussianBatch, GaussianSet, RenderResult, available_backends,
                              render, render_batch)

__all__ = ["BatchRenderResult", "Camera", "GaussianBatch", "GaussianSet", "RenderResult", "available_backends",
           "render", "render_batch"]
