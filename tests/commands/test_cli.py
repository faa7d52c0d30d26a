import json
import re
import subprocess
import sys

from thgs.cli import build_parser, main


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "info" in sub.choices
    for name, p in sub.choices.items():
        text = p.format_help()
        assert name in text and "usage" in text


def _parsers(parser):
    """Every (sub)command parser under ``parser``, nested ones (``thgs import FORMAT``) included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                yield name, p
                yield from _parsers(p)


def test_every_flag_states_its_default_at_most_once():
    for name, p in _parsers(build_parser()):
        formatter = p._get_formatter()
        for action in p._actions:
            if not action.option_strings or action.help is None:
                continue
            text = formatter._expand_help(action)
            assert not re.search(r"\(default[^)]*\)\s*\(default", text), (name, action.option_strings, text)
            assert "default: None" not in text and "cfg__" not in (action.metavar or "").lower(), (name, text)


def test_train_help_shows_each_presets_value_where_they_differ():
    from thgs.runs.config import preset

    parser = build_parser()
    train = next(p for name, p in _parsers(parser) if name == "train")
    helps = {a.dest: train._get_formatter()._expand_help(a) for a in train._actions if a.help}
    values = ", ".join(f"{n}: {preset(n).steps}" for n in ("paper", "fast", "cpu", "smoke"))
    assert helps["cfg__steps"].endswith(f"({values})")
    assert helps["cfg__lr_opacity"].endswith(f"(default: {preset('paper').lr.opacity})")  # equal in every preset
    assert helps["cfg__leb"].endswith("(default: on)")
    assert helps["cfg__preset"].endswith("(default: cpu on a CPU, fast on a GPU)")
    assert len(train.format_usage().splitlines()) == 1


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["device"] in ("cpu", "cuda")
    assert "toy" in info["body_models"] and "smplx" in info["body_models"]
    assert "reference" in info["render_backends"]
    assert info["torch"]


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "thgs", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "thgs" in out.stdout
