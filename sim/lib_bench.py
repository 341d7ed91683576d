"""The library bench (``--bench lib``, Verilator only): the array's generated Verilog in a shared
library (:mod:`rf8hw.sim.verilator_lib`) driven in this process, a batch of cycles per call.

It keeps the HDL bench's rules to the cycle (``docs/cosim.md``, "HDL bench"): the same seeded
xorshift32 stall generators per stream (``w``, ``a``, ``r``), sources that start after edge 0,
the same tail, watchdog and mid-run reset (two edges, numbering restarted), so its
``cycles.json`` equals the HDL bench's for the same seed (tested).  Every result row is checked
against the golden model after each batch (:class:`rf8hw.sim.scoreboard.BatchScoreboard`).
"""

from __future__ import annotations

import time

import numpy as np

from rf8hw.hdl.manifest import BUSES, Manifest

from .hdl_bench.wrapper import lfsr_threshold, stream_seed
from .records import BenchReport, TileCycles
from .scoreboard import BatchScoreboard, GoldenModel, expected_rows, wall_clock, watchdog_cycles
from .verilator_lib import (
    STATUS_DONE,
    STATUS_HUNG,
    STATUS_RESET,
    Harness,
    Simulation,
    build_library,
    module_ports,
    pack_lanes,
    unpack_ints,
    unpack_lanes,
)

__all__ = ["BATCH_CYCLES", "array_harness", "array_library", "run_lib_bench"]

#: Cycles per call into the library between two checks (and two chances for Ctrl-C/SIGTERM).
BATCH_CYCLES = 1 << 17


def array_harness(manifest: Manifest, verilog: str) -> Harness:
    """The harness of the array top ``manifest`` names, from the ports ``verilog`` declares."""
    iface = manifest.interface
    return Harness.from_ports(manifest.module, module_ports(verilog, manifest.module),
                              iface.clock.name, iface.reset.name, iface.reset.active_low)


def array_library(manifest: Manifest, verilog: str, cache_dir, progress=None):
    """``(library path, harness)`` of the array, built or taken from the cache."""
    harness = array_harness(manifest, verilog)
    return build_library(verilog, harness, cache_dir, progress=progress), harness


def _tile_records(first: int, bounds_w, bounds_a, w, a, rows_cyc, rows_stall, bounds_r,
                  n_rows: int) -> list[TileCycles]:
    """Per-tile cycle records of the tiles whose every result row came (as the HDL bench's)."""
    done = int(np.searchsorted(bounds_r, n_rows, side="right")) - 1
    w0, w1 = bounds_w[:done], bounds_w[1:done + 1] - 1
    a0, a1 = bounds_a[:done], bounds_a[1:done + 1] - 1
    r0, r1 = bounds_r[:done], bounds_r[1:done + 1] - 1
    complete = (w["hs_cycle"][w1] >= 0) & (a["hs_cycle"][a1] >= 0)
    if not complete.all():
        done = int(np.argmin(complete))
    before = np.concatenate([[0], rows_stall[r1[:-1]]]) if done else np.zeros(0, np.int64)
    fields = np.stack([
        np.arange(first, first + len(w0)), r1 - r0 + 1, w["hs_cycle"][w0], w["hs_cycle"][w1],
        a["hs_cycle"][a0], a["hs_cycle"][a1], rows_cyc[r0], rows_cyc[r1],
        w["hs_nr"][w1] - w["hs_nr"][w0], w["hs_idle"][w1] - w["hs_idle"][w0],
        a["hs_nr"][a1] - a["hs_nr"][a0], a["hs_idle"][a1] - a["hs_idle"][a0],
        rows_stall[r1] - before], axis=1)[:done] if len(w0) else np.zeros((0, 13), np.int64)
    return [TileCycles(*row) for row in fields.tolist()]


