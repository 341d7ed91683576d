"""The cocotb test module of the accelerator co-simulation (``rf8hw.sim.accel_cosim``): Python
drives every port of ``RF8AccelAxiTop``'s Verilog at every clock.

The plusarg ``+rf8hw_accel_job=<file>`` names the job (JSON, written by
:func:`rf8hw.sim.accel_cosim.run_accel_cosim`): the beats of each stream, the idle and stall
probabilities, the seed, an optional reset cycle; the test writes ``<file>.result.json`` with every
result beat and the cycle of every handshake.  With ``arrivals`` (per input stream, the cycle from
which each beat may be offered: a memory profile's throttle pattern,
:func:`rf8hw.accel.accel_cycles.stream_arrivals`) a producer holds ``tvalid`` low until its next
beat has arrived.  Cycle ``c`` is the ``c``-th rising clock edge after
reset is released (the first is cycle 0); inputs are written at the falling edge before it and the
handshakes read once the values have settled (``ReadOnly``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

STREAMS = ("cmd", "w", "a", "p")


def _port(dut, name):
    return getattr(dut, name)


@cocotb.test()
async def accel(dut):
    path = Path(cocotb.plusargs["rf8hw_accel_job"]).absolute()
    job = json.loads(path.read_text())
    clk, rst = _port(dut, job["clock"]), _port(dut, job["reset"])
    asserted, released = (0, 1) if job["reset_active_low"] else (1, 0)
    rng = random.Random(job["seed"])
    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    ports = {s: (_port(dut, f"s_axis_{s}_tvalid"), _port(dut, f"s_axis_{s}_tdata"),
                 _port(dut, f"s_axis_{s}_tready")) for s in STREAMS}
    w_last = dut.s_axis_w_tlast
    out_valid, out_data, out_ready, out_last = (dut.m_axis_out_tvalid, dut.m_axis_out_tdata,
                                                dut.m_axis_out_tready, dut.m_axis_out_tlast)

    def queues(jobs):
        q = {s: [int(x, 16) for j in jobs for x in j[s]] for s in STREAMS}
        q["w_last"] = [x for j in jobs for x in j["w_last"]]
        return q

    rec = {"results": [], "lasts": [], "out_cycles": [], "cmd_cycles": [], "a_cycles": [],
           "w_cycles": [], "during_reset": None}
    arrivals = job.get("arrivals")
    q = queues(job["jobs"])
    index = dict.fromkeys(STREAMS, 0)
    expected = sum(j["n_out"] for j in job["jobs"])
    for s in STREAMS:
        ports[s][0].value = 0
    out_ready.value = 0
    rst.value = asserted
    for _ in range(3):
        await RisingEdge(clk)
    tail = None
    for cycle in range(job["max_cycles"]):
        await FallingEdge(clk)
        rst.value = asserted if cycle == job["reset_at"] else released
        offered = {}
        for s in STREAMS:
            valid, data, _ = ports[s]
            i = index[s]
            v = i < len(q[s]) and rng.random() >= job["p_idle"] and (
                arrivals is None or cycle >= arrivals[s][i])
            valid.value = int(v)
            if v:
                data.value = q[s][i]
                if s == "w":
                    w_last.value = q["w_last"][i]
            offered[s] = v
        ready = tail is not None or rng.random() >= job["p_out_stall"]
        out_ready.value = int(ready)
        await ReadOnly()
        if cycle == job["reset_at"]:
            rec["during_reset"] = [int(ports[s][2].value) for s in STREAMS] + [int(out_valid.value)]
            await RisingEdge(clk)
            q = queues(job["jobs"][-1:])
            index = dict.fromkeys(STREAMS, 0)
            expected = job["jobs"][-1]["n_out"]
            for key in ("results", "lasts", "out_cycles", "cmd_cycles", "a_cycles", "w_cycles"):
                rec[key].clear()
            continue
        for s in STREAMS:
            if offered[s] and int(ports[s][2].value):
                index[s] += 1
                if s == "cmd":
                    rec["cmd_cycles"].append(cycle)
                elif s == "a":
                    rec["a_cycles"].append(cycle)
                elif s == "w":
                    rec["w_cycles"].append(cycle)
        if ready and int(out_valid.value):
            rec["results"].append(hex(int(out_data.value)))
            rec["lasts"].append(int(out_last.value))
            rec["out_cycles"].append(cycle)
        await RisingEdge(clk)
        if tail is None and len(rec["results"]) >= expected and index["cmd"] == len(q["cmd"]):
            tail = cycle + job["tail"]          # keep watching: a duplicate beat would show
        if tail is not None and cycle >= tail:
            break
    rec["cycles"] = cycle + 1
    rec["err_cmd"], rec["err_w_tlast"] = int(dut.err_cmd.value), int(dut.err_w_tlast.value)
    path.with_suffix(".result.json").write_text(json.dumps(rec))
