"""The sparse skinning residual (``skin_band`` >= 0) in training: the same steps as a dense residual, and the
checkpoints of a dense one (written before the sparse residual existed) still load and resume dense."""

import torch

from thgs.runs.avatar_io import CHECKPOINT, FINAL, config_from_checkpoint, load_avatar
from thgs.runs.checkpoint import read_checkpoint
from thgs.runs.config import preset, replace_flat
from thgs.train.trainer import Trainer


def _cfg(band: int, steps: int = 4, **kw):
    # every group from step 1; no densification inside the compared steps
    return replace_flat(preset("smoke"), steps=steps, grid_resolution=16, skin_band=band, densify_start=100,
                        densify_stop=100, checkpoint_every=100, **kw)


def test_training_steps_equal_dense_and_sparse(tiny_subject, tiny_body_model, tmp_path):
    """Every Gaussian can reach only active grid points, so the dense residual's data gradient is zero outside the
    set and the two runs agree to float tolerance: the residual's gradient, the losses and the Gaussians. The TV
    term is off here: once the boundary of the set is nonzero, a dense residual's TV gradient pulls its zero
    neighbours outside the set (the sparse residual keeps them at zero; the TV values themselves are equal:
    tests/avatar/test_skinning_grid.py). The residual values are not compared after Adam: where its gradient is
    ~0, a rounding-level difference of sign moves an element by the learning rate either way."""
    runs = {}
    for band in (-1, 2):
        tr = Trainer(_cfg(band, skinning_start=0, skinning_tv_weight=0.0), tiny_subject, tmp_path / f"b{band}", body=tiny_body_model)
        grads: list[torch.Tensor] = []
        tr.model.skin_grid.delta.requires_grad_(True)  # switched on again at step 0
        tr.model.skin_grid.delta.register_post_accumulate_grad_hook(lambda p, g=grads: g.append(p.grad.clone()))
        losses = []
        for _ in range(4):
            tr.train_step()
            losses.append(float(tr.last["loss"]))
        runs[band] = (tr, losses, grads)
    (dense, ld, gd), (sparse, ls, gs) = runs[-1], runs[2]
    sg = sparse.model.skin_grid
    assert len(gd) == len(gs) == 4
    inside = torch.zeros(sg.resolution ** 3, dtype=torch.bool)
    inside[sg.cells] = True
    for b in gd:  # the dense residual's gradient is zero outside the active set at every step
        assert float(b.reshape(sg.num_joints, -1)[:, ~inside].abs().max()) == 0.0
    # the first step's gradient (from the same parameters) is equal on the active set; later ones start from
    # residuals that Adam moved apart by rounding-level differences where the gradient is ~0
    b = gd[0].reshape(sg.num_joints, -1)
    scale = float(b.abs().max())
    assert scale > 0
    torch.testing.assert_close(gs[0], b[:, sg.cells], rtol=1e-4, atol=1e-5 * scale)
    torch.testing.assert_close(torch.tensor(ls), torch.tensor(ld), rtol=1e-5, atol=1e-7)
    dd = dense.model.skin_grid.delta.detach().reshape(sg.num_joints, -1)
    assert float(dd.abs().sum()) > 0  # the residual did train
    outside = torch.ones(16 ** 3, dtype=torch.bool)
    outside[sg.cells] = False
    assert float(dd[:, outside].abs().max()) == 0.0
    for k in ("means", "quats", "log_scales", "sh", "opacity_logits"):
        torch.testing.assert_close(sparse.model.state[k], dense.model.state[k], rtol=1e-4, atol=1e-6)


def test_a_dense_checkpoint_loads_and_resumes_dense(tiny_subject, tiny_body_model, tmp_path):
    """A checkpoint of a dense residual whose config has no skin_band (as written before it existed) loads dense
    (also when trained outside the band) and resumes; a sparse run's checkpoint stores [J, M] and loads back."""
    tr = Trainer(_cfg(-1, steps=3, skinning_tv_weight=1.0), tiny_subject, tmp_path / "old", body=tiny_body_model)
    tr.train()
    path = tmp_path / "old" / FINAL
    ckpt = read_checkpoint(path)
    ckpt["config"]["model"].pop("skin_band")
    ckpt["model"]["skin_grid.delta"][:, 0, 0, 0] = 0.25  # a far corner, outside any band
    torch.save(ckpt, path)
    torch.save(ckpt, tmp_path / "old" / CHECKPOINT)
    assert config_from_checkpoint(read_checkpoint(path)).model.skin_band == -1
    model, cfg, _ = load_avatar(path, body=tiny_body_model)
    assert not model.skin_grid.sparse and float(model.skin_grid.delta.detach()[0, 0, 0, 0]) == 0.25
    resumed = Trainer(config_from_checkpoint(read_checkpoint(tmp_path / "old" / CHECKPOINT)), tiny_subject,
                      tmp_path / "old", resume=True, body=tiny_body_model)
    assert resumed.step == 3 and not resumed.model.skin_grid.sparse
    new = Trainer(_cfg(2, steps=2), tiny_subject, tmp_path / "new", body=tiny_body_model)
    new.train()
    stored = read_checkpoint(tmp_path / "new" / FINAL)["model"]
    sg = new.model.skin_grid
    assert stored["skin_grid.delta"].shape == (sg.num_joints, sg.num_active)
    assert torch.equal(stored["skin_grid.cells"], sg.cells)
    back, _, _ = load_avatar(tmp_path / "new" / FINAL, body=tiny_body_model)
    assert back.skin_grid.sparse and torch.equal(back.skin_grid.delta, sg.delta.detach())
