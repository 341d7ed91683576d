"""`rf8hw table`, `rf8hw --help` and the generated table in docs/rf8-format.md."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import oracles
import pytest

from rf8hw.cli import COMMANDS, main
from rf8hw.commands import table

DOC = Path(__file__).resolve().parents[2] / "docs" / "rf8-format.md"


def test_table_prints_all_256_codes(capsys):
    assert main(["table", "-X", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 257
    for line in lines[1:]:
        code, s, E, R, M, value, w, canon = line.split()
        c = int(code, 16)
        assert (int(s), int(E), int(R)) == (c >> 7, (c >> 3) & 15, c & 7)
        assert Fraction(float(value)) == oracles.code_value(c, 3)
        assert int(w) == oracles.product(1, c)


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rf8hw", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_docs_code_table_matches_generator():
    text = DOC.read_text()
    start, stop = text.index(table.BEGIN), text.index(table.END) + len(table.END)
    assert text[start:stop] == table.format_markdown(), (
        f"docs/rf8-format.md drifted from the generator; run: {table.REGENERATE}")
    assert table.REGENERATE in text


def test_update_docs_without_markers_is_an_error(tmp_path, capsys):
    f = tmp_path / "x.md"
    f.write_text("no markers here\n")
    assert main(["table", "--update-docs", str(f)]) == 2
    assert "has no generated-table markers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="has no generated-table markers"):
        table.update_docs(f)
