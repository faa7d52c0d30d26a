import torch

from thgs.avatar.saam import SAAM, AudioEncoder, HashGrid2D, TriPlaneHash


def test_hash_grid_is_bilinear_inside_a_dense_cell():
    grid = HashGrid2D(levels=1, features=1, base_resolution=4, max_resolution=4, log2_table=8, init_scale=1.0)
    # corners of cell (1, 1) at resolution 4 are x, y in {0.25, 0.5}; the middle is their mean
    corners = torch.tensor([[0.25, 0.25], [0.5, 0.25], [0.25, 0.5], [0.5, 0.5]])
    mid = torch.tensor([[0.375, 0.375]])
    assert torch.allclose(grid(mid), grid(corners).mean(0, keepdim=True), atol=1e-6)


def test_tri_plane_shapes_and_gradients():
    enc = TriPlaneHash(levels=4, features=2, base_resolution=8, max_resolution=64, log2_table=10)
    x = torch.rand(50, 3)
    f = enc(x)
    assert f.shape == (50, 3 * 4 * 2)
    f.sum().backward()
    for g in (enc.xy, enc.yz, enc.xz):
        assert g.table.grad.abs().sum() > 0


def test_audio_encoder_smooths_over_eight_frames():
    enc = AudioEncoder(in_channels=6, dim=16)
    w = torch.randn(8, 16, 6)
    a = enc(w)
    assert a.shape == (16,)
    codes = enc.encode(w)
    # the result is a convex combination of the eight per-frame codes
    sol = torch.linalg.lstsq(codes.T.detach(), a.detach()[:, None]).solution[:, 0]
    assert torch.allclose(sol.sum(), torch.tensor(1.0), atol=1e-3) and (sol > -1e-3).all()


def test_saam_starts_as_identity_and_learns():
    box = torch.tensor([[-1.0, -1, -1], [1.0, 1, 1]])
    saam = SAAM(audio_channels=6, box=box, audio_dim=8, hidden=16, levels=4, base_resolution=8,
                max_resolution=64, log2_table=10)
    pts = torch.rand(30, 3) - 0.5
    audio = torch.randn(8, 16, 6)
    d_mu, d_q, d_s = saam(pts, audio)
    assert d_mu.shape == (30, 3) and d_q.shape == (30, 4) and d_s.shape == (30, 3)
    assert d_mu.abs().max() == 0 and d_q.abs().max() == 0 and d_s.abs().max() == 0
    opt = torch.optim.Adam(saam.parameters(), lr=1e-2)
    target = torch.full((30, 3), 0.05)
    for _ in range(60):
        d_mu, _, _ = saam(pts, audio)
        loss = (d_mu - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 1e-4
    # audio matters: a different window gives a different deformation
    other, _, _ = saam(pts, torch.randn(8, 16, 6) * 3)
    assert not torch.allclose(other, d_mu)


def test_hash_grid_backward_is_deterministic_on_two_threads():
    """Many points share table entries; their gradients must add up in the same order on every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        grid = HashGrid2D(levels=12, features=2, log2_table=14)
        x = torch.rand(20000, 2)
        w = torch.randn(20000, grid.out_dim)
        grads = []
        for _ in range(6):
            grid.zero_grad(set_to_none=True)
            (grid(x) * w).sum().backward()
            grads.append(grid.table.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert grads[0].abs().sum() > 0
    for g in grads[1:]:
        assert torch.equal(g, grads[0])
