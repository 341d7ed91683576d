"""rf8hw.files: one file or a set of files written so that no reader ever sees a mix."""

import json

import pytest

from rf8hw.files import write_atomic, write_files


def test_write_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "a.json"
    write_atomic(path, "old\n")
    write_atomic(path, b"new\n")
    assert path.read_bytes() == b"new\n" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_set_that_fails_leaves_every_old_file_and_no_temporary(tmp_path):
    """The second file cannot be produced (e.g. a full disk, a failing plot): the first file is
    not replaced either, and no temporary file is left."""
    a, b = tmp_path / "r.json", tmp_path / "r.md"
    write_files({a: "old json\n", b: "old md\n"})

    def failing(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError, match="No space left"):
        write_files({a: json.dumps({"new": 1}), b: failing})
    assert (a.read_text(), b.read_text()) == ("old json\n", "old md\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]
    write_files({a: "new json\n", b: lambda tmp: tmp.write_text("new md\n")})
    assert (a.read_text(), b.read_text()) == ("new json\n", "new md\n")
