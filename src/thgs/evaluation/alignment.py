"""Table 7: how well the body lines up with the video, as the landmark distance (LMD, pixels) between the
detected 2D keypoints and the body model's corresponding points projected through the subject's camera.

Three rows, per region (body, face, hands; :data:`thgs.prepare.correspond.REGIONS`):

- ``before_fma`` and ``after_fma``: what ``thgs prepare`` measured before and after its FMA fit
  (``prepare.json``, every valid frame);
- ``after_training``: the FMA parameters plus the per-frame pose and expression refinements the joint
  optimisation learnt in training (section 4.5), on the training frames, next to ``after_fma`` on the same
  frames (``after_fma_train``) so that the two are directly comparable.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from thgs.metrics.regions import project_points

CONFIDENCE = 0.2  # keypoints below this confidence are not scored (the fit's default threshold)


@torch.no_grad()
def _project(model: Any, subject: Any, frames: list[int], refined: bool, corr: Any) -> np.ndarray:
    """[N, K, 2] pixel positions of the correspondence's points on ``frames``: the subject's parameters, plus
    the run's per-frame refinements with ``refined`` (exactly as the model applies them in training)."""
    from thgs.runs.frames import FrameParams, frame_inputs, subject_camera

    body = model.body
    dev = body.v_template.device
    params = FrameParams.from_subject(subject).to(dev)
    effective = [model.effective_inputs(frame_inputs(params, None, f, refine=refined)) for f in frames]
    pose = torch.stack([p for p, _ in effective])
    transl = params.transl[frames]
    betas = params.betas[None].expand(len(frames), -1)
    expr = None
    if body.num_expressions:
        E = body.num_expressions
        expr = torch.nn.functional.pad(torch.stack([e for _, e in effective]), (0, E))[:, :E]
    cam = subject_camera(subject)
    K, w2c = cam.K.to(dev), cam.world_to_cam.to(dev)
    out = []
    for s in range(0, len(frames), 64):
        sl = slice(s, s + 64)
        bo = body(pose[sl], betas[sl], None if expr is None else expr[sl], transl[sl])
        pts = corr.model_points(body, bo.vertices, bo.joints)
        out.append(project_points(pts.reshape(-1, 3), K, w2c).reshape(pts.shape[0], pts.shape[1], 2).cpu())
    return torch.cat(out).numpy()


def keypoint_alignment(model: Any, subject: Any) -> dict[str, Any]:
    """The Table 7 rows of a trained avatar on its prepared subject (see the module docstring).

    Returns ``{"skipped": reason}`` for a subject without ``keypoints.npz`` (e.g. a synthetic one)."""
    from thgs.prepare.correspond import correspondence_for
    from thgs.prepare.fit import keypoint_weights, landmark_distance

    kp_path = subject.root / "keypoints.npz"
    if not kp_path.exists():
        return {"skipped": "the subject has no keypoints.npz (not made by thgs prepare)"}
    with np.load(kp_path, allow_pickle=False) as z:
        kp2d = np.asarray(z["kp2d"], np.float32)
        valid = np.asarray(z["valid"] if "valid" in z else z["person"], bool)
    refine = getattr(model, "refine", None)
    test = set(int(f) for f in subject.split.get("test", []))
    train = [f for f in range(int(subject.num_frames)) if f not in test and valid[f]]
    if not train:
        return {"skipped": "no valid training frame"}
    corr = correspondence_for(model.body)
    target = kp2d[train][:, corr.keypoints, :2]
    weight = keypoint_weights(kp2d[train][:, corr.keypoints], np.ones(len(train), bool), subject.width,
                              subject.height, CONFIDENCE)
    out: dict[str, Any] = {"frames": len(train)}
    try:
        prep = json.loads((subject.root / "prepare.json").read_text(encoding="utf-8"))
        fit = prep.get("fit") or {}
        if "lmd_before" in fit:
            out["before_fma"], out["after_fma"] = fit["lmd_before"], fit["lmd_after"]
    except (OSError, ValueError):
        pass
    out["after_fma_train"] = landmark_distance(_project(model, subject, train, False, corr), target, weight,
                                               corr.keypoints)
    if refine is not None and refine.num_frames == int(subject.num_frames):
        out["after_training"] = landmark_distance(_project(model, subject, train, True, corr), target, weight,
                                                  corr.keypoints)
    else:
        out["after_training"] = {"skipped": "the run learnt no per-frame refinements"}
    return out


__all__ = ["keypoint_alignment"]
