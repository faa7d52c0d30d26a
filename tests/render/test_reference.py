"""The CPU reference rasterizer: hand-checkable cases and equality with a brute-force dense evaluator."""

import math

import pytest
import torch

from thgs.render import Camera, GaussianSet, render
from thgs.render._scenes import front_camera, random_cloud
from thgs.render._sh import sh_basis, sh_to_rgb
from thgs.render.reference import ReferenceBackend, gaussian_colors, normals_from_depth
from thgs.render._project import camera_center

D = torch.float64


def one(mean, scale, opacity, color, quat=(1.0, 0, 0, 0), dtype=D):
    """A GaussianSet of Gaussians given as lists."""
    t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    return GaussianSet(t(mean).reshape(-1, 3), t(quat).reshape(-1, 4).expand(len(t(mean).reshape(-1, 3)), 4).clone(),
                       t(scale).reshape(-1, 3), t(opacity).reshape(-1), t(color).reshape(-1, 3))


def pinhole(width, height, f, dtype=D):
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=dtype)
    return Camera(K, torch.eye(4, dtype=dtype), width, height)


# ---------------------------------------------------------------------------------------------------
# hand-checkable cases


def test_single_isotropic_gaussian_peak_and_falloff():
    W = H = 33  # odd: the image centre (16.5, 16.5) is a pixel centre
    cam = pinhole(W, H, f=40.0)
    s, z, op = 0.05, 2.0, 0.8
    g = one([0.0, 0.0, z], [s, s, s], [op], [1.0, 0.5, 0.25])
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=D)
    r = render(g, cam, bg, mode="3dgs", backend="reference")
    var = (40.0 * s / z) ** 2 + 0.3  # projected variance in px^2 plus the 0.3 px low-pass
    a = r.alpha[..., 0]
    assert a[16, 16].item() == pytest.approx(op, abs=1e-12)
    for k in (1, 2, 3):
        expect = op * math.exp(-0.5 * k * k / var)
        for (i, j) in ((16, 16 + k), (16 - k, 16), (16 + k, 16)):
            assert a[i, j].item() == pytest.approx(expect, rel=1e-9)
    diag = op * math.exp(-0.5 * 2 / var)
    assert a[17, 17].item() == pytest.approx(diag, rel=1e-9)
    # colour = alpha * c + (1 - alpha) * background; expected depth = z wherever drawn
    c = torch.tensor([1.0, 0.5, 0.25], dtype=D)
    assert torch.allclose(r.rgb[16, 16], op * c + (1 - op) * bg)
    assert torch.allclose(r.depth[a > 0], torch.full_like(r.depth[a > 0], z))
    assert int(r.radii[0]) == math.ceil(min(3.33, math.sqrt(2 * math.log(op * 255))) * math.sqrt(var))
    assert torch.allclose(r.means2d[0], torch.tensor([16.5, 16.5], dtype=D))


def test_two_gaussians_composite_in_depth_order_whatever_the_input_order():
    cam = pinhole(17, 17, f=30.0)
    red, green = [1.0, 0, 0], [0, 1.0, 0]
    bg = torch.tensor([0.0, 0.0, 1.0], dtype=D)
    # the red one is nearer
    g1 = one([[0, 0, 1.0], [0, 0, 2.0]], [[0.05] * 3, [0.1] * 3], [0.5, 0.5], [red, green])
    g2 = one([[0, 0, 2.0], [0, 0, 1.0]], [[0.1] * 3, [0.05] * 3], [0.5, 0.5], [green, red])
    r1 = render(g1, cam, bg, backend="reference")
    r2 = render(g2, cam, bg, backend="reference")
    centre = r1.rgb[8, 8]
    expect = 0.5 * torch.tensor(red, dtype=D) + 0.25 * torch.tensor(green, dtype=D) + 0.25 * bg
    assert torch.allclose(centre, expect, atol=1e-12)
    assert torch.allclose(r1.rgb, r2.rgb, atol=1e-12)
    assert r1.alpha[8, 8, 0].item() == pytest.approx(0.75)
    assert r1.depth[8, 8, 0].item() == pytest.approx((0.5 * 1.0 + 0.25 * 2.0) / 0.75)


