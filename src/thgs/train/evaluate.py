"""Evaluation of a trained avatar: test-split PSNR/SSIM (full frame and mouth/head regions) and
novel-view PSNR/SSIM against a subject's extra ground-truth views."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from thgs.animate.drive import Drive, subject_drive
from thgs.animate.render import render_frame
from thgs.avatar.model import THGSAvatar
from thgs.metrics.image import psnr, ssim
from thgs.runs.frames import composite, select_frames, subject_camera


def _regions(model: THGSAvatar, drive: Drive, t: int) -> dict:
    from thgs.metrics.regions import body_region_boxes, project_points

    body = model.body
    inp = drive.inputs(t)
    dev = body.v_template.device
    out = body(inp.pose[None].to(dev), inp.betas[None].to(dev), inp.expression[None].to(dev), inp.transl[None].to(dev))
    cam = drive.camera(t)
    v2 = project_points(out.vertices[0], cam.K.to(dev), cam.world_to_cam.to(dev))
    j2 = project_points(out.joints[0], cam.K.to(dev), cam.world_to_cam.to(dev))
    return body_region_boxes(body, v2, cam.width, cam.height, joints_2d=j2)


@torch.no_grad()
def evaluate_drive(model: THGSAvatar, drive: Drive, target: Callable[[int], Tensor], background: Tensor,
                   mode: str = "2dgs", backend: str = "auto", regions: bool = True,
                   on_frame: Callable[[int, Tensor], None] | None = None) -> dict[str, Any]:
    """Mean PSNR/SSIM over the drive's frames against ``target(t)`` (float [H, W, 3]); with ``regions`` also
    head and mouth PSNR/SSIM (boxes from the projected body). ``on_frame(t, image)`` receives every
    rendered frame (e.g. to write a video without rendering twice)."""
    from thgs.metrics.regions import region_metrics

    ps, ss, reg = [], [], {}
    for t in range(len(drive)):
        pred = render_frame(model, drive, t, background, mode, backend).cpu()
        if on_frame is not None:
            on_frame(t, pred)
        gt = target(t)
        ps.append(float(psnr(pred, gt)))
        ss.append(float(ssim(pred, gt)))
        if regions:
            boxes = _regions(model, drive, t)
            for name, m in region_metrics(pred, gt, {k: b for k, b in boxes.items() if k != "full"},
                                          lpips_net=None).items():
                for k, v in m.items():
                    reg.setdefault(name, {}).setdefault(k, []).append(v)
    out: dict[str, Any] = {"psnr": float(np.mean(ps)) if ps else float("nan"),
                           "ssim": float(np.mean(ss)) if ss else float("nan"), "frames": len(ps)}
    for name, m in reg.items():
        out[name] = {k: float(np.mean(v)) for k, v in m.items()}
    return out


def evaluate_subject(model: THGSAvatar, subject: Any, background: Tensor, audio: Tensor | None,
                     mode: str = "2dgs", backend: str = "auto", max_frames: int | None = None,
                     views: bool = True, view_stride: int = 1,
                     on_test_frame: Callable[[int, Tensor], None] | None = None) -> dict[str, Any]:
    """Test split (own camera; frames without a person skipped, see :func:`thgs.runs.frames.select_frames`)
    and every extra view of the subject (every ``view_stride``-th of its frames).
    ``audio``: [T, 8, 16, C] or None; ``on_test_frame(t, image)`` receives the rendered test frames."""
    selection = select_frames(subject, list(subject.split["test"]))
    frames = selection.kept
    if max_frames is not None:
        frames = frames[:max_frames]
    cam = subject_camera(subject)
    drive = subject_drive(subject, frames, cam, audio)

    def gt_test(t: int) -> Tensor:
        i = frames[t]
        m = subject.mask(i) if getattr(subject, "has_masks", False) else None
        return composite(np.asarray(subject.image(i)), m, background.cpu()).float() / 255.0

    result: dict[str, Any] = {"test": evaluate_drive(model, drive, gt_test, background, mode, backend,
                                                     on_frame=on_test_frame)}
    result["test"]["frame_selection"] = selection.summary()
    if views:
        nv: dict[str, Any] = {}
        for name, info in (getattr(subject, "views", None) or {}).items():
            vframes = [f for f in info["frames"] if f in set(subject.split["test"])] or list(info["frames"])
            vframes = vframes[::max(1, view_stride)]
            if max_frames is not None:
                vframes = vframes[:max_frames]
            vdrive = subject_drive(subject, vframes, info["camera"], audio)

            def gt_view(t: int, name=name, vframes=vframes, masks=info.get("masks", False)) -> Tensor:
                m = subject.view_mask(name, vframes[t]) if masks else None
                return composite(np.asarray(subject.view(name, vframes[t])), m, background.cpu()).float() / 255.0

            nv[name] = evaluate_drive(model, vdrive, gt_view, background, mode, backend, regions=False)
            nv[name]["frame_stride"] = max(1, view_stride)
        if nv:
            result["novel_views"] = nv
            result["novel_view_psnr"] = float(np.mean([v["psnr"] for v in nv.values()]))
            result["novel_view_ssim"] = float(np.mean([v["ssim"] for v in nv.values()]))
    return result


__all__ = ["evaluate_drive", "evaluate_subject"]
