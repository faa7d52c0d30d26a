"""The training loop: multi-stage optimisation of a :class:`THGSAvatar` on one subject.

The run folder's layout and the avatar part of a checkpoint are :mod:`thgs.runs.avatar_io`'s. A checkpoint
written here adds both optimisers, the RNG states (torch, numpy, python), the step and the sampler's order
and position, so a resumed run continues bit-for-bit where the stopped one was (on the same device).
Checkpoints hold tensors and plain data only and are read without running code from the file
(:mod:`thgs.runs.checkpoint`).

``config.json`` records the subject both as an absolute path and relative to the run folder, so the run
works from any directory and after the run folder (with its subject beside it) is moved; and it records the
rasterizer the run resolved ``backend`` to.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from thgs.avatar.densify import DensifyStrategy
from thgs.avatar.gaussians import body_height, body_scale
from thgs.avatar.model import GROUPS
from thgs.avatar.refine import exponential_lr
from thgs.config import to_dict
from thgs.render.base import render
from thgs.errors import ThgsError
from thgs.runs.avatar_io import (CHECKPOINT, CONFIG, FINAL, METRICS, avatar_record, build_avatar, build_body,
                                 load_model_state, subject_record)
from thgs.runs.checkpoint import numpy_rng_state, read_checkpoint, set_numpy_rng_state
from thgs.runs.config import TrainConfig, validate_config
from thgs.runs.frames import frame_inputs, load_audio_windows
from thgs.train.data import FrameSampler, TrainingData
from thgs.train.graphed import GraphedForward, make_forward, make_objective, model_signature
from thgs.utils.io import save_torch, write_json

GAUSSIAN_PARAMS = ("means", "quats", "log_scales", "opacity_logits", "sh")
STAGE_BYTES = 4 << 30
"""Training images up to this many bytes (uint8) are copied to the GPU once; larger sets are pinned."""


class TrainingDiverged(ThgsError, RuntimeError):
    """The loss became NaN or infinite: the run stops without writing that state."""


def versions(device: str) -> dict:
    from thgs import __version__
    from thgs.utils.device import gsplat_status

    return {"thgs": __version__, "torch": torch.__version__, "device": device,
            "gsplat": gsplat_status().get("version")}


class Trainer:
    """Owns the avatar, the optimisers, the data cache and the loop.

    Args:
        cfg: the resolved config.
        subject: an opened subject (``thgs.data.subject`` interface).
        run_dir: where config, metrics and checkpoints go.
        resume: continue from ``run_dir/checkpoint.pt`` if it exists.
        checkpoint: an already read checkpoint dict to continue from (instead of reading the file).

    Raises ``ValueError`` subclasses (:class:`thgs.runs.config.ConfigError`, :class:`thgs.runs.checkpoint.CheckpointError`) for a
    bad config or checkpoint before any file is written.
    """

    def __init__(self, cfg: TrainConfig, subject: Any, run_dir: str | Path, *, resume: bool = False,
                 body=None, checkpoint: dict | None = None) -> None:
        from thgs.render.base import resolve_backend
        from thgs.utils.device import default_device

        validate_config(cfg)
        self.cfg = cfg
        self.subject = subject
        self.run_dir = Path(run_dir)
        self.device = torch.device(default_device(None if cfg.device == "auto" else cfg.device))
        self.backend, self.backend_note = resolve_backend(cfg.render.backend, self.device)
        _seed_everything(cfg.seed)
        audio = load_audio_windows(subject, cfg)
        self.data = TrainingData(subject, list(subject.split["train"]), train_size=cfg.train_size,
                                 background=cfg.background, audio=audio.to(self.device) if audio is not None else None,
                                 edge_band=cfg.loss.edge_band, edge_band_weight=cfg.loss.edge_band_weight)
        self.params = self.data.params.to(self.device)
        self.camera = self.data.camera.to(self.device)
        self.background = self.data.background.to(self.device)
        body = body if body is not None else build_body(getattr(subject, "body", None), cfg.model.teeth,
                                                        f"subject {getattr(subject, 'root', subject.name)}")
        self.model = build_avatar(cfg, body, int(subject.num_frames),
                                  audio.shape[-1] if audio is not None else 0).to(self.device)
        self.extent = body_height(body)
        # the avatar's forward pass and the loss terms: replayed from CUDA graphs on a GPU (thgs.train.graphed),
        # the forward compiled when asked, else eager
        self.forward = make_forward(self.model, cfg, self.device)
        self.graphed = isinstance(self.forward, GraphedForward)
        self.sampler = FrameSampler(self.data.frames, cfg.seed)
        self.densify = DensifyStrategy(cfg.densify, self.extent)
        self.weights = cfg.loss.for_body(body_scale(body))
        self.losses = make_objective(self.model, self.weights, cfg, self.device)
        self._images: Tensor | None = None
        self._masks: Tensor | None = None
        self.step = 0
        self.last: dict[str, Tensor | float] = {}
        ckpt_path = self.run_dir / CHECKPOINT
        ckpt = checkpoint
        if ckpt is None and resume and ckpt_path.exists():
            ckpt = read_checkpoint(ckpt_path, map_location="cpu")
        if ckpt is not None:
            load_model_state(self.model, ckpt, ckpt_path, self.device)
        elif cfg.model.init_colors > 0:
            from thgs.train.init_colors import init_colors_from_frames

            init_colors_from_frames(self.model, self.data, self.camera, self.background, cfg.model.init_colors,
                                    mode=cfg.render.mode, backend=cfg.render.backend)
        self._build_optimizers()
        if ckpt is not None:
            self._restore(ckpt)

    # -- optimisers ----------------------------------------------------------------------------
    def _build_optimizers(self) -> None:
        st = self.model.state
        gauss = [{"params": [st.params[n]], "lr": 0.0, "name": n} for n in GAUSSIAN_PARAMS]
        self.gauss_opt = torch.optim.Adam(gauss, lr=0.0, eps=1e-15, **adam_options(gauss))
        groups = [{"params": self.model.group_parameters(g), "lr": 0.0, "name": g} for g in GROUPS
                  if self.model.group_parameters(g)]
        self.module_opt = torch.optim.Adam(groups, lr=0.0, eps=1e-15, **adam_options(groups)) if groups else None

    def _set_learning_rates(self, step: int) -> dict[str, float]:
        steps, rates, schedule = self.cfg.steps, self.cfg.lr, self.cfg.schedule
        lrs: dict[str, float] = {}
        position = exponential_lr(step, 0, steps, rates.position * self.extent, rates.position_final * self.extent)
        base = {"means": position, "quats": rates.rotation, "log_scales": rates.scale, "opacity_logits": rates.opacity,
                "sh": rates.color}
        for group in self.gauss_opt.param_groups:
            group["lr"] = base[group["name"]]
            lrs[group["name"]] = group["lr"]
        for g in GROUPS:
            active = step >= schedule.stage(g).start
            if self.model.is_active(g) != active:
                self.model.set_group_active(g, active)
                if g == "saam" and active:
                    self.model.refresh_mouth()  # the mouth Gaussians where the means are when SAAM starts
        if self.module_opt is not None:
            for group in self.module_opt.param_groups:
                stage = schedule.stage(group["name"])
                group["lr"] = exponential_lr(step, stage.start, steps, stage.lr, stage.lr_final)
                lrs[group["name"]] = group["lr"]
        return lrs

    # -- one step ------------------------------------------------------------------------------
    def normal_loss_on(self, step: int) -> bool:
        """Whether step ``step`` (0-based) adds the 2DGS normal-consistency term (and so renders normals)."""
        return self.cfg.render.mode == "2dgs" and step >= self.weights.normal_start and self.weights.normal > 0

    def train_step(self) -> dict[str, Tensor | float]:
        """One optimisation step. The loss terms come back as detached 0-d tensors on the device (reading them
        waits for the device: :func:`read_terms` does that, on the steps that log); the rest are floats."""
        step = self.step
        lrs = self._set_learning_rates(step)
        frame = self.sampler.next()
        gt = self._image(frame)
        inputs = frame_inputs(self.params, self.data.audio, frame, refine=True)
        key = model_signature(self.model) if self.graphed else None  # what the recordings were made for
        out = self.forward(inputs, model_key=key) if self.graphed else self.forward(inputs)
        normal_on = self.normal_loss_on(step)
        res = render(out.gaussians, self.camera, self.background, mode=self.cfg.render.mode, backend=self.backend,
                     outputs="full" if normal_on else "rgb")
        self.densify.step_pre_backward(step, res.means2d)
        parts = self.losses(out, res, gt, pixel_weights=self._pixel_weights(frame), normal=normal_on, model_key=key)
        loss = parts.pop("loss")
        terms: dict[str, Tensor | float] = {k: v.detach() for k, v in parts.items()}
        self.gauss_opt.zero_grad(set_to_none=True)
        if self.module_opt is not None:
            self.module_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.densify.step_post_backward(self.model.state, step, res.means2d, res.radii, self.camera.width,
                                        self.camera.height)
        self.gauss_opt.step()
        if self.module_opt is not None:
            self.module_opt.step()
        self.step += 1
        info = self.densify.step_post_optimizer(self.model.state, step, optimizers=[self.gauss_opt])
        if info is not None:
            self.model.refresh_mouth()  # the set of Gaussians changed
            terms.update({f"densify_{k}": float(v) for k, v in info.items()})
        with torch.no_grad():
            mse = (res.rgb.detach().clamp(0, 1) - gt).square().mean()
            psnr = -10 * torch.log10(mse.clamp_min(1e-10))
        terms.update(loss=loss.detach(), psnr=psnr, num_gaussians=float(self.model.num_gaussians), frame=float(frame))
        terms.update({f"lr_{k}": v for k, v in lrs.items()})
        self.last = terms
        return terms

    def _image(self, frame: int) -> Tensor:
        """The frame's target image [H, W, 3] in [0, 1] on the device (see :meth:`_stage_images`)."""
        if self._images is None:
            self._stage_images()
        assert self._images is not None
        return self._images[self.data.row[frame]].to(self.device, non_blocking=True).float() / 255.0

    def _pixel_weights(self, frame: int) -> Tensor | None:
        if self.data.edge_band <= 0 or self.data.masks is None:
            return None
        from thgs.avatar.losses import silhouette_weights

        if self._images is None:
            self._stage_images()
        assert self._masks is not None
        mask = self._masks[self.data.row[frame]].to(self.device, non_blocking=True).float()[..., None] / 255.0
        return silhouette_weights(mask, self.data.edge_band, self.data.edge_band_weight)

    def _stage_images(self) -> None:
        """Make the training images (uint8, and the masks when the loss weights pixels by them) ready for
        copy-free steps: on a GPU they are copied to it once when they take at most ``STAGE_BYTES``, else put
        in pinned host memory (each step's copy then overlaps the computation); on a CPU they stay as they are."""
        use_masks = self.data.edge_band > 0 and self.data.masks is not None
        tensors = [self.data.images] + ([self.data.masks] if use_masks else [])
        if self.device.type == "cuda":
            total = sum(t.numel() * t.element_size() for t in tensors)
            tensors = [t.to(self.device) if total <= STAGE_BYTES else t.pin_memory() for t in tensors]
        self._images = tensors[0]
        self._masks = tensors[1] if use_masks else None

    # -- loop ------------------------------------------------------------------------------------
    def train(self, stop_after: int | None = None, callback: Callable[[int, dict], None] | None = None) -> dict:
        """Train until ``cfg.steps`` (or until ``stop_after`` steps are completed, to simulate a stop).
        Returns the last step's terms."""
        c = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        end = c.steps if stop_after is None else min(c.steps, stop_after)
        bar = None
        if c.progress:
            from tqdm import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        t0 = time.perf_counter()
        finite: Tensor | bool = True  # every loss since the last check was finite (on the device: no sync)
        try:
            while self.step < end:
                terms = self.train_step()
                finite = finite & _isfinite(terms["loss"])
                logs = self.step % c.log_every == 0 or self.step == c.steps
                saves = (self.step % c.checkpoint_every == 0 and self.step < c.steps) or self.step >= end
                # The loss values are read (a device sync on a GPU) only where they are used: the steps
                # that log, save or call back. Divergence is caught there, before anything is written.
                if logs or saves or callback is not None:
                    if not bool(finite):
                        raise TrainingDiverged(
                            f"{self.run_dir}: step {self.step}: the loss is not finite (training diverged; "
                            f"checked every step that logs or saves); nothing of this step was saved (last "
                            f"checkpoint: {CHECKPOINT}); lower the learning rates")
                    finite = True
                    terms = read_terms(terms)
                    self.last = terms
                if bar is not None:
                    bar.update(1)
                    if logs:
                        bar.set_postfix(loss=f"{terms['loss']:.4f}", psnr=f"{terms['psnr']:.2f}",
                                        N=int(terms["num_gaussians"]))
                if logs:
                    self._log({"step": self.step, "time_s": time.perf_counter() - t0, **terms})
                if callback is not None:
                    callback(self.step, terms)
                if self.step % c.checkpoint_every == 0 and self.step < c.steps:
                    self.save(self.run_dir / CHECKPOINT)
        finally:
            if bar is not None:
                bar.close()
        if self.step >= c.steps:
            self.save(self.run_dir / CHECKPOINT)
            self.save(self.run_dir / FINAL)
            if c.speech:  # the speech -> face model (thgs.animate.speech), seconds
                from thgs.animate.speech import write_run_speech

                write_run_speech(self.run_dir, self.model, self.subject, c)
        elif stop_after is not None:
            self.save(self.run_dir / CHECKPOINT)
        return self.last

    def _log(self, record: dict) -> None:
        with open(self.run_dir / METRICS, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def _write_config(self) -> None:
        path = self.run_dir / CONFIG
        write_json(path, {"config": to_dict(self.cfg), "versions": versions(str(self.device)), "seed": self.cfg.seed,
                          "subject": subject_record(getattr(self.subject, "root", None), self.run_dir,
                                                    getattr(self.subject, "name", None)),
                          "rasterizer": {"backend": self.cfg.render.backend, "used": self.backend,
                                         **({"note": self.backend_note} if self.backend_note else {})},
                          "frame_selection": self.data.selection.summary()})

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> dict:
        """The avatar record (:func:`thgs.runs.avatar_io.avatar_record`) plus the state training resumes from."""
        audio_channels = int(self.data.audio.shape[-1]) if self.data.audio is not None else 0
        return {
            **avatar_record(self.model, self.cfg, num_frames=int(self.subject.num_frames),
                            audio_channels=audio_channels, body_spec=getattr(self.subject, "body", None)),
            "step": self.step,
            "gauss_opt": self.gauss_opt.state_dict(),
            "module_opt": self.module_opt.state_dict() if self.module_opt is not None else None,
            "sampler": self.sampler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": numpy_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def save(self, path: str | Path) -> None:
        save_torch(path, self.checkpoint())

    def _restore(self, ckpt: dict) -> None:
        self.step = int(ckpt["step"])
        for g, a in ckpt["active"].items():
            self.model.set_group_active(g, a)
        self._build_optimizers()  # parameters were replaced by load_state_dict; groups follow activity
        self.gauss_opt.load_state_dict(ckpt["gauss_opt"])
        if self.module_opt is not None and ckpt["module_opt"] is not None:
            self.module_opt.load_state_dict(ckpt["module_opt"])
        for opt in (self.gauss_opt, self.module_opt):  # the implementation follows this device, not the file's
            if opt is not None:
                _set_fused(opt, bool(adam_options(opt.param_groups).get("fused", False)))
        self.sampler.load_state_dict(ckpt["sampler"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        set_numpy_rng_state(rng["numpy"])
        random.setstate(_python_rng_state(rng["python"]))
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def read_terms(terms: dict[str, Tensor | float]) -> dict[str, float]:
    """A step's terms as plain floats (tensors read back from the device, one transfer for all of them)."""
    names = [k for k, v in terms.items() if isinstance(v, Tensor)]
    values = torch.stack([terms[k].reshape(()).float() for k in names]).tolist() if names else []  # type: ignore[union-attr]
    read = dict(zip(names, values))
    return {k: (read[k] if k in read else float(v)) for k, v in terms.items()}


def _isfinite(value: Tensor | float) -> Tensor | bool:
    return torch.isfinite(value) if isinstance(value, Tensor) else math.isfinite(value)


def adam_options(groups: list[dict]) -> dict:
    """Extra ``torch.optim.Adam`` options for these parameter groups: the fused CUDA implementation (one kernel
    for every parameter) when all of them are on CUDA; none on a CPU (the default implementation, as before)."""
    params = [p for g in groups for p in g["params"]]
    if params and all(p.is_cuda for p in params):
        return {"fused": True}
    return {}


def _set_fused(opt: torch.optim.Optimizer, fused: bool) -> None:
    """Switch an Adam between the fused CUDA implementation and the default one, with its step counters where
    that implementation keeps them (on the parameter's device when fused, on the host otherwise)."""
    for group in opt.param_groups:
        group["fused"] = True if fused else None
        for p in group["params"]:
            state = opt.state.get(p)
            if state and isinstance(state.get("step"), Tensor):
                state["step"] = state["step"].to(p.device if fused else "cpu", torch.float32)


def _python_rng_state(state: Any) -> tuple:
    """``random.getstate()`` comes back from a checkpoint as nested tuples or lists; setstate wants tuples."""
    version, internal, gauss = state
    return (int(version), tuple(int(x) for x in internal), gauss)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


__all__ = ["Trainer", "TrainingDiverged", "adam_options", "read_terms", "versions"]