def test_background_where_nothing_is_drawn():
    cam = pinhole(40, 24, f=30.0)
    g = one([0.0, 0.0, 3.0], [0.02] * 3, [0.9], [0.2, 0.3, 0.4])
    bg = torch.tensor([0.7, 0.1, 0.3], dtype=D)
    r = render(g, cam, bg, backend="reference")
    empty = r.alpha[..., 0] == 0
    assert empty.sum() > 0.9 * 40 * 24
    assert torch.equal(r.rgb[empty], bg.expand(int(empty.sum()), 3))
    assert torch.equal(r.depth[empty], torch.zeros(int(empty.sum()), 1, dtype=D))


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
def test_behind_the_camera_draws_nothing_and_still_backpropagates(mode):
    cam = pinhole(16, 16, f=20.0)
    g = one([[0.0, 0.0, -2.0], [0.1, 0.0, 0.005]], [[0.3] * 3, [0.3] * 3], [0.9, 0.9], [[1.0, 1, 1]] * 2)
    for t in (g.means, g.quats, g.scales, g.opacities, g.colors):
        t.requires_grad_(True)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=D)
    r = render(g, cam, bg, mode=mode, backend="reference")
    assert torch.equal(r.alpha, torch.zeros_like(r.alpha))
    assert torch.equal(r.rgb, bg.expand(16, 16, 3))
    assert torch.equal(r.radii, torch.zeros(2, dtype=torch.int32))
    (r.rgb.sum() + r.alpha.sum()).backward()
    assert torch.equal(g.means.grad, torch.zeros_like(g.means))


def test_2dgs_disk_facing_the_camera():
    cam = pinhole(33, 33, f=40.0)
    z = 2.0
    bg = torch.zeros(3, dtype=D)
    # identity rotation: the disk normal is +z (away from the camera) and must be turned towards it;
    # the second disk is flipped (180 degrees about x) and already faces the camera
    for quat in ([1.0, 0, 0, 0], [0.0, 1.0, 0, 0]):
        g = one([0.0, 0.0, z], [0.3, 0.3, 1.0], [0.9], [1.0, 1.0, 1.0], quat=quat)
        r = render(g, cam, bg, mode="2dgs", backend="reference")
        drawn = r.alpha[..., 0] > 0.5
        assert drawn.sum() > 50
        n = r.normals[drawn] / r.alpha[drawn]
        assert torch.allclose(n, torch.tensor([0.0, 0.0, -1.0], dtype=D).expand_as(n), atol=1e-12)
        assert torch.allclose(r.depth[drawn], torch.full_like(r.depth[drawn], z), atol=1e-12)
        # normals from the flat depth map agree inside the disk (away from its rim)
        inner = torch.zeros_like(drawn)
        inner[12:21, 12:21] = True
        sn = r.surf_normals[inner]
        assert torch.allclose(sn, torch.tensor([0.0, 0.0, -1.0], dtype=D).expand_as(sn), atol=1e-9)
        assert r.alpha[16, 16, 0].item() == pytest.approx(0.9)
        # the disk term at the centre pixel's neighbour: u = 1 px * z / (f * s)
        u = 1.0 * z / (40.0 * 0.3)
        assert r.alpha[16, 17, 0].item() == pytest.approx(0.9 * math.exp(-0.5 * u * u), rel=1e-9)


