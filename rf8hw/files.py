"""Writing result files so that a killed or concurrent run never leaves a half-written one that a
later run trusts (standard library only, so any layer may import it)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

__all__ = ["write_atomic", "sha256_file"]

_TMP_COUNTER = itertools.count()


def write_atomic(path, data) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    :func:`os.replace`: readers see the old file or the whole new one, never a mix; a killed
    writer leaves at most a ``.<name>.<pid>.<n>.tmp<suffix>`` file, which no reader looks at.
    Concurrent writers use distinct temporary names (process id and a counter).

    ``data`` is a str, bytes, or a callable ``write(tmp_path)`` that writes the file itself (a
    plot; the temporary name keeps ``path``'s suffix, from which matplotlib takes the format)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_TMP_COUNTER)}.tmp{path.suffix}")
    try:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sha256_file(path) -> str:
    """The SHA-256 of the file at ``path``, as hex (read in blocks, never whole)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
