import json

import pytest
import torch

from thgs.avatar.model import GROUPS
from thgs.runs.config import PRESETS, preset, replace_flat, scaled_steps
from thgs.runs.avatar_io import CHECKPOINT, CONFIG, FINAL, METRICS, load_avatar
from thgs.train.trainer import Trainer


def _cfg(name: str, steps: int, **kw):
    cfg = scaled_steps(preset(name), steps)
    return replace_flat(cfg, grid_resolution=16, hash_levels=4, hash_log2_table=10, progress=False,
                        max_gaussians=600, **kw)


def test_a_run_writes_its_files_and_every_preset_trains(tiny_subject, tiny_body_model, tmp_path):
    """One smoke run checks the run folder (config, metrics, checkpoint, avatar that loads back equal); every
    other preset, compressed to 2 steps, builds its avatar and takes finite steps."""
    cfg = _cfg("smoke", 4)
    tr = Trainer(cfg, tiny_subject, tmp_path / "smoke", body=tiny_body_model)
    terms = tr.train()
    assert tr.step == 4 and torch.isfinite(torch.tensor(terms["loss"]))
    assert (tmp_path / "smoke" / FINAL).exists() and (tmp_path / "smoke" / CHECKPOINT).exists()
    meta = json.loads((tmp_path / "smoke" / CONFIG).read_text())
    assert meta["config"]["preset"] == "smoke" and meta["seed"] == 0 and "torch" in meta["versions"]
    lines = (tmp_path / "smoke" / METRICS).read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 4
    model, cfg2, _ = load_avatar(tmp_path / "smoke" / FINAL, body=tiny_body_model)
    assert model.num_gaussians == tr.model.num_gaussians and cfg2 == cfg
    for name in sorted(set(PRESETS) - {"smoke"}):
        cfg = _cfg(name, 2)
        tr = Trainer(cfg, tiny_subject, tmp_path / name, body=tiny_body_model)
        assert tr.model.options.init.sh_degree == preset(name).model.sh_degree
        for _ in range(2):
            assert torch.isfinite(torch.as_tensor(tr.train_step()["loss"])), name


def test_groups_switch_on_at_their_start_steps(tiny_subject, tiny_body_model, tmp_path):
    cfg = _cfg("smoke", 6)
    tr = Trainer(cfg, tiny_subject, tmp_path / "run", body=tiny_body_model)
    starts = {g: cfg.schedule.stage(g).start for g in GROUPS}
    seen = []

    def grads(step, terms):
        got = {}
        for g in GROUPS:
            ps = tr.model.group_parameters(g)
            got[g] = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in ps)
        seen.append((step - 1, got))  # the step that just ran (0-based)

    tr.train(callback=grads)
    for step, got in seen:
        for g in GROUPS:
            if step < starts[g]:
                assert not got[g], (step, g)
    last_step, last = seen[-1]
    for g in GROUPS:
        if not tr.model.group_parameters(g):
            continue
        # SAAM's zero-initialised last layer still receives gradients; others too once started
        assert last[g], g


def _saam_trained(tr) -> bool:
    """SAAM acted: its zero-initialised last layer has moved away from zero."""
    last = tr.model.saam.decoder[-1]
    return bool(last.weight.abs().sum() > 0) and tr.model.active["saam"]


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


def test_resume_equals_uninterrupted(tiny_subject, tiny_body_model, tmp_path):
    """Bit for bit, with SAAM active before and after the interruption."""
    cfg = _cfg("smoke", 8, checkpoint_every=100, saam_start=2)
    full = Trainer(cfg, tiny_subject, tmp_path / "full", body=tiny_body_model)
    full.train()
    assert _saam_trained(full)
    half = Trainer(cfg, tiny_subject, tmp_path / "half", body=tiny_body_model)
    half.train(stop_after=4)  # densification ran at step 4: N differs from the start
    assert _saam_trained(half)
    del half
    resumed = Trainer(cfg, tiny_subject, tmp_path / "half", resume=True, body=tiny_body_model)
    assert resumed.step == 4
    resumed.train()
    _assert_identical(full.model.state_dict(), resumed.model.state_dict())
    sa, sb = full.gauss_opt.state_dict()["state"], resumed.gauss_opt.state_dict()["state"]
    for k in sa:
        assert torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]), k


def test_same_seed_on_two_threads_gives_identical_runs(tiny_subject, tiny_body_model, tmp_path):
    """Same seed, same machine, same thread count (2): identical parameters after SAAM has started."""
    cfg = _cfg("smoke", 4, checkpoint_every=100, saam_start=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for r in range(2):
            tr = Trainer(cfg, tiny_subject, tmp_path / f"run{r}", body=tiny_body_model)
            tr.train()
            assert _saam_trained(tr)
            runs.append(tr.model.state_dict())
    finally:
        torch.set_num_threads(threads)
    _assert_identical(runs[0], runs[1])
