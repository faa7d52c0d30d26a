"""The run config's fixed choices are ``Literal`` types checked in one place; its groups keep the flags of the
flat layout; and config.json files written before the types and before the groups still load."""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest

from thgs.config import flat_names, get_path, to_dict
from thgs.runs.avatar_io import CONFIG, config_from_checkpoint, read_run_config
from thgs.runs.config import (PRESETS, ConfigError, PresetName, TrainConfig, config_from_dict, config_problems,
                              preset, replace_flat, scaled_steps, validate_config)

OLD_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "run_config_v0.1.0.json"
"""RUN/config.json as thgs 0.1.0 wrote it for the cpu preset (fields as plain strings)."""

FLAT_MAIN = {
    'audio': True, 'audio_encoder': "mel", 'backend': "auto", 'background': None, 'blendshapes_lr': 2e-05,
    'blendshapes_lr_final': 2e-06, 'blendshapes_start': 20, 'checkpoint_every': 10, 'compile': False,
    'densify_grad_threshold': 0.0002, 'densify_interval': 5, 'densify_start': 10, 'densify_stop': 45,
    'device': "auto", 'edge_band': 0, 'edge_band_weight': 0.0, 'expr': True, 'expression_lr': 3e-05,
    'expression_lr_final': 1e-05, 'expression_start': 16, 'fused_skinning': True, 'grid_resolution': 32,
    'hash_levels': 12, 'hash_log2_table': 14, 'init_colors': 8, 'init_opacity': 0.9, 'joint_opt': True,
    'lambda_dssim': 0.2, 'leb': True, 'leb_weight': 0.1, 'log_every': 2, 'lr_color': 0.005, 'lr_opacity': 0.05,
    'lr_position': 0.0004, 'lr_position_final': 4e-06, 'lr_rotation': 0.005, 'lr_scale': 0.005,
    'max_gaussians': 40000, 'min_opacity': 0.005, 'mode': "2dgs", 'normal_detach_depth': False,
    'normal_min_alpha': 0.0, 'normal_start': 40, 'normal_weight': 0.0, 'percent_dense': 0.01, 'pose_lr': 3e-05,
    'pose_lr_final': 1e-05, 'pose_start': 10, 'preset': "cpu", 'progress': False, 'saam': True, 'saam_lr': 0.003,
    'saam_lr_final': 0.0003, 'saam_start': 23, 'seed': 0, 'sh_degree': 0, 'skinning': "grid",
    'skinning_lr': 0.0001, 'skinning_lr_final': 1e-05, 'skinning_start': 40, 'skinning_tv_weight': 0.0,
    'speech': False, 'steps': 60, 'teeth': True, 'train_size': 0, 'vanilla': False, 'vertex_margin': 0.0,
    'vertex_weight': 0.01
}
"""RUN/config.json's ``config`` as thgs wrote it before the groups (flat: every setting a top-level key named as
its flag), for ``thgs train --preset cpu --schedule-steps 60 --no-progress --no-speech``."""


def _flat(cfg: TrainConfig) -> dict:
    """Every setting of ``cfg`` by flat name."""
    return {name: get_path(cfg, path) for name, path in flat_names(TrainConfig).items()}


def test_the_presets_are_the_preset_names():
    assert tuple(PRESETS) == typing.get_args(PresetName)
    for name in PRESETS:
        validate_config(preset(name))


@pytest.mark.parametrize("field", ["preset", "backend", "mode", "skinning"])
def test_a_value_outside_a_literal_field_is_named(field):
    from thgs.config import leaf_field

    choices = typing.get_args(leaf_field(TrainConfig, flat_names(TrainConfig)[field])[1])
    assert len(choices) >= 2
    cfg = replace_flat(preset("smoke"), **{field: "nosuch"})
    flag = "--" + field
    assert config_problems(cfg) == [f"{flag} 'nosuch': choose one of {', '.join(choices)}"]
    with pytest.raises(ConfigError, match=f"^{flag} 'nosuch'"):
        validate_config(cfg)


