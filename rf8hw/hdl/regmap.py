"""The shell's register map, compiled once from its SystemRDL source (``rf8hw/hdl/shell.rdl``).

:func:`compile_rdl` runs ``systemrdl-compiler`` on the file; :func:`regmap` walks the compiled tree
into plain data (:class:`RegMap` of :class:`Register` of :class:`Field`, each field with its access
kind), which the RTL register block (:mod:`rf8hw.hdl.regmap_rtl`) and the Python driver
(:mod:`rf8hw.hdl.shell_driver`) use; :func:`markdown` and :func:`c_header` run the PeakRDL exporters on the
same compiled model.  No register is listed anywhere else.  Standard library and
``systemrdl-compiler`` only (no Amaranth: the driver imports this module).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["ACCESS_KINDS", "Field", "Register", "RegMap", "rdl_path", "compile_rdl", "regmap",
           "markdown", "c_header"]

#: The field kinds the register block implements, from the SystemRDL properties:
#: ``const`` (sw=r, hw=na: the reset value), ``ro`` (sw=r, hw=w: driven by the hardware), ``rw``
#: (sw=rw, hw=r: storage), ``pulse`` (sw=rw, singlepulse: one cycle per write of 1, reads 0),
#: ``w1c`` (sw=rw, hwset, onwrite=woclr: sticky, set by the hardware, cleared by writing 1).
ACCESS_KINDS = ("const", "ro", "rw", "pulse", "w1c")


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    access: str          #: one of :data:`ACCESS_KINDS`
    reset: int
    desc: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int          #: byte offset from the block's base
    desc: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}; it has "
                       f"{', '.join(f.name for f in self.fields)}")


@dataclass(frozen=True)
class RegMap:
    name: str
    registers: tuple[Register, ...]
    size: int            #: bytes spanned by the block

    def reg(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"no register {name!r} in {self.name}")

    @property
    def addr_bits(self) -> int:
        """Width of the AXI4-Lite address that decodes every register."""
        return max(2, (self.size - 1).bit_length())


def rdl_path() -> Path:
    """The SystemRDL source, shipped as package data."""
    return Path(str(resources.files("rf8hw.hdl") / "shell.rdl"))


def compile_rdl():
    """The elaborated ``systemrdl`` root node of :func:`rdl_path` (``RDLCompileError`` on a bad file)."""
    from systemrdl import RDLCompiler

    compiler = RDLCompiler()
    compiler.compile_file(str(rdl_path()))
    return compiler.elaborate()


def _access(f) -> str:
    from systemrdl.rdltypes import AccessType, OnWriteType

    sw, hw = f.get_property("sw"), f.get_property("hw")
    where = f"{f.parent.inst_name}.{f.inst_name}"
    if sw == AccessType.r:
        if hw == AccessType.na:
            if f.get_property("reset") is None:
                raise ValueError(f"{where}: a constant field (sw=r, hw=na) needs a reset value")
            return "const"
        if hw == AccessType.w:
            return "ro"
    elif sw == AccessType.rw:
        if f.get_property("singlepulse"):
            return "pulse"
        if f.get_property("hwset") and f.get_property("onwrite") == OnWriteType.woclr:
            return "w1c"
        if hw == AccessType.r and f.get_property("onwrite") is None:
            return "rw"
    raise ValueError(f"{where}: sw={sw.name}, hw={hw.name} with these properties is not one of the "
                     f"field kinds the register block implements ({', '.join(ACCESS_KINDS)})")


@lru_cache(maxsize=1)
def regmap() -> RegMap:
    """The compiled register map as plain data (cached: the file ships with the package)."""
    top = compile_rdl().top
    regs = []
    for r in top.registers():
        if r.get_property("regwidth") != 32 or r.is_array:
            raise ValueError(f"{r.inst_name}: only single 32-bit registers are implemented")
        fields = tuple(Field(f.inst_name, f.lsb, f.width, _access(f), f.get_property("reset") or 0,
                             " ".join((f.get_property("desc") or "").split()))
                       for f in r.fields())
        regs.append(Register(r.inst_name, r.address_offset,
                             " ".join((r.get_property("desc") or r.get_property("name")).split()),
                             fields))
    return RegMap(top.inst_name, tuple(regs), top.size)


def _export(write, suffix: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"rf8_accel_shell_regs{suffix}"
        write(str(path))
        return path.read_text()


def markdown() -> str:
    """The register map as Markdown (``peakrdl-markdown``)."""
    from peakrdl_markdown import MarkdownExporter

    top = compile_rdl().top
    return _export(lambda p: MarkdownExporter().export(top, p), ".md")


def c_header() -> str:
    """The register map as a C header (``peakrdl-cheader``: offsets, field masks and positions,
    a struct of the block)."""
    from peakrdl_cheader.exporter import CHeaderExporter

    top = compile_rdl().top
    return _export(lambda p: CHeaderExporter().export(top, p), ".h")
