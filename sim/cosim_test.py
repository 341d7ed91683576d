"""The cocotb test module the simulator loads (``COCOTB_TEST_MODULES=rf8hw.sim.cosim_test``).

It runs one *job* written by :func:`rf8hw.sim.run.run_tiles`: the plusarg ``+rf8hw_job=<dir>`` names a
directory holding ``job.json`` (options) and ``tiles.npz`` (stimulus); the test writes
``result.json`` (and ``results.npz`` when asked) into the same directory and fails if any result
differed from the golden model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

import cocotb

from .hdlbench import watchdog_cycles
from .job import PROGRESS_PREFIX, load_tiles
from .stimulus import unpack_row
from .testbench import Testbench, dump_json, wall_clock


@cocotb.test()
async def cosim(dut):
    """Stream the job's tiles through the DUT; every result row is checked as it arrives."""
    job_dir = Path(cocotb.plusargs["rf8hw_job"])
    job = json.loads((job_dir / "job.json").read_text())
    tiles = load_tiles(job_dir / "tiles.npz")
    log = logging.getLogger("cocotb.rf8hw.cosim")   # under "cocotb": shown at INFO
    tb = Testbench(dut, job["parameters"], stall_prob=job["stall_prob"], seed=job["seed"],
                   backpressure_prob=job["backpressure_prob"], log=log, **job["ports"])
    tb.scoreboard.keep_results = job["keep_results"]
    if job["corrupt"] is not None:
        tb.corrupt_expected(*job["corrupt"])
    n_after = job["tiles_after_reset"]
    first, second = tiles[:len(tiles) - n_after], tiles[len(tiles) - n_after:]
    # Groups (without a reset only): group g's tiles are queued once every result of group g-1
    # has been checked, so each group starts on an idle, empty array.
    bounds = np.cumsum([0, *(job["groups"] or [len(first)])]).tolist()
    for t in range(bounds[1]):
        tb.queue_tile(t, *first[t])

    every = max(1, len(tiles) // 10)
    next_report = [every]

    def progress(bench):
        if bench.tiles_done >= next_report[0]:
            log.info("%s tiles %d/%d cycles %d mismatches %d", PROGRESS_PREFIX, bench.tiles_done,
                     len(tiles), bench.cycle, bench.scoreboard.mismatches)
            next_report[0] += every

    # No result row for this long while rows are expected: the design hangs (the budget grows
    # with the stall probabilities, as in the HDL bench).
    bp = job["stall_prob"] if job["backpressure_prob"] is None else job["backpressure_prob"]
    max_idle = watchdog_cycles(tb.rows, tb.cols, (job["stall_prob"], bp))
    t0 = wall_clock()
    await tb.start()
    cycles_before_reset = 0
    try:
        if job["reset_at_cycle"] is not None:
            while tb.cycle < job["reset_at_cycle"]:
                await tb.run_cycles(1)
            cycles_before_reset = tb.cycle + 1
            await tb.reset()
            for t, (codes, a) in enumerate(second, start=len(first)):
                tb.queue_tile(t, codes, a)
        await tb.run_until_idle(max_idle, progress)
        for lo, hi in zip(bounds[1:-1], bounds[2:]):
            for t in range(lo, hi):
                tb.queue_tile(t, *first[t])
            await tb.run_until_idle(max_idle, progress)
    except (TimeoutError, ValueError) as exc:
        # a hang or X/Z on an output: one line for the host side, no traceback there
        dump_json(job_dir / "result.json", {"error": str(exc) or type(exc).__name__})
        raise AssertionError(str(exc)) from None
    last_result = tb.cycle
    wall = wall_clock() - t0
    # A few more cycles with tready high: a duplicated or spurious row is a mismatch.
    tb.monitor.stall_prob = 0.0
    await tb.run_cycles(tb.rows + tb.cols + 4)
    tb.stop()
    report = tb.report()
    report["tiles_last_result_cycle"] = max((r["r_last"] for r in report["tiles"]), default=-1)
    report["cycles"] = cycles_before_reset + report["tiles_last_result_cycle"] + 1
    report["loop_cycles"] = last_result + 1 + cycles_before_reset
    report["wall_s"] = wall
    dump_json(job_dir / "result.json", report)
    if job["keep_results"]:
        np.savez(job_dir / "results.npz", **{
            f"tile_{t}": np.stack([unpack_row(w, tb.acc_lane, tb.cols) for w in words])
            for t, words in tb.scoreboard.results.items()})
    log.info("%s done cycles %d mismatches %d", PROGRESS_PREFIX, report["cycles"],
             report["mismatches"])
    assert report["mismatches"] == 0, f"{report['mismatches']} mismatches; first: " \
        f"{report['first_mismatch']}"
