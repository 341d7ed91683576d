"""The array options of every command come from ArrayConfig's fields: same names, defaults, choices."""

import argparse
from dataclasses import fields

import pytest

from rf8hw.arch import PE_KINDS, ArrayConfig, rf8_kinds
from rf8hw.cli import build_parser
from rf8hw.commands.options import add_config_args, config_from_args

ARRAY_COMMANDS = ("generate", "cosim", "synth", "estimate")


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _options(parser: argparse.ArgumentParser) -> dict:
    return {a.dest: a for a in parser._actions if a.option_strings}


@pytest.mark.parametrize("command", ARRAY_COMMANDS)
def test_array_options_are_the_config_fields(command):
    opts = _options(_subparser(command))
    for f in fields(ArrayConfig):
        assert f.name in opts, f"rf8hw {command} has no --{f.name.replace('_', '-')}"
        action = opts[f.name]
        assert action.option_strings == ["--" + f.name.replace("_", "-")]
        if command == "cosim":           # optional with --rtl: None means "not given"
            assert action.default is None and not action.required, f.name
        elif f.name not in ("rows", "cols"):
            assert action.default == f.default, (command, f.name)
    allowed = rf8_kinds() if command in ("estimate", "cosim") else tuple(PE_KINDS)
    assert tuple(opts["pe"].choices) == allowed
    assert tuple(opts["overflow"].choices) == ("wrap", "saturate")


def test_config_from_args_round_trips_and_validates():
    parser = argparse.ArgumentParser()
    add_config_args(parser, ArrayConfig)
    args = parser.parse_args(["--rows", "3", "--cols", "5", "--acc-bits", "30", "--pe", "rf8_lean"])
    assert config_from_args(ArrayConfig, args) == ArrayConfig(3, 5, acc_bits=30, pe="rf8_lean")
    args = parser.parse_args(["--rows", "3", "--cols", "65"])
    with pytest.raises(ValueError, match=r"^cols must be an integer in 1\.\.64, not 65$"):
        config_from_args(ArrayConfig, args)


def test_rows_and_cols_are_required_on_the_command_line(capsys):
    parser = argparse.ArgumentParser(prog="x")
    add_config_args(parser, ArrayConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--cols", "4"])
    assert "--rows" in capsys.readouterr().err


def test_help_imports_no_command_module():
    """rf8hw --help lists every command from the table alone: no command module, no torch, no
    Amaranth, no numpy (fresh interpreter)."""
    import subprocess
    import sys

    from rf8hw.cli import COMMANDS

    script = ("import sys\nfrom rf8hw import cli\ntry:\n    cli.main(['--help'])\n"
              "except SystemExit:\n    pass\n"
              "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'amaranth', 'numpy')"
              " or m.startswith('rf8hw.commands.'))\nprint('LOADED', heavy)")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "LOADED []" in res.stdout, res.stdout
    assert all(name in res.stdout for name in COMMANDS)
