"""A generated Verilog file and its manifest, read and checked once (:func:`load_rtl`).

The manifest is not believed on its word: its parameters must agree with each other
(:meth:`rf8hw.hdl.manifest.Manifest.from_dict`) and with the Verilog text itself -- the module it
names is declared there as a top module (instantiated by no other), and that module's ports
(names, directions, widths, read from its declarations) are the ones the parameters give
(:meth:`~rf8hw.hdl.manifest.Manifest.expected_ports`).  So a manifest edited by hand (``act_bits``
8 -> 4, a submodule named as the top) is refused with one line naming the file, the field and
both values, whatever its recorded SHA-256 says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from rf8hw.arch import ArrayConfig
from rf8hw.hdl.manifest import Manifest

__all__ = ["RtlFile", "load_rtl", "verilog_ports"]

#: The UTF-8 byte-order mark some editors put at the start of a file.
BOM = b"\xef\xbb\xbf"

#: Comments, and functions and tasks (whose ``input`` declarations are not the module's ports).
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/|\bfunction\b.*?\bendfunction\b|\btask\b.*?\bendtask\b",
                       re.DOTALL)
_IDENT = r"(?:\\\S+|[A-Za-z_][\w$]*)"          # a plain or an escaped Verilog identifier
_MODULE = re.compile(rf"\bmodule\s+({_IDENT})\s*(#\s*\(.*?\)\s*)?(\((.*?)\))?\s*;(.*?)\bendmodule\b",
                     re.DOTALL)
_DECL = re.compile(r"\b(input|output|inout)\b((?:\s+(?:wire|reg|logic|signed|unsigned))*)\s*"
                   r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\])?\s*"
                   rf"({_IDENT}(?:\s*,\s*(?!input\b|output\b|inout\b){_IDENT})*)")
#: ``<module> [#(...)] <instance> (``: an instantiation (other statements that look alike name no
#: module of the file).
_INSTANCE = re.compile(rf"(?:^|(?<=[;\s]))({_IDENT})\s+(?:#\s*\(.*?\)\s*)?{_IDENT}\s*\(", re.DOTALL)


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
        SHA-256 of ``data``.
    data : bytes
        The file's bytes without a leading UTF-8 byte-order mark (the ones hashed, and the ones a
        simulator build compiles: Icarus finds no module in a file that starts with one).
    bom : bool
        Whether the file started with a UTF-8 byte-order mark (an editor's), which ``data`` lacks.
    """

    verilog: Path
    manifest_path: Path
    manifest: Manifest
    sha256: str
    data: bytes
    bom: bool = False

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


def _modules(text: str) -> dict[str, tuple[str, str]]:
    """Module name -> (port list of its header, body) of each module in ``text`` (comments
    removed)."""
    return {m.group(1).rstrip(): (m.group(4) or "", m.group(5)) for m in _MODULE.finditer(text)}


def verilog_ports(header: str, body: str) -> dict[str, tuple[str, int]]:
    """Port name -> (direction, width) of a module, from its declarations: ANSI ones in its
    ``header`` (``input wire [7:0] a``) and the others in its ``body`` (``input [7:0] a;``)."""
    ports = {}
    for text in (header, body):
        for m in _DECL.finditer(text):
            width = 1 if m.group(3) is None else abs(int(m.group(3)) - int(m.group(4))) + 1
            for name in re.split(r"\s*,\s*", m.group(5).strip()):
                ports[name] = (m.group(1), width)
    return ports


def _parents(modules: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Module name -> the first module whose body instantiates it (for the modules of the file
    that are instantiated at all)."""
    parents = {}
    for parent, (_, body) in modules.items():
        for m in _INSTANCE.finditer(body):
            if m.group(1) in modules and m.group(1) != parent:
                parents.setdefault(m.group(1), parent)
    return parents


def _check_verilog(v: Path, j: Path, manifest: Manifest, text: str) -> None:
    """``ValueError`` unless ``text`` declares ``manifest.module`` as a top module with the ports
    the manifest's parameters give."""
    modules = _modules(_COMMENTS.sub(" ", text))
    name = manifest.module
    if name not in modules:
        parents = _parents(modules)
        tops = [m for m in modules if m not in parents]
        found = (f"; it declares {', '.join(map(repr, tops[:3]))}" if tops
                 else "; it declares no module")
        raise ValueError(f"{v}: declares no module {name!r}, the module its manifest {j.name} "
                         f"names{found}")
    use = re.compile(rf"(?:^|(?<=[;\s])){re.escape(name)}\s+(?:#\s*\(.*?\)\s*)?{_IDENT}\s*\(",
                     re.DOTALL)
    parent = next((m for m, (_, body) in modules.items() if m != name and use.search(body)), None)
    if parent is not None:
        raise ValueError(f"{v}: module {name!r}, the top its manifest {j.name} names, is a "
                         f"submodule (module {parent!r} instantiates it)")
    ports = verilog_ports(*modules[name])
    for port, (direction, width, why) in manifest.expected_ports().items():
        if port not in ports:
            raise ValueError(f"{v}: module {name} has no port {port!r}, which its manifest "
                             f"{j.name} lists")
        if ports[port] != (direction, width):
            raise ValueError(f"{v}: port {port} is {ports[port][0]} {ports[port][1]} bits in the "
                             f"Verilog, but its manifest {j.name} gives {direction} {width} bits "
                             f"({why})")
    extra = [port for port in ports if port not in manifest.expected_ports()]
    if extra:
        raise ValueError(f"{v}: module {name} has port(s) {', '.join(extra)}, which its manifest "
                         f"{j.name} does not list")


def load_rtl(path) -> RtlFile:
    """Read a Verilog file and the manifest next to it (same stem, ``.json``) and check the pair.

    A file whose SHA-256 differs from the manifest's (hand-edited) is accepted; see
    :attr:`RtlFile.matches_manifest`.  A UTF-8 byte-order mark at its start (which some editors
    add) is dropped before the file is hashed, checked or compiled (:attr:`RtlFile.bom`).

    Raises
    ------
    ValueError
        One line naming the file, when it cannot be read, its manifest is missing, unreadable or
        not a manifest (:meth:`rf8hw.hdl.manifest.Manifest.read`: its parameters included, and
        whether its sections agree with them), the manifest's ``files.verilog`` is not the file's
        name, the module it names is not declared in the file or is not a top module there, or
        that module's ports (names, directions, widths) are not the ones the parameters give.
    """
    v = Path(path)
    if v.exists() and not v.is_file() and not v.is_dir():     # a FIFO would block the read
        raise ValueError(f"{v}: cannot read the Verilog file (not a regular file)")
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
    bom = data.startswith(BOM)
    data = data.removeprefix(BOM)
    _check_verilog(v, j, manifest, data.decode("utf-8", errors="replace"))
    return RtlFile(v, j, manifest, hashlib.sha256(data).hexdigest(), data, bom)
