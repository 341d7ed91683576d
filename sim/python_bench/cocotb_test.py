"""The cocotb test module of the Python bench (``--bench python``;
``COCOTB_TEST_MODULES=rf8hw.sim.python_bench.cocotb_test``).

It runs one *job* written by :func:`rf8hw.sim.run.run_tiles`: the plusarg ``+rf8hw_job=<dir>`` names a
directory holding ``job.json`` and ``tiles.npz`` (:mod:`rf8hw.sim.job`); the test writes
``result.json`` (and ``results.npz`` when asked) into the same directory and fails if any result
differed from the golden model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cocotb
import numpy as np

from ..job import PROGRESS_PREFIX, read_job, write_error, write_report, write_results
from ..records import BenchReport
from ..scoreboard import wall_clock, watchdog_cycles
from ..stimulus import unpack_row
from .testbench import Testbench


@cocotb.test()
async def cosim(dut):
    """Stream the job's tiles through the DUT; every result row is checked as it arrives."""
    job_dir = Path(cocotb.plusargs["rf8hw_job"]).absolute()     # "." (run.py): the run directory
    job, tiles = read_job(job_dir)
    log = logging.getLogger("cocotb.rf8hw.cosim")   # under "cocotb": shown at INFO
    tb = Testbench(dut, job.manifest, stall_prob=job.stall_prob, seed=job.seed,
                   backpressure_prob=job.backpressure_prob, log=log)
    tb.scoreboard.keep_results = job.keep_results
    if job.corrupt is not None:
        tb.corrupt_expected(*job.corrupt)
    n_after = job.tiles_after_reset
    first, second = tiles[:len(tiles) - n_after], tiles[len(tiles) - n_after:]
    # Groups (without a reset only): group g's tiles are queued once every result of group g-1
    # has been checked, so each group starts on an idle, empty array.
    bounds = np.cumsum([0, *(job.groups or [len(first)])]).tolist()
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
    max_idle = watchdog_cycles(tb.rows, tb.cols, (job.stall_prob, job.backpressure_prob))
    t0 = wall_clock()
    await tb.start()
    cycles_before_reset = 0
    try:
        if job.reset_at_cycle is not None:
            while tb.cycle < job.reset_at_cycle:
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
        write_error(job_dir, str(exc) or type(exc).__name__)
        raise AssertionError(str(exc)) from None
    last_result = tb.cycle
    wall = wall_clock() - t0
    # A few more cycles with tready high: a duplicated or spurious row is a mismatch.
    tb.monitor.stall_prob = 0.0
    await tb.run_cycles(tb.rows + tb.cols + 4)
    tb.stop()
    sb = tb.scoreboard
    records = tb.tile_cycles()
    last = max((r.r_last for r in records), default=-1)
    report = BenchReport(
        mismatches=sb.mismatches, first_mismatch=sb.first, rows_checked=sb.rows_checked,
        values_checked=sb.values_checked, err_w_tlast=int(dut.err_w_tlast.value),
        dropped_tiles=tuple(tb.dropped), tiles=records, tiles_last_result_cycle=last,
        cycles=cycles_before_reset + last + 1, loop_cycles=last_result + 1 + cycles_before_reset,
        wall_s=wall)
    write_report(job_dir, report)
    if job.keep_results:
        write_results(job_dir, {t: np.stack([unpack_row(w, tb.acc_lane, tb.cols) for w in words])
                                for t, words in sb.results.items()})
    log.info("%s done cycles %d mismatches %d", PROGRESS_PREFIX, report.cycles, report.mismatches)
    assert report.mismatches == 0, f"{report.mismatches} mismatches; first: {report.first_mismatch}"