def test_2dgs_screen_space_filter_keeps_tiny_disks_visible():
    cam = pinhole(33, 33, f=40.0)
    g = one([0.0, 0.0, 2.0], [1e-4, 1e-4, 1.0], [0.9], [1.0, 1.0, 1.0])
    r = render(g, cam, torch.zeros(3, dtype=D), mode="2dgs", backend="reference")
    a = r.alpha[..., 0]
    # sigma = 0.5 * min(s3d, 2 |d|^2): the filter term alone, exp(-|d|^2)
    assert a[16, 16].item() == pytest.approx(0.9)
    assert a[16, 17].item() == pytest.approx(0.9 * math.exp(-1.0))
    assert a[17, 17].item() == pytest.approx(0.9 * math.exp(-2.0))
    assert a[16, 19].item() == 0.0  # 0.9 * exp(-9) < 1/255


def test_tilted_plane_surface_normals():
    # depth of a plane z = 2 + 0.5 x (camera frame): its normal is (-0.5, 0, 1) up to sign, facing the camera
    H, W, f = 20, 24, 30.0
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=D)
    xs = (torch.arange(W, dtype=D) + 0.5 - W / 2) / f
    z = 2.0 / (1 - 0.5 * xs)  # ray (x/z, y/z, 1) meets z = 2 + 0.5 x
    depth = z.expand(H, W).unsqueeze(-1)
    n = normals_from_depth(depth, K)
    expect = torch.nn.functional.normalize(torch.tensor([0.5, 0.0, -1.0], dtype=D), dim=0)
    assert torch.allclose(n[1:-1, 1:-1], expect.expand(H - 2, W - 2, 3), atol=1e-9)
    assert torch.equal(n[0], torch.zeros(W, 3, dtype=D))


def test_spherical_harmonics_colours():
    cam = pinhole(9, 9, f=10.0)
    gen = torch.Generator().manual_seed(3)
    means = torch.tensor([[0.3, -0.2, 2.0], [-0.1, 0.4, 3.0]], dtype=D)
    coeffs = torch.randn(2, 16, 3, generator=gen, dtype=D) * 0.3
    g = GaussianSet(means, torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=D), torch.full((2, 3), 0.1, dtype=D),
                    torch.tensor([0.5, 0.5], dtype=D), coeffs)  # sh_degree inferred: 3
    rgb = gaussian_colors(g, torch.arange(2), camera_center(cam.world_to_cam))
    d = torch.nn.functional.normalize(means, dim=-1)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    # degree 0 and 1 by hand (3DGS convention), degrees 2-3 from the basis
    b = sh_basis(3, d)
    assert torch.allclose(b[:, 0], torch.full_like(x, 0.28209479177387814))
    assert torch.allclose(b[:, 1:4], torch.stack([-0.4886025119029199 * y, 0.4886025119029199 * z,
                                                  -0.4886025119029199 * x], -1))
    assert torch.allclose(b[:, 6], 0.31539156525252005 * (2 * z * z - x * x - y * y))
    assert torch.allclose(rgb, ((b[..., None] * coeffs).sum(1) + 0.5).clamp_min(0))
    # a lower degree uses only the first bands
    g1 = GaussianSet(g.means, g.quats, g.scales, g.opacities, coeffs, sh_degree=1)
    rgb1 = gaussian_colors(g1, torch.arange(2), camera_center(cam.world_to_cam))
    assert torch.allclose(rgb1, sh_to_rgb(coeffs[:, :4], 1, means))
    # the real basis is orthonormal on the sphere (Monte Carlo, 200k directions)
    dirs = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=gen, dtype=D), dim=-1)
    B = sh_basis(3, dirs)
    gram = B.T @ B * (4 * math.pi / len(dirs))
    assert torch.allclose(gram, torch.eye(16, dtype=D), atol=0.03)


