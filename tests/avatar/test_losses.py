import torch

from thgs.avatar.losses import normal_consistency_loss, reconstruction_loss, vertex_loss
from thgs.metrics.image import ssim


def test_reconstruction_loss_is_eq_20():
    a = torch.rand(16, 16, 3)
    assert reconstruction_loss(a, a) == 0
    b = (a + 0.1).clamp(0, 1)
    l1 = (a - b).abs().mean()
    pure_l1 = reconstruction_loss(a, b, lambda_dssim=0.0)
    assert torch.isclose(pure_l1, l1)
    full = reconstruction_loss(a, b, 0.2)
    assert torch.isclose(full, 0.8 * l1 + 0.2 * (1 - ssim(a, b)))
    # at equal L1, noise (structure lost) costs more than a uniform shift (structure kept): the D-SSIM part
    g = torch.Generator().manual_seed(0)
    a = 0.2 + 0.6 * torch.rand(16, 16, 3, generator=g)
    shift = a + 0.1
    noise = a + 0.1 * (torch.randint(0, 2, a.shape, generator=g) * 2 - 1)
    assert torch.isclose(reconstruction_loss(a, shift, 0.0), reconstruction_loss(a, noise, 0.0))
    assert reconstruction_loss(a, noise, 0.2) > reconstruction_loss(a, shift, 0.2) + 0.01


def test_normal_consistency_and_vertex_losses():
    n = torch.nn.functional.normalize(torch.randn(8, 8, 3), dim=-1)
    alpha = torch.rand(8, 8, 1)
    assert torch.isclose(normal_consistency_loss(n, n, alpha), torch.tensor(0.0), atol=1e-6)
    assert torch.isclose(normal_consistency_loss(n, -n, alpha), 2 * alpha.mean())
    m = torch.zeros(4, 3)
    p = torch.tensor([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 0], [0, 0, 0]])
    assert torch.isclose(vertex_loss(m, p), torch.tensor(5.0 / 4))
