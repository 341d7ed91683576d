"""Co-simulation of the shell's generated Verilog (``RF8AccelShell``, ``docs/shell.md``) under
Verilator or Icarus on cocotbext-axi's memory and AXI4-Lite models (the cocotb side is
:mod:`rf8hw.sim.shell_cocotb`).

:func:`run_shell_cosim` converts the design to Verilog, builds it with cocotb's runner in
``work_dir`` (reused when built), runs the descriptors in a child process
(:mod:`rf8hw.sim.simulator_process`) and returns what the test saw: per descriptor the result
image (unpacked into result rows), error flags, performance counters; the protocol checker's
findings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rf8hw import checks
from rf8hw.arch import AccelConfig
from rf8hw.hdl.shell_images import unpack_image
from rf8hw.sim.accel_cosim import build_cocotb
from rf8hw.sim.build import check_simulator, use_simulator_path
from rf8hw.sim.stimulus import unpack_row

__all__ = ["build_shell", "run_shell_cosim"]


def build_shell(shell, simulator: str, work_dir) -> Path:
    """Write the Verilog of ``shell`` (an :class:`rf8hw.hdl.shell.RF8AccelShell`) into
    ``work_dir`` and build it for ``simulator`` (:func:`rf8hw.sim.accel_cosim.build_cocotb`);
    returns the build directory (reused when its ``build.ok`` marker is there)."""
    simulator = check_simulator(simulator)
    # no C++ optimisation: the model runs a few thousand cycles, so compiling it at -O0 saves more
    # time than the slower model costs
    return build_cocotb(lambda: shell, shell.module_name, simulator,
                        Path(work_dir).absolute() / f"build-{simulator}-{shell.module_name}",
                        ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"))


def run_shell_cosim(acfg: AccelConfig, descriptors, *, simulator: str = "verilator", work_dir,
                    seed: int = 0, p_stall: float = 0.0, data_bits: int = 64,
                    max_burst: int = 16, reset_after: int | None = None,
                    bad: list | None = None, faults: tuple = (), irq_at: int | None = None,
                    poll_cycles: int = 16, mem_size: int = 1 << 24) -> dict:
    """Run ``descriptors`` (:class:`rf8hw.sim.shell_stimulus.ShellDescriptor`) through the shell.

    ``p_stall``: probability that each AXI channel of the memory model pauses in a cycle
    (cocotbext-axi pause generators on AR, R, AW, W and B).  Before the descriptors: ``bad``, a
    list of overrides of descriptor 0's values (e.g. ``{"M": 0}``, an unaligned base) that make
    descriptors the hardware must refuse (the record's ``bad``: each one's errors and whether its
    result image stayed untouched); then descriptor 0 once per entry of ``faults`` (``"r"``: the
    first data beat of its parameter image reads with SLVERR; ``"w"``: the first of its result
    image writes with SLVERR; the record's ``faults``: what the driver saw); then, with
    ``reset_after``, the descriptor with the largest images is started and ``aresetn`` pulled
    low once ``reset_after`` read beats went by, in the middle of a read burst (the record's
    ``reset``).  ``irq_at``: the descriptor run with ``CTRL.irq_en``.  Returns the test's record
    with ``results`` per descriptor (int64 ``[n_out, cols]``) and ``tail_intact`` (the 64 bytes
    after each result image untouched).
    """
    import numpy as np

    from rf8hw.hdl.shell import RF8AccelShell

    checks.number("p_stall", p_stall, 0.0, 1.0, hi_open=True)
    shell = RF8AccelShell(acfg, data_bits=data_bits, max_burst=max_burst)
    lay = shell.layout
    build_dir = build_shell(shell, simulator, work_dir)
    job_file = Path(work_dir).absolute() / f"shell-job-{shell.module_name}-{seed}.json"
    job_file.with_suffix(".result.json").unlink(missing_ok=True)
    descs = [{"M": d.M, "K": d.K, "N": d.N, "act_base": d.act_base, "load": d.load,
              "bases": dict(d.bases), "images": {s: v.hex() for s, v in d.images.items()},
              "n_out": d.n_out, "irq": i == irq_at} for i, d in enumerate(descriptors)]
    pre = [{**descs[0], **over, "kind": "bad"} for over in (bad or [])]
    pre += [{**descs[0], "kind": "fault", "fault": f} for f in faults]
    if reset_after is not None:          # the descriptor with the most to read
        big = max(descs, key=lambda e: sum(len(v) for v in e["images"].values()))
        pre.append({**big, "kind": "reset", "reset_after": int(reset_after)})
    job_file.write_text(json.dumps({
        "seed": seed, "p_stall": p_stall, "data_bits": data_bits, "max_burst": max_burst,
        "mem_size": mem_size, "poll_cycles": poll_cycles, "out_beat_bytes": lay.beat_bytes("o"),
        "pre": pre, "descriptors": descs}))
    request = {"simulator": simulator, "host_pid": os.getpid(),
               "test_module": "rf8hw.sim.shell_cocotb", "hdl_toplevel": shell.module_name,
               "build_dir": str(build_dir), "test_dir": str(job_file.parent),
               "plusargs": [f"+rf8hw_shell_job={job_file}"], "hdl_toplevel_lang": "verilog",
               "log_file": str(job_file.with_suffix(".log")),
               "results_xml": str(job_file.with_suffix(".xml"))}
    use_simulator_path(simulator)
    errors = job_file.with_suffix(".stderr")
    with open(errors, "w") as err:
        done = subprocess.run([sys.executable, "-m", "rf8hw.sim.simulator_process",
                               json.dumps(request)], cwd=job_file.parent,
                              stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    if done.returncode:
        tail = errors.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the {simulator} run failed (exit {done.returncode}): {tail[0]}; "
                           f"see {errors}")
    result = job_file.with_suffix(".result.json")
    if not result.is_file():
        raise RuntimeError(f"the {simulator} run wrote no result; see "
                           f"{job_file.with_suffix('.log')}")
    rec = json.loads(result.read_text())
    cols, ob = acfg.array.cols, acfg.out_bits
    size = lay.beat_bytes("o")
    rec["results"], rec["tail_intact"] = [], []
    for d, got in zip(descriptors, rec["descriptors"]):
        data = bytes.fromhex(got["out"])
        beats = unpack_image(data, d.n_out, lay.words["o"], data_bits)
        rec["results"].append(np.array([unpack_row(b, ob, cols) for b in beats],
                                       dtype=np.int64).reshape(-1, cols))
        rec["tail_intact"].append(data[d.n_out * size:] == b"\xa5" * 64)
    return rec
