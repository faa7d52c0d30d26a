"""A tiny subject (the tiny procedural body of tests/avatar, 48x48 px, 16 frames, with audio), written
once per test session with the subject writer, rendered from a 'true' avatar with random colours."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar.tiny_body import make_tiny_body
from thgs.avatar.model import AvatarOptions, FrameInputs, THGSAvatar
from thgs.data.subject import open_subject
from thgs.data.writer import write_subject
from thgs.render import Camera, render

T, SIZE, FPS = 16, 48, 25


def _write(root: Path) -> Path:
    body = make_tiny_body()
    g = torch.Generator().manual_seed(1)
    truth = THGSAvatar(body, AvatarOptions(skinning="parent", saam=False, leb=False), num_frames=T)
    with torch.no_grad():
        truth.state.params["sh"][:, 0] = torch.randn(truth.num_gaussians, 3, generator=g)
        truth.state.params["log_scales"] += 0.3
    t = torch.arange(T, dtype=torch.float32)
    pose = torch.zeros(T, body.num_joints, 3)
    pose[:, 1, 2] = 0.2 * torch.sin(t / 3)
    pose[:, 2, 0] = 0.1 * torch.cos(t / 2)
    expression = torch.stack([torch.sin(t) * 2, torch.cos(t / 2)], -1)
    transl = torch.zeros(T, 3)
    betas = torch.zeros(body.num_betas)
    cam = Camera.look_at(torch.tensor([0.0, 1.1, 3.2]), torch.tensor([0.0, 1.1, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
                         40.0, SIZE, SIZE)
    frames, masks = [], []
    bg = torch.tensor([1.0, 1.0, 1.0])
    with torch.no_grad():
        for i in range(T):
            gs = truth(FrameInputs(pose=pose[i], transl=transl[i], betas=betas, expression=expression[i]))
            r = render(gs, cam, bg, mode="3dgs", backend="reference")
            frames.append((r.rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            masks.append((r.alpha[..., 0] > 0.5).numpy())
    sr = 16000
    n = int(math.ceil(T / FPS * sr))
    audio = (0.1 * np.sin(np.arange(n) / sr * 2 * np.pi * 220) * np.sin(np.arange(n) / sr * 7)).astype(np.float32)
    return write_subject(root, frames=frames, masks=masks, fps=FPS, camera=cam, audio=(audio, sr),
                         params={"pose": pose.numpy(), "transl": transl.numpy(), "betas": betas.numpy(),
                                 "expression": expression.numpy()},
                         body={"model": "toy"}, split={"train": list(range(0, 12)), "test": list(range(12, 16))},
                         name="tiny", background=(1.0, 1.0, 1.0), progress=False)


@pytest.fixture(scope="session")
def tiny_subject_path(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("subjects") / "tiny")


@pytest.fixture
def tiny_subject(tiny_subject_path):
    return open_subject(tiny_subject_path)


@pytest.fixture
def tiny_body_model():
    return make_tiny_body()
