"""Backend registry and the gsplat backend's behaviour where gsplat cannot run."""

import pytest
import torch

from thgs.render import available_backends, render
from thgs.render import gsplat_backend
from thgs.render._scenes import front_camera, random_cloud
from thgs.render.base import get_backend


def test_cpu_gets_the_reference_backend():
    assert available_backends("cpu") == ["reference"]
    assert get_backend("auto", "cpu").name == "reference"
    g = random_cloud(50, seed=0)
    r = render(g, front_camera(24, 16))
    assert r.rgb.shape == (16, 24, 3) and r.alpha.shape == (16, 24, 1) and r.depth.shape == (16, 24, 1)
    assert r.normals is None and r.surf_normals is None
    assert r.radii.shape == (50,) and r.radii.dtype == torch.int32 and r.means2d.shape == (50, 2)
    r2 = render(g, front_camera(24, 16), mode="2dgs")
    assert r2.normals.shape == (16, 24, 3) and r2.surf_normals.shape == (16, 24, 3)


@pytest.mark.skipif(gsplat_backend.is_available(), reason="gsplat can run here")
def test_gsplat_backend_refuses_clearly_without_cuda_or_gsplat():
    g = random_cloud(10, seed=0)
    with pytest.raises(RuntimeError, match="gsplat"):
        gsplat_backend.GsplatBackend()(g, front_camera(8, 8), torch.zeros(3), "3dgs")


def test_gsplat_backend_rejects_cpu_tensors_when_available():
    if not gsplat_backend.is_available():
        pytest.skip("needs a CUDA GPU and gsplat")
    g = random_cloud(10, seed=0)
    with pytest.raises(ValueError, match="CUDA"):
        gsplat_backend.GsplatBackend()(g, front_camera(8, 8), torch.zeros(3), "3dgs")
