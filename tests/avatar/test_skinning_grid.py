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
