"""Training configuration and the named presets (``paper``, ``fast``, ``cpu``, ``smoke``).

:class:`TrainConfig` holds the run-wide settings and one group per part it configures, each its own dataclass
passed on whole to what it builds: :class:`ModelConfig` (the avatar's components and sizes,
:func:`thgs.runs.avatar_io.avatar_options`), :class:`RenderConfig` (the rasterizer), :class:`GaussianRates`
(the Gaussians' learning rates), :class:`Schedule` (one :class:`Stage` per module parameter group: its start
step and learning rates, Table 1), :class:`~thgs.avatar.losses.LossWeights` (the loss terms) and
:class:`~thgs.avatar.densify.DensifyOptions` (densification).

Every leaf field is a command-line flag of ``thgs train`` with its help text, listed under its group; the
flags keep the names of the flat layout thgs used before the groups (``--steps``, ``--pose-start``,
``--lambda-dssim``, ``--percent-dense``): a leaf's flag with underscores is its *flat name*
(:func:`thgs.config.flat_names`). A config saved in that flat layout (``config.json``, checkpoints) loads
through :func:`config_from_dict`, which converts it. A preset is a complete :class:`TrainConfig`; flags given
on the command line replace single fields of it. Fields with a fixed set of values are ``Literal`` types
(:data:`PresetName`, :data:`Backend`, :data:`Mode`, :data:`Skinning`): the command line offers exactly those
choices and :func:`config_problems` checks them from the same types, for configs built in code or read from a
``config.json``/checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional

from thgs.avatar.densify import DensifyOptions
from thgs.avatar.losses import LossWeights
from thgs.config import flat_names, from_dict, get_path, leaf_field, option, replace_flat, replace_path
from thgs.errors import ThgsError

PresetName = Literal["paper", "fast", "cpu", "smoke"]
"""The named presets (:data:`PRESETS`)."""
Backend = Literal["auto", "gsplat", "reference"]
"""Rasterizer backends: auto (gsplat on CUDA, else reference), gsplat, reference."""
Mode = Literal["2dgs", "3dgs"]
"""Rasterization: 2D (surfels, the paper's choice) or 3D Gaussians."""
Skinning = Literal["grid", "parent"]
"""Skinning weights: the voxel grid with its learnable residual (Eq. 18), or the parent vertex's."""


@dataclass
class ModelConfig:
    """The avatar's components (the ablation switches) and sizes."""

    vanilla: bool = option(False, help="GART-like baseline: no LEB, no SAAM, no expression input")
    leb: bool = option(True, help="Learnable Expression Blendshapes (--no-leb: the fixed basis)")
    saam: bool = option(True, help="Spatial Audio Attention Module (--no-saam: none)")
    audio: bool = option(True, help="use the audio (--no-audio: train without it; SAAM absent)")
    expr: bool = option(True, help="feed the tracked expression coefficients (--no-expr: ignore them)")
    joint_opt: bool = option(True, help="per-frame pose/expression refinement and the skinning residual "
                                        "(--no-joint-opt: none)")
    teeth: bool = option(True, help="add the teeth mesh inside the mouth before initialising Gaussians")
    skinning: Skinning = option("grid", help="skinning weights: grid (voxel grid, Eq. 18) or parent (parent vertex)")
    grid_resolution: int = option(64, help="voxel skinning grid resolution per axis")
    skin_band: int = option(2, help="the skinning residual lives only on the grid points within this many grid "
                                    "points of the cells holding template vertices (sparse: stored and updated "
                                    "there only, the same maths as a dense residual that is zero elsewhere); "
                                    "-1: a dense residual over the whole grid")
    fused_skinning: bool = option(False, help="blend the joint transforms into the skinning grid and look each "
                                              "point up once (the same result as per-point weights; faster on "
                                              "a CPU, slower on a GPU: docs/benchmarks.md)")
    sh_degree: int = option(3, help="spherical-harmonic degree of the colours (0: RGB)")
    hash_levels: int = option(12, help="tri-plane hash levels")
    hash_log2_table: int = option(14, help="log2 of each hash table's size")
    init_opacity: float = option(0.9, help="initial opacity of every Gaussian")
    init_colors: int = option(8, help="initialise colours from this many training frames (0: grey)")

    @property
    def has_saam(self) -> bool:
        """Whether the avatar has SAAM (and so trains on audio windows)."""
        return self.saam and self.audio and not self.vanilla


@dataclass
class RenderConfig:
    """How training renders the avatar."""

    backend: Backend = option("auto", help="rasterizer backend: auto (gsplat on CUDA, else reference), gsplat, "
                                           "reference")
    mode: Mode = option("2dgs", help="rasterization: 2dgs (the paper's choice) or 3dgs")


@dataclass
class GaussianRates:
    """The canonical Gaussians' learning rates (section 5.2); only the position's decays."""

    position: float = option(1.6e-4, help="position learning rate (times the body height, as 3DGS scales by the "
                                          "scene extent)")
    position_final: float = option(1.6e-6, help="position learning rate at the last step (exponential decay)")
    opacity: float = option(5e-2, help="opacity learning rate")
    scale: float = option(5e-3, help="scale learning rate")
    rotation: float = option(5e-3, help="rotation learning rate")
    color: float = option(5e-3, help="colour learning rate, shared by every SH coefficient (3DGS gives the "
                                     "higher bands 1/20 of it; thgs does not)")


@dataclass
class Stage:
    """One module parameter group's schedule (Table 1): off before ``start``, then a learning rate decaying
    log-linearly from ``lr`` to ``lr_final`` at the last step (:func:`thgs.avatar.refine.exponential_lr`)."""

    start: int = option(0, help="step it starts", steps="start")
    lr: float = option(1e-4, help="learning rate at its start")
    lr_final: float = option(1e-5, help="learning rate at the last step")


def _stage(start: int, lr: float, lr_final: float, what: str) -> Any:
    return option(default_factory=lambda: Stage(start, lr, lr_final), help=f"schedule of the {what}")


@dataclass
class Schedule:
    """The module schedule table: one :class:`Stage` per group of :data:`thgs.avatar.model.GROUPS`."""

    skinning: Stage = _stage(1500, 1e-4, 1e-5, "skinning-weight residual (Table 1)")
    pose: Stage = _stage(1500, 3e-5, 1e-5, "per-frame pose refinement (Table 1)")
    expression: Stage = _stage(15_000, 3e-5, 1e-5, "per-frame expression refinement (Table 1)")
    blendshapes: Stage = _stage(25_000, 3e-7, 1e-8, "learnable expression blendshapes (Table 1)")
    saam: Stage = _stage(50_000, 1e-3, 1e-4, "Spatial Audio Attention Module (Table 1)")

    def stage(self, group: str) -> Stage:
        """The stage of module parameter group ``group`` (a name in :data:`thgs.avatar.model.GROUPS`)."""
        return self._by_group()[group]

    def _by_group(self) -> dict[str, Stage]:
        return {"skinning": self.skinning, "pose": self.pose, "expression": self.expression,
                "blendshapes": self.blendshapes, "saam": self.saam}


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data."""

    preset: PresetName = option("paper", help="named preset to start from: paper (the paper's 150k-step schedule), "
                                       "fast (the same stages in 5k steps), cpu (the CPU demo), smoke (a few steps)",
                         shown_default="cpu on a CPU, fast on a GPU")
    steps: int = option(150_000, help="total optimisation steps")
    seed: int = option(0, help="random seed (Gaussians, sampler, densification)")
    device: str = option("auto", help="torch device: auto, cpu, cuda, cuda:N")
    train_size: int = option(0, help="train at this image height in pixels (0: the subject's resolution)")
    background: Optional[tuple[float, float, float]] = option(
        None, help="RGB in [0, 1] to composite training images on (default: the subject's background)")
    audio_encoder: str = option("mel", help="audio features: mel, or a feature file name under SUBJECT/features/")
    speech: bool = option(True, help="fit the speech -> face model at the end of training (RUN/speech.npz, seconds; "
                                     "drives the face from new audio: docs/speech-driving.md)")
    log_every: int = option(50, help="write a metrics line every this many steps", steps="interval")
    checkpoint_every: int = option(5000, help="write a checkpoint every this many steps (and at the end)",
                                   steps="interval")
    progress: bool = option(True, help="show a progress bar")
    compile: bool = option(False, help="compile the avatar's forward pass with torch.compile (for CUDA; the first "
                                       "steps take longer while it compiles; the same results up to rounding; "
                                       "takes the place of --cuda-graphs)")
    cuda_graphs: bool = option(True, help="on a CUDA device, record the avatar's posing pass and its backward as "
                                          "CUDA graphs and replay them each step (recorded again after each "
                                          "densification or group switch; the same results up to rounding; "
                                          "unused on a CPU)")
    # -- groups --------------------------------------------------------------------------------
    model: ModelConfig = option(default_factory=ModelConfig, help="avatar model: components (ablations) and sizes",
                                prefix="")
    render: RenderConfig = option(default_factory=RenderConfig, help="rasterization", prefix="")
    lr: GaussianRates = option(default_factory=GaussianRates, help="Gaussian learning rates (section 5.2)",
                               prefix="lr_")
    schedule: Schedule = option(default_factory=Schedule, prefix="")
    loss: LossWeights = option(default_factory=LossWeights, help="losses (Eq. 19-21)", prefix="")
    densify: DensifyOptions = option(default_factory=DensifyOptions, help="densification (adaptive density control)",
                                     prefix="densify_")


def _paper() -> TrainConfig:
    return TrainConfig(preset="paper")


def _fast() -> TrainConfig:
    # Our own schedule: every stage of the paper's, compressed ~25x, with larger learning rates for the
    # groups the paper starts late (their tiny LRs assume 100k+ steps). The normal-consistency loss is off:
    # on the 512 px synthetic subject (docs/training.md, "The normal-consistency loss") its default form
    # (silhouette band dropped, depth normals detached) no longer collapses training but changes test PSNR
    # by -0.08 dB and novel views by +0.06 dB, which does not pay for its cost. Pose/expression refinements
    # keep the paper's learning rates (1e-4 made the PSNR dip after they start).
    return replace_flat(
        _paper(), preset="fast", steps=5000, sh_degree=1,
        skinning_start=400, pose_start=400, expression_start=1500, blendshapes_start=2000, saam_start=2500,
        pose_lr=3e-5, expression_lr=3e-5, blendshapes_lr=1e-5, blendshapes_lr_final=1e-6, normal_weight=0.0,
        saam_lr=2e-3, saam_lr_final=2e-4, lr_position=3.2e-4, lr_position_final=3.2e-6,
        normal_start=3000, densify_start=300, densify_stop=4500, densify_interval=100,
        max_gaussians=120_000, log_every=50, checkpoint_every=1000,
    )


def _cpu() -> TrainConfig:
    # What the CPU demo uses: the fast stages shortened to what two cores do in a few minutes, trained at
    # the subject's own (small) resolution with RGB colours. The skinning residual (chosen when it was a dense
    # [J, R, R, R] grid whose Adam update dominated a CPU step; sparse since, skin_band) starts late, on a 32^3
    # grid, without the TV term; the
    # fused grid look-up makes a CPU step 1.36x faster (docs/benchmarks.md).
    return replace_flat(
        _fast(), preset="cpu", steps=600, sh_degree=0, grid_resolution=32, skinning_tv_weight=0.0,
        fused_skinning=True,
        skinning_start=400, pose_start=100, expression_start=160, blendshapes_start=200, saam_start=230,
        saam_lr=3e-3, saam_lr_final=3e-4, blendshapes_lr=2e-5, blendshapes_lr_final=2e-6,
        lr_position=4e-4, lr_position_final=4e-6, normal_start=400,
        densify_start=100, densify_stop=450, densify_interval=50, max_gaussians=40_000,
        log_every=25, checkpoint_every=100,
    )


def _smoke() -> TrainConfig:
    return replace_flat(
        _cpu(), preset="smoke", steps=6, grid_resolution=16, hash_levels=4, hash_log2_table=10,
        skinning_start=1, pose_start=1, expression_start=2, blendshapes_start=2, saam_start=3, normal_start=3,
        densify_start=4, densify_stop=4, densify_interval=4, log_every=1, checkpoint_every=3, progress=False,
    )


PRESETS = {"paper": _paper, "fast": _fast, "cpu": _cpu, "smoke": _smoke}
"""Each :data:`PresetName` and the function building its complete config."""


def preset_for_device(device: str) -> str:
    """The preset ``thgs train`` uses when none is named: ``fast`` on a CUDA device, ``cpu`` otherwise."""
    return "fast" if str(device).startswith("cuda") else "cpu"


class ConfigError(ThgsError, ValueError):
    """A training setting is out of range; the message names the flag and the value."""


# Learning rates that decay log-linearly (they must be > 0); the other rates may be 0 (frozen).
_DECAYING_LRS = {"lr_position", "lr_position_final", "skinning_lr", "skinning_lr_final", "pose_lr", "pose_lr_final",
                 "expression_lr", "expression_lr_final", "blendshapes_lr", "blendshapes_lr_final", "saam_lr",
                 "saam_lr_final"}
# name -> (lowest, highest) allowed, inclusive; None: unbounded.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "steps": (1, None), "seed": (0, 2**32 - 1), "train_size": (0, None), "grid_resolution": (2, None),
    "skin_band": (-1, None),
    "sh_degree": (0, 3), "hash_levels": (1, 32), "hash_log2_table": (1, 24), "init_colors": (0, None),
    "lambda_dssim": (0, 1), "densify_interval": (1, None), "densify_grad_threshold": (0, None),
    "min_opacity": (0, 1), "max_gaussians": (1, None), "log_every": (1, None), "checkpoint_every": (1, None),
}
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bounds(name: str) -> tuple[float | None, float | None, bool]:
    """(lowest, highest, lowest excluded) for a numeric field."""
    if name in _RANGES:
        lo, hi = _RANGES[name]
        return lo, hi, False
    if name in _DECAYING_LRS or name == "percent_dense":
        return 0, None, True
    if name == "init_opacity":
        return 0, 1, True
    if name.startswith("lr_") or name.endswith("_weight") or name.endswith("_start") or name.endswith("_stop"):
        return 0, None, False
    return None, None, False


def _leaves(cfg: TrainConfig):
    """(flat name, value, type) of every leaf setting of ``cfg``."""
    for flat, path in flat_names(TrainConfig).items():
        yield flat, get_path(cfg, path), leaf_field(TrainConfig, path)[1]


def config_problems(cfg: TrainConfig) -> list[str]:
    """Every out-of-range setting of ``cfg``, one line each naming its flag: non-finite or out-of-range numbers
    (learning rates, weights, thresholds), intervals < 1, values outside a ``Literal`` field's choices (the
    preset, backend, mode and skinning), a bad device or audio encoder."""
    problems: list[str] = []
    for name, value, ftype in _leaves(cfg):
        if name == "background":
            if value is not None and (len(value) != 3 or not all(isinstance(c, (int, float)) and math.isfinite(c)
                                                                  and 0 <= c <= 1 for c in value)):
                problems.append(f"--background {' '.join(map(str, value))}: needs three numbers in [0, 1]")
            continue
        if ftype is bool:
            if not isinstance(value, bool):
                problems.append(f"{_flag(name)} {value!r}: must be true or false")
            continue
        if ftype in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{_flag(name)} {value!r}: must be a number")
                continue
            if ftype is int and not isinstance(value, int):
                problems.append(f"{_flag(name)} {value!r}: must be a whole number")
                continue
            if not math.isfinite(value):
                problems.append(f"{_flag(name)} {value}: must be a finite number")
                continue
            lo, hi, open_lo = _bounds(name)
            if lo is not None and (value <= lo if open_lo else value < lo):
                problems.append(f"{_flag(name)} {value}: must be {'>' if open_lo else '>='} {lo:g}"
                                + (f" and <= {hi:g}" if hi is not None else ""))
            elif hi is not None and (value >= hi if name == "init_opacity" else value > hi):
                problems.append(f"{_flag(name)} {value}: must be {'<' if name == 'init_opacity' else '<='} {hi:g}")
            continue
        if typing.get_origin(ftype) is Literal and value not in typing.get_args(ftype):
            problems.append(f"{_flag(name)} {value!r}: choose one of {', '.join(typing.get_args(ftype))}")
    if not isinstance(cfg.device, str) or not _DEVICE_RE.match(cfg.device):
        problems.append(f"--device {cfg.device!r}: choose auto, cpu, cuda or cuda:N")
    if not cfg.audio_encoder:
        problems.append("--audio-encoder: must name an encoder")
    return problems


def validate_config(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` naming the first out-of-range setting (see :func:`config_problems`)."""
    problems = config_problems(cfg)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def preset(name: str) -> TrainConfig:
    """A fresh copy of a named preset."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def scaled_steps(cfg: TrainConfig, steps: int) -> TrainConfig:
    """``cfg`` with ``steps`` total steps and every step setting of every group (the fields marked
    ``steps``: stage starts, the normal loss's start, the densification window and interval, the logging and
    checkpoint intervals) scaled by the same factor (for short test runs of long presets). Start steps stay
    >= 1 when they were > 0; intervals stay >= 1."""
    f = steps / max(1, cfg.steps)
    out = dataclasses.replace(cfg, steps=steps)
    for path in flat_names(TrainConfig).values():
        kind = leaf_field(TrainConfig, path)[0].metadata.get("steps")
        if kind is None:
            continue
        v = get_path(cfg, path)
        low = 1 if (kind == "interval" or v > 0) else 0
        out = replace_path(out, path, max(low, int(round(v * f))))
    return out


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a saved config dict describes (``config.json``'s ``config``, a checkpoint's
    ``config``): the nested layout :func:`thgs.config.to_dict` writes, or the flat one (every setting a
    top-level key named as its flag) thgs wrote before the groups, converted by :func:`flat_to_nested`.
    ``ValueError`` for a key that names no setting."""
    if not isinstance(data, dict):
        raise ValueError("the config is not a mapping of settings")
    return from_dict(TrainConfig, flat_to_nested(data))


def flat_to_nested(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict in the nested layout: the keys of the flat layout (a leaf's flat name, e.g.
    ``densify_start``, ``lambda_dssim``, ``pose_lr``) moved to their group (``{"densify": {"start": ...}}``);
    keys already nested, and unknown keys (refused when the config is built), are kept as they are."""
    paths = flat_names(TrainConfig)
    groups = {path[0] for path in paths.values() if len(path) > 1}
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = (key,) if key in groups else paths.get(key, (key,))
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})
        if isinstance(value, dict) and isinstance(node.get(path[-1]), dict):
            node[path[-1]].update(value)
        else:
            node[path[-1]] = value
    return out


__all__ = ["PRESETS", "Backend", "ConfigError", "DensifyOptions", "GaussianRates", "LossWeights", "Mode", "ModelConfig",
           "PresetName", "RenderConfig", "Schedule", "Skinning", "Stage", "TrainConfig", "config_from_dict",
           "config_problems", "flat_to_nested", "preset", "preset_for_device", "replace_flat", "scaled_steps",
           "validate_config"]
