"""The cocotb test module of the HDL bench (``--bench hdl``; the wrapper:
:mod:`rf8hw.sim.hdl_bench.wrapper`).

It runs one job written by :func:`rf8hw.sim.run.run_tiles` (``+rf8hw_job=<dir>``: ``job.json`` and
``tiles.npz``, :mod:`rf8hw.sim.job`), like :mod:`rf8hw.sim.python_bench.cocotb_test`, and writes
the same ``result.json`` (and ``results.npz`` when asked).  Python is woken once per batch, never
per cycle: it hands over stimulus chunks, reads result chunks as numpy arrays and checks each chunk
against the golden model (:class:`BatchScoreboard`); the wrapper runs free in between.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, with_timeout

from rf8hw.hdl.manifest import Manifest

from ..job import PROGRESS_PREFIX, read_job, write_error, write_report, write_results
from ..records import BenchReport, TileCycles
from ..scoreboard import BatchScoreboard, GoldenModel, wall_clock, watchdog_cycles
from .wrapper import (
    RING_BITS,
    TILE_FIELDS,
    WHY,
    decode_words,
    digits_to_uint,
    encode_beats,
    lfsr_threshold,
    stream_seed,
    tile_words,
)

_NEVER = (1 << 32) - 1
_HALF = 1 << (RING_BITS - 1)


class HdlBench:
    """Drives the :data:`rf8hw.sim.hdl_bench.wrapper.BENCH_MODULE` wrapper through one job.

    Parameters as :class:`rf8hw.sim.python_bench.testbench.Testbench` (``backpressure_prob``:
    the result stream's probability, always given); ``job_dir`` holds the chunk files.
    """

    def __init__(self, dut, manifest: Manifest, job_dir: Path, *, stall_prob: float, seed: int,
                 backpressure_prob: float, log: logging.Logger):
        self.dut, self.log, self.job_dir = dut, log, job_dir
        params, cfg = manifest.parameters, manifest.config
        self.rows, self.cols = cfg.rows, cfg.cols
        self.act_lane, self.acc_lane = params.act_lane_bits, params.acc_lane_bits
        self.model = GoldenModel(cfg.act_bits, cfg.acc_bits, cfg.overflow)
        self.max_idle = watchdog_cycles(self.rows, self.cols, (stall_prob, backpressure_prob))
        dut.tb_rst.value = 1
        for stream, p in (("w", stall_prob), ("a", stall_prob), ("r", backpressure_prob)):
            getattr(dut, f"tb_{stream}_thr").value = lfsr_threshold(p)
            getattr(dut, f"tb_{stream}_seed").value = stream_seed(seed, stream)
        dut.tb_tail.value = self.rows + self.cols + 4
        dut.tb_max_idle.value = self.max_idle
        dut.tb_reset_at.value = _NEVER
        self.results: dict[int, np.ndarray] = {}
        self.keep_results = False
        # compile (or load) the model's Numba code before the clock starts: not a per-run cost
        self.model.tile(np.zeros((self.rows, self.cols), dtype=np.uint8),
                        np.zeros((1, self.rows), dtype=np.int64))

    # --- one segment: the tiles streamed between two resets ----------------------------------------
    def _segment(self, tiles, first_tile: int, corrupt):
        def beats(arrays, lanes, lane_bits):
            vals = (np.concatenate(arrays) if arrays else np.zeros((0, lanes))).astype(np.int64)
            last = np.zeros(len(vals), dtype=np.uint8)
            last[np.cumsum([len(x) for x in arrays], dtype=np.int64) - 1] = 1
            return [encode_beats(vals, lane_bits, last), lanes * lane_bits // 4 + 2, len(vals), 0]
        self.streams = {"w": beats([c for c, _ in tiles], self.cols, 8),
                        "a": beats([np.asarray(a) for _, a in tiles], self.rows, self.act_lane)}
        self.sb = BatchScoreboard(self.model, tiles, first_tile, self.cols, corrupt)
        self.first_tile, self.seg_tiles = first_tile, tiles
        self.rows_cyc, self.rows_stall, self.rows_data = [], [], []
        self.tw, self.ta = [], []
        self.dut.tb_r_expect.value = self.sb.total
        self._hand_over("w", 2 * _HALF)
        self._hand_over("a", 2 * _HALF)

    def _hand_over(self, stream: str, count: int) -> None:
        """Write the next ``count`` beats (or fewer, the rest) of ``stream`` to its chunk file."""
        text, width, total, done = self.streams[stream]
        n = min(count, total - done)
        (self.job_dir / f"{stream}.hex").write_bytes(text[done * width:(done + n) * width])
        self.streams[stream][3] = done + n
        getattr(self.dut, f"tb_{stream}_avail").value = done + n
        getattr(self.dut, f"tb_{stream}_more").value = int(done + n < total)

    def _read(self, name: str, n: int) -> np.ndarray:
        return decode_words((self.job_dir / f"{name}.hex").read_bytes(), n, f"{name}.hex")

    def _take_results(self, n: int) -> None:
        digits = self._read("r", n)
        cyc = digits_to_uint(digits[:, 0:8]).astype(np.int64)
        stall = digits_to_uint(digits[:, 8:16]).astype(np.int64)
        last = digits[:, 16].astype(np.int64)
        data = tile_words(digits[:, 17:], self.acc_lane, self.cols)

        def word(i):
            return int("".join(f"{d:x}" for d in digits[i, 17:]), 16)
        self.sb.check(data, last, cyc, word)
        self.rows_cyc.append(cyc)
        self.rows_stall.append(stall)
        if self.keep_results:
            self.rows_data.append(data)

    def _take_tiles(self, name: str, n: int) -> None:
        digits = self._read(name, n)
        rec = np.stack([digits_to_uint(digits[:, 8 * i:8 * i + 8]).astype(np.int64)
                        for i in range(len(TILE_FIELDS))], axis=1)
        (self.tw if name == "tw" else self.ta).append(rec)

    def _records(self) -> list[TileCycles]:
        """Per-tile cycle records (``docs/cosim.md``) of the segment's completed tiles."""
        sb = self.sb
        cyc = np.concatenate(self.rows_cyc) if self.rows_cyc else np.zeros(0, np.int64)
        stall = np.concatenate(self.rows_stall) if self.rows_stall else np.zeros(0, np.int64)
        tw = np.concatenate(self.tw) if self.tw else np.zeros((0, 4), np.int64)
        ta = np.concatenate(self.ta) if self.ta else np.zeros((0, 4), np.int64)
        done = int(np.searchsorted(sb.bounds, min(len(cyc), sb.total), side="right")) - 1
        out = []
        for t in range(min(done, len(tw), len(ta))):
            r0, r1 = int(sb.bounds[t]), int(sb.bounds[t + 1]) - 1
            before = int(stall[r0 - 1]) if t else 0
            # stall[r] counts the stall edges before row r's handshake
            out.append(TileCycles(
                tile=self.first_tile + t, m_rows=r1 - r0 + 1,
                w_first=int(tw[t, 0]), w_last=int(tw[t, 1]), a_first=int(ta[t, 0]),
                a_last=int(ta[t, 1]), r_first=int(cyc[r0]), r_last=int(cyc[r1]),
                w_not_ready=int(tw[t, 2]), w_idle=int(tw[t, 3]), a_not_ready=int(ta[t, 2]),
                a_idle=int(ta[t, 3]), out_stall=int(stall[r1]) - before))
        if self.keep_results and self.rows_data:
            data = np.concatenate(self.rows_data)
            for t in range(done):
                self.results[self.first_tile + t] = data[sb.bounds[t]:sb.bounds[t + 1]]
        return out

    async def run(self, tiles, *, corrupt=None, reset_at_cycle=None, tiles_after_reset=0,
                  progress=None) -> BenchReport:
        dut = self.dut
        n_first = len(tiles) - tiles_after_reset
        parts = [(tiles[:n_first], 0), (tiles[n_first:], n_first)]
        self._segment(*parts[0], corrupt)
        if reset_at_cycle is not None:
            dut.tb_reset_at.value = reset_at_cycle
        # two rising edges in reset, release between edges (the first edge out of reset is
        # cycle 0); RisingEdge, not FallingEdge: Icarus counts the clock's X -> 0 as a falling edge
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.tb_rst.value = 0
        t0, cpu0 = wall_clock(), time.process_time()
        records, dropped, mismatches, first, checked = [], [], 0, None, 0
        cycles_before_reset, end_cycle, last_cycle = 0, 0, 0
        # simulated time per wake-up at most: every stream may wait max_idle edges
        timeout_ns = 10 * (3 * self.max_idle + 4 * _HALF + 1000)
        change = dut.tb_seq.value_change
        python_s, t_wake = 0.0, None       # wall time spent in Python after wake-ups
        while True:
            if t_wake is not None:
                python_s += wall_clock() - t_wake
                await with_timeout(change, timeout_ns, "ns")
            t_wake = wall_clock()
            why, cycle = int(dut.tb_why.value), int(dut.tb_cycle.value)
            if why == 0:
                continue                      # not an event (a reset-time change)
            if cycle < last_cycle:
                raise RuntimeError(f"the bench's 32-bit cycle counter wrapped after cycle "
                                   f"{last_cycle}: a run this long cannot be timed; split it")
            last_cycle = cycle
            if why & WHY["r_dump"]:
                self._take_results(int(dut.tb_r_n.value))
            if why & WHY["tw_dump"]:
                self._take_tiles("tw", int(dut.tb_tw_n.value))
            if why & WHY["ta_dump"]:
                self._take_tiles("ta", int(dut.tb_ta_n.value))
            if why & WHY["hang"]:
                raise TimeoutError(
                    f"no result row for {self.max_idle} cycles at cycle {cycle}: "
                    f"{self.sb.total - self.sb.seen} result row(s) outstanding, "
                    f"{self.streams['w'][2] - self.streams['w'][3]} weight and "
                    f"{self.streams['a'][2] - self.streams['a'][3]} activation beats not handed "
                    f"over")
            if why & (WHY["done"] | WHY["reset"]):
                records += self._records()
                mismatches += self.sb.mismatches
                first = first or self.sb.first
                checked += self.sb.rows_checked
                end_cycle = cycles_before_reset + cycle + 1
                if why & WHY["done"]:
                    break
                done_tiles = {r.tile for r in records}
                dropped += [self.first_tile + t for t in range(len(self.seg_tiles))
                            if self.first_tile + t not in done_tiles]
                records = [r for r in records if r.tile not in dropped]
                cycles_before_reset, last_cycle = cycle + 1, 0     # the counter restarts
                dut.tb_reset_at.value = _NEVER
                self._segment(*parts[1], None)
                continue
            if why & WHY["w_low"]:
                self._hand_over("w", _HALF)
            if why & WHY["a_low"]:
                self._hand_over("a", _HALF)
            if progress is not None:
                progress(self.sb, cycle)
        wall, cpu = wall_clock() - t0, time.process_time() - cpu0
        python_s += wall_clock() - t_wake
        last = max((r.r_last for r in records), default=-1)
        return BenchReport(
            mismatches=mismatches, first_mismatch=first, rows_checked=checked,
            values_checked=checked * self.cols, err_w_tlast=int(dut.tb_err_w_tlast.value),
            dropped_tiles=tuple(dropped), tiles=tuple(records), tiles_last_result_cycle=last,
            cycles=cycles_before_reset + last + 1, loop_cycles=end_cycle, wall_s=wall, cpu_s=cpu,
            python_s=python_s)


@cocotb.test()
async def cosim(dut):
    """Stream the job's tiles through the wrapper; every result row is checked per chunk."""
    job_dir = Path(cocotb.plusargs["rf8hw_job"]).absolute()     # "." (run.py): the run directory
    job, tiles = read_job(job_dir)
    log = logging.getLogger("cocotb.rf8hw.cosim")
    bench = HdlBench(dut, job.manifest, job_dir, stall_prob=job.stall_prob, seed=job.seed,
                     backpressure_prob=job.backpressure_prob, log=log)
    bench.keep_results = job.keep_results
    every = max(1, sum(len(a) for _, a in tiles) // 10)
    next_report = [every]

    def progress(sb, cycle):
        if sb.seen >= next_report[0]:
            log.info("%s rows %d/%d cycles %d mismatches %d", PROGRESS_PREFIX, sb.seen, sb.total,
                     cycle, sb.mismatches)
            next_report[0] = sb.seen + every

    try:
        report = await bench.run(tiles, corrupt=job.corrupt, reset_at_cycle=job.reset_at_cycle,
                                 tiles_after_reset=job.tiles_after_reset, progress=progress)
    except (TimeoutError, SimTimeoutError, RuntimeError, OSError) as exc:
        # a hang, unreadable output or a chunk file that cannot be read or written: one line for
        # the host side, no traceback there
        write_error(job_dir, str(exc) or type(exc).__name__)
        raise AssertionError(str(exc)) from None
    write_report(job_dir, report)
    if job.keep_results:
        write_results(job_dir, bench.results)
    log.info("%s done cycles %d mismatches %d", PROGRESS_PREFIX, report.cycles, report.mismatches)
    assert report.mismatches == 0, f"{report.mismatches} mismatches; first: {report.first_mismatch}"
