"""Every command's --help builds its parser and prints usage (a field's metadata error in one
config once crashed `rf8hw prove --help` while every other command worked)."""

import pytest

from rf8hw import cli


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rf8hw {command} ") and "options:" in out
