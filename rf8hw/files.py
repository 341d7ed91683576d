"""Writing result files so that a killed or concurrent run never leaves a half-written one that a
later run trusts (standard library only, so any layer may import it)."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

__all__ = ["write_atomic", "write_files", "sha256_file"]

_TMP_COUNTER = itertools.count()


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_TMP_COUNTER)}.tmp{path.suffix}")


def _write(tmp: Path, data) -> None:
    if callable(data):
        data(tmp)
    elif isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)


@contextlib.contextmanager
def _naming(path: Path, tmp: Path):
    """An OSError inside that names no file, or ``tmp``, is raised again naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename not in (None, str(tmp), tmp):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def write_atomic(path, data) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    :func:`os.replace`: readers see the old file or the whole new one, never a mix; a killed
    writer leaves at most a ``.<name>.<pid>.<n>.tmp<suffix>`` file, which no reader looks at.
    Concurrent writers use distinct temporary names (process id and a counter).

    ``data`` is a str, bytes, or a callable ``write(tmp_path)`` that writes the file itself (a
    plot; the temporary name keeps ``path``'s suffix, from which matplotlib takes the format)."""
    return write_files({path: data})[0]


def write_files(files: dict) -> list[Path]:
    """Write several files as one unit: ``{path: data}`` (``data`` as :func:`write_atomic`).

    Every file is first written to its temporary name; only when all of them are complete are
    they renamed into place, one after the other (renames do not fail for want of space).  So a
    writer that fails -- a full disk, an exception while producing one file -- leaves every old
    file as it was and removes its temporary files: never a new report beside an old one.

    An :class:`OSError` while writing or renaming a file that names no file, or names its
    temporary (a full disk, a read-only directory, a directory in the way), is raised again with
    the same ``errno`` (so of the same class) naming the file that was asked for as ``filename``:
    the temporary no longer exists, and a caller reports ``"<strerror>: <path>"`` in one line."""
    staged = [(Path(path), _temporary(Path(path)), data) for path, data in files.items()]
    try:
        for path, tmp, data in staged:
            with _naming(path, tmp):
                _write(tmp, data)
        for path, tmp, _ in staged:
            with _naming(path, tmp):
                os.replace(tmp, path)
    finally:
        for _, tmp, _ in staged:
            with contextlib.suppress(OSError):   # a read-only file system refuses even this (EROFS)
                tmp.unlink(missing_ok=True)
    return [path for path, _, _ in staged]


def sha256_file(path) -> str:
    """The SHA-256 of the file at ``path``, as hex (read in blocks, never whole)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
