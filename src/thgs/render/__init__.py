"""Gaussian renderers behind one interface: :func:`thgs.render.render`.

Backends: ``gsplat`` (CUDA, 3DGS and 2DGS) and ``reference`` (pure PyTorch, any device).
"""

from thgs.render.base import Camera, GaussianSet, RenderResult, available_backends, render

__all__ = ["Camera", "GaussianSet", "RenderResult", "available_backends", "render"]
