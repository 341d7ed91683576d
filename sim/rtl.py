"""A generated Verilog file and its manifest, read and checked once (:func:`load_rtl`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from rf8hw.arch import ArrayConfig
from rf8hw.hdl.manifest import Manifest

__all__ = ["RtlFile", "load_rtl"]


@dataclass(frozen=True)
class RtlFile:
    """A Verilog file and its manifest, checked by :func:`load_rtl`.

    Attributes
    ----------
    verilog : Path
    manifest_path : Path
        ``<stem>.json`` next to ``verilog``.
    manifest : Manifest
        Parsed once (:meth:`rf8hw.hdl.manifest.Manifest.read`).
    sha256 : str
        SHA-256 of the file as read.
    data : bytes
        The file's bytes (the ones hashed, and the ones a simulator build compiles).
    """

    verilog: Path
    manifest_path: Path
    manifest: Manifest
    sha256: str
    data: bytes

    @property
    def module(self) -> str:
        return self.manifest.module

    @property
    def config(self) -> ArrayConfig:
        """The array, from the manifest's ``parameters``."""
        return self.manifest.config

    @property
    def matches_manifest(self) -> bool:
        """Whether the file's SHA-256 is the manifest's ``files.verilog_sha256`` (False for a
        hand-edited file)."""
        return self.sha256 == self.manifest.files.verilog_sha256


def load_rtl(path) -> RtlFile:
    """Read a Verilog file and the manifest next to it (same stem, ``.json``) and check the pair.

    A file whose SHA-256 differs from the manifest's (hand-edited) is accepted; see
    :attr:`RtlFile.matches_manifest`.

    Raises
    ------
    ValueError
        One line naming the file, when it cannot be read, its manifest is missing, unreadable or
        not a manifest (:meth:`rf8hw.hdl.manifest.Manifest.read`: its parameters included), the
        manifest's ``files.verilog`` is not the file's name, or the module it names is not
        declared in the file.
    """
    v = Path(path)
    try:
        data = v.read_bytes()
    except OSError as exc:
        raise ValueError(f"{v}: cannot read the Verilog file ({exc.strerror or exc})") from None
    j = v.with_suffix(".json")
    if j == v:
        raise ValueError(f"{v}: give the .v file; its manifest is the .json next to it")
    if not j.is_file():
        raise ValueError(f"{v}: no manifest {j.name} next to it (rf8hw generate writes "
                         f"<module>.v and <module>.json side by side)")
    try:
        manifest = Manifest.read(j)
    except ValueError as exc:
        raise ValueError(f"{v}: its {exc}") from None
    if manifest.files.verilog != v.name:
        raise ValueError(f"{v}: its manifest {j} describes {manifest.files.verilog!r} "
                         f"(files.verilog), not {v.name!r}")
    text = data.decode("utf-8", errors="replace")
    if not re.search(rf"^\s*module\s+{re.escape(manifest.module)}\s*[(;#]", text,
                     flags=re.MULTILINE):
        raise ValueError(f"{v}: declares no module {manifest.module!r}, the module its manifest "
                         f"{j.name} names")
    return RtlFile(v, j, manifest, hashlib.sha256(data).hexdigest(), data)
