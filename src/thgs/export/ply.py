"""Gaussian splats as PLY files in the layout of the original 3DGS code (and every viewer that reads it).

One ``vertex`` element, binary little-endian, all properties ``float``, in this order::

    x y z                 position (world units)
    nx ny nz              normal: zeros for 3D Gaussians; the disk normal (the rotation's third column)
                          for 2D Gaussians
    f_dc_0 f_dc_1 f_dc_2  degree-0 spherical-harmonic coefficient per channel (RGB = 0.2820948 * dc + 0.5)
    f_rest_0 .. f_rest_M  higher SH coefficients, channel-major: f_rest_{c * (K - 1) + (k - 1)} holds
                          coefficient k of channel c, K = (degree + 1)^2; padded with zeros to degree 3
                          (45 values) by default, since several viewers expect exactly that
    opacity               logit of the opacity
    scale_0 scale_1 scale_2   natural log of the scales
    rot_0 rot_1 rot_2 rot_3   unit quaternion (w, x, y, z)

2D Gaussians (surfels) have no third scale. A 3DGS viewer draws a splat with ``scale_2`` as its
thickness, so for them ``scale_2 = log(FLAT_RATIO * min(scale_0, scale_1))`` is written: a disk
1000 times thinner than it is wide, drawn flat by 3DGS viewers. A comment line in the header says which
kind the file holds (``comment thgs splat 2dgs`` or ``3dgs``) and the SH degree actually trained.

Only numpy is used: :func:`write_ply` / :func:`read_ply` handle the generic element format,
:func:`write_gaussian_ply` / :func:`read_gaussian_ply` the Gaussian layout.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thgs.errors import ThgsError
from thgs.utils.io import atomic_path

SH_C0 = 0.28209479177387814
FLAT_RATIO = 1e-3
"""Third scale of an exported 2D Gaussian relative to its smaller in-plane scale."""
PAD_SH_DEGREE = 3
OPACITY_EPS = 1e-6

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY: dict[str, str] = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                                 "u4": "uint", "f4": "float", "f8": "double"}


class PlyError(ThgsError, ValueError):
    """A PLY file cannot be read or does not hold what is asked for; the message names the file and field."""


# -- generic element format --------------------------------------------------------------------
def write_ply(path: str | os.PathLike, columns: dict[str, np.ndarray], comments: list[str] | None = None) -> None:
    """Write one ``vertex`` element with the given per-vertex columns (each [N], any numeric dtype in
    :data:`_NUMPY_TO_PLY`), binary little-endian, atomically."""
    names = list(columns)
    if not names:
        raise ValueError("write_ply: no columns")
    n = len(columns[names[0]])
    fields = []
    for name in names:
        col = np.asarray(columns[name])
        if col.ndim != 1 or len(col) != n:
            raise ValueError(f"write_ply: column {name!r} has shape {col.shape}, expected ({n},)")
        code = col.dtype.newbyteorder("<").str[1:]
        if code not in _NUMPY_TO_PLY:
            raise ValueError(f"write_ply: column {name!r} has unsupported dtype {col.dtype}")
        if any(c.isspace() for c in name) or not name:
            raise ValueError(f"write_ply: bad property name {name!r}")
        fields.append((name, "<" + code))
    table = np.empty(n, dtype=np.dtype(fields))
    for name in names:
        table[name] = columns[name]
    header = ["ply", "format binary_little_endian 1.0"]
    for c in comments or []:
        if "\n" in c or "\r" in c:
            raise ValueError("write_ply: a comment must be one line")
        header.append(f"comment {c}")
    header.append(f"element vertex {n}")
    header += [f"property {_NUMPY_TO_PLY[code[1:]]} {name}" for name, code in fields]
    header.append("end_header")
    data = ("\n".join(header) + "\n").encode("ascii") + table.tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@dataclass
class PlyData:
    """A read PLY: the ``vertex`` element's columns (name -> [N]) and the header comments."""

    columns: dict[str, np.ndarray]
    comments: list[str]
    count: int