def test_bad_inputs_are_named():
    cam = pinhole(8, 8, f=10.0)
    g = one([0.0, 0.0, 2.0], [0.1] * 3, [0.5], [1.0, 1.0, 1.0])
    bad = GaussianSet(g.means, g.quats, g.scales, g.opacities, torch.zeros(1, 5, 3, dtype=D))
    with pytest.raises(ValueError, match="colors"):
        ReferenceBackend()(bad, cam, torch.zeros(3, dtype=D), "3dgs")
    with pytest.raises(ValueError, match="mode"):
        ReferenceBackend()(g, cam, torch.zeros(3, dtype=D), "4dgs")
    with pytest.raises(ValueError, match="sh_degree"):
        ReferenceBackend()(GaussianSet(g.means, g.quats, g.scales, g.opacities, g.colors, sh_degree=2), cam,
                           torch.zeros(3, dtype=D), "3dgs")


# ---------------------------------------------------------------------------------------------------
# the pair rasterizer equals a brute-force dense evaluation of gsplat's per-pixel loop


def dense_render(be, g, cam, bg, mode):
    """Every pixel against every projected Gaussian in depth order, one Gaussian at a time, with
    gsplat's tile assignment, skip rules and early stop. Returns (rgb, alpha, depth, normals, stops)."""
    p = be.project(g, cam, mode)
    H, W = cam.height, cam.width
    dtype = g.means.dtype
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    px, py = xs.flatten().to(dtype) + 0.5, ys.flatten().to(dtype) + 0.5
    tile_x, tile_y = xs.flatten() // 16, ys.flatten() // 16
    tw, th = math.ceil(W / 16), math.ceil(H / 16)
    rgb = gaussian_colors(g, p.ids, camera_center(cam.world_to_cam.to(dtype)))
    T = torch.ones(H * W, dtype=dtype)
    done = torch.zeros(H * W, dtype=torch.bool)
    acc = torch.zeros(H * W, 7, dtype=dtype)
    stops = 0
    for i in range(len(p.ids)):
        mx, my = p.means2d[i]
        rx, ry = p.radii[i].tolist()
        x0 = min(max(math.floor(mx.item() / 16 - rx / 16), 0), tw)
        x1 = min(max(math.ceil(mx.item() / 16 + rx / 16), 0), tw)
        y0 = min(max(math.floor(my.item() / 16 - ry / 16), 0), th)
        y1 = min(max(math.ceil(my.item() / 16 + ry / 16), 0), th)
        in_tiles = (tile_x >= x0) & (tile_x < x1) & (tile_y >= y0) & (tile_y < y1)
        if mode == "3dgs":
            a, b, c = p.conics[i]
            dx, dy = mx - px, my - py
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            ok = torch.ones_like(in_tiles)
            feat = torch.cat([rgb[i], p.depths[i:i + 1], torch.zeros(3, dtype=dtype)])
        else:
            M = p.ray_transforms[i]
            h_u = px[:, None] * M[2] - M[0]
            h_v = py[:, None] * M[2] - M[1]
            cr = torch.cross(h_u, h_v, dim=-1)
            ok = cr[:, 2] != 0
            crz = torch.where(ok, cr[:, 2], torch.ones_like(cr[:, 2]))
            uv = cr[:, :2] / crz[:, None]
            d2 = (mx - px) ** 2 + (my - py) ** 2
            sigma = 0.5 * torch.minimum((uv * uv).sum(-1), 2 * d2)
            feat = torch.cat([rgb[i], p.depths[i:i + 1], p.normals[i]])
        alpha = torch.clamp(p.opacities[i] * torch.exp(-sigma), max=0.999)
        valid = in_tiles & ok & (sigma >= 0) & (alpha >= 1 / 255) & ~done
        next_T = T * (1 - alpha)
        stop = valid & (next_T <= 1e-4)
        stops += int(stop.sum())
        done = done | stop
        use = valid & ~stop
        w = torch.where(use, alpha * T, torch.zeros_like(alpha))
        acc = acc + w[:, None] * feat
        T = torch.where(use, next_T, T)
    alpha = (1 - T).reshape(H, W, 1)
    acc = acc.reshape(H, W, 7)
    img = acc[..., :3] + (1 - alpha) * bg
    depth = acc[..., 3:4] / alpha.clamp_min(1e-10)
    return img, alpha, depth, acc[..., 4:7], stops


