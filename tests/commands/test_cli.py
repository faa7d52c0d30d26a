import json
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
