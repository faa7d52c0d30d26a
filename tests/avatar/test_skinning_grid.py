import numpy as np
import pytest
import torch

from thgs.avatar.skinning_grid import SkinningGrid, interpolate_vertex_weights
from thgs.body import toy


@pytest.fixture(scope="module")
def body():
    return toy.load()


@pytest.fixture(scope="module")
def grid64(body):
    return SkinningGrid.from_body(body)  # the paper's 64^3


def _half_l1(a, b):
    return (a - b).abs().sum(-1) / 2


def test_layout_and_bounds(body, grid64):
    g = grid64
    assert g.base.shape == (55, 64, 64, 64) and g.delta.shape == g.base.shape
    assert isinstance(g.delta, torch.nn.Parameter) and (g.delta == 0).all()
    v = body.v_template
    extent = v.max(0).values - v.min(0).values
    assert torch.allclose(g.lo, v.min(0).values - 0.1 * extent, atol=1e-5)
    assert torch.allclose(g.hi, v.max(0).values + 0.1 * extent, atol=1e-5)
    assert (g.base >= 0).all()
    assert torch.allclose(g.base.sum(0), torch.ones(64, 64, 64), atol=1e-4)
    assert set(dict(g.named_buffers())) == {"base", "lo", "hi"}


def test_lookup_at_grid_points_returns_the_stored_values():
    gen = torch.Generator().manual_seed(0)
    verts = torch.rand(200, 3, generator=gen) * torch.tensor([2.0, 1.0, 0.5])
    w = torch.softmax(torch.randn(200, 5, generator=gen) * 3, -1)
    g = SkinningGrid(verts, w, resolution=9, padding=0.05)
    axes = [torch.linspace(float(g.lo[a]), float(g.hi[a]), 9) for a in range(3)]
    for ix, iy, iz in [(0, 0, 0), (8, 8, 8), (3, 5, 7), (6, 1, 2)]:
        p = torch.stack([axes[0][ix], axes[1][iy], axes[2][iz]])[None]
        want = g.base[:, iz, iy, ix]
        assert torch.allclose(g.weights(p)[0], want / want.sum(), atol=1e-5)
    # half-way between two grid points along x: the average (trilinear)
    p = torch.stack([(axes[0][3] + axes[0][4]) / 2, axes[1][5], axes[2][7]])[None]
    want = (g.base[:, 7, 5, 3] + g.base[:, 7, 5, 4]) / 2
    assert torch.allclose(g.weights(p)[0], want / want.sum(), atol=1e-5)


def test_inverse_distance_interpolation():
    verts = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 5.0, 0]])
    w = np.eye(3)
    out = interpolate_vertex_weights(np.array([[0.0, 0, 0], [0.25, 0, 0]]), verts, w, k=2)
    assert np.allclose(out[0], [1, 0, 0], atol=1e-6)
    assert np.allclose(out[1], [0.75, 0.25, 0], atol=1e-6)  # 1/0.25 : 1/0.75 = 3 : 1


def test_reproduces_the_template_weights(body, grid64):
    with torch.no_grad():
        w = grid64.weights(body.v_template)
    target = body.lbs_weights
    # bounds measured on the toy body at 64^3: element mean 0.0037, per-vertex half-L1 mean 0.10, median 0.033
    assert float((w - target).abs().mean()) < 0.005
    err = _half_l1(w, target)
    assert float(err.mean()) < 0.12 and float(err.median()) < 0.05
    s, e = body.meta["parts"]["left_leg"]
    assert float(err[s:e].mean()) < 0.05  # large parts are reproduced closely
    # a finer grid is closer; a coarser one further away
    coarse = SkinningGrid.from_body(body, resolution=24)
    with torch.no_grad():
        assert float(_half_l1(coarse.weights(body.v_template), target).mean()) > float(err.mean())


def test_weights_are_a_partition_of_unity(body, grid64):
    gen = torch.Generator().manual_seed(1)
    lo, hi = grid64.lo, grid64.hi
    pts = lo + (hi - lo) * (torch.rand(2, 500, 3, generator=gen) * 1.4 - 0.2)  # inside and outside the box
    with torch.no_grad():
        w = grid64.weights(pts)
        assert w.shape == (2, 500, 55)
        assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(2, 500), atol=1e-5)
        grid64.delta.normal_(0.0, 0.5, generator=gen)  # negative cells get clamped
        try:
            w = grid64.weights(pts[0])
            assert w.shape == (500, 55)
            assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(500), atol=1e-5)
            grid64.delta.fill_(-10.0)  # everything clamped to zero: still a partition of unity
            w = grid64.weights(pts[0])
            assert torch.allclose(w.sum(-1), torch.ones(500), atol=1e-5) and (w >= 0).all()
        finally:
            grid64.delta.zero_()


