"""The training objective as one function: named terms and their weighted total (Eq. 20-21)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from thgs.render.base import render
from thgs.runs.config import preset, replace_flat, scaled_steps
from thgs.runs.frames import frame_inputs
from thgs.train.objective import step_losses
from thgs.train.trainer import Trainer


def test_step_losses_name_every_term_and_weight_the_total(tiny_subject, tiny_body_model, tmp_path):
    cfg = replace_flat(scaled_steps(preset("smoke"), 6), grid_resolution=16, hash_levels=4,
                              hash_log2_table=10, progress=False, max_gaussians=600, normal_weight=0.05)
    tr = Trainer(cfg, tiny_subject, tmp_path / "run", body=tiny_body_model)
    for _ in range(5):  # every module active
        tr.train_step()
    inputs = frame_inputs(tr.params, tr.data.audio, 0, refine=True)
    out = tr.forward(inputs)
    res = render(out.gaussians, tr.camera, tr.background, mode=cfg.render.mode, backend=tr.backend, outputs="full")
    gt = tr._image(0)
    w = tr.weights
    parts = step_losses(tr.model, out, res, gt, w, normal=True)
    assert set(parts) == {"recon", "vertex", "leb", "normal", "loss"} | ({"skinning_tv"} if w.skinning_tv else set())
    total = (parts["recon"] + w.vertex * parts["vertex"] + w.leb * parts["leb"] + w.normal * parts["normal"]
             + (w.skinning_tv * parts["skinning_tv"] if "skinning_tv" in parts else 0))
    assert float(parts["loss"].detach()) == pytest.approx(float(total.detach()), rel=1e-6)
    assert parts["loss"].requires_grad
    # a zero weight drops its term; no normals asked for, no normal term
    off = step_losses(tr.model, out, res, gt, dataclasses.replace(w, vertex=0.0, leb=0.0), normal=False)
    assert set(off) == {"recon", "loss"} | ({"skinning_tv"} if w.skinning_tv else set())
    assert float(off["recon"].detach()) == pytest.approx(float(parts["recon"].detach()))
    # the vertex hinge: a margin larger than every offset makes the term zero
    far = step_losses(tr.model, out, res, gt, dataclasses.replace(w, vertex_margin=1e3))
    assert float(far["vertex"].detach()) == 0.0 < float(parts["vertex"].detach())
    # per-pixel weights change the reconstruction term
    pw = torch.ones(gt.shape[:2] + (1,))
    pw[: gt.shape[0] // 2] = 0.0
    assert float(step_losses(tr.model, out, res, gt, w, pixel_weights=pw)["recon"].detach()) != pytest.approx(
        float(parts["recon"].detach()))