def scene(mode, seed, n=120):
    g = random_cloud(n, seed=seed, dtype=D, depth=2.0, spread=1.6, scale=0.06,
                     sh_degree=2 if seed % 2 else None)
    gen = torch.Generator().manual_seed(seed + 100)
    # a few large splats over several tiles, some very opaque ones so that pixels saturate
    big = torch.randperm(n, generator=gen)[:12]
    g.scales[big] *= 6
    if mode == "2dgs":  # disks seen at an angle cover less than ellipsoids
        g.scales *= 1.8
    g.opacities[torch.randperm(n, generator=gen)[:50]] = 0.999
    # some behind the camera and some crossing the near plane
    g.means[:3, 2] = torch.tensor([-1.0, 0.005, 0.2], dtype=D)
    return g


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
@pytest.mark.parametrize("seed,budget", [(0, 1 << 22), (1, 1 << 22), (2, 700)])
def test_pair_rasterizer_equals_dense_forward_and_gradients(mode, seed, budget):
    cam = front_camera(37, 29, fov_y_deg=60.0).to("cpu")
    cam = Camera(cam.K.to(D), cam.world_to_cam.to(D), cam.width, cam.height)
    g = scene(mode, seed)
    leaves = [g.means, g.quats, g.scales, g.opacities, g.colors]
    for t in leaves:
        t.requires_grad_(True)
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=D)
    be = ReferenceBackend(pair_budget=budget)
    r = be(g, cam, bg, mode)
    if budget < 1000:
        assert r.extras["chunks"] > 3
    img, alpha, depth, normals, stops = dense_render(be, g, cam, bg, mode)
    assert stops > 0, "the scene should make some pixels opaque"
    assert r.extras["blended_pairs"] > 500
    assert torch.allclose(r.rgb, img, atol=1e-10)
    assert torch.allclose(r.alpha, alpha, atol=1e-10)
    assert torch.allclose(r.depth, depth, atol=1e-8)
    if mode == "2dgs":
        assert torch.allclose(r.normals, normals, atol=1e-10)
    gen = torch.Generator().manual_seed(7)
    wr, wa, wd, wn = (torch.randn(*s, generator=gen, dtype=D) for s in ((29, 37, 3), (29, 37, 1), (29, 37, 1),
                                                                        (29, 37, 3)))

    def loss(rgb, a, d, n):
        out = (rgb * wr).sum() + (a * wa).sum() + 0.1 * (d * wd).sum()
        return out + (n * wn).sum() if n is not None else out

    grads = torch.autograd.grad(loss(r.rgb, r.alpha, r.depth, r.normals), leaves)
    dense = torch.autograd.grad(loss(img, alpha, depth, normals if mode == "2dgs" else None), leaves)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "colors"], grads, dense):
        assert torch.isfinite(a).all(), name
        assert b.abs().max() > 0, name
        assert torch.allclose(a, b, atol=1e-5 * (1 + b.abs().max().item()), rtol=1e-6), name


def test_gradients_are_finite_with_surface_normals_and_means2d_gradient():
    cam = front_camera(32, 32)
    g = random_cloud(200, seed=5, dtype=torch.float32)
    for t in (g.means, g.quats, g.scales, g.opacities, g.colors):
        t.requires_grad_(True)
    r = render(g, cam, torch.ones(3), mode="2dgs", backend="reference")
    loss = r.rgb.mean() + r.surf_normals.abs().mean() + r.normals.mean() + r.depth.mean()
    loss.backward()
    for t in (g.means, g.quats, g.scales, g.opacities, g.colors):
        assert torch.isfinite(t.grad).all()
        assert t.grad.abs().sum() > 0
    assert r.means2d.grad is not None and r.means2d.grad.shape == (200, 2)
    drawn = r.radii > 0
    assert r.means2d.grad[~drawn].abs().sum() == 0
    assert r.means2d.grad[drawn].abs().sum() > 0