def run_lib_bench(lib, harness: Harness, manifest: Manifest, tiles, *, stall_prob: float,
                  backpressure_prob: float, seed: int, reset_at_cycle=None, tiles_after_reset=0,
                  corrupt=None, keep_results: bool = False, progress=None):
    """Stream ``tiles`` through the library's model and check every result row.

    Returns ``(BenchReport, results)`` (``results``: tile -> int64 ``[M, cols]`` when
    ``keep_results``, else None).  Raises ``TimeoutError`` on a hang (the HDL bench's watchdog and
    words).
    """
    cfg, params = manifest.config, manifest.parameters
    rows, cols = cfg.rows, cfg.cols
    w_bus, a_bus, r_bus = BUSES
    widths = {s.bus: s.width for s in (*harness.inputs, *harness.outputs)}
    model = GoldenModel(cfg.act_bits, cfg.acc_bits, cfg.overflow)
    max_idle = watchdog_cycles(rows, cols, (stall_prob, backpressure_prob))
    tail = rows + cols + 4
    sim = Simulation(lib, harness, seeds={w_bus: stream_seed(seed, "w"),
                                          a_bus: stream_seed(seed, "a"),
                                          r_bus: stream_seed(seed, "r")},
                     tail=tail, max_idle=max_idle, init_reset=2, offer_at_0=False)
    n_first = len(tiles) - tiles_after_reset
    parts = [(tiles[:n_first], 0, corrupt), (tiles[n_first:], n_first, None)]
    records, dropped, results = [], [], {} if keep_results else None
    mismatches, first_mismatch, checked = 0, None, 0
    cycles_before_reset, loop_cycles = 0, 0
    wthr, rthr = lfsr_threshold(stall_prob), lfsr_threshold(backpressure_prob, "backpressure_prob")
    # compile (or load) the golden model's Numba code before the clock starts, as the HDL bench
    model.tile(np.zeros((rows, cols), dtype=np.uint8), np.zeros((1, rows), dtype=np.int64))
    t0, cpu0, python_s = wall_clock(), time.process_time(), 0.0
    try:
        for part, (seg, first, bad) in enumerate(parts):
            if part == 1 and reset_at_cycle is None:
                break
            codes = [c for c, _ in seg]
            acts = [np.asarray(a) for _, a in seg]
            bounds_w = np.arange(len(seg) + 1, dtype=np.int64) * rows
            bounds_a = np.concatenate([[0], np.cumsum([len(a) for a in acts])]).astype(np.int64)
            w_last = np.zeros(int(bounds_w[-1]), dtype=np.uint8)
            a_last = np.zeros(int(bounds_a[-1]), dtype=np.uint8)
            w_last[bounds_w[1:] - 1] = 1
            a_last[bounds_a[1:] - 1] = 1
            codes_all = (np.concatenate(codes) if codes else
                         np.zeros((0, cols), dtype=np.uint8))
            acts_all = np.concatenate(acts) if acts else np.zeros((0, rows), dtype=np.int64)
            w_data = pack_lanes(codes_all, 8, widths[w_bus])
            a_data = pack_lanes(acts_all, params.act_lane_bits, widths[a_bus])
            ms = np.diff(bounds_a)
            total = int(bounds_a[-1])
            sim.segment({w_bus: {"data": w_data, "last": w_last, "thr": wthr, "records": True},
                         a_bus: {"data": a_data, "last": a_last, "thr": wthr, "records": True}},
                        {r_bus: {"expect": total, "cap": total + tail + 2, "thr": rthr}},
                        reset_at=None if part or reset_at_cycle is None else reset_at_cycle + 1,
                        reset_edges=2)
            def rows_of(i, j, seg=seg, codes_all=codes_all, acts_all=acts_all, ms=ms,
                        bounds_a=bounds_a):
                """Golden rows of tiles [i, j): batched from the stacked arrays in wrap mode."""
                got = model.wrap_rows_of(codes_all[i * rows:j * rows],
                                         acts_all[bounds_a[i]:bounds_a[j]], ms[i:j])
                return expected_rows(model, seg[i:j]) if got is None else got
            sb = BatchScoreboard(model, seg, first, cols, bad, ahead=1 << 15, rows_of=rows_of)
            out = sim.outputs[r_bus]
            seen = 0
            while True:
                status = sim.run(BATCH_CYCLES)
                t_py = wall_clock()
                n = min(sim.count("out", r_bus), len(out["cycle"]))
                if n > seen:
                    data = unpack_lanes(out["data"][seen:n], params.acc_lane_bits, cols)
                    chunk = out["data"][seen:n]
                    sb.check(data, out["last"][seen:n].astype(np.int64), out["cycle"][seen:n],
                             lambda i, chunk=chunk: unpack_ints(chunk[i:i + 1])[0])
                    seen = n
                if progress is not None:
                    progress(sb, sim.cycle)
                python_s += wall_clock() - t_py
                if status == STATUS_HUNG:
                    raise TimeoutError(
                        f"no result row for {max_idle} cycles at cycle {sim.cycle - 1}: "
                        f"{sb.total - sb.seen} result row(s) outstanding, "
                        f"{len(w_data) - sim.count('in', w_bus)} weight and "
                        f"{len(a_data) - sim.count('in', a_bus)} activation beats not taken")
                if status in (STATUS_DONE, STATUS_RESET):
                    break
            # beats beyond the buffer (none can come after the tail starts): each a mismatch
            sb.mismatches += max(0, sim.count("out", r_bus) - len(out["cycle"]))
            seg_records = _tile_records(first, bounds_w, bounds_a, sim.inputs[w_bus],
                                        sim.inputs[a_bus], out["cycle"], out["stall"], bounds_a,
                                        min(seen, total))
            records += seg_records
            mismatches += sb.mismatches
            first_mismatch = first_mismatch or sb.first
            checked += sb.rows_checked
            if results is not None:
                data = unpack_lanes(out["data"][:min(seen, total)], params.acc_lane_bits, cols)
                for r in seg_records:
                    t = r.tile - first
                    results[r.tile] = data[bounds_a[t]:bounds_a[t + 1]]
            if status == STATUS_DONE:
                loop_cycles = cycles_before_reset + sim.cycle
                break
            done_tiles = {r.tile for r in seg_records}
            dropped += [first + t for t in range(len(seg)) if first + t not in done_tiles]
            cycles_before_reset = sim.cycle
        err_w_tlast = sim.status_outputs()["err_w_tlast"]
    finally:
        sim.close()
    wall, cpu = wall_clock() - t0, time.process_time() - cpu0
    last = max((r.r_last for r in records), default=-1)
    report = BenchReport(
        mismatches=mismatches, first_mismatch=first_mismatch, rows_checked=checked,
        values_checked=checked * cols, err_w_tlast=err_w_tlast, dropped_tiles=tuple(dropped),
        tiles=tuple(records), tiles_last_result_cycle=last,
        cycles=cycles_before_reset + last + 1, loop_cycles=loop_cycles, wall_s=wall, cpu_s=cpu,
        python_s=python_s)
    return report, results
