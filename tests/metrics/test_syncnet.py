import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thgs.metrics.regions import Box
from thgs.metrics.syncnet import (SyncNet, evaluate_sync, face_crop_box, load_syncnet, mfcc, prepare_video,
                                  resample_frame_indices, sync_offset)

DATA = Path(__file__).parent / "data"


def reference_signal() -> np.ndarray:
    """The int16 test signal whose MFCCs are recorded in data/mfcc_reference.json."""
    rs = np.random.RandomState(7)
    t = np.arange(2000) / 16000.0
    x = 8000 * np.sin(2 * np.pi * (220 + 900 * t) * t) + 1500 * rs.standard_normal(2000)
    x[1200:1300] = 0
    return np.round(x).astype(np.int16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SyncNet()
    for mod in m.modules():  # non-trivial BatchNorm statistics so that loading them is checked
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 2.0)
    return m


def test_layer_shapes_and_outputs(model):
    sd = model.state_dict()
    assert sd["netcnnaud.0.weight"].shape == (64, 1, 3, 3)
    assert sd["netcnnaud.18.weight"].shape == (512, 256, 5, 4)
    assert sd["netcnnlip.0.weight"].shape == (96, 3, 5, 7, 7)
    assert sd["netcnnlip.18.weight"].shape == (512, 256, 1, 6, 6)
    assert sd["netfcaud.3.weight"].shape == (1024, 512) and sd["netfclip.3.weight"].shape == (1024, 512)
    with torch.no_grad():
        a = model.forward_audio(torch.randn(3, 1, 13, 20))
        v = model.forward_video(torch.rand(2, 3, 5, 224, 224) * 255)
    assert a.shape == (3, 1024) and v.shape == (2, 1024)
    assert torch.isfinite(a).all() and torch.isfinite(v).all()
    with pytest.raises(ValueError, match="\\[N, 1, 13, 20\\]"):
        model.forward_audio(torch.zeros(1, 1, 13, 19))


def test_loader_maps_prefixed_state_dicts(model, tmp_path):
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    f = tmp_path / "syncnet_v2.model"
    torch.save(sd, f)
    loaded = load_syncnet(f)
    x = torch.randn(2, 1, 13, 20)
    with torch.no_grad():
        assert torch.allclose(loaded.forward_audio(x), model.forward_audio(x), atol=1e-6)
    small = SyncNet(embedding_dim=256)
    torch.save(small.state_dict(), f)
    assert load_syncnet(f).netfcaud[3].out_features == 256


def test_loader_errors_name_the_file_and_key(model, tmp_path):
    f = tmp_path / "w.model"
    sd = dict(model.state_dict())
    del sd["netcnnlip.4.weight"]
    torch.save(sd, f)
    with pytest.raises(ValueError, match="w.model: missing key netcnnlip.4.weight"):
        load_syncnet(f)
    sd = dict(model.state_dict())
    sd["netcnnaud.0.weight"] = torch.zeros(64, 1, 5, 5)
    torch.save(sd, f)
    with pytest.raises(ValueError, match="netcnnaud.0.weight has shape"):
        load_syncnet(f)
    sd = dict(model.state_dict())
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, f)
    with pytest.raises(ValueError, match="unexpected keys"):
        load_syncnet(f)
    with pytest.raises(FileNotFoundError):
        load_syncnet(tmp_path / "absent.model")
    f.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="w.model"):
        load_syncnet(f)


def _direct_scores(v, a, vshift):
    """Per-frame loop written from the published description, for comparison."""
    ap = F.pad(a, (0, 0, vshift, vshift))
    dists = torch.stack([F.pairwise_distance(v[i:i + 1].repeat(2 * vshift + 1, 1), ap[i:i + 2 * vshift + 1])
                         for i in range(v.shape[0])])
    mean = dists.mean(0)
    return vshift - int(mean.argmin()), float(mean.min()), float(mean.median() - mean.min())


@pytest.mark.parametrize("k", [3, -4, 0])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_sync_offset_recovers_a_planted_shift(k, distance):
    g = torch.Generator().manual_seed(5)
    N, D = 80, 64
    audio = torch.randn(N + 30, D, generator=g)
    # video window i shows what audio window i - k says: the video lags the audio by k
    video = audio[15 - k:15 - k + N] + 0.1 * torch.randn(N, D, generator=g)
    score = sync_offset(video, audio[15:15 + N], vshift=15, distance=distance)
    assert score.offset == k
    assert score.confidence > 0 and score.mean_dists.shape == (31,)
    assert score.min_dist == pytest.approx(float(score.mean_dists.min()))


def test_sync_offset_matches_the_per_frame_computation():
    g = torch.Generator().manual_seed(2)
    v, a = torch.randn(40, 16, generator=g), torch.randn(40, 16, generator=g)
    a[10:] = v[7:-3] * 0.9  # partially correlated
    off, md, conf = _direct_scores(v, a, 15)
    s = sync_offset(v, a, vshift=15)
    assert s.offset == off and s.min_dist == pytest.approx(md, abs=1e-5)
    assert s.confidence == pytest.approx(conf, abs=1e-5)


def test_mfcc_matches_recorded_reference():
    ref = np.array(json.loads((DATA / "mfcc_reference.json").read_text())["mfcc"])
    ours = mfcc(reference_signal())
    assert ours.shape == ref.shape == (13, 11)
    assert np.abs(ours - ref).max() < 1e-8


def test_crop_geometry_video_preparation_and_frame_resampling():
    x0, y0, x1, y1 = face_crop_box(Box(100, 100, 200, 180))
    assert (x0, y0, x1, y1) == pytest.approx((80.0, 90.0, 220.0, 230.0))
    frame = torch.zeros(100, 100, 3)
    frame[:, :50, 0] = 1.0  # red left half
    vid = prepare_video([frame, frame], [(0.0, 0.0, 100.0, 100.0), (-100.0, 0.0, 100.0, 100.0)])
    assert vid.shape == (3, 2, 224, 224)
    assert vid[2, 0, :, :100].min() == pytest.approx(255.0) and vid[0, 0].max() == 0  # BGR: red is channel 2
    assert torch.allclose(vid[:, 1, :, :100], torch.full((3, 224, 100), 110.0))  # outside the image
    idx = resample_frame_indices(30, 30.0, 25.0)
    assert idx.tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 24, 25, 26,
                            27, 28]


def test_evaluate_sync_runs_end_to_end(model):
    T = 11
    g = torch.Generator().manual_seed(0)
    video = torch.rand(3, T, 224, 224, generator=g) * 255
    audio = 0.1 * np.random.RandomState(0).standard_normal(int(T / 25 * 48000))
    s = evaluate_sync(model, video, audio, sample_rate=48000)
    assert -15 <= s.offset <= 15 and np.isfinite(s.min_dist) and s.confidence >= 0
    assert s.mean_dists.shape == (31,)
    with pytest.raises(ValueError, match="too short"):
        evaluate_sync(model, video[:, :5], audio, sample_rate=48000)
