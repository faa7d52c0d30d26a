"""The real-video data paths on a small fixture: masked compositing on white (training batch and evaluation
ground truth), frames without a person skipped and counted, the short-clip split, silhouette weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar.tiny_body import make_tiny_body
from thgs.avatar import losses as L
from thgs.data import open_subject, video_split, write_subject
from thgs.data.format import default_split
from thgs.render import Camera
from thgs.runs.config import preset, replace_flat, scaled_steps
from thgs.runs.frames import KEYPOINTS_FILE, mask_is_empty, person_flags, select_frames
from thgs.train.data import FrameSampler, TrainingData

T, H, W, FPS = 14, 24, 32, 25
NO_PERSON = (2, 12)  # keypoints.npz says nobody is there
EMPTY = (5, 11)  # the mask is empty


def _frames_and_masks() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    frames, masks = [], []
    yy, xx = np.mgrid[:H, :W]
    for i in range(T):
        frames.append(rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8))  # a busy raw background
        m = ((xx - 16) ** 2 / 64 + (yy - 12) ** 2 / 36 <= 1).astype(np.float32)
        m[(xx - 16) ** 2 / 64 + (yy - 12) ** 2 / 36 > 0.6] *= 0.5  # soft edge
        if i in EMPTY:
            m[:] = 0
        masks.append(m)
    return frames, masks


def _write(root: Path) -> Path:
    frames, masks = _frames_and_masks()
    body = make_tiny_body()
    cam = Camera.look_at(torch.tensor([0.0, 1.1, 3.2]), torch.tensor([0.0, 1.1, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
                         40.0, W, H)
    sr = 16000
    audio = (0.1 * np.sin(np.arange(int(math.ceil(T / FPS * sr))) / sr * 2 * np.pi * 220)).astype(np.float32)
    params = {"pose": np.zeros((T, body.num_joints, 3), np.float32), "transl": np.zeros((T, 3), np.float32),
              "betas": np.zeros(body.num_betas, np.float32), "expression": np.zeros((T, 2), np.float32)}
    out = write_subject(root, frames=frames, masks=masks, fps=FPS, camera=cam, audio=(audio, sr), params=params,
                        body={"model": "toy"}, split={"train": list(range(10)), "test": list(range(10, T))},
                        background=None, name="real", progress=False)
    person = np.ones(T, bool)
    person[list(NO_PERSON)] = False
    np.savez(out / KEYPOINTS_FILE, person=person, keypoints=np.zeros((T, 553, 3), np.float32))
    return out


@pytest.fixture(scope="module")
def real_subject(tmp_path_factory):
    return open_subject(_write(tmp_path_factory.mktemp("real") / "real"))


def _expected(subject, frame: int) -> torch.Tensor:
    """img * mask + (1 - mask) on white, from the stored (8-bit) image and mask."""
    img = subject.image(frame).astype(np.float64)
    m = subject.mask(frame).astype(np.float64)[..., None] / 255.0
    return torch.from_numpy(np.round(img * m + 255.0 * (1 - m)).clip(0, 255) / 255.0).float()


def test_training_images_are_composited_on_white(real_subject):
    assert real_subject.background is None and real_subject.has_masks
    data = TrainingData(real_subject, list(real_subject.split["train"]))
    assert torch.equal(data.background, torch.ones(3))
    for f in data.frames:
        got = data.image(f)
        assert torch.allclose(got, _expected(real_subject, f), atol=1 / 255 + 1e-6)
        m = data.mask(f)[..., 0]
        assert torch.all(got[m == 0] == 1.0)  # outside the person: white, not the raw background


def test_evaluation_ground_truth_is_the_same_composite(real_subject):
    from thgs.evaluation.evaluate import ground_truth_image

    data = TrainingData(real_subject, list(real_subject.split["train"]))
    for f in data.frames[:3]:
        assert torch.equal(ground_truth_image(real_subject, f, torch.ones(3)), data.image(f))
    f = real_subject.split["test"][0]
    assert torch.allclose(ground_truth_image(real_subject, f, torch.ones(3)), _expected(real_subject, f),
                          atol=1 / 255 + 1e-6)


def test_frames_without_a_person_are_skipped_and_counted(real_subject):
    flags = person_flags(real_subject)
    assert flags is not None and flags.sum() == T - len(NO_PERSON)
    assert mask_is_empty(real_subject.mask(5)) and not mask_is_empty(real_subject.mask(4))
    data = TrainingData(real_subject, list(real_subject.split["train"]))
    assert data.frames == [0, 1, 3, 4, 6, 7, 8, 9]
    s = data.selection.summary()
    assert (s["requested"], s["kept"], s["skipped_no_person"], s["skipped_empty_mask"]) == (10, 8, 1, 1)
    assert s["skipped_frames"] == [2, 5]
    sampler = FrameSampler(data.frames, 0)
    drawn = {sampler.next() for _ in range(5 * len(data.frames))}
    assert drawn == set(data.frames)
    test = select_frames(real_subject, list(real_subject.split["test"]))
    assert test.kept == [10, 13] and test.no_person == [12] and test.empty_mask == [11]


def test_a_subject_without_any_person_is_refused(real_subject):
    with pytest.raises(ValueError, match="none of the 2 requested frames holds a person"):
        TrainingData(real_subject, [2, 5])


def test_bad_person_flags_name_the_file_and_field(tmp_path):
    root = _write(tmp_path / "bad")
    np.savez(root / KEYPOINTS_FILE, person=np.ones(T + 1, bool))
    with pytest.raises(ValueError, match=r"keypoints.npz: field 'person' has shape \(15,\)"):
        person_flags(open_subject(root))


def test_training_and_evaluation_skip_the_same_frames(real_subject, tmp_path):
    from thgs.evaluation.evaluate import EvalOptions, evaluate_avatar
    from thgs.train.trainer import Trainer

    cfg = replace_flat(scaled_steps(preset("smoke"), 2), skinning="parent", saam=False, progress=False,
                              hash_levels=4, hash_log2_table=10, init_colors=1, max_gaussians=600)
    tr = Trainer(cfg, real_subject, tmp_path / "run", body=make_tiny_body())
    tr.train()
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["frame_selection"]["kept"] == 8 and meta["frame_selection"]["skipped_frames"] == [2, 5]
    seen = []
    tr2 = Trainer(cfg, real_subject, tmp_path / "run2", body=make_tiny_body())
    tr2.train(callback=lambda step, terms: seen.append(int(terms["frame"])))
    assert seen and not set(seen) & {2, 5}
    res = evaluate_avatar(tr.model.eval(), real_subject, torch.ones(3), None,
                          EvalOptions(lpips_nets=(), views=False, backend="reference"))
    test = res.summary["test"]
    assert test["frames"] == 2 and [r["frame"] for r in res.rows] == [10, 13]
    assert test["frame_selection"]["skipped_no_person"] == 1 and test["frame_selection"]["skipped_empty_mask"] == 1


def test_video_split_short_and_long():
    assert video_split(1800, 30.0) == default_split(1800)  # 60 s: the paper's rule
    s = video_split(500, 25.0)  # 20 s: every frame of the first 80% trains
    assert s["train"] == list(range(400)) and s["test"] == list(range(400, 500))
    assert video_split(2, 25.0) == {"train": [0], "test": [1]}
    assert video_split(1, 25.0) == {"train": [0], "test": []}
    for n, fps in ((7, 25.0), (1799, 30.0), (3000, 30.0)):
        s = video_split(n, fps)
        assert not set(s["train"]) & set(s["test"]) and s["train"] and max(s["train"] + s["test"]) < n
    with pytest.raises(ValueError, match="fps"):
        video_split(10, 0.0)


def test_silhouette_band_and_weighted_loss():
    m = torch.zeros(20, 20, 1)
    m[5:15, 5:15] = 1
    band = L.silhouette_band(m, 2)[..., 0]
    assert band[5, 10] and band[3, 10] and band[6, 10] and not band[2, 10] and not band[8, 10] and not band[10, 10]
    w = L.silhouette_weights(m, 2, 0.0)
    pred = torch.rand(20, 20, 3)
    target = pred.clone()
    target[band] = 1 - target[band]  # errors only inside the band
    assert float(L.reconstruction_loss(pred, target, 0.0, w)) == 0.0
    assert float(L.reconstruction_loss(pred, target, 0.0)) > 0.05
    assert torch.allclose(L.reconstruction_loss(pred, target, 0.2, torch.ones(20, 20, 1)),
                          L.reconstruction_loss(pred, target, 0.2), atol=1e-6)


def test_vertex_loss_margin():
    parents = torch.zeros(3, 3)
    means = torch.tensor([[0.01, 0, 0], [0.0, 0.03, 0], [0.0, 0, 0.05]])
    assert float(L.vertex_loss(means, parents)) == pytest.approx((1e-4 + 9e-4 + 25e-4) / 3)
    assert float(L.vertex_loss(means, parents, margin=0.02)) == pytest.approx((1e-4 + 9e-4) / 3)
    assert float(L.vertex_loss(means[:1], parents[:1], margin=0.02)) == 0.0


def test_training_data_pixel_weights(real_subject):
    assert TrainingData(real_subject, [0, 1]).pixel_weights(0) is None
    data = TrainingData(real_subject, [0, 1], edge_band=1, edge_band_weight=0.25)
    w = data.pixel_weights(0)
    band = L.silhouette_band(data.mask(0), 1)
    assert w.shape == (H, W, 1) and torch.all(w[band] == 0.25) and torch.all(w[~band] == 1.0) and band.any()
