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


@pytest.mark.parametrize("content, message", [
    ("a\n<!-- END GENERATED CODE TABLE -->\nb\n<!-- BEGIN GENERATED CODE TABLE -->\nc\n",
     r"x\.md: its <!-- END GENERATED CODE TABLE --> comes before its <!-- BEGIN GENERATED CODE TABLE -->$"),
    ("<!-- BEGIN GENERATED CODE TABLE -->\n<!-- END GENERATED CODE TABLE -->\n"
     "<!-- BEGIN GENERATED CODE TABLE -->\n",
     r"x\.md must hold one <!-- BEGIN GENERATED CODE TABLE --> and one <!-- END GENERATED CODE TABLE -->, "
     r"not 2 and 1$"),
    (b"\xff\xfe<!-- BEGIN", r"x\.md is not UTF-8 text \(invalid start byte at byte 0\)$"),
])
def test_update_docs_refuses_misplaced_markers_and_binary_files_unchanged(tmp_path, content, message):
    f = tmp_path / "x.md"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = f.read_bytes()
    with pytest.raises(ValueError, match=message):
        table.update_docs(f)
    assert f.read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    (["--markdown", "--update-docs", "{f}"], "argument --update-docs: not allowed with argument --markdown"),
    (["-X", "5", "--markdown"], "-X 5 applies to the printed table only; the Markdown table (--markdown, "
                                "--update-docs) is the docs' one, with X = 0"),
    (["-X", "5", "--update-docs", "{f}"], "-X 5 applies to the printed table only"),
    (["--update-docs", ""], "Is a directory: ."),
])
def test_options_that_would_be_ignored_are_refused(tmp_path, capsys, monkeypatch, argv, message):
    f = tmp_path / "x.md"
    f.write_text(f"{table.BEGIN}\n{table.END}\n")
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(["table", *[a.replace("{f}", str(f)) for a in argv]])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert f.read_text() == f"{table.BEGIN}\n{table.END}\n"