def test_gradients_reach_delta_and_tv_loss(body):
    g = SkinningGrid.from_body(body, resolution=16, smooth_iters=1)
    assert float(g.tv_loss().detach()) == 0.0
    pts = body.v_template[::50]
    loss = g.weights(pts)[:, body.joint_index("left_elbow")].sum()
    loss.backward()
    assert g.delta.grad is not None and g.delta.grad.abs().sum() > 0
    assert (g.delta.grad[:, 0, 0, 0] == 0).all()  # a far corner is untouched
    g.delta.grad = None
    with torch.no_grad():
        g.delta.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    tv = g.tv_loss()
    assert float(tv.detach()) > 0
    tv.backward()
    assert g.delta.grad.abs().sum() > 0


def test_state_dict_round_trip_and_errors(body):
    g = SkinningGrid.from_body(body, resolution=8)
    with torch.no_grad():
        g.delta.add_(0.01)
    h = SkinningGrid.from_body(body, resolution=8)
    h.load_state_dict(g.state_dict())
    assert torch.equal(h.delta, g.delta)
    with pytest.raises(ValueError, match="weights must be"):
        SkinningGrid(body.v_template, body.lbs_weights[:10])
    with pytest.raises(ValueError, match="points must be"):
        g.weights(torch.zeros(4, 2))


def test_fused_blend_equals_weights_then_blend(body):
    from thgs.core import lbs

    g = SkinningGrid.from_body(body, resolution=12)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        g.delta.normal_(0.0, 0.3, generator=gen)  # some cells clamped to zero
        pose = 0.4 * torch.randn(2, body.num_joints, 3, generator=gen)
        T = lbs.pose_to_kinematics(pose, body.rest_joints(None).expand(2, -1, -1), body.parents).skinning_transforms
        T[..., :3, 3] += torch.tensor([0.5, 1.0, -0.3])
        lo, hi = g.lo, g.hi
        pts = lo + (hi - lo) * (torch.rand(2, 400, 3, generator=gen) * 1.4 - 0.2)  # inside and outside the box
        want = lbs.blend_transforms(g.weights(pts), T)[..., :3, :]
        got = g.blend(pts, T)
        assert got.shape == (2, 400, 3, 4)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # shared points [N, 3] for a batch of transforms, and [B, J, 3, 4] transforms
        torch.testing.assert_close(g.blend(pts[0], T[:, :, :3]), lbs.blend_transforms(g.weights(pts[0]), T)[..., :3, :],
                                   atol=1e-5, rtol=1e-5)
        g.delta.fill_(-10.0)  # an all-zero grid: Eq. 18's eps makes the weights uniform
        torch.testing.assert_close(g.blend(pts, T), T[:, None, :, :3].mean(2).expand(-1, 400, -1, -1), atol=1e-5,
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="transforms must be"):
        g.blend(pts, T[:, :5])
    # the fused path is differentiable in the grid residual (it can be used in training)
    g.delta.data.zero_()
    g.blend(pts[0], T).sum().backward()
    assert g.delta.grad is not None and g.delta.grad.abs().sum() > 0


# -- the sparse residual (band): exact against a dense residual that is zero outside the active set ----------

def _pair(body, R, band, dtype=torch.float64, seed=0):
    """A sparse grid with random residual values on its active points and the dense grid holding the same."""
    s = SkinningGrid.from_body(body, resolution=R, band=band).to(dtype)
    d = SkinningGrid.from_body(body, resolution=R).to(dtype)
    with torch.no_grad():
        s.delta.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed))  # some cells clamped to zero
        d.delta.copy_(s.dense_delta())
    return s, d


def _points(body, g, dtype, seed=1):
    gen = torch.Generator().manual_seed(seed)
    v = body.v_template.to(dtype)
    near = v + 0.01 * torch.randn(v.shape, generator=gen, dtype=dtype)
    far = g.lo + (g.hi - g.lo) * (torch.rand(300, 3, generator=gen, dtype=dtype) * 1.4 - 0.2)  # also outside the box
    return torch.cat([near, far])[None].repeat(2, 1, 1)


