import torch

from thgs.avatar.leb import LearnableExpressionBlendshapes


def test_leb_starts_at_the_fixed_basis_and_learns_only_on_the_head(tiny_body):
    leb = LearnableExpressionBlendshapes(tiny_body.exprdirs, tiny_body.head_mask)
    psi = torch.tensor([[0.7, -0.3]])
    base = torch.einsum("bk,vck->bvc", psi, tiny_body.exprdirs)
    assert torch.allclose(leb.offsets(psi), base)
    assert leb.l2() == 0
    leb.offsets(psi).square().sum().backward()
    g = leb.delta.grad
    assert g[~tiny_body.head_mask].abs().max() == 0  # Eq. 8: masked to the head
    with torch.no_grad():
        leb.delta.fill_(0.1)
    off = leb.offsets(psi)
    assert torch.allclose(off[0, ~tiny_body.head_mask], base[0, ~tiny_body.head_mask])
    assert not torch.allclose(off[0, tiny_body.head_mask], base[0, tiny_body.head_mask])
    assert torch.allclose(leb.offsets(psi, learnable=False), base)
    assert torch.isclose(leb.l2(), torch.tensor(0.01 * int(tiny_body.head_mask.sum()) * 3 * 2))