def read_ply(path: str | os.PathLike) -> PlyData:
    """Read the ``vertex`` element of a binary (little- or big-endian) or ASCII PLY file.

    Other elements are skipped when they come after ``vertex``; list properties are supported only
    outside the ``vertex`` element (and only if they come after it)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise PlyError(f"{path}: not a PLY file (no 'ply' magic or no 'end_header')")
    nl = raw.find(b"\n", end)
    if nl < 0:
        raise PlyError(f"{path}: header: 'end_header' is not followed by a newline")
    try:
        lines = raw[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise PlyError(f"{path}: header is not ASCII") from None
    body = raw[nl + 1:]
    fmt = None
    comments: list[str] = []
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "format":
            if len(parts) < 2 or parts[1] not in ("binary_little_endian", "binary_big_endian", "ascii"):
                raise PlyError(f"{path}: header line {lineno}: unsupported format {line!r}")
            fmt = parts[1]
        elif key in ("comment", "obj_info"):
            comments.append(line.partition(" ")[2])
        elif key == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise PlyError(f"{path}: header line {lineno}: bad element line {line!r}")
            elements.append((parts[1], int(parts[2]), []))
        elif key == "property":
            if not elements:
                raise PlyError(f"{path}: header line {lineno}: property before any element")
            if len(parts) >= 2 and parts[1] == "list":
                elements[-1][2].append((parts[-1], "list"))
                continue
            if len(parts) != 3 or parts[1] not in _PLY_TYPES:
                raise PlyError(f"{path}: header line {lineno}: unsupported property {line!r}")
            elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
        else:
            raise PlyError(f"{path}: header line {lineno}: unknown keyword {key!r}")
    if fmt is None:
        raise PlyError(f"{path}: header has no 'format' line")
    if not elements or elements[0][0] != "vertex":
        raise PlyError(f"{path}: field 'element vertex' is missing or not the first element")
    _, count, props = elements[0]
    if any(t == "list" for _, t in props):
        raise PlyError(f"{path}: element 'vertex' has a list property; not a splat file")
    names = [n for n, _ in props]
    if len(set(names)) != len(names):
        raise PlyError(f"{path}: element 'vertex' repeats a property name")
    if fmt == "ascii":
        try:
            text = body.decode("ascii").split()
            values = np.asarray(text[: count * len(props)], dtype=np.float64).reshape(count, len(props))
        except (UnicodeDecodeError, ValueError):
            raise PlyError(f"{path}: element 'vertex': ASCII body is short or not numeric") from None
        cols = {n: values[:, i].astype(t) for i, (n, t) in enumerate(props)}
        return PlyData(cols, comments, count)
    order = "<" if fmt == "binary_little_endian" else ">"
    dtype = np.dtype([(n, order + t) for n, t in props])
    need = dtype.itemsize * count
    if len(body) < need:
        raise PlyError(f"{path}: element 'vertex': file holds {len(body)} data bytes, {need} needed "
                       f"for {count} vertices (truncated?)")
    table = np.frombuffer(body[:need], dtype=dtype, count=count)
    cols = {n: np.ascontiguousarray(table[n]).astype(table[n].dtype.newbyteorder("="), copy=False) for n in names}
    return PlyData(cols, comments, count)


# -- Gaussian layout -------------------------------------------------------------------------------
@dataclass
class SplatArrays:
    """Activated Gaussians as numpy arrays (what a PLY stores, after undoing its encodings).

    means [N, 3]; quats [N, 4] (w, x, y, z, unit); scales [N, 3] (positive); opacities [N] in (0, 1);
    sh [N, K, 3] SH coefficients (K = (sh_degree + 1)^2; RGB = SH_C0 * sh[:, 0] + 0.5); normals [N, 3];
    kind '3dgs' or '2dgs'.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    normals: np.ndarray
    kind: str = "3dgs"

    @property
    def sh_degree(self) -> int:
        return int(round(math.sqrt(self.sh.shape[1]))) - 1

    def __len__(self) -> int:
        return int(self.means.shape[0])


