"""Our 3DGS PLY writer and reader: layout, round trip, 2DGS handling, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.export.ply import (FLAT_RATIO, SH_C0, PlyError, SplatArrays, file_sh_degree, gaussian_columns, read_gaussian_ply,
                             read_ply, splats_from_gaussians, trim_sh, write_gaussian_ply, write_ply)
from thgs.render.base import GaussianSet

STANDARD = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def random_set(n: int = 50, sh_degree: int | None = 2, seed: int = 0) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    colors = (torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) if sh_degree is not None
              else torch.rand(n, 3, generator=g))
    q = torch.randn(n, 4, generator=g)
    return GaussianSet(means=torch.randn(n, 3, generator=g), quats=q / q.norm(dim=1, keepdim=True),
                       scales=torch.rand(n, 3, generator=g) * 0.05 + 1e-3,
                       opacities=torch.rand(n, generator=g) * 0.98 + 0.01, colors=colors, sh_degree=sh_degree)


def test_header_has_the_standard_3dgs_layout(tmp_path):
    path = write_gaussian_ply(tmp_path / "a.ply", splats_from_gaussians(random_set(7, 1)))
    raw = path.read_bytes()
    header = raw[: raw.index(b"end_header")].decode().splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element vertex 7" in header
    props = [ln.split() for ln in header if ln.startswith("property")]
    assert [p[2] for p in props] == STANDARD
    assert all(p[1] == "float" for p in props)
    body = raw[raw.index(b"end_header\n") + len(b"end_header\n"):]
    assert len(body) == 7 * len(STANDARD) * 4


def test_round_trip_3dgs_with_sh(tmp_path):
    gs = random_set(40, 2)
    splats = splats_from_gaussians(gs, "3dgs")
    write_gaussian_ply(tmp_path / "a.ply", splats)
    back = read_gaussian_ply(tmp_path / "a.ply")
    assert back.kind == "3dgs" and back.sh_degree == 3  # padded to degree 3
    assert file_sh_degree(read_ply(tmp_path / "a.ply").comments) == 2
    back = trim_sh(back, 2)
    np.testing.assert_allclose(back.means, gs.means.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.scales, gs.scales.numpy(), rtol=1e-5)
    np.testing.assert_allclose(back.opacities, gs.opacities.numpy(), atol=1e-5)
    np.testing.assert_allclose(back.sh, gs.colors.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.abs((back.quats * gs.quats.numpy()).sum(1)), 1.0, atol=1e-5)
    np.testing.assert_array_equal(back.normals, 0)


def test_f_rest_is_channel_major_like_3dgs(tmp_path):
    gs = random_set(3, 1)
    cols = gaussian_columns(splats_from_gaussians(gs), pad_sh_degree=None)
    assert len([k for k in cols if k.startswith("f_rest_")]) == 9
    # f_rest_{c * 3 + (k - 1)} is coefficient k of channel c
    np.testing.assert_allclose(cols["f_rest_4"], gs.colors[:, 2, 1].numpy())
    np.testing.assert_allclose(cols["f_rest_6"], gs.colors[:, 1, 2].numpy())
    np.testing.assert_allclose(cols["opacity"], torch.logit(gs.opacities).numpy(), atol=1e-5)
    np.testing.assert_allclose(cols["scale_1"], gs.scales[:, 1].log().numpy(), atol=1e-6)


def test_rgb_colors_become_dc_and_2dgs_third_scale_is_flat(tmp_path):
    gs = random_set(20, None)
    write_gaussian_ply(tmp_path / "s.ply", splats_from_gaussians(gs, "2dgs"), pad_sh_degree=None)
    back = read_gaussian_ply(tmp_path / "s.ply")
    assert back.kind == "2dgs" and back.sh.shape == (20, 1, 3)
    np.testing.assert_allclose(SH_C0 * back.sh[:, 0] + 0.5, gs.colors.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.scales[:, :2], gs.scales[:, :2].numpy(), rtol=1e-5)
    np.testing.assert_allclose(back.scales[:, 2], FLAT_RATIO * gs.scales[:, :2].min(1).values.numpy(), rtol=1e-5)
    from thgs.core.rotations import quaternion_to_matrix

    np.testing.assert_allclose(back.normals, quaternion_to_matrix(gs.quats)[:, :, 2].numpy(), atol=1e-5)


def test_generic_writer_reader_dtypes_and_big_endian(tmp_path):
    cols = {"a": np.arange(5, dtype=np.uint8), "b": np.linspace(0, 1, 5), "c": -np.arange(5, dtype=np.int32)}
    write_ply(tmp_path / "g.ply", cols, comments=["hello"])
    back = read_ply(tmp_path / "g.ply")
    assert back.comments == ["hello"] and back.count == 5
    for k, v in cols.items():
        np.testing.assert_array_equal(back.columns[k], v)
        assert back.columns[k].dtype == v.dtype
    # a big-endian file written by hand
    data = np.array([(1.5, 2.5)], dtype=[("x", ">f4"), ("y", ">f4")]).tobytes()
    (tmp_path / "be.ply").write_bytes(b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty float x\n"
                                      b"property float y\nend_header\n" + data)
    be = read_ply(tmp_path / "be.ply")
    assert be.columns["x"][0] == 1.5 and be.columns["y"][0] == 2.5


def test_reader_errors_name_file_and_field(tmp_path):
    p = tmp_path / "x.ply"
    p.write_bytes(b"not a ply")
    with pytest.raises(PlyError, match="x.ply.*not a PLY"):
        read_ply(p)
    write_ply(p, {"x": np.zeros(3, np.float32), "y": np.zeros(3, np.float32), "z": np.zeros(3, np.float32)})
    with pytest.raises(PlyError, match="x.ply.*'f_dc_0'"):
        read_gaussian_ply(p)
    write_gaussian_ply(p, splats_from_gaussians(random_set(4, 0)))
    raw = p.read_bytes()
    p.write_bytes(raw[:-10])
    with pytest.raises(PlyError, match="truncated"):
        read_gaussian_ply(p)
    with pytest.raises(PlyError, match="cannot read"):
        read_ply(tmp_path / "missing.ply")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_ply(tmp_path / "bad.ply", {"x": np.zeros(3), "y": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_splat_arrays_degree():
    s = SplatArrays(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 3)), np.ones(2) / 2, np.zeros((2, 9, 3)),
                    np.zeros((2, 3)))
    assert s.sh_degree == 2 and len(s) == 2
