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


def test_an_oserror_naming_no_file_or_the_temporary_is_raised_naming_the_file(tmp_path):
    """A full disk (``OSError(ENOSPC)`` from a write names no file) or a failure on the temporary
    is raised again with the same errno, naming the file asked for: one line for the CLI."""
    import errno

    path = tmp_path / "model.safetensors"

    def full(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as info:
        write_atomic(path, full)
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno.ENOSPC, "No space left on device", str(path))
    assert list(tmp_path.iterdir()) == []

    def denied(tmp):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))

    with pytest.raises(PermissionError) as info:
        write_atomic(path, denied)
    assert info.value.filename == str(path)

    def other(tmp):                                   # an error about another file keeps its name
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/input.bin")

    with pytest.raises(FileNotFoundError) as info:
        write_atomic(path, other)
    assert info.value.filename == "/elsewhere/input.bin"
    path.mkdir()                                      # a directory in the way of the rename
    with pytest.raises(OSError) as info:
        write_atomic(path, "x")
    assert info.value.filename == str(path) and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_written_files_have_the_mode_of_a_new_file(tmp_path):
    """Text, bytes and a callable's file: ``0o666`` less the umask, as ``open()`` makes them."""
    import os

    umask = os.umask(0o022)
    try:
        paths = write_files({tmp_path / "a.json": "{}", tmp_path / "b.bin": b"\0",
                             tmp_path / "c.png": lambda tmp: tmp.write_bytes(b"png")})
        assert {p.stat().st_mode & 0o777 for p in paths} == {0o644}
        os.umask(0o077)
        paths = write_files({tmp_path / "d.json": "{}", tmp_path / "e.bin": b"\0"})
        assert {p.stat().st_mode & 0o777 for p in paths} == {0o600}
    finally:
        os.umask(umask)


def test_a_read_only_file_system_is_named_once(tmp_path, monkeypatch):
    """On a read-only file system even removing the (never created) temporary fails with EROFS:
    the error raised is the write's, naming the file asked for."""
    import errno
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))
    monkeypatch.setattr(Path, "write_text", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "x.png", "data")
    assert (info.value.errno, info.value.filename) == (errno.EROFS, str(tmp_path / "x.png"))
