"""Nested config dataclasses <-> flags (thgs.config): group sections, flag prefixes and names, partial groups."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from thgs.config import (add_dataclass_arguments, dataclass_from_namespace, flat_names, from_dict, option,
                         replace_flat, to_dict)


@dataclass
class Stage:
    start: int = option(5, help="first step")
    rate: float = option(0.5, help="a rate")


@dataclass
class Named:
    weight: float = option(1.0, help="a weight", flag="lambda_w")  # its flag, whatever the group's prefix


@dataclass
class Config:
    steps: int = option(10, help="steps")
    a: Stage = option(default_factory=Stage, help="group a")  # --a-start, --a-rate
    b: Stage = option(default_factory=lambda: Stage(7, 0.25), help="group b", prefix="bee_")
    loss: Named = option(default_factory=Named, help="losses")


@dataclass
class Clash:
    one: Named = option(default_factory=Named)
    two: Named = option(default_factory=Named)  # both name their weight --lambda-w


def _parse(argv: list[str], cls: type = Config):
    parser = argparse.ArgumentParser(prog="x")
    add_dataclass_arguments(parser, cls, title="settings")
    return parser.format_help(), dataclass_from_namespace(parser.parse_args(argv), cls())


def test_groups_get_their_prefix_or_named_flags_and_a_section_each():
    assert flat_names(Config) == {"steps": ("steps",), "a_start": ("a", "start"), "a_rate": ("a", "rate"),
                                  "bee_start": ("b", "start"), "bee_rate": ("b", "rate"),
                                  "lambda_w": ("loss", "weight")}
    text, cfg = _parse(["--a-start", "1", "--bee-rate", "2.5", "--lambda-w", "3"])
    assert cfg == Config(a=Stage(1, 0.5), b=Stage(7, 2.5), loss=Named(3.0))
    for section in ("settings:", "group a:", "group b:", "losses:"):
        assert section in text
    assert text.count("(default: 7)") == 1 and "--bee-start BEE_START" in text


def test_replace_flat_sets_settings_by_flag_name():
    assert replace_flat(Config(), lambda_w=4.0, bee_start=1, steps=3) == Config(3, b=Stage(1, 0.25), loss=Named(4.0))
    with pytest.raises(TypeError, match="no setting 'weight'"):
        replace_flat(Config(), weight=1.0)


def test_two_settings_with_one_flag_are_refused():
    with pytest.raises(TypeError, match="one.weight and two.weight share the flag --lambda-w"):
        flat_names(Clash)


def test_a_partial_group_keeps_the_group_default_of_the_missing_fields():
    cfg = from_dict(Config, {"b": {"rate": 1.0}})
    assert cfg.b == Stage(7, 1.0) and cfg.a == Stage(5, 0.5)  # b's own default start, not Stage's
    assert from_dict(Config, to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown config keys"):
        from_dict(Config, {"b": {"nosuch": 1}})