def splats_from_gaussians(gaussians, kind: str = "3dgs") -> SplatArrays:
    """A :class:`thgs.render.base.GaussianSet` -> :class:`SplatArrays` (RGB colours become degree-0 SH).

    For ``kind='2dgs'`` the normal is the rotation's third column and the third scale is replaced by
    ``FLAT_RATIO * min(scale_0, scale_1)`` (see the module docstring)."""
    import torch

    from thgs.core.rotations import normalize_quaternion, quaternion_to_matrix

    if kind not in ("3dgs", "2dgs"):
        raise ValueError(f"splats_from_gaussians: kind must be '3dgs' or '2dgs', got {kind!r}")
    with torch.no_grad():
        q = normalize_quaternion(gaussians.quats.detach().float())
        scales = gaussians.scales.detach().float().clone()
        colors = gaussians.colors.detach().float()
        if colors.dim() == 2:
            sh = ((colors - 0.5) / SH_C0)[:, None, :]
        else:
            sh = colors
        if kind == "2dgs":
            normals = quaternion_to_matrix(q)[:, :, 2]
            scales[:, 2] = FLAT_RATIO * scales[:, :2].min(dim=1).values
        else:
            normals = torch.zeros_like(gaussians.means)
        return SplatArrays(means=gaussians.means.detach().float().cpu().numpy(), quats=q.cpu().numpy(),
                           scales=scales.cpu().numpy(), opacities=gaussians.opacities.detach().float().cpu().numpy(),
                           sh=sh.cpu().numpy(), normals=normals.float().cpu().numpy(), kind=kind)


def gaussian_columns(splats: SplatArrays, pad_sh_degree: int | None = PAD_SH_DEGREE) -> dict[str, np.ndarray]:
    """The PLY columns (name -> float32 [N]) of ``splats`` in the 3DGS order."""
    n = len(splats)
    K = splats.sh.shape[1]
    degree = splats.sh_degree
    if (degree + 1) ** 2 != K or splats.sh.shape != (n, K, 3):
        raise ValueError(f"gaussian_columns: sh has shape {splats.sh.shape}, expected [N, (d+1)^2, 3]")
    out_k = max(K, (pad_sh_degree + 1) ** 2) if pad_sh_degree is not None else K
    cols: dict[str, np.ndarray] = {}
    for i, a in enumerate("xyz"):
        cols[a] = splats.means[:, i]
    for i, a in enumerate(("nx", "ny", "nz")):
        cols[a] = splats.normals[:, i]
    for c in range(3):
        cols[f"f_dc_{c}"] = splats.sh[:, 0, c]
    rest = np.zeros((n, 3, out_k - 1), dtype=np.float32)
    rest[:, :, : K - 1] = np.transpose(splats.sh[:, 1:, :], (0, 2, 1))
    flat = rest.reshape(n, -1)
    for j in range(flat.shape[1]):
        cols[f"f_rest_{j}"] = flat[:, j]
    o = np.clip(splats.opacities.astype(np.float64), OPACITY_EPS, 1 - OPACITY_EPS)
    cols["opacity"] = np.log(o / (1 - o))
    logs = np.log(np.maximum(splats.scales.astype(np.float64), 1e-30))
    for i in range(3):
        cols[f"scale_{i}"] = logs[:, i]
    q = splats.quats / np.maximum(np.linalg.norm(splats.quats, axis=1, keepdims=True), 1e-12)
    for i in range(4):
        cols[f"rot_{i}"] = q[:, i]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in cols.items()}


def write_gaussian_ply(path: str | os.PathLike, splats: SplatArrays, pad_sh_degree: int | None = PAD_SH_DEGREE,
                       comments: list[str] | None = None) -> Path:
    """Write ``splats`` as a 3DGS PLY (atomically). Returns the path."""
    head = [f"thgs splat {splats.kind}", f"thgs sh_degree {splats.sh_degree}"]
    if splats.kind == "2dgs":
        head.append(f"thgs scale_2 = log({FLAT_RATIO:g} * min(scale_0, scale_1)) (2D Gaussians have no third axis)")
    write_ply(path, gaussian_columns(splats, pad_sh_degree), head + list(comments or []))
    return Path(path)


