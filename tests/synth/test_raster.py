import torch

from thgs.synth.raster import downsample, interpolate, rasterize

EYE = torch.eye(3)  # K = identity: camera coordinates (x/z, y/z) are pixel coordinates


def test_single_triangle_covers_exactly_the_pixel_centres_inside():
    # Right triangle with legs along the top and left edges; pixel centres are at (j + .5, i + .5).
    v = torch.tensor([[1.2, 1.2, 1.0], [3.9, 1.2, 1.0], [1.2, 3.9, 1.0]])
    f = torch.tensor([[0, 2, 1]])  # clockwise on screen = facing the camera
    frags = rasterize(v, f, EYE, 5, 5)
    expected = torch.tensor([
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],  # centres (1.5..3.5, 1.5): x + y <= 5.1
        [0, 1, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=torch.bool)
    assert torch.equal(frags.covered, expected)
    assert frags.front[expected].all()
    assert torch.allclose(frags.depth[expected], torch.ones(6))
    # barycentrics reproduce the pixel centre
    xy = interpolate(frags, f, v[:, :2])
    ii, jj = torch.nonzero(expected, as_tuple=True)
    assert torch.allclose(xy, torch.stack([jj + 0.5, ii + 0.5], 1).float(), atol=1e-5)
    # the same triangle wound the other way is a back face: drawn unless culled
    back = torch.tensor([[0, 1, 2]])
    assert torch.equal(rasterize(v, back, EYE, 5, 5).covered, expected)
    assert not rasterize(v, back, EYE, 5, 5).front.any()
    assert not rasterize(v, back, EYE, 5, 5, cullable=torch.tensor([True])).covered.any()


def test_nearer_triangle_wins_regardless_of_order():
    square = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    near = torch.cat([square, torch.full((3, 1), 2.0)], 1) * torch.tensor([2.0, 2.0, 1.0])  # z = 2
    far = torch.cat([square, torch.full((3, 1), 4.0)], 1) * torch.tensor([4.0, 4.0, 1.0])  # z = 4, same image
    v = torch.cat([far, near])
    for faces in (torch.tensor([[0, 2, 1], [3, 5, 4]]), torch.tensor([[3, 5, 4], [0, 2, 1]])):
        frags = rasterize(v, faces, EYE, 8, 8)
        cov = frags.covered
        assert cov.sum() == 36  # centres with x + y < 8
        near_id = 1 if faces[1, 0] == 3 else 0
        assert (frags.face[cov] == near_id).all()
        assert torch.allclose(frags.depth[cov], torch.full((36,), 2.0))


def test_perspective_correct_barycentrics_on_a_tilted_triangle():
    # A plane z = 2 + 0.5 x (camera space) seen with a real focal length.
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]])
    pts = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]])
    v = torch.cat([pts, (2.0 + 0.5 * pts[:, :1])], 1)
    frags = rasterize(v, torch.tensor([[0, 2, 1]]), K, 32, 32)
    cov = frags.covered
    assert cov.sum() > 50
    p = interpolate(frags, torch.tensor([[0, 2, 1]]), v)  # interpolated 3-D points must lie on each ray
    ii, jj = torch.nonzero(cov, as_tuple=True)
    ray = torch.stack([(jj + 0.5 - 16) / 20, (ii + 0.5 - 16) / 20, torch.ones_like(ii, dtype=torch.float)], 1)
    assert torch.allclose(p[:, :2] / p[:, 2:3], ray[:, :2], atol=1e-4)
    assert torch.allclose(p[:, 2], 2.0 + 0.5 * p[:, 0], atol=1e-4)
    assert torch.allclose(frags.depth[cov], p[:, 2], atol=1e-4)


def test_shared_edges_leave_no_cracks_or_gaps():
    # A fan of thin triangles around a centre covers the disc without holes.
    n = 37
    ang = torch.linspace(0, 2 * torch.pi, n + 1)[:-1]
    ring = torch.stack([16 + 13.3 * torch.cos(ang), 16 + 13.3 * torch.sin(ang), torch.ones(n)], 1)
    v = torch.cat([torch.tensor([[16.1, 15.9, 1.0]]), ring])
    faces = torch.tensor([[0, 1 + (k + 1) % n, 1 + k] for k in range(n)])
    frags = rasterize(v, faces, EYE, 32, 32)
    ii, jj = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    r = ((jj + 0.5 - 16) ** 2 + (ii + 0.5 - 16) ** 2).sqrt()
    inner = r < 12.5  # well inside the polygon
    assert frags.covered[inner].all()
    assert not frags.covered[r > 13.5].any()


def test_supersampled_coverage_gives_a_soft_mask():
    # A rectangle whose right edge runs down the middle of pixel column 2 (x = 2.5) at 1x.
    v = torch.tensor([[0.0, 0.0, 1.0], [5.0, 0.0, 1.0], [0.0, 8.0, 1.0], [5.0, 8.0, 1.0]])
    faces = torch.tensor([[0, 2, 1], [1, 2, 3]])
    s = 2
    Ks = torch.diag(torch.tensor([s, s, 1.0]))
    frags = rasterize(v * torch.tensor([0.5, 1.0, 1.0]), faces, Ks, 4 * s, 4 * s)
    mask = downsample(frags.covered.float()[..., None], s)[..., 0]
    assert torch.equal(mask[:, :2], torch.ones(4, 2))
    assert torch.equal(mask[:, 2], torch.full((4,), 0.5))
    assert torch.equal(mask[:, 3], torch.zeros(4))


def test_downsample_is_a_box_filter():
    x = torch.rand(6, 4, 3)
    assert torch.allclose(downsample(x, 2), x.view(3, 2, 2, 2, 3).mean((1, 3)))
    assert downsample(x, 1) is x
