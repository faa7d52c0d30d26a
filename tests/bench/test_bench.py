import json

import pytest
import torch

from thgs.bench.speed import animate_batch, fresh_avatar, frame_inputs_for
from thgs.bench.timing import time_fn
from thgs.cli import main


def test_time_fn_on_cpu():
    calls = []
    t = time_fn(lambda: calls.append(sum(range(1000))), "cpu", warmup=2, repeats=5)
    assert len(calls) == 7 and t.median > 0 and t.p10 <= t.median <= t.p90 and t.fps > 0


def test_batched_animation_equals_the_forward():
    from thgs.body.registry import load_body_model

    model = fresh_avatar(load_body_model("toy"), 3000, grid_resolution=16)
    assert model.num_gaussians == 3000 and model.saam is not None
    frames = frame_inputs_for(model, 3)
    with torch.no_grad():
        for f, g in zip(frames, animate_batch(model, frames)):
            ref = model(f)
            for name in ("means", "quats", "scales", "opacities", "colors"):
                assert torch.allclose(getattr(ref, name), getattr(g, name), atol=1e-5), name


def test_bench_command_tiny(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "--devices", "cpu", "--gaussians", "1500", "--width", "24", "--height", "16", "--repeats",
                 "2", "--warmup", "0", "--batch", "2", "--presets", "smoke", "--train-steps", "1", "--train-warmup",
                 "0", "--train-subject-size", "32", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "bench.json").read_text())
    assert printed == saved
    r = saved["devices"]["cpu"]["render"]
    assert set(r["parts"]) == {"blendshapes", "saam", "skinning", "animation", "rasterization", "frame",
                               "animation_fast", "frame_fast", "rasterization_rgb", "frame_rgb",
                               "frame_surfels_3dgs"}  # no "animation_graph" off CUDA
    assert "gsplat_floor" not in r and "frame_rgb_over_gsplat" not in r  # no bare gsplat off CUDA
    assert r["batched"]["fast_rgb_frame_ms"] > 0
    for key in ("one_call", "one_call_rgb", "one_call_2dgs_rgb"):  # one render_batch per batch
        assert r["batched"][f"{key}_frame_ms"] > 0 and r["batched"][f"{key}_fps"] > 0
    assert all(p["ms"] > 0 and p["fps"] > 0 for p in r["parts"].values())
    assert r["num_gaussians"] == 1500 and r["floor_ms"] > 0 and r["batched"]["batch"] == 2
    b = r["batched"]
    assert b["fast_frame_ms"] > 0 and b["fast_animation_ms"] > 0 and b["fast_graph"] is False
    assert r["frame_fast_over_floor"] > 0 and r["animation_speedup"] > 0
    t = saved["devices"]["cpu"]["train"]["smoke"]
    assert t["steps_per_s"] > 0 and t["preset_time_s"] > 0
    md = (out / "bench.md").read_text()
    assert "| whole frame (animation + rasterization) |" in md and "| THGS (paper, RTX 4090) | 6.452 | 155 |" in md
    assert "| smoke |" in md
    assert "| whole frame, fast path (Animator + rasterization) |" in md
    assert "| animation, fast path (Animator, eager) |" in md
    assert "| batch of 2: animation, fast path (eager), per frame |" in md
    assert "| whole frame, fast path, colour only, surfels as 3DGS |" in md
    assert "| batch of 2: whole frame, one render_batch call, colour only, surfels as 3DGS, per frame |" in md


def test_bench_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "--devices", "cpu", "--presets", "nosuch", "--out", str(tmp_path / "b")]) == 2
    assert "unknown preset(s) nosuch" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing"), "--devices", "cpu"]) == 2
    assert not (tmp_path / "b").exists()


def test_floor_ratios_and_no_bare_gsplat_on_the_cpu():
    from thgs.bench.speed import floor_ratios, gsplat_floor
    from thgs.render._scenes import body_like, front_camera

    assert gsplat_floor(body_like(10), front_camera(8, 8), torch.ones(3), 2, None) == {}
    result = {"gsplat_floor": {"3dgs_rgb": 0.5, "2dgs_rgb": 1.0, "3dgs_rgb_batched": 0.1, "2dgs_rgb_batched": 0.2},
              "parts": {"frame_rgb": {"ms": 1.5}, "frame_surfels_3dgs": {"ms": 1.0}},
              "batched": {"fast_rgb_frame_ms": 0.3, "one_call_rgb_frame_ms": 0.15, "one_call_2dgs_rgb_frame_ms": 0.5}}
    assert floor_ratios(result, "2dgs") == {"frame_rgb_over_gsplat": 1.5, "frame_surfels_over_gsplat": 2.0,
                                            "batched_over_gsplat": pytest.approx(1.5),
                                            "batched_loop_over_gsplat": pytest.approx(3.0),
                                            "batched_2dgs_over_gsplat": pytest.approx(2.5)}
    assert floor_ratios(result, "3dgs")["frame_rgb_over_gsplat"] == 3.0
    assert floor_ratios({"parts": {}}, "2dgs") == {}