def test_an_old_config_json_still_loads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(OLD_CONFIG, run / CONFIG)
    cfg = read_run_config(run)
    # the run keeps the normal-loss form it was written with (the defaults changed since; its weight is 0)
    assert cfg == replace_flat(preset("cpu"), normal_min_alpha=0.0, normal_detach_depth=False)
    assert cfg.render.mode == "2dgs" and cfg.model.skinning == "grid"
    assert cfg.render.backend == "auto"
    validate_config(cfg)
    old = json.loads(OLD_CONFIG.read_text())["config"]
    written = _flat(cfg)
    assert {k: written[k] for k in old} == old  # the same settings; fields added since take their defaults
    assert {k: written[k] for k in set(written) - set(old)} == {"compile": False, "cuda_graphs": True,
                                                                "skin_band": preset("cpu").model.skin_band}
    older = {k: v for k, v in old.items() if k != "fused_skinning"}
    assert config_from_dict(older).model.fused_skinning is False  # a field it lacks takes its default


def test_a_flat_config_json_loads_to_the_equal_nested_config(tmp_path):
    expected = replace_flat(scaled_steps(preset("cpu"), 60), progress=False, speech=False,
                            normal_min_alpha=0.0, normal_detach_depth=False)  # the defaults of the time
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG).write_text(json.dumps({"config": FLAT_MAIN, "seed": 0}))
    cfg = read_run_config(run)
    assert cfg == expected
    assert config_from_checkpoint({"config": FLAT_MAIN}) == expected  # avatar.pt / checkpoint.pt alike
    assert _flat(cfg) == {**FLAT_MAIN, "cuda_graphs": True,  # every flat key went to the field of its flag
                          "skin_band": preset("cpu").model.skin_band}
    # (cuda_graphs and skin_band came after that layout: they take their defaults)
    nested = to_dict(cfg)
    assert set(FLAT_MAIN) - set(nested)  # the layout did change
    assert config_from_dict(nested) == cfg  # and the nested layout reads back as written
    with pytest.raises(ValueError, match="nosuch"):
        config_from_dict({**FLAT_MAIN, "nosuch_setting": 1})


def test_groups_keep_the_flat_flag_names():
    names = flat_names(TrainConfig)
    assert set(names) == set(FLAT_MAIN) | {"cuda_graphs", "skin_band"}  # the flat layout's settings (and flags), + 2 since
    assert names["percent_dense"] == ("densify", "percent_dense")
    assert names["lambda_dssim"] == ("loss", "dssim")
    assert names["pose_lr_final"] == ("schedule", "pose", "lr_final")
    assert names["lr_position"] == ("lr", "position")


def test_scaled_steps_scales_every_step_setting_of_every_group():
    cfg = preset("paper")
    half = scaled_steps(cfg, cfg.steps // 2)
    for name in ("skinning_start", "pose_start", "expression_start", "blendshapes_start", "saam_start",
                 "normal_start", "densify_start", "densify_stop", "densify_interval", "log_every",
                 "checkpoint_every"):
        assert _flat(half)[name] == round(_flat(cfg)[name] / 2), name
    tiny = scaled_steps(cfg, 3)
    assert tiny.densify.interval == tiny.log_every == 1 and tiny.schedule.pose.start == 1
    assert _flat(tiny)["lr_position"] == cfg.lr.position  # rates are not steps


def test_the_schedule_table_has_one_stage_per_module_group():
    from thgs.avatar.model import GROUPS
    from thgs.runs.config import Schedule, Stage

    table = preset("cpu").schedule
    assert {f.name for f in dataclasses.fields(Schedule)} == set(GROUPS)
    assert all(isinstance(table.stage(g), Stage) for g in GROUPS)
    assert table.stage("saam") == Stage(230, 3e-3, 3e-4)  # the cpu preset's SAAM row
