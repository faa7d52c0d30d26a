"""The run config's fixed choices are ``Literal`` types checked in one place, and a config.json written
before they were types still loads."""

from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest

from thgs.config import from_dict, to_dict
from thgs.runs.avatar_io import CONFIG, read_run_config
from thgs.runs.config import (PRESETS, ConfigError, PresetName, TrainConfig, config_problems, preset,
                              validate_config)

OLD_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "run_config_v0.1.0.json"
"""RUN/config.json as thgs 0.1.0 wrote it for the cpu preset (fields as plain strings)."""


def test_the_presets_are_the_preset_names():
    assert tuple(PRESETS) == typing.get_args(PresetName)
    for name in PRESETS:
        validate_config(preset(name))


@pytest.mark.parametrize("field", ["preset", "backend", "mode", "skinning"])
def test_a_value_outside_a_literal_field_is_named(field):
    choices = typing.get_args(typing.get_type_hints(TrainConfig)[field])
    assert len(choices) >= 2
    cfg = dataclasses.replace(preset("smoke"), **{field: "nosuch"})
    flag = "--" + field
    assert config_problems(cfg) == [f"{flag} 'nosuch': choose one of {', '.join(choices)}"]
    with pytest.raises(ConfigError, match=f"^{flag} 'nosuch'"):
        validate_config(cfg)


def test_an_old_config_json_still_loads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(OLD_CONFIG, run / CONFIG)
    cfg = read_run_config(run)
    assert cfg == preset("cpu") and cfg.mode == "2dgs" and cfg.skinning == "grid" and cfg.backend == "auto"
    validate_config(cfg)
    old = json.loads(OLD_CONFIG.read_text())["config"]
    written = to_dict(cfg)
    assert {k: written[k] for k in old} == old  # written back unchanged; fields added since take their defaults
    assert {k: written[k] for k in set(written) - set(old)} == {"compile": False}
    older = {k: v for k, v in json.loads(OLD_CONFIG.read_text())["config"].items() if k != "fused_skinning"}
    assert from_dict(TrainConfig, older).fused_skinning is False  # a field it lacks takes its default