def read_gaussian_ply(path: str | os.PathLike) -> SplatArrays:
    """Read a 3DGS-layout PLY (ours or another tool's) back into activated arrays.

    Trailing all-zero SH bands added as padding are kept (the degree is the file's); opacity goes
    through a sigmoid, scales through exp, quaternions are normalised."""
    path = Path(path)
    ply = read_ply(path)
    c = ply.columns
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    for name in need:
        if name not in c:
            raise PlyError(f"{path}: element 'vertex' has no property {name!r} (not a 3DGS splat file)")
    n = ply.count
    rest_names = sorted((k for k in c if k.startswith("f_rest_")), key=lambda k: int(k[7:]) if k[7:].isdigit() else -1)
    if rest_names and rest_names != [f"f_rest_{j}" for j in range(len(rest_names))]:
        raise PlyError(f"{path}: properties 'f_rest_*' are not numbered 0..{len(rest_names) - 1}")
    per_channel, rem = divmod(len(rest_names), 3)
    K = per_channel + 1
    if rem or round(math.sqrt(K)) ** 2 != K:
        raise PlyError(f"{path}: {len(rest_names)} 'f_rest_*' properties do not make a full SH degree "
                       "(expected 3 * ((d + 1)^2 - 1))")
    f = lambda k: np.asarray(c[k], dtype=np.float64)  # noqa: E731
    sh = np.zeros((n, K, 3), dtype=np.float32)
    sh[:, 0] = np.stack([f(f"f_dc_{i}") for i in range(3)], 1)
    if per_channel:
        rest = np.stack([f(k) for k in rest_names], 1).reshape(n, 3, per_channel)
        sh[:, 1:] = np.transpose(rest, (0, 2, 1))
    q = np.stack([f(f"rot_{i}") for i in range(4)], 1)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    normals = np.stack([f(a) for a in ("nx", "ny", "nz")], 1) if all(a in c for a in ("nx", "ny", "nz")) \
        else np.zeros((n, 3))
    kind = "2dgs" if "thgs splat 2dgs" in ply.comments else "3dgs"
    with np.errstate(over="ignore"):
        opac = 1.0 / (1.0 + np.exp(-f("opacity")))
    return SplatArrays(means=np.stack([f(a) for a in "xyz"], 1).astype(np.float32), quats=q.astype(np.float32),
                       scales=np.exp(np.stack([f(f"scale_{i}") for i in range(3)], 1)).astype(np.float32),
                       opacities=opac.astype(np.float32), sh=sh, normals=normals.astype(np.float32), kind=kind)


def trim_sh(splats: SplatArrays, degree: int) -> SplatArrays:
    """The same splats with SH truncated to ``degree`` (e.g. to drop zero padding after reading)."""
    K = (degree + 1) ** 2
    if K > splats.sh.shape[1]:
        raise ValueError(f"trim_sh: splats have degree {splats.sh_degree} < {degree}")
    return SplatArrays(splats.means, splats.quats, splats.scales, splats.opacities, splats.sh[:, :K].copy(),
                       splats.normals, splats.kind)


def file_sh_degree(comments: list[str]) -> int | None:
    """The trained SH degree written in our header comment, or None for files of other tools."""
    for cmt in comments:
        if cmt.startswith("thgs sh_degree "):
            try:
                return int(cmt.split()[-1])
            except ValueError:
                return None
    return None


__all__ = ["FLAT_RATIO", "PAD_SH_DEGREE", "PlyData", "PlyError", "SplatArrays", "file_sh_degree",
           "gaussian_columns", "read_gaussian_ply", "read_ply", "splats_from_gaussians", "trim_sh",
           "write_gaussian_ply", "write_ply"]