def _transforms(body, dtype, seed=2):
    from thgs.core import lbs

    pose = 0.4 * torch.randn(2, body.num_joints, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    T = lbs.pose_to_kinematics(pose, body.rest_joints(None).to(dtype).expand(2, -1, -1), body.parents)
    return T.skinning_transforms


def test_active_set_is_deterministic_and_grows_with_the_band(body):
    from thgs.avatar.skinning_grid import active_cells

    a = SkinningGrid.from_body(body, resolution=16, band=1)
    b = SkinningGrid.from_body(body, resolution=16, band=1)
    assert torch.equal(a.cells, b.cells) and a.delta.shape == (55, a.num_active)
    assert (a.delta == 0).all() and a.sparse and not SkinningGrid.from_body(body, resolution=16).sparse
    sizes = [SkinningGrid.from_body(body, resolution=16, band=k).num_active for k in (0, 1, 2)]
    assert sizes[0] < sizes[1] < sizes[2] < 16 ** 3
    # every corner of every cell holding a vertex is active at band 0
    g0 = SkinningGrid.from_body(body, resolution=16, band=0)
    u = ((body.v_template.double() - g0.lo.double()) / (g0.hi - g0.lo).double() * 15).floor().long().clamp(0, 14)
    flat = (u[:, 2] * 16 + u[:, 1]) * 16 + u[:, 0]
    for off in (0, 1, 16, 17, 256, 257, 272, 273):
        assert bool(torch.isin(flat + off, g0.cells).all())
    # a hand-checked case: one vertex in cell (1, 1, 1) of a 5^3 grid, band 1: the grid points 0..3 per axis
    cells = active_cells(np.array([[0.3, 0.3, 0.3]]), np.zeros(3), np.ones(3), 5, 1)
    want = sorted((z * 5 + y) * 5 + x for z in range(4) for y in range(4) for x in range(4))
    assert cells.tolist() == want
    with pytest.raises(ValueError, match="band"):
        SkinningGrid.from_body(body, resolution=8, band=-1)


def test_sparse_equals_dense_weights_blend_and_gradients(body):
    for R, band in ((12, 0), (20, 1)):
        s, d = _pair(body, R, band)
        torch.testing.assert_close(s.grid(), d.grid(), rtol=0, atol=0)
        pts = _points(body, s, torch.float64)
        T = _transforms(body, torch.float64)
        torch.testing.assert_close(s.weights(pts), d.weights(pts), rtol=1e-12, atol=1e-12)
        ps, pd = pts.clone().requires_grad_(), pts.clone().requires_grad_()
        got, want = s.blend(ps, T), d.blend(pd, T)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        (got ** 2).sum().backward()
        (want ** 2).sum().backward()
        gd = d.delta.grad.reshape(55, -1)
        torch.testing.assert_close(s.delta.grad, gd[:, s.cells], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ps.grad, pd.grad, rtol=1e-9, atol=1e-9)  # through the look-up's position
        s.delta.grad = d.delta.grad = None
        (s.weights(pts)[..., :20] ** 2).sum().backward()
        (d.weights(pts)[..., :20] ** 2).sum().backward()
        torch.testing.assert_close(s.delta.grad, d.delta.grad.reshape(55, -1)[:, s.cells], rtol=1e-9, atol=1e-9)


def test_sparse_tv_loss_equals_the_dense_one(body):
    s, d = _pair(body, 14, 1)
    torch.testing.assert_close(s.tv_loss(), d.tv_loss(), rtol=1e-12, atol=0)
    s.tv_loss().backward()
    d.tv_loss().backward()
    torch.testing.assert_close(s.delta.grad, d.delta.grad.reshape(55, -1)[:, s.cells], rtol=1e-12, atol=1e-15)
    assert float(SkinningGrid.from_body(body, resolution=14, band=1).tv_loss().detach()) == 0.0


def test_sparse_state_dict_round_trip_and_dense_loading(body):
    s, d = _pair(body, 10, 1, dtype=torch.float32)
    h = SkinningGrid.from_body(body, resolution=10, band=1)
    h.load_state_dict(s.state_dict())
    assert torch.equal(h.delta, s.delta) and set(s.state_dict()) == {"base", "lo", "hi", "cells", "delta"}
    h2 = SkinningGrid.from_body(body, resolution=10, band=1)
    h2.load_state_dict(d.state_dict())  # a dense residual that is zero outside the set: its active points
    assert torch.equal(h2.delta, s.delta)
    with torch.no_grad():
        d.delta[:, 0, 0, 0] = 0.5  # a far corner: outside the set
    with pytest.raises(RuntimeError, match="nonzero outside the active set"):
        SkinningGrid.from_body(body, resolution=10, band=1).load_state_dict(d.state_dict())
    with pytest.raises(RuntimeError, match="active set"):
        SkinningGrid.from_body(body, resolution=10, band=2).load_state_dict(s.state_dict())
    with pytest.raises(RuntimeError, match="cannot be loaded into a dense grid"):
        SkinningGrid.from_body(body, resolution=10).load_state_dict({k: v for k, v in s.state_dict().items()
                                                                     if k != "cells"})