def test_float32_matches_float64():
    cam = front_camera(48, 40)
    g64 = random_cloud(400, seed=11, dtype=D)
    g32 = GaussianSet(*(t.float() for t in (g64.means, g64.quats, g64.scales, g64.opacities, g64.colors)))
    for mode in ("3dgs", "2dgs"):
        c64 = Camera(cam.K.to(D), cam.world_to_cam.to(D), cam.width, cam.height)
        a = render(g64, c64, torch.zeros(3, dtype=D), mode=mode, backend="reference")
        b = render(g32, cam, torch.zeros(3), mode=mode, backend="reference")
        assert (a.rgb.float() - b.rgb).abs().max() < 1e-4


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
def test_gaussians_hidden_behind_opaque_layers_are_skipped_without_changing_the_image(mode):
    cam = front_camera(40, 32, fov_y_deg=60.0)
    cam = Camera(cam.K.to(D), cam.world_to_cam.to(D), cam.width, cam.height)
    g = random_cloud(150, seed=4, dtype=D, depth=3.0, spread=1.5, scale=0.05)
    # eight large, nearly opaque layers in front of the middle of the image
    g.means[:8] = torch.tensor([0.0, 0.0, 1.0], dtype=D) + torch.linspace(0, 0.35, 8, dtype=D)[:, None] * \
        torch.tensor([0.0, 0.0, 1.0], dtype=D)
    g.scales[:8] = 0.6
    g.opacities[:8] = 0.999
    for t in (g.means, g.quats, g.scales, g.opacities, g.colors):
        t.requires_grad_(True)
    bg = torch.tensor([0.3, 0.3, 0.3], dtype=D)
    be = ReferenceBackend(pair_budget=2000)
    r = be(g, cam, bg, mode)
    assert r.extras["occluded"] > 0
    img, alpha, depth, normals, stops = dense_render(be, g, cam, bg, mode)
    assert stops > 0
    assert torch.allclose(r.rgb, img, atol=1e-10)
    assert torch.allclose(r.alpha, alpha, atol=1e-10)
    a = torch.autograd.grad((r.rgb * img.detach()).sum(), [g.means, g.opacities])
    b = torch.autograd.grad((img * img.detach()).sum(), [g.means, g.opacities])
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-8)


@pytest.mark.parametrize("mode", ["3dgs", "2dgs"])
def test_gradients_match_finite_differences(mode):
    """Autograd through projection, SH colours and compositing equals central differences (float64)."""
    cam = pinhole(10, 8, f=9.0)
    gen = torch.Generator().manual_seed(2)
    means = torch.tensor([[0.1, 0.05, 2.0], [-0.2, 0.1, 2.5], [0.0, -0.1, 3.0]], dtype=D)
    quats = torch.randn(3, 4, generator=gen, dtype=D)
    scales = torch.tensor([[0.3, 0.2, 0.25], [0.25, 0.35, 0.2], [0.4, 0.3, 0.3]], dtype=D)
    opac = torch.tensor([0.7, 0.6, 0.8], dtype=D)
    sh = 0.3 * torch.randn(3, 4, 3, generator=gen, dtype=D)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=D)
    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opac, sh))

    proj = {k: torch.randn(8 * 10 * n, 4, generator=gen, dtype=D) for k, n in (("rgb", 3), ("a", 1), ("n", 3))}

    def f(m, q, s, o, c):
        # random projections of every output keep the number of backward passes small
        r = render(GaussianSet(m, q, s, o, c), cam, bg, mode=mode, backend="reference")
        outs = [r.rgb.flatten() @ proj["rgb"], r.alpha.flatten() @ proj["a"], 0.1 * r.depth.flatten() @ proj["a"]]
        if mode == "2dgs":
            outs += [r.normals.flatten() @ proj["rgb"], r.surf_normals.flatten() @ proj["n"]]
        return torch.cat(outs)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
